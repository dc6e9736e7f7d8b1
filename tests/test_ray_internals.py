"""Each use of a Ray internal (trainables/runtime/ray_internals.py) checked against the installed Ray.

A failure here after a Ray upgrade names the entry that broke: fix that entry (or drop it), re-run,
then bump RAY_VERSION. No Ray cluster is started: classes, loggers and source files are inspected.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import ray

from trainables.runtime import ray_internals as ray_internals

REPO = Path(__file__).resolve().parents[1]
RAY_ROOT = Path(ray.__file__).parent
OUR_PACKAGES = ("sweeps", "trainables", "analysis", "bench")


def test_pinned_to_the_installed_ray():
    assert ray.__version__ == ray_internals.RAY_VERSION, (
        f"Ray {ray.__version__} is installed but trainables/runtime/ray_internals.py is pinned to {ray_internals.RAY_VERSION}: "
        f"re-check every entry of trainables/runtime/ray_internals.py (run tests/test_ray_internals.py), then bump RAY_VERSION")
    assert f"Pinned to Ray {ray_internals.RAY_VERSION} " in ray_internals.__doc__


# --- TuneTerminalReporter._start_end_verbosity ---------------------------------------------------

@pytest.fixture
def reporter_class(monkeypatch):
    """TuneTerminalReporter with Ray 2.60's own `_start_end_verbosity` (AirVerbosity.DEFAULT): a sweep run
    earlier in this process (a test calling sweeps.runner.main) has already quieted it. Restored afterwards."""
    from ray.tune.experimental.output import AirVerbosity, TuneTerminalReporter

    ray_classes = [k for k in TuneTerminalReporter.__mro__ if k.__module__.startswith("ray.")]
    assert any("_start_end_verbosity = AirVerbosity.DEFAULT" in inspect.getsource(k) for k in ray_classes), \
        "Ray changed TuneTerminalReporter's own _start_end_verbosity: re-check quiet_trial_start_end()"
    monkeypatch.setattr(TuneTerminalReporter, "_start_end_verbosity", AirVerbosity.DEFAULT)
    return TuneTerminalReporter


def test_start_end_verbosity_exists_and_gates_the_trial_boxes(reporter_class, capsys):
    from ray.tune.experimental.output import AirVerbosity

    assert any("_start_end_verbosity" in vars(k) for k in reporter_class.__mro__), \
        "Ray renamed TuneTerminalReporter._start_end_verbosity: re-check quiet_trial_start_end()"
    for method in ("on_trial_start", "on_trial_complete"):  # the boxes it hides
        assert "self.verbosity < self._start_end_verbosity" in inspect.getsource(getattr(reporter_class, method)), \
            f"TuneTerminalReporter.{method} no longer reads _start_end_verbosity: re-check quiet_trial_start_end()"
    trial = SimpleNamespace(config={})
    reporter_class(AirVerbosity.DEFAULT).on_trial_start(0, [trial], trial)
    assert "started without custom configuration" in capsys.readouterr().out  # Ray's default prints the box
    ray_internals.quiet_trial_start_end()
    assert reporter_class._start_end_verbosity == AirVerbosity.VERBOSE
    reporter_class(AirVerbosity.DEFAULT).on_trial_start(0, [trial], trial)
    assert capsys.readouterr().out == ""  # ...and after quiet_trial_start_end, at the runner's verbosity, not
    reporter_class(AirVerbosity.VERBOSE).on_trial_start(0, [trial], trial)
    assert "started without custom configuration" in capsys.readouterr().out  # --verbose still shows it


def test_a_renamed_class_attribute_is_not_set_but_warned(monkeypatch):
    class Base:
        present = 1

    class Reporter(Base):
        pass

    assert ray_internals.set_class_attribute(Reporter, "present", 2) and Reporter.present == 2 and Base.present == 1
    assert not ray_internals.set_class_attribute(Reporter, "renamed", 2) and not hasattr(Reporter, "renamed")
    monkeypatch.setattr(ray_internals, "set_class_attribute", lambda *a: False)
    with pytest.warns(RuntimeWarning, match=r"no longer has TuneTerminalReporter._start_end_verbosity .*pinned"):
        ray_internals.quiet_trial_start_end()


# --- loggers -------------------------------------------------------------------------------------

def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError as e:
        pytest.fail(f"Ray {ray.__version__} has no module {name} ({e}): re-check trainables/runtime/ray_internals.py")


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_token_auth_notice_logger_and_message():
    mod = _module(ray_internals.TOKEN_AUTH_LOGGER)
    assert mod.logger.name == ray_internals.TOKEN_AUTH_LOGGER
    source = inspect.getsource(mod)
    assert "logger = logging.getLogger(__name__)" in source
    assert f'"{ray_internals.TOKEN_AUTH_NOTICE}' in source, \
        f"Ray's token-auth notice no longer begins {ray_internals.TOKEN_AUTH_NOTICE!r}: re-check hide_token_auth_notice()"
    logger, records = logging.getLogger(ray_internals.TOKEN_AUTH_LOGGER), _Records()
    logger.addHandler(records)
    try:
        ray_internals.hide_token_auth_notice()
        ray_internals.hide_token_auth_notice()
        assert logger.filters.count(ray_internals._token_auth_notice) == 1
        logger.warning(f"{ray_internals.TOKEN_AUTH_NOTICE} for this Ray cluster. Set RAY_AUTH_MODE=disabled ...")
        logger.warning("Token authentication is disabled for this Ray cluster. Anyone with network access ...")
        assert records.messages == ["Token authentication is disabled for this Ray cluster. Anyone with network access ..."]
    finally:
        logger.removeHandler(records)
        logger.removeFilter(ray_internals._token_auth_notice)


def test_train_report_logger_is_named_by_file():
    from ray.train.v2._internal.execution import context

    source = inspect.getsource(context)
    assert "logger = logging.getLogger(__file__)" in source and context.logger.name == context.__file__, \
        "Ray Train's context module no longer logs as getLogger(__file__): re-check quiet_train_report_logs()"
    assert re.search(r"logger\.info\(\s*f\"Reporting training result", source), \
        "Ray Train no longer logs each report at INFO there: quiet_train_report_logs() may be unneeded"
    logger = logging.getLogger(context.__file__)
    level = logger.level
    try:
        ray_internals.quiet_train_report_logs()
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(level)


@pytest.mark.parametrize("name", ray_internals.CHECKPOINT_LOGGERS)
def test_checkpoint_loggers(name):
    mod = _module(name)
    assert mod.logger.name == name, f"{name} no longer logs under its module name: re-check quiet_checkpoint_logs()"
    assert 'logger.info(f"Checkpoint successfully created' in inspect.getsource(mod)
    logger = logging.getLogger(name)
    level = logger.level
    try:
        ray_internals.quiet_checkpoint_logs()
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(level)


# --- the Tune trial's storage ----------------------------------------------------------------------

def test_trial_storage_reads_the_tune_sessions_storage(tmp_path, monkeypatch):
    import pyarrow.fs
    from ray.train._internal import session as train_session
    from ray.train._internal.session import _TrainSession, get_session
    from ray.train._internal.storage import StorageContext
    from ray.tune.trainable import function_trainable

    # A Tune function trial runs in this session (so get_session() is it there), which holds a StorageContext
    assert function_trainable.init_session is train_session.init_session
    assert "StorageContext" in str(inspect.signature(_TrainSession.__init__).parameters["storage"].annotation)
    assert "self.storage = storage" in inspect.getsource(_TrainSession)  # set in reset(), called by __init__
    assert get_session is train_session.get_session and get_session() is None  # no trial here
    with pytest.raises(RuntimeError, match="outside a Ray Tune trial"):
        ray_internals.trial_storage()

    storage = StorageContext(storage_path=str(tmp_path), experiment_dir_name="exp", trial_dir_name="trial_0")
    monkeypatch.setattr(train_session, "_session", SimpleNamespace(storage=storage))
    path, filesystem = ray_internals.trial_storage()
    assert Path(path) == tmp_path / "exp" / "trial_0"
    assert isinstance(filesystem, pyarrow.fs.FileSystem) and filesystem is storage.storage_filesystem

    monkeypatch.setattr(train_session, "_session", SimpleNamespace(storage=SimpleNamespace(trial_fs_path="x")))
    with pytest.raises(RuntimeError, match="re-check trial_storage"):
        ray_internals.trial_storage()


# --- riding out a storage outage -------------------------------------------------------------------

@pytest.mark.parametrize("version", ["tune", "train_v2"])
def test_storage_probe_runs_rays_own_upload_check(version, tmp_path, monkeypatch):
    """The probe passes on a working storage and fails, as an outage, once the marker Ray checks is gone."""
    if version == "tune":
        from ray.train._internal import session as train_session
        from ray.train._internal.storage import StorageContext

        storage = StorageContext(storage_path=str(tmp_path), experiment_dir_name="exp", trial_dir_name="trial_0")
        monkeypatch.setattr(train_session, "_session", SimpleNamespace(storage=storage))
        probe = ray_internals.storage_probe()  # the Tune trial's
        upload = inspect.getsource(type(storage).persist_current_checkpoint)
    else:
        from ray.train.v2._internal.execution.storage import StorageContext

        storage = StorageContext(storage_path=str(tmp_path), experiment_dir_name="exp")
        probe = ray_internals.storage_probe(storage)  # a Train worker's, from ray.train.get_context().get_storage()
        upload = inspect.getsource(type(storage).persist_current_checkpoint)
    assert "self._check_validation_file()" in upload, "Ray's upload no longer starts with the check the probe runs"
    probe()
    markers = list((tmp_path / "exp").glob(".validate_storage_marker"))
    assert len(markers) == 1
    markers[0].unlink()
    with pytest.raises(RuntimeError) as error:
        probe()
    assert ray_internals.is_storage_outage(error.value), error.value


def test_a_failed_checkpoint_report_leaves_rays_counters_as_they_were(tmp_path, monkeypatch):
    """Ray advances the iteration and checkpoint index before uploading; a failed upload must not (a gap would
    put the trial's index ahead of the driver's copy, which a restarted trial starts from)."""
    from ray.train._internal import session as train_session
    from ray.train._internal.session import _TrainSession

    report = inspect.getsource(_TrainSession.report)
    assert report.index("self._auto_fill_metrics(") < report.index("persist_current_checkpoint(")
    assert report.index("_update_checkpoint_index(") < report.index("persist_current_checkpoint(")
    assert "self.iteration += 1" in inspect.getsource(_TrainSession._auto_fill_metrics)

    storage = SimpleNamespace(current_checkpoint_index=6)
    session = SimpleNamespace(iteration=35, storage=storage)
    monkeypatch.setattr(train_session, "_session", session)
    attempts = []

    def tune_report():  # what Ray's report does to the counters, then the upload
        session.iteration += 1
        storage.current_checkpoint_index += 1
        attempts.append(1)
        if len(attempts) < 3:
            raise OSError("AWS Error NETWORK_CONNECTION")
        return "reported"

    report_again = ray_internals.repeatable_checkpoint_report(tune_report)
    for _ in range(2):
        with pytest.raises(OSError):
            report_again()
        assert (session.iteration, storage.current_checkpoint_index) == (35, 6)
    assert report_again() == "reported" and (session.iteration, storage.current_checkpoint_index) == (36, 7)


def test_an_old_checkpoint_that_cannot_be_deleted_stays_with_a_warning(caplog, monkeypatch):
    """Ray 2.60's own delete raises when S3 is unreachable (its existence check is outside its try); ours warns."""
    import pyarrow.fs
    from ray.train._internal import checkpoint_manager
    from ray.train._internal import storage as train_storage

    unreachable = pyarrow.fs.S3FileSystem(endpoint_override="http://127.0.0.1:1", access_key="k", secret_key="s",
                                          region="us-east-1", retry_strategy=pyarrow.fs.AwsStandardS3RetryStrategy(1))
    with pytest.raises(OSError):
        train_storage._delete_fs_path(fs=unreachable, fs_path="sweeps/exp/trial/checkpoint_000001")
    assert "_delete_fs_path(fs=checkpoint.filesystem" in inspect.getsource(checkpoint_manager)
    # Ray's own, as before any sweep in this process wrapped it (restored after the test)
    monkeypatch.setattr(checkpoint_manager, "_delete_fs_path", train_storage._delete_fs_path)
    ray_internals.tolerate_failed_checkpoint_deletes()
    wrapped = checkpoint_manager._delete_fs_path
    ray_internals.tolerate_failed_checkpoint_deletes()  # twice: wrapped once
    assert wrapped is not train_storage._delete_fs_path and checkpoint_manager._delete_fs_path is wrapped
    with caplog.at_level(logging.WARNING):
        checkpoint_manager._delete_fs_path(fs=unreachable, fs_path="sweeps/exp/trial/checkpoint_000001")
    assert "could not delete the old checkpoint sweeps/exp/trial/checkpoint_000001 (" in caplog.text


def test_storage_errors_are_logged_in_one_line(caplog):
    from ray.train._internal import syncer
    from ray.tune.execution import experiment_state

    assert f'f"{ray_internals.SYNC_FAILURE} with the following error:' in inspect.getsource(syncer)
    assert "failed with exception: " in inspect.getsource(experiment_state) and "exc_info=True" in \
        inspect.getsource(experiment_state)
    for name in ray_internals.STORAGE_LOGGERS:
        assert _module(name).logger.name == name
    ray_internals.shorten_storage_error_logs()
    try:
        raise OSError("When testing for existence of bucket 'sweeps': AWS Error NETWORK_CONNECTION\nmore")
    except OSError:
        with caplog.at_level(logging.WARNING):
            logging.getLogger("ray.tune.execution.experiment_state").error(
                "Saving experiment state to storage at 'x' failed with exception: ", exc_info=True)
            logging.getLogger("ray.train._internal.syncer").warning(
                f"{ray_internals.SYNC_FAILURE} with the following error:\nTraceback (most recent call last):\n"
                f"  File ...\nOSError: bucket gone\n")
    first, second = caplog.records[-2:]
    assert first.getMessage() == ("Saving experiment state to storage at 'x' failed with exception: When testing for "
                                  "existence of bucket 'sweeps': AWS Error NETWORK_CONNECTION") and not first.exc_info
    assert second.getMessage() == "saving the experiment state to storage failed (OSError: bucket gone); Tune tries again"
    assert "Traceback" not in caplog.text


# --- environment variables -----------------------------------------------------------------------

@pytest.mark.parametrize("name,reader", sorted(ray_internals.ENV_VARS.items()))
def test_env_var_is_still_read_by_ray(name, reader):
    path = RAY_ROOT / reader
    source = path.read_text() if path.exists() else ""
    if f'"{name}"' not in source:
        elsewhere = sorted(str(p.relative_to(RAY_ROOT)) for p in RAY_ROOT.rglob("*.py")
                           if "tests" not in p.parts and f'"{name}"' in p.read_text(errors="replace"))
        pytest.fail(f"{name} is no longer in ray/{reader} (found in: {elsewhere or 'nowhere'}): re-check ENV_VARS "
                    f"of trainables/runtime/ray_internals.py and where we set it")


def _our_files():
    for package in OUR_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            yield path, path.read_text()


def _env_vars_we_set(tree: ast.AST):
    """(name, line) of every os.environ[NAME] = ... and os.environ.setdefault(NAME, ...)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Subscript) and ast.unparse(t.value) == "os.environ" \
                        and isinstance(t.slice, ast.Constant):
                    yield t.slice.value, node.lineno
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.setdefault", "os.putenv") \
                and node.args and isinstance(node.args[0], ast.Constant):
            yield node.args[0].value, node.lineno


def test_every_ray_env_var_we_set_is_listed():
    missing = [f"{path.relative_to(REPO)}:{line} sets {name}"
               for path, text in _our_files() for name, line in _env_vars_we_set(ast.parse(text))
               if name.startswith(("RAY_", "TUNE_")) and name not in ray_internals.ENV_VARS]
    assert not missing, "add these to ENV_VARS in trainables/runtime/ray_internals.py:\n" + "\n".join(missing)


# --- nothing else touches Ray internals ------------------------------------------------------------

PRIVATE_RAY_NAME = re.compile(r"\bray(\.\w+)*\.(_[a-z]\w*|experimental)\b")  # ray._private, ray.x._internal, ...


def test_ray_internals_are_used_only_in_ray_internals():
    offenders = []
    for path, text in _our_files():
        if path == REPO / "trainables" / "runtime" / "ray_internals.py":
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if PRIVATE_RAY_NAME.search(line) or "_start_end_verbosity" in line:
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ray":
                offenders += [f"{path.relative_to(REPO)}:{node.lineno}: from {node.module} import {a.name}"
                              for a in node.names if a.name.startswith("_")]
    assert not offenders, "move these into trainables/runtime/ray_internals.py (with a test here):\n" + "\n".join(offenders)
