"""Checks made before a sweep creates anything: each bad input is one line (UsageError, exit 2), nothing written.

    check_folder(results_dir, "--results-dir")   # can be created and written
    check_tracking_uri(uri)                      # MLflow answers
    check_storage(storage, resume_from)          # S3 reachable; the state of a sweep to resume exists
    check_from_run(uri, run_id)                  # --from-run names a sweep in this store
    init_ray(address)                            # a cluster that answers, or a local Ray
    check_trials_fit(demands, ray.cluster_resources(), fix)   # a local Ray cannot scale up
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import urllib.request
from pathlib import Path

from sweeps.cli import UsageError
from sweeps.plan import SweepPlan


def check_folder(path: Path, flag: str) -> None:
    """`path` is a folder that can be written, or one that can be created (its nearest existing ancestor is a
    writable folder): else one line naming the folder and the fix. Nothing is created."""
    existing = path
    while not existing.exists():
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is a file, not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"{existing} is not writable"
    elif existing == path:
        try:  # os.access says yes for root even on a read-only file system: try it
            with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
                pass
        except OSError as e:
            problem = e.strerror or type(e).__name__
    if problem:
        raise UsageError(f"{flag} {path}: cannot create or write it ({problem}); give a folder you can write, "
                         f"e.g. {flag} ./results")


def check_tracking_uri(uri: str) -> None:
    from mlflow.tracking import MlflowClient

    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=5).read()
        except Exception as e:  # noqa: BLE001  (any failure means the same thing to the user)
            raise UsageError(f"MLflow tracking server {uri} is unreachable ({e}); start it or unset MLFLOW_TRACKING_URI "
                             f"to use the local store") from None
    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UsageError(f"cannot use MLflow tracking URI {uri!r} ({reason}); fix MLFLOW_TRACKING_URI or unset it "
                         f"to use the local store") from None


def store_exists(uri: str) -> bool:
    """Whether a local SQLite store is there already (reading one must not create it)."""
    return not uri.startswith("sqlite:///") or Path(uri[len("sqlite:///"):]).exists()


def check_storage(storage: str | None, resume_from) -> None:
    """A bad or unreachable s3:// URI, or a sweep to resume whose Tune state is gone: one line, nothing created."""
    from sweeps.storage import StorageError
    from sweeps.storage import check_storage as check_s3

    try:
        check_s3(storage)
    except StorageError as e:
        raise UsageError(str(e)) from None
    if resume_from is not None:
        from ray import tune

        path = resume_from.data.tags.get("ray_experiment_path", "")
        if not path or not tune.Tuner.can_restore(path):
            raise UsageError(f"--resume: no Ray Tune state of sweep {resume_from.info.run_id} at {path!r} "
                             f"(deleted, or the sweep died before its first snapshot); run without --resume")


def check_from_run(tracking_uri: str, run_id: str) -> None:
    """--from-run must name the parent run of a sweep in this store (a missing local store is not created)."""
    from mlflow.tracking import MlflowClient

    if not store_exists(tracking_uri):
        raise UsageError(f"--from-run {run_id}: there is no store at {tracking_uri} yet; run the sweep it should "
                         f"read first (or give --results-dir of the store that has it)")
    check_tracking_uri(tracking_uri)
    try:
        run = MlflowClient(tracking_uri).get_run(run_id)
    except Exception:  # noqa: BLE001  (MLflow raises its own exception for an unknown ID)
        raise UsageError(f"--from-run {run_id}: no such run in {tracking_uri}; give the parent run ID a sweep "
                         f"printed (or omit --from-run to read the latest sweep)") from None
    if run.data.tags.get("sweep.parent") != "1":
        raise UsageError(f"--from-run {run_id} is a trial's run, not a sweep's; give its parent run ID "
                         f"(tag mlflow.parentRunId)")


def init_ray(address: str | None) -> None:
    import ray

    from trainables.runtime import ray_internals

    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address not in ("auto", "local") and not address.startswith("ray://"):
        host, _, port = address.rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
        except (OSError, ValueError) as e:
            raise UsageError(f"cannot reach Ray at --address {address} ({e}); start the cluster "
                             f"(`ray start --head` or `ray up cluster.yaml`) or omit --address for a local Ray") from None
    if not address:
        # One machine cannot be preempted; the watcher would only print a Ray core warning per DDP trial
        os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
        ray_internals.hide_token_auth_notice()
    try:
        ray.init(address=address, logging_level=logging.WARNING, configure_logging=True)
    except Exception as e:  # noqa: BLE001
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if not address:
            raise UsageError(f"cannot start a local Ray ({reason}); check the temporary folder (TMPDIR, short "
                             f"paths) and free memory, or join a cluster with --address") from None
        raise UsageError(f"cannot connect to Ray at --address {address} ({reason}); start the cluster or omit "
                         f"--address for a local Ray") from None


def trial_demands(plan: SweepPlan) -> list[tuple[str, float, float]]:
    """(what, CPUs, GPUs) that each kind of trial of the sweep holds while it runs."""
    if plan.ddp is None:
        return [("a trial", plan.resources.cpus, plan.resources.gpus)]
    demands = []
    configs = plan.grid_configs() if plan.study.trial.ddp else [plan.base]
    for config in configs:
        s = plan.trial_ddp(config)
        if s.runnable:  # a trial that cannot run here (NCCL without GPUs) is skipped, holding nothing
            what = f"a trial of {s.workers} DDP workers ({s.cpus_per_worker:g} CPU, {s.gpus_per_worker:g} GPU each)"
            demands.append((what, s.workers * s.cpus_per_worker, s.workers * s.gpus_per_worker))
    return demands


def check_trials_fit(demands: list[tuple[str, float, float]], cluster: dict[str, float], fix: str) -> None:
    """On a local Ray nothing can scale up: a trial larger than the machine would wait forever."""
    cpus, gpus = cluster.get("CPU", 0.0), cluster.get("GPU", 0.0)
    for what, cpu, gpu in sorted(demands, key=lambda d: (d[1], d[2]), reverse=True):
        if cpu > cpus + 1e-6 or gpu > gpus + 1e-6:
            raise UsageError(f"{what} needs {cpu:g} CPUs and {gpu:g} GPUs but this machine's Ray has {cpus:g} CPUs and "
                             f"{gpus:g} GPUs; {fix}, or join a cluster with --address")
