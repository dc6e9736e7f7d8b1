"""Durability end to end: S3 storage, an MLflow tracking server, resume after a driver kill, worker retries.

Real servers on 127.0.0.1 (tests/servers.py: SeaweedFS for S3, `mlflow server` with SQLite and S3
artifacts), started once for the module; real Ray, real training on the depth-vs-width smoke preset.
Faults are injected for real: SIGKILL of the sweep's driver, a trial that kills its own process, the
tracking server stopped and restarted mid-sweep.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, faults
from servers import MlflowServer, S3Server

SCRIPT = str(ROOT / "sweeps" / "depth_width.py")
FIGURES = ["rmse_vs_hidden_units.png", "rmse_vs_params.png", "train_time_vs_params.png"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("servers")
    s3 = S3Server(root / "s3").start()
    tracking = MlflowServer(root / "mlflow", s3)
    try:
        tracking.start()
        yield s3, tracking
    finally:
        tracking.stop()
        s3.stop()


def _env(s3: S3Server, tracking: MlflowServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    env.update(s3.env, MLFLOW_S3_ENDPOINT_URL=s3.endpoint, MLFLOW_TRACKING_URI=tracking.uri,
               MLFLOW_DISABLE_TELEMETRY="true", RAY_USAGE_STATS_ENABLED="0", **extra)
    return env


def _start(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, SCRIPT, *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[str, str]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return out, err


def _parent_id(stdout: str) -> str:
    line = next(l for l in stdout.splitlines() if l.startswith("regenerate the figures"))
    return line.split("--parent-run ")[1].split()[0]


def _children(client: MlflowClient, parent_id: str, deleted: bool = False):
    from mlflow.entities import ViewType

    experiment_id = client.get_run(parent_id).info.experiment_id
    return client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'",
                              run_view_type=ViewType.DELETED_ONLY if deleted else ViewType.ACTIVE_ONLY)


def _assert_complete(client: MlflowClient, children, epochs: int) -> None:
    """Every trial's run is closed as finished with each epoch recorded exactly once."""
    trial_ids = [c.data.tags["ray.trial_id"] for c in children]
    assert len(set(trial_ids)) == len(trial_ids), "a trial has two child runs"
    for child in children:
        assert child.info.status == "FINISHED" and child.data.tags["trial_status"] == "finished", child.data.tags
        for key in ("test/rmse", "train/loss", "diverged"):
            steps = [m.step for m in client.get_metric_history(child.info.run_id, key)]
            assert sorted(steps) == list(range(1, epochs + 1)), (key, sorted(steps))


def _latest_parent(client: MlflowClient) -> str | None:
    experiment = client.get_experiment_by_name("depth_width")
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id], "tags.`sweep.parent` = '1'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0].info.run_id if runs else None


def _recording_sweep(client: MlflowClient, before: str | None, proc: subprocess.Popen, timeout: float = 240) -> str:
    """The parent run of the sweep `proc` started (not `before`), once one of its trials records."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parent_id = _latest_parent(client)
        if parent_id != before and parent_id and _children(client, parent_id):
            return parent_id
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.3)
    raise AssertionError(f"no trial of the sweep recorded within {timeout} s")


def _outage(server: S3Server | MlflowServer, seconds: float, proc: subprocess.Popen) -> tuple[bool, float]:
    """Stop `server` for `seconds`, then start it again (the outage lasts the start-up too); returns whether
    `proc` was still running when the server was started again, and how long the server was down."""
    server.stop()
    down = time.monotonic()
    time.sleep(seconds)
    running = proc.poll() is None
    server.start()
    return running, time.monotonic() - down


def test_s3_storage_and_tracking_server_end_to_end(servers, tmp_path):
    s3, tracking = servers
    env = _env(s3, tracking)
    out, _ = _finish(_start(["--preset", "smoke", "--results-dir", "res", "--storage", "s3://sweeps/e2e"],
                            tmp_path, env))
    parent_id = _parent_id(out)
    client = MlflowClient(tracking.uri)
    children = _children(client, parent_id)
    assert sorted(c.data.params["widths"] for c in children) == ["16", "16-16-16", "32-16"]
    _assert_complete(client, children, epochs=3)
    assert not (tmp_path / "res" / "ray").exists()  # Tune's state went to S3, not to the results folder

    experiment_path = client.get_run(parent_id).data.tags["ray_experiment_path"]
    assert experiment_path.startswith("s3://sweeps/e2e/depth_width-")
    keys = s3.keys(experiment_path.removeprefix("s3://sweeps/"))
    names = [k.rsplit("/", 1)[-1] for k in keys]
    assert any(n.startswith("experiment_state-") and n.endswith(".json") for n in names)
    assert "tuner.pkl" in names
    assert sum(n == "state.pt" and keys[k] > 1000 for k, n in zip(keys, names)) == 3  # a checkpoint per trial
    artifacts = s3.keys("mlartifacts/")
    for name in FIGURES:
        key = next(k for k in artifacts if parent_id in k and k.endswith(f"figures/{name}"))
        assert artifacts[key] > 5000

    # The figures come back from the tracking server alone, in a separate process.
    for name in FIGURES:
        (tmp_path / "res" / "depth_width" / name).unlink()
    regen = subprocess.run([sys.executable, "-m", "analysis", "depth_width", "--parent-run", parent_id,
                            "--results-dir", "res"], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                           capture_output=True, text=True, timeout=120)
    assert regen.returncode == 0, regen.stderr[-2000:]
    for name in FIGURES:
        assert (tmp_path / "res" / "depth_width" / name).stat().st_size > 5000


def test_driver_killed_mid_sweep_then_resumed(servers, tmp_path):
    """SIGKILL the driver while trials run; --resume finishes the sweep with one complete run per trial."""
    s3, tracking = servers
    env = _env(s3, tracking)
    client = MlflowClient(tracking.uri)
    before = _latest_parent(client)
    epochs, samples = 100, 4
    args = ["--preset", "smoke", "--search", "optuna", "--num-samples", str(samples), "--max-concurrent", "1",
            "--set", f"epochs={epochs}", "--set", "n_points=20000", "--checkpoint-every", "5",
            "--results-dir", "res", "--storage", "s3://sweeps/resume"]
    proc = _start(args, tmp_path, env)
    parent_id, killed_at = None, None
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            parent_id = parent_id or (_latest_parent(client) if _latest_parent(client) != before else None)
            if parent_id:
                status = [c.info.status for c in _children(client, parent_id)]
                if "FINISHED" in status and "RUNNING" in status:  # one trial done, another under way
                    proc.send_signal(signal.SIGKILL)
                    killed_at = status
                    break
            time.sleep(0.3)
    finally:
        if proc.poll() is None and killed_at is None:
            proc.kill()
        proc.communicate(timeout=60)
    assert killed_at is not None, "the sweep ended before it could be interrupted"
    assert client.get_run(parent_id).info.status == "RUNNING"  # the driver died without closing anything
    s3.stop()  # and the S3 server restarts while the sweep is down: its state must survive that too
    s3.start()

    out, err = _finish(_start(["--resume", "--results-dir", "res"], tmp_path, env))
    assert _parent_id(out) == parent_id  # the same sweep, continued
    children = _children(client, parent_id)
    assert len(children) == samples, [c.data.tags for c in children]  # Optuna's count restored: no extra trials
    _assert_complete(client, children, epochs)
    assert client.get_run(parent_id).info.status == "FINISHED"
    # Runs of trials the restored experiment did not know (started after its last snapshot) are set aside.
    for orphan in _children(client, parent_id, deleted=True):
        assert orphan.data.tags["trial_status"] == "orphaned"


def test_worker_killed_and_tracking_server_restarted_mid_sweep(servers, tmp_path):
    """Two faults in one sweep (start-ups dominate the cost of a test):

    - a trial kills its own process after its epoch-10 checkpoint: Tune retries it from that checkpoint;
    - the tracking server is stopped mid-sweep and started again: trials go on, the recorder buffers and
      writes everything once the server is back.
    MLflow ends with one complete run per trial either way.
    """
    from ray.tune import ExperimentAnalysis

    s3, tracking = servers
    marker = tmp_path / "killed-once"
    env = _env(s3, tracking, **faults(DLSWEEPS_TEST_KILL_AFTER_CHECKPOINT=f"10:{marker}"))
    client = MlflowClient(tracking.uri)
    epochs = 120
    before = _latest_parent(client)
    proc = _start(["--preset", "smoke", "--set", f"epochs={epochs}", "--set", "n_points=20000",
                   "--checkpoint-every", "5", "--max-concurrent", "1", "--results-dir", "res",
                   "--storage", str(tmp_path / "ray")], tmp_path, env)
    try:
        parent_id = _recording_sweep(client, before, proc)
        down_while_running, _ = _outage(tracking, 8, proc)  # trials keep training (and finishing) meanwhile
        out, err = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        if tracking.proc is None:
            tracking.start()
    assert down_while_running
    assert "MLflow tracking server" in err and "back after" in err
    assert marker.exists()  # a trial did kill its process
    children = _children(client, parent_id)
    assert len(children) == 3
    _assert_complete(client, children, epochs)
    analysis = ExperimentAnalysis(client.get_run(parent_id).data.tags["ray_experiment_path"])
    failed = [t for t in analysis.trials if t.run_metadata.num_failures]
    assert len(failed) == 1 and failed[0].run_metadata.num_failures == 1
    # Restored from the checkpoint at epoch 10 (or later), not from scratch.
    assert failed[0].last_result["iterations_since_restore"] <= epochs - 10


def test_s3_outage_mid_sweep_checkpoints_wait_and_the_sweep_finishes(servers, tmp_path, monkeypatch):
    """The S3 server stopped for ~20 s while trials checkpoint to it, then started again.

    Checkpoint uploads wait for S3 and are made again (trainables/runtime/storage_outage.py), so no trial fails;
    the driver rides out its failed experiment-state snapshots and old-checkpoint deletions. MLflow ends
    with one complete run per trial, and each trial's checkpoints are numbered without a gap (a failed
    upload must not advance Ray's checkpoint index, or a later restart would overwrite a kept checkpoint).
    """
    from ray.tune import ExperimentAnalysis

    s3, tracking = servers
    client = MlflowClient(tracking.uri)
    epochs, every = 300, 5
    before = _latest_parent(client)
    proc = _start(["--preset", "smoke", "--set", f"epochs={epochs}", "--set", "n_points=20000", "--checkpoint-every",
                   str(every), "--results-dir", "res", "--storage", "s3://sweeps/outage"], tmp_path, _env(s3, tracking))
    try:
        parent_id = _recording_sweep(client, before, proc)  # trials are training (and checkpointing)
        running_through_outage, outage_s = _outage(s3, 10, proc)  # plus ~8 s for the server to start again
        out, err = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
        if s3.proc is None:
            s3.start()
    assert running_through_outage and outage_s >= 15
    assert "the sweep's storage is unreachable" in err and "storage back after" in err  # the outage hit uploads
    assert _parent_id(out) == parent_id
    children = _children(client, parent_id)
    assert len(children) == 3 and not _children(client, parent_id, deleted=True)
    _assert_complete(client, children, epochs)

    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    analysis = ExperimentAnalysis(client.get_run(parent_id).data.tags["ray_experiment_path"])
    assert len(analysis.trials) == 3
    for trial in analysis.trials:
        assert trial.run_metadata.num_failures == 0  # waited out, not failed and retried
        assert trial.checkpoint.path.endswith(f"checkpoint_{epochs // every - 1:06d}")  # no index skipped
        assert trial.checkpoint.filesystem.get_file_info(f"{trial.checkpoint.path}/state.pt").size > 1000


BAD_STORAGE = [
    ("s3://no-such-bucket/x", {}, "bucket 'no-such-bucket' at http://127.0.0.1:"),
    ("s3://sweeps/x", {"AWS_ENDPOINT_URL": "http://127.0.0.1:1"}, "cannot reach S3 at http://127.0.0.1:1"),
    ("gs://bucket/x", {}, "only a local folder or s3://bucket/prefix is supported"),
    ("s3:///x", {}, "no bucket; use s3://bucket/prefix"),
]


@pytest.mark.parametrize("storage,env,message", BAD_STORAGE, ids=[c[0] for c in BAD_STORAGE])
def test_bad_storage_exits_2_with_one_line(servers, storage, env, message, tmp_path, monkeypatch, capsys):
    from sweeps.depth_width import STUDY
    from sweeps.runner import main

    s3, _ = servers
    for key, value in {**s3.env, **env}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(STUDY, ["--preset", "smoke", "--storage", storage, "--results-dir", str(tmp_path / "res")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: --storage ") and message in err, err
    assert not (tmp_path / "res").exists()


def test_errored_trial_retried_on_resume_with_retry_errored(tmp_path):
    """--max-failures 0 lets a dying trial end in error; --resume --retry-errored runs it on from its checkpoint."""
    from conftest import faults, run_script

    marker = tmp_path / "killed-once"
    epochs = 30
    first = run_script([SCRIPT, "--preset", "smoke", "--set", f"epochs={epochs}", "--checkpoint-every", "5",
                        "--max-failures", "0", "--max-concurrent", "1", "--results-dir", "res"], cwd=tmp_path,
                       env=faults(DLSWEEPS_TEST_KILL_AFTER_CHECKPOINT=f"10:{marker}"))
    assert first.returncode == 0, first.stderr[-3000:]  # one trial of three failed: the sweep still ends
    client = MlflowClient(f"sqlite:///{tmp_path / 'res' / 'mlflow.db'}")
    parent_id = _parent_id(first.stdout)
    statuses = sorted(c.data.tags["trial_status"] for c in _children(client, parent_id))
    assert statuses == ["error", "finished", "finished"]

    second = run_script([SCRIPT, "--resume", "--retry-errored", "--results-dir", "res"], cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert _parent_id(second.stdout) == parent_id
    children = _children(client, parent_id)
    assert len(children) == 3
    _assert_complete(client, children, epochs)


def test_resume_without_tune_state_exits_2(tmp_path, monkeypatch, capsys):
    """A sweep whose Tune state is gone (deleted, or killed before its first snapshot) cannot be resumed."""
    from sweeps.depth_width import STUDY
    from sweeps.runner import main

    for key in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    results = tmp_path / "res"
    results.mkdir()
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment_id = client.create_experiment("depth_width", artifact_location=(results / "mlartifacts").as_uri())
    gone = str(tmp_path / "ray" / "depth_width-gone")
    parent = client.create_run(experiment_id, tags={"sweep.parent": "1", "sweep.argv": json.dumps(["--preset", "smoke"]),
                                                    "ray_experiment_path": gone})
    with pytest.raises(SystemExit) as exit_info:
        main(STUDY, ["--resume", "--results-dir", str(results)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # above it: MLflow's log of creating the test store
    assert err == (f"error: --resume: no Ray Tune state of sweep {parent.info.run_id} at {gone!r} (deleted, or the "
                   f"sweep died before its first snapshot); run without --resume")
    assert not (tmp_path / "ray").exists()
