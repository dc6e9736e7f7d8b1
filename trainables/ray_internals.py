"""Every use of a private or internal part of Ray, in one place. Pinned to Ray 2.60.0 (`RAY_VERSION`).

Nothing else in sweeps/, trainables/, analysis/ or bench/ imports `ray.*._internal`, `ray._private` or
`ray.tune.experimental`, names their loggers, or sets their attributes. tests/test_ray_internals.py checks
each entry below against the installed Ray and fails on any other Ray version: after an upgrade,
re-check every entry of this file, then bump `RAY_VERSION`.

At run time a cosmetic entry (log noise, console output) that no longer fits warns and does nothing:
a renamed logger must not stop a sweep. An entry the code needs (`trial_storage`) raises.

    from trainables import ray_internals
    ray_internals.hide_token_auth_notice()   # etc.; import Ray lazily, as each function does
"""

from __future__ import annotations

import logging
import warnings

RAY_VERSION = "2.60.0"

# Environment variables read by Ray internals that we set, each with the file of the installed Ray that
# reads it (a test checks the name is still there). They are set where they matter, not here:
ENV_VARS = {
    # sweeps/runner.py _configure_tune: results handed to the driver in batches without ASHA
    "TUNE_RESULT_BUFFER_LENGTH": "tune/execution/tune_controller.py",
    "TUNE_RESULT_BUFFER_MIN_TIME_S": "tune/execution/tune_controller.py",
    # sweeps/runner.py _configure_tune: MLflow is the record, no per-trial JSON/CSV loggers
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "tune/utils/callback.py",
    # sweeps/runner.py _configure_tune: no warning about slow experiment-state syncs
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "tune/execution/experiment_state.py",
    # trainables/session.py tune_trainable: a stopped trial's last epoch may take longer than 2 s
    "TUNE_FUNCTION_THREAD_TIMEOUT_S": "tune/trainable/function_trainable.py",
    # sweeps/runner.py init_ray: one machine cannot be preempted (the watcher only warns per DDP trial)
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "train/v2/_internal/constants.py",
}

TOKEN_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
TOKEN_AUTH_NOTICE = "Token authentication is enabled"  # how Ray's notice on a local start begins
CHECKPOINT_LOGGERS = ("ray.train._internal.storage", "ray.train.v2._internal.execution.storage")


def _outdated(what: str) -> None:
    warnings.warn(f"Ray {_installed_version()} no longer has {what} (trainables/ray_internals.py is pinned to "
                  f"Ray {RAY_VERSION}); carrying on without it", RuntimeWarning, stacklevel=3)


def _installed_version() -> str:
    import ray

    return ray.__version__


def _token_auth_notice(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith(TOKEN_AUTH_NOTICE)


def hide_token_auth_notice() -> None:
    # Ray 2.60 says on every local start that it enabled its (safe) default, token authentication.
    logging.getLogger(TOKEN_AUTH_LOGGER).addFilter(_token_auth_notice)  # adding it twice keeps one


def set_class_attribute(cls: type, name: str, value: object) -> bool:
    """Set `cls.name` only if `cls` or a base class defines it; assigning a renamed one would silently do nothing."""
    if not any(name in vars(klass) for klass in cls.__mro__):
        return False
    setattr(cls, name, value)
    return True


def quiet_trial_start_end() -> None:
    # Per-trial config and result boxes (printed at verbosity >= this) would bury a 143-trial sweep's table.
    try:
        from ray.tune.experimental.output import AirVerbosity, TuneTerminalReporter
    except ImportError:
        _outdated("ray.tune.experimental.output.TuneTerminalReporter/AirVerbosity")
        return
    if not set_class_attribute(TuneTerminalReporter, "_start_end_verbosity", AirVerbosity.VERBOSE):
        _outdated("TuneTerminalReporter._start_end_verbosity")


def quiet_train_report_logs() -> None:
    # Train workers log every report at INFO via a logger named by a file path (LoggingConfig misses it).
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:
        _outdated("ray.train.v2._internal.execution.context")
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def quiet_checkpoint_logs() -> None:
    # Ray logs every persisted checkpoint at INFO: at one checkpoint per few epochs that floods the driver.
    for name in CHECKPOINT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def trial_storage() -> tuple[str, object]:
    """(path, pyarrow filesystem) of the running Tune trial's folder, local or on S3."""
    # A DDP trial's Train run is stored there, to resume with it; no public API gives that path on S3.
    from ray.train._internal.session import get_session

    session = get_session()
    if session is None:
        raise RuntimeError("trial_storage() called outside a Ray Tune trial (no Train session)")
    try:
        return session.storage.trial_fs_path, session.storage.storage_filesystem
    except AttributeError as e:
        raise RuntimeError(f"Ray {_installed_version()}'s Tune session has no storage.trial_fs_path or "
                           f"storage_filesystem ({e}); trainables/ray_internals.py is pinned to Ray "
                           f"{RAY_VERSION}: re-check trial_storage()") from e
