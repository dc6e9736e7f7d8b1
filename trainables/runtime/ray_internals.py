"""Every use of a private or internal part of Ray, in one place. Pinned to Ray 2.60.0 (`RAY_VERSION`).

Nothing else in sweeps/, trainables/, analysis/ or bench/ imports `ray.*._internal`, `ray._private` or
`ray.tune.experimental`, names their loggers, or sets their attributes. tests/test_ray_internals.py checks
each entry below against the installed Ray and fails on any other Ray version: after an upgrade,
re-check every entry of this file, then bump `RAY_VERSION`.

At run time a cosmetic entry (log noise, console output) that no longer fits warns and does nothing:
a renamed logger must not stop a sweep. An entry the code needs (`trial_storage`, `storage_probe`,
`repeatable_checkpoint_report`) raises.

    from trainables.runtime import ray_internals as ray_internals
    ray_internals.hide_token_auth_notice()   # etc.; import Ray lazily, as each function does
"""

from __future__ import annotations

import logging
import warnings
from typing import Callable

RAY_VERSION = "2.60.0"

# Environment variables read by Ray internals that we set, each with the file of the installed Ray that
# reads it (a test checks the name is still there). They are set where they matter, not here:
ENV_VARS = {
    # sweeps/tuning.py configure_tune: results handed to the driver in batches without ASHA
    "TUNE_RESULT_BUFFER_LENGTH": "tune/execution/tune_controller.py",
    "TUNE_RESULT_BUFFER_MIN_TIME_S": "tune/execution/tune_controller.py",
    # sweeps/tuning.py configure_tune: MLflow is the record, no per-trial JSON/CSV loggers
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "tune/utils/callback.py",
    # sweeps/tuning.py configure_tune: no warning about slow experiment-state syncs
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "tune/execution/experiment_state.py",
    # trainables/runtime/session.py run_with_tune: a stopped trial's last epoch may take longer than 2 s
    "TUNE_FUNCTION_THREAD_TIMEOUT_S": "tune/trainable/function_trainable.py",
    # sweeps/tuning.py configure_tune: without --verbose, Tune's old reporter at verbosity 0 prints nothing (its
    # new console output would still print an experiment box), so our progress lines are all there is
    "RAY_AIR_NEW_OUTPUT": "tune/experimental/output.py",
    # sweeps/checks.py init_ray: one machine cannot be preempted (the watcher only warns per DDP trial)
    "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "train/v2/_internal/constants.py",
}

TOKEN_AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
TOKEN_AUTH_NOTICE = "Token authentication is enabled"  # how Ray's notice on a local start begins
CHECKPOINT_LOGGERS = ("ray.train._internal.storage", "ray.train.v2._internal.execution.storage")


def _outdated(what: str) -> None:
    warnings.warn(f"Ray {_installed_version()} no longer has {what} (trainables/runtime/ray_internals.py is pinned to "
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


def _tune_session(caller: str):
    """The running Tune trial's session (Ray's private Train session, which holds its StorageContext)."""
    from ray.train._internal.session import get_session

    session = get_session()
    if session is None:
        raise RuntimeError(f"{caller}() called outside a Ray Tune trial (no Train session)")
    return session


def _tune_storage(caller: str):
    try:
        return _tune_session(caller).storage
    except AttributeError as e:
        raise _pinned(caller, e) from e


def _pinned(caller: str, error: AttributeError) -> RuntimeError:
    return RuntimeError(f"Ray {_installed_version()}'s storage context lacks what {caller}() uses ({error}); "
                        f"trainables/runtime/ray_internals.py is pinned to Ray {RAY_VERSION}: re-check {caller}()")


def trial_storage() -> tuple[str, object]:
    """(path, pyarrow filesystem) of the running Tune trial's folder, local or on S3."""
    # A DDP trial's Train run is stored there, to resume with it; no public API gives that path on S3.
    storage = _tune_storage("trial_storage")
    try:
        return storage.trial_fs_path, storage.storage_filesystem
    except AttributeError as e:
        raise _pinned("trial_storage", e) from e


# How Ray's storage check (`_check_validation_file`, the first step of every checkpoint upload) fails when
# the storage answers but does not show the experiment's marker file (e.g. S3 just restarted).
STORAGE_CHECK_FAILURE = "Unable to set up cluster storage"


def storage_probe(storage=None) -> Callable[[], None]:
    """A probe of the sweep's storage that raises while a checkpoint upload would fail on it.

    It runs the check Ray starts every checkpoint upload with: the experiment's marker file is there
    (OSError while S3 is unreachable, RuntimeError while it answers without the marker). `storage`: a
    StorageContext (a Train worker's `ray.train.get_context().get_storage()`); default: the Tune trial's.
    """
    storage = storage if storage is not None else _tune_storage("storage_probe")
    try:
        return storage._check_validation_file
    except AttributeError as e:
        raise _pinned("storage_probe", e) from e


def is_storage_outage(error: BaseException) -> bool:
    """True for the errors a checkpoint upload raises while the storage is unreachable."""
    return isinstance(error, OSError) or (isinstance(error, RuntimeError)
                                          and str(error).startswith(STORAGE_CHECK_FAILURE))


def repeatable_checkpoint_report(report: Callable[[], object]) -> Callable[[], object]:
    """`report` (a Tune trial's `tune.report` with a checkpoint) made safe to call again after it raised.

    Ray 2.60 advances the trial session's iteration and checkpoint index before it uploads the checkpoint,
    so every failed upload would skip one of each. The index must stay in step with the driver's copy,
    which counts registered checkpoints and is what a restarted trial starts from: one ahead, a restarted
    trial would write its next checkpoint into the folder of a kept one, which Tune then deletes.
    """
    session = _tune_session("repeatable_checkpoint_report")

    def attempt() -> object:
        try:
            iteration, index = session.iteration, session.storage.current_checkpoint_index
        except AttributeError as e:
            raise _pinned("repeatable_checkpoint_report", e) from e
        try:
            return report()
        except BaseException:
            session.iteration, session.storage.current_checkpoint_index = iteration, index
            raise

    return attempt


def tolerate_failed_checkpoint_deletes() -> None:
    """On the driver: a checkpoint Tune cannot delete while the storage is down stays there, with a warning.

    Ray 2.60's `_delete_fs_path` catches a failed delete but not the existence check before it, so with S3
    unreachable, deleting a trial's oldest checkpoint (`num_to_keep`) raises inside Tune's checkpoint
    handling, which then skips advancing its copy of the trial's checkpoint index (see
    `repeatable_checkpoint_report` for why that index matters).
    """
    try:
        from ray.train._internal import checkpoint_manager
        from ray.train._internal import storage as train_storage
    except ImportError:
        _outdated("ray.train._internal.checkpoint_manager/storage")
        return
    if getattr(getattr(checkpoint_manager, "_delete_fs_path", None), "tolerant", False):
        return
    if not hasattr(train_storage, "_delete_fs_path") or not hasattr(checkpoint_manager, "_delete_fs_path"):
        _outdated("ray.train._internal.checkpoint_manager._delete_fs_path")
        return
    delete = train_storage._delete_fs_path

    def tolerant_delete(fs, fs_path: str) -> None:
        try:
            delete(fs=fs, fs_path=fs_path)
        except Exception as e:  # noqa: BLE001  (storage unreachable: keep the sweep going)
            logging.getLogger(__name__).warning("could not delete the old checkpoint %s (%s); it stays on the storage",
                                                fs_path, str(e).splitlines()[0][:200] if str(e) else type(e).__name__)

    tolerant_delete.tolerant = True
    checkpoint_manager._delete_fs_path = tolerant_delete


STORAGE_LOGGERS = ("ray.train._internal.storage", "ray.train._internal.syncer", "ray.tune.execution.experiment_state")
SYNC_FAILURE = "Last sync command failed"  # how Ray's syncer begins its warning (a traceback follows)


def _storage_error_in_one_line(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    if message.startswith(SYNC_FAILURE):
        last = message.strip().splitlines()[-1]
        record.msg, record.args = f"saving the experiment state to storage failed ({last[:200]}); Tune tries again", ()
    elif record.exc_info and isinstance(record.exc_info[1], OSError):
        error = str(record.exc_info[1]).splitlines()
        record.msg, record.args = f"{message.rstrip(': ')}: {error[0][:200] if error else 'OSError'}", ()
        record.exc_info, record.exc_text = None, None
    return True


def shorten_storage_error_logs() -> None:
    # While S3 is down, the driver's experiment-state snapshots fail every ~10 s, each logged with a 20-line
    # traceback; one line each says as much.
    for name in STORAGE_LOGGERS:
        logger = logging.getLogger(name)
        if _storage_error_in_one_line not in logger.filters:
            logger.addFilter(_storage_error_in_one_line)
