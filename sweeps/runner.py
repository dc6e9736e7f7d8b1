"""The shared sweep runner: one command line for every study.

    python sweeps/<study>.py [--preset smoke|quick|paper] [--search grid|optuna|random]
                             [--scheduler fifo|asha|optimus [--stop-margin F]] [--set key=value ...] [--address auto] ...

What it does, in order (so bad input fails before anything is created):
1. parse and validate the flags and the config (`--set` overrides are typed);
2. check the MLflow tracking store and connect to (or start) Ray;
3. build the study's data once on the driver; Tune ships it to every trial
   through the object store (`tune.with_parameters`);
4. open a parent MLflow run, run the trials with Ray Tune (one child run each,
   see `sweeps.recording`), then draw the figures from the MLflow records and
   log them to the parent run;
5. print a summary: best configs, figures, how to browse the runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, Sequence

from analysis.records import RecordsError
from trainables.artifacts import encode_all
from trainables.config import ConfigError, from_dict, parse_value, to_dict
from trainables.models.pretrained import WeightsUnavailableError
from trainables.data.vision import DatasetUnavailableError

from sweeps.study import Analysis, Context, Study

SEARCHES = ("grid", "optuna", "random")
SCHEDULERS = ("fifo", "asha", "optimus")
DEFAULT_STOP_MARGIN = 0.2  # --stop-margin (analysis/schedulers.py): 0.05 lost the best config on depth_width quick
PROJECT_DIR = Path(__file__).resolve().parent.parent


class UsageError(Exception):
    """Bad input: printed as one line, exit code 2."""


def fail(message: str) -> NoReturn:
    first_line = str(message).strip().splitlines()[0] if str(message).strip() else "unknown error"
    print(f"error: {first_line}", file=sys.stderr)
    sys.exit(2)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse prints usage + error; we print one line
        fail(f"{message} (see --help)")


def build_parser(study: Study) -> argparse.ArgumentParser:
    presets = "; ".join(f"{name}: {p.description}" for name, p in study.presets.items())
    p = _Parser(
        prog=f"python sweeps/{study.name}.py",
        description=f"{study.description}\n\nPresets: {presets}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Results: figures under RESULTS_DIR/<study>/, MLflow store RESULTS_DIR/mlflow.db "
               "(or MLFLOW_TRACKING_URI), Ray Tune state under STORAGE.",
    )
    p.add_argument("--preset", default=study.default_preset, choices=list(study.presets),
                   help=f"scale of the study (default {study.default_preset})")
    p.add_argument("--search", default=study.default_search, choices=SEARCHES,
                   help="grid: every point of the preset's space; optuna: Ray Tune's OptunaSearch (TPE); "
                        f"random: random sampling (default {study.default_search})")
    p.add_argument("--num-samples", type=int, default=None,
                   help="trials for --search optuna/random (default: the preset's)")
    p.add_argument("--scheduler", default=study.default_scheduler, choices=SCHEDULERS,
                   help=f"fifo: run every trial to the end; asha: ASHA early stopping on {study.metric} "
                        f"with the epoch as time; optimus: stop a trial once its fitted loss curve predicts a final "
                        f"{study.metric} more than --stop-margin worse than the best so far (analysis/schedulers.py) "
                        f"(default {study.default_scheduler})")
    p.add_argument("--stop-margin", type=float, default=None, metavar="FRACTION",
                   help="with --scheduler optimus: how much worse than the best so far (relative) a trial's "
                        f"predicted final {study.metric} may be before it is stopped (default "
                        f"{DEFAULT_STOP_MARGIN:g}; larger stops fewer trials)")
    if study.asha_times:
        p.add_argument("--asha-time", default="epoch", choices=["epoch", *study.asha_times],
                       help="with --scheduler asha: the time ASHA's rungs count, epochs or one of the study's "
                            f"cumulative counts ({', '.join(f'{k}: {v[0]}' for k, v in study.asha_times.items())}); "
                            "default epoch")
    if study.population is not None:
        p.add_argument("--population", default="auto", choices=["auto", "on", "off"],
                       help="with --set seeds=N (and the study's population axes"
                            f"{': ' + ', '.join(study.population_axes) if study.population_axes else ''}): train them "
                            "fused as one population "
                            "trial (on), as separate trials (off), or fused where that is faster (auto: trials with a "
                            f"GPU{', or any trial of this study: its models are tiny' if study.population_on_cpu else ''}"
                            "; default auto)")
    p.add_argument("--max-concurrent", type=int, default=None, help="at most this many trials at once")
    p.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per trial (default 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0, help="GPUs per trial, fractions allowed (default 0)")
    p.add_argument("--workers", type=int, default=None,
                   help="run each trial as a Ray Train DDP job of N workers (default: one process per trial; "
                        "the image-classification studies)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per DDP worker (default 1)")
    p.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs per DDP worker (default 0)")
    p.add_argument("--ddp-backend", default="auto", choices=["auto", "gloo", "nccl"],
                   help="DDP process-group backend; auto: nccl with GPUs, gloo without (default auto)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join: 'auto', HOST:PORT or ray://...; default: RAY_ADDRESS, else a local Ray")
    p.add_argument("--storage", default=None,
                   help="where Ray Tune keeps experiment state and checkpoints: a folder or s3://bucket/prefix "
                        "(default RESULTS_DIR/ray)")
    p.add_argument("--data-dir", default=None,
                   help="where image data sets are read (and downloaded to): default $DLSWEEPS_DATA_DIR, else "
                        "~/.cache/dlsweeps/data")
    p.add_argument("--results-dir", default="results", help="figures, tables and the default MLflow store (default ./results)")
    p.add_argument("--seed", type=int, default=0, help="seed of the trials and of the search algorithm (default 0)")
    p.add_argument("--from-run", default=None, metavar="RUN_ID",
                   help="the sweep (parent run ID) of an earlier study that this one reads, e.g. the LR range test "
                        "whose bounds cyclic_lr uses (default: the latest such sweep in the store)")
    p.add_argument("--resume", action="store_true", help="continue the latest interrupted sweep of this study")
    p.add_argument("--retry-errored", action="store_true", help="with --resume: run errored trials again")
    p.add_argument("--max-failures", type=int, default=2, help="retries of a trial whose process died (default 2)")
    p.add_argument("--checkpoint-every", type=int, default=10,
                   help="checkpoint a trial every N epochs and at its last (default 10; 0 = never)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override one config value (repeatable); a swept key is then fixed. "
                        f"'seeds=N' trains every config with N replicate seeds (one trial per seed, or one population "
                        f"trial of N replicas where the model fuses: see --population). Keys: "
                        f"{', '.join(to_dict(study.config_cls()))}")
    return p


@dataclass(frozen=True)
class Plan:
    """Everything the sweep will run, resolved from the flags before anything starts."""

    base: dict[str, Any]  # config shared by all trials
    space: dict[str, Any]  # swept keys -> values (list) or a Tune domain
    num_samples: int
    epochs: int
    grace_period: int
    ddp: Any = None  # trainables.runtime.ddp.DDPSettings when every trial is a DDP job, else None
    points: tuple[dict[str, Any], ...] = ()  # grid points of keys that vary together (Preset.points)


def resolve_plan(study: Study, args: argparse.Namespace) -> Plan:
    preset = study.presets[args.preset]
    base = {**to_dict(study.config_cls()), **preset.config}
    if "seed" in base:
        base["seed"] = args.seed
    space = dict(preset.space)
    seeds = 1
    for item in args.overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r} is not KEY=VALUE; use e.g. --set lr=0.05")
        if key == "seeds":
            try:
                seeds = int(text)
            except ValueError:
                raise UsageError(f"seeds={text!r} should be an integer; use e.g. --set seeds=3") from None
            if seeds < 1:
                raise UsageError(f"seeds={seeds} must be at least 1")
            continue
        base[key] = parse_value(study.config_cls, key, text)
        space.pop(key, None)  # a value given on the command line pins that axis
    points = _pinned_points(preset.points, base, args.overrides)
    for point in points:
        for key in point:
            space.pop(key, None)
    axes = {key: field for key, field in study.population_axes.items()
            if isinstance(space.get(key), list) and len(space[key]) > 1}
    fused = (seeds > 1 or bool(axes)) and fuse_population(study, args, base)
    if fused:  # the N seeds of a config (and the values of its population axes) train together: one trial, one run
        base["seeds"] = seeds
        for key, field in axes.items():
            base[field] = tuple(space.pop(key))
    from_dict(study.config_cls, base)  # validates the base config as a whole
    for point in points:
        from_dict(study.config_cls, {**base, **point})
    for key, values in space.items():
        if isinstance(values, list):
            for value in values:
                from_dict(study.config_cls, {**base, key: value})
    if seeds > 1 and not fused:
        space["seed"] = [args.seed + i for i in range(seeds)]
    num_samples = args.num_samples if args.num_samples is not None else preset.num_samples
    if num_samples < 1:
        raise UsageError(f"--num-samples {num_samples} must be at least 1")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise UsageError(f"--max-concurrent {args.max_concurrent} must be at least 1")
    if args.cpus_per_trial <= 0 or args.gpus_per_trial < 0:
        raise UsageError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
    ddp = None
    if args.workers is not None and not study.data_parallel:
        raise UsageError(f"--workers: {study.name}'s trials do not train data-parallel (the image-classification "
                         f"studies do); drop --workers")
    if args.workers is not None or study.ddp_overrides is not None:  # every trial a Ray Train DDP job
        from trainables.runtime.ddp import settings_from_args

        ddp = settings_from_args(args)  # ConfigError on --workers 0, NCCL without GPUs, ...
    epochs = int(base.get(study.epochs_key, 1)) if study.epochs_key else 1
    if getattr(args, "asha_time", "epoch") != "epoch" and args.scheduler != "asha":
        raise UsageError(f"--asha-time {args.asha_time} needs --scheduler asha")
    if args.stop_margin is not None and (args.scheduler != "optimus" or args.stop_margin < 0):
        raise UsageError(f"--stop-margin {args.stop_margin:g} needs --scheduler optimus and a margin >= 0, "
                         f"e.g. --scheduler optimus --stop-margin 0.2")
    if args.scheduler in ("asha", "optimus") and study.epochs_key is None:
        raise UsageError(f"{study.name}'s trials report once (one-shot): there is nothing for {args.scheduler} to "
                         f"stop early; use --scheduler fifo")
    grid_samples = max(len(points), 1)  # each point is one sample of the grid (times its other axes)
    return Plan(base, space, num_samples if args.search != "grid" else grid_samples, epochs,
                min(preset.asha_grace_period, epochs), ddp, points)


def _pinned_points(points: tuple[dict[str, Any], ...], base: dict[str, Any], overrides: list[str]) -> tuple[dict, ...]:
    """A preset's grid points less the keys given with --set (those are pinned); points that became the same
    run once."""
    pinned = {item.partition("=")[0] for item in overrides}
    kept: list[dict[str, Any]] = []
    for point in points:
        rest = {key: value for key, value in point.items() if key not in pinned}
        if rest and rest not in kept:
            kept.append(rest)
    return tuple(kept)


def fuse_population(study: Study, args: argparse.Namespace, base: dict[str, Any]) -> bool:
    """Whether replicas (seeds) of a config train fused in one population trial: where the study's models fuse
    (`Study.population`), outside DDP, and as --population asks: on, off, or auto = where it is faster (on a GPU,
    where one small model leaves the device idle; on a CPU only for the tiny models of `population_on_cpu`
    studies: fusing LeNet-5 or a 2x1000 MLP is ~1.2-1.4x slower on a CPU than separate runs,
    bench/population_models.py)."""
    policy = getattr(args, "population", "off")
    possible = (study.population is not None and args.workers is None and study.ddp_overrides is None
                and study.population(base))
    if policy == "on" and not possible:
        raise UsageError(f"--population on: {study.name}'s trials with this config cannot train as one population "
                         f"(a model trainables.training.population does not fuse, or DDP); use --population off")
    if policy == "off" or not possible:
        return False
    return policy == "on" or args.gpus_per_trial > 0 or study.population_on_cpu


def _encode(value: Any) -> Any:
    """Tune's param space holds plain values; tuples travel as strings: '64-32' (integers), 'adam,sgd' (others)."""
    if not isinstance(value, tuple):
        return value
    return "-".join(map(str, value)) if all(isinstance(v, int) for v in value) else ",".join(map(str, value))


def param_space(plan: Plan, search: str) -> dict[str, Any]:
    from ray import tune

    space = {k: _encode(v) for k, v in plan.base.items()}
    for key in {key for point in plan.points for key in point}:  # grid: points_to_evaluate pins them
        values = list(dict.fromkeys(_encode(point[key]) for point in plan.points if key in point))
        space[key] = tune.choice(values)
    for key, values in plan.space.items():
        if isinstance(values, list):
            values = [_encode(v) for v in values]
            space[key] = tune.grid_search(values) if search == "grid" else tune.choice(values)
        else:
            space[key] = values
    return space


# ---------------------------------------------------------------- checks that create nothing

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


def _check_storage(storage: str | None, resume_from) -> None:
    """A bad or unreachable s3:// URI, or a sweep to resume whose Tune state is gone: one line, nothing created."""
    from sweeps.storage import StorageError, check_storage

    try:
        check_storage(storage)
    except StorageError as e:
        raise UsageError(str(e)) from None
    if resume_from is not None:
        from ray import tune

        path = resume_from.data.tags.get("ray_experiment_path", "")
        if not path or not tune.Tuner.can_restore(path):
            raise UsageError(f"--resume: no Ray Tune state of sweep {resume_from.info.run_id} at {path!r} "
                             f"(deleted, or the sweep died before its first snapshot); run without --resume")


def init_ray(address: str | None) -> None:
    import ray

    from trainables.runtime import ray_internals as ray_internals

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
        raise UsageError(f"cannot connect to Ray at --address {address} ({reason}); start the cluster or omit "
                         f"--address for a local Ray") from None


def _trial_demands(study: Study, plan: Plan, args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """(what, CPUs, GPUs) that each kind of trial of the sweep holds while it runs."""
    if plan.ddp is None:
        return [("a trial", args.cpus_per_trial, args.gpus_per_trial)]
    demands = []
    for config in _grid_configs(plan) if study.ddp_overrides else [plan.base]:
        s = plan.ddp.for_trial(study.ddp_overrides, config)
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


# ---------------------------------------------------------------- provenance

def provenance_tags() -> dict[str, str]:
    import mlflow
    import ray
    import torch

    def git(*cmd: str) -> str:
        try:
            return subprocess.run(["git", *cmd], cwd=PROJECT_DIR, capture_output=True, text=True,
                                  timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    return {
        "git_commit": git("rev-parse", "HEAD") or "unknown",
        "git_dirty": str(bool(git("status", "--porcelain", "--untracked-files=no"))),
        "version.python": platform.python_version(),
        "version.torch": torch.__version__,
        "version.ray": ray.__version__,
        "version.mlflow": mlflow.__version__,
        "host": socket.gethostname(),
    }


# ---------------------------------------------------------------- the sweep

def _experiment(client, name: str, results_dir: Path, local_store: bool) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    artifacts = (results_dir / "mlartifacts").as_uri() if local_store else None
    return client.create_experiment(name, artifact_location=artifacts,
                                    tags={"mlflow.experimentKind": "custom_model_development"})


def _grid_configs(plan: Plan) -> list[dict[str, Any]]:
    """Every combination of the list-valued axes of the space (Tune domains keep their base value)."""
    configs = [{**plan.base, **point} for point in plan.points] or [dict(plan.base)]
    for key, values in plan.space.items():
        if isinstance(values, list):
            configs = [{**c, key: v} for c in configs for v in values]
    return configs


def _scheduler(study: Study, plan: Plan, kind: str, time: str = "epoch", stop_margin: float | None = None):
    if kind == "fifo":
        return None
    if kind == "optimus":
        from analysis.schedulers import OptimusStopper

        margin = DEFAULT_STOP_MARGIN if stop_margin is None else stop_margin
        return OptimusStopper(study.metric, study.mode, time_attr="epoch", max_t=plan.epochs, margin=margin)
    from ray.tune.schedulers import ASHAScheduler

    if time == "epoch":
        return ASHAScheduler(time_attr="epoch", max_t=plan.epochs, grace_period=plan.grace_period, reduction_factor=3)
    # A cumulative count (e.g. data passes): the longest trial may reach epochs x its per-epoch units; the
    # grace period is that of the trial doing the least work per epoch, so it still gets `grace_period` epochs.
    key, per_epoch = study.asha_times[time]
    units = [per_epoch(config) for config in _grid_configs(plan)]
    return ASHAScheduler(time_attr=key, max_t=plan.epochs * max(units), grace_period=plan.grace_period * min(units),
                         reduction_factor=3)


def _searcher(search: str, seed: int, plan: Plan):
    if search == "grid" and plan.points:
        from ray.tune.search import BasicVariantGenerator

        return BasicVariantGenerator(points_to_evaluate=[{k: _encode(v) for k, v in p.items()} for p in plan.points])
    if search != "optuna":
        return None
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return OptunaSearch(seed=seed)


def _configure_tune(scheduler: str) -> None:
    """Keep Tune's concise status table; drop what MLflow already records or what is noise at this scale; ride
    out a storage outage."""
    # Each tune.report is a round trip to the driver (~5 ms), 15% of a 30 ms epoch. Without a scheduler that
    # acts on every result, let the trial actor hand over results in batches (up to 1 s or a checkpoint).
    # ASHA and optimus must see every result as it comes, to stop a trial at the epoch they judge it.
    buffered = scheduler == "fifo"
    os.environ["TUNE_RESULT_BUFFER_LENGTH"] = "200" if buffered else "1"
    os.environ["TUNE_RESULT_BUFFER_MIN_TIME_S"] = "1.0" if buffered else "0"
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # MLflow is the record: no per-trial JSON/CSV
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # ...hence Tune's result grid finds no per-trial metrics files and says so for every trial.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    from trainables.runtime import ray_internals as ray_internals

    ray_internals.quiet_trial_start_end()  # a config and a result box per trial would bury the status table
    ray_internals.tolerate_failed_checkpoint_deletes()  # an S3 outage must not break Tune's checkpoint bookkeeping
    ray_internals.shorten_storage_error_logs()  # ...nor bury the status table in tracebacks


def main(study: Study, argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(study).parse_args(argv)
    try:
        return _run(study, args, argv)
    except (UsageError, ConfigError, DatasetUnavailableError, WeightsUnavailableError, RecordsError) as e:
        fail(str(e))


def _run(study: Study, args: argparse.Namespace, argv: list[str]) -> int:
    from analysis.records import default_tracking_uri, find_parent_run
    from mlflow.tracking import MlflowClient

    if args.data_dir:  # read by trainables.data.vision on the driver, where the data set is built
        os.environ["DLSWEEPS_DATA_DIR"] = str(Path(args.data_dir).expanduser().resolve())
    results_dir = Path(args.results_dir).resolve()
    local_store = not os.environ.get("MLFLOW_TRACKING_URI")
    tracking_uri = default_tracking_uri(results_dir)
    resume_from = None
    if args.resume:
        store_exists = not local_store or (results_dir / "mlflow.db").exists()
        if store_exists:
            check_tracking_uri(tracking_uri)
            try:
                resume_from = find_parent_run(MlflowClient(tracking_uri), study.name)
            except LookupError:
                resume_from = None
        if resume_from is None:
            raise UsageError(f"--resume: no earlier sweep of {study.name} in {tracking_uri}; run without --resume")
        stored = json.loads(resume_from.data.tags["sweep.argv"])
        args = build_parser(study).parse_args(stored)
        args.resume, args.retry_errored = True, "--retry-errored" in argv
    plan = resolve_plan(study, args)
    if not local_store:
        check_tracking_uri(tracking_uri)
    _check_storage(args.storage, resume_from)
    context = Context(tracking_uri, args.from_run)
    if args.from_run:
        _check_from_run(tracking_uri, args.from_run)
    if study.prepare is not None:
        base = study.prepare(dict(plan.base), context)
        from_dict(study.config_cls, base)
        plan = dataclasses.replace(plan, base=base,
                                   epochs=int(base.get(study.epochs_key, 1)) if study.epochs_key else 1)
    if study.presets[args.preset].analysis_only:
        return _run_analysis(study, args, argv, plan, context, results_dir, local_store)
    # Before Ray starts: a data set that is missing or cannot be downloaded is refused in a second, not ~25 s.
    data = study.make_data(from_dict(study.config_cls, plan.base))
    init_ray(args.address)
    import ray
    from ray import tune

    if not (args.address or os.environ.get("RAY_ADDRESS")):
        try:
            fix = ("lower --workers, --cpus-per-worker or --gpus-per-worker" if plan.ddp is not None
                   else "lower --cpus-per-trial or --gpus-per-trial")
            check_trials_fit(_trial_demands(study, plan, args), ray.cluster_resources(), fix)
        except UsageError:
            ray.shutdown()
            raise

    _configure_tune(args.scheduler)

    results_dir.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri)
    experiment_id = _experiment(client, study.name, results_dir, local_store)
    storage = args.storage or str(results_dir / "ray")
    if resume_from is not None:
        parent_id = resume_from.info.run_id
        experiment_path = resume_from.data.tags["ray_experiment_path"]
        client.update_run(parent_id, status="RUNNING")
    else:
        name = f"{study.name}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        experiment_path = storage.rstrip("/") + "/" + name
        parent_id = _open_parent_run(client, experiment_id, name, args, argv, plan,
                                     {"ray_experiment_path": experiment_path})
        if study.describe_data is not None:  # e.g. a data-set summary, for the sweep's figures
            from sweeps.recording import log_artifact_bytes

            for path, blob in encode_all(study.describe_data(data)).items():
                log_artifact_bytes(client, parent_id, path, blob)

    from sweeps.recording import MLflowRecorder
    from trainables.runtime.session import tune_trainable

    if plan.ddp is not None:  # each trial a Ray Train DDP job
        from trainables.runtime import ddp as ddp

        trainable = tune.with_parameters(ddp.ddp_trainable(study.trial_fn, study.epochs_key, plan.ddp,
                                                           study.ddp_overrides, study.metric),
                                         data=data, checkpoint_every=args.checkpoint_every)
        trainable = tune.with_resources(trainable, {"cpu": ddp.DRIVER_CPU})  # its workers hold the resources
        study = dataclasses.replace(study, derived_params=ddp.with_ddp_params(study.derived_params, plan.ddp,
                                                                              study.ddp_overrides))
        if args.max_concurrent is None:  # a DDP trial takes the machine; overlapping ones distort timings
            args.max_concurrent = 1
    else:
        trainable = tune.with_parameters(tune_trainable(study.trial_fn, study.epochs_key), data=data,
                                         checkpoint_every=args.checkpoint_every)
        trainable = tune.with_resources(trainable, {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial})
    started = time.perf_counter()
    status = "FAILED"
    try:
        if resume_from is not None:
            tuner = tune.Tuner.restore(experiment_path, trainable, resume_unfinished=True,
                                       resume_errored=args.retry_errored)
        else:
            recorder = MLflowRecorder(tracking_uri, experiment_id, parent_id, study.derived_params, study.epochs_key)
            tuner = tune.Tuner(
                trainable,
                param_space=param_space(plan, args.search),
                tune_config=tune.TuneConfig(
                    metric=study.metric, mode=study.mode, search_alg=_searcher(args.search, args.seed, plan),
                    scheduler=_scheduler(study, plan, args.scheduler, getattr(args, "asha_time", "epoch"),
                                         args.stop_margin),
                    num_samples=plan.num_samples,
                    max_concurrent_trials=args.max_concurrent, reuse_actors=True,
                ),
                run_config=tune.RunConfig(
                    name=experiment_path.rsplit("/", 1)[1], storage_path=storage, callbacks=[recorder],
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                    failure_config=tune.FailureConfig(max_failures=args.max_failures), verbose=1,
                ),
            )
        results = tuner.fit()
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        print(f"\ninterrupted; continue with: python sweeps/{study.name}.py --resume", file=sys.stderr)
        return 130
    finally:
        client.set_terminated(parent_id, status=status)
        ray.shutdown()
    elapsed = time.perf_counter() - started

    from analysis.report import status_counts

    _finish(study, args, tracking_uri, experiment_id, parent_id, results_dir,
            lambda runs: f"{status_counts(runs)} in {elapsed:.1f} s")
    errors = sum(1 for r in results if r.error is not None)
    return 1 if errors and errors == len(results) else 0


def _open_parent_run(client, experiment_id: str, name: str, args: argparse.Namespace, argv: list[str], plan: Plan,
                     tags: dict[str, str]) -> str:
    """The sweep's parent run: how it was asked for (tags), and its base config and space (params)."""
    from mlflow.entities import Param

    tags = {"sweep.parent": "1", "preset": args.preset, "search": args.search, "scheduler": args.scheduler,
            "sweep.argv": json.dumps(argv), **tags, **provenance_tags()}
    parent_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    params = {f"base.{k}": str(_encode(v)) for k, v in plan.base.items()}
    params.update({f"space.{k}": str(v)[:500] for k, v in plan.space.items()})
    if plan.points:
        params["space.points"] = json.dumps([{k: _encode(v) for k, v in p.items()} for p in plan.points])[:6000]
    params.update({"num_samples": str(plan.num_samples), "cpus_per_trial": str(args.cpus_per_trial),
                   "gpus_per_trial": str(args.gpus_per_trial)})
    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(parent_id, params=items[i:i + 100])
    return parent_id


def _finish(study: Study, args: argparse.Namespace, tracking_uri: str, experiment_id: str, parent_id: str,
            results_dir: Path, headline) -> None:
    """Figures from the records (logged to the parent run), then the summary a finished sweep prints; the same
    summary text goes into the sweep's HTML report (results/<study>/report.html, logged as report/report.html)."""
    from analysis.records import load_sweep, ui_hint
    from analysis.report import publish_report, render

    sweep = load_sweep(study.name, parent_id, tracking_uri)
    out_dir = results_dir / study.name
    paths = render(sweep, study.figures, out_dir, study.metric, study.mode)
    lines = [f"== {study.name} ({args.preset}, {args.search}, {args.scheduler}): {headline(sweep.runs)}",
             study.summary(sweep.runs)]
    if study.after_sweep is not None:
        lines.append(study.after_sweep(sweep))
    summary = "\n".join(lines)  # printed and shown in the report: one string, so they cannot differ
    print("\n" + summary)
    report = publish_report(sweep, study, summary, paths, out_dir)

    def shown(p: Path) -> str:
        return str(p.relative_to(Path.cwd()) if p.is_relative_to(Path.cwd()) else p)

    print(f"figures and table: {', '.join(shown(p) for p in paths)}")
    if report is not None:
        print(f"report: {shown(report)} ({report.stat().st_size / 1e6:.1f} MB, self-contained; "
              f"also the parent run's artifact report/{report.name})")
    print(f"MLflow: {ui_hint(tracking_uri, experiment_id)}  (parent run {parent_id})")
    print(f"regenerate the figures: python -m analysis {study.name} --parent-run {parent_id}"
          + ("" if args.results_dir == "results" else f" --results-dir {shlex.quote(args.results_dir)}"))


def _check_from_run(tracking_uri: str, run_id: str) -> None:
    """--from-run must name the parent run of a sweep in this store."""
    from mlflow.tracking import MlflowClient

    check_tracking_uri(tracking_uri)
    try:
        run = MlflowClient(tracking_uri).get_run(run_id)
    except Exception:  # noqa: BLE001  (MLflow raises its own exception for an unknown ID)
        raise UsageError(f"--from-run {run_id}: no such run in {tracking_uri}; give the parent run ID a sweep "
                         f"printed (or omit --from-run to read the latest sweep)") from None
    if run.data.tags.get("sweep.parent") != "1":
        raise UsageError(f"--from-run {run_id} is a trial's run, not a sweep's; give its parent run ID "
                         f"(tag mlflow.parentRunId)")


def _run_analysis(study: Study, args: argparse.Namespace, argv: list[str], plan: Plan, context: Context,
                  results_dir: Path, local_store: bool) -> int:
    """An analysis-only preset: no Ray and no trials; the study's `analyze` step reads records already in the
    store, and what it returns is recorded on a parent run (values as metrics/params, artifacts as files)."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    if study.analyze is None:
        raise UsageError(f"preset {args.preset} is analysis-only but {study.name} declares no analyze step")
    started = time.perf_counter()
    result: Analysis = study.analyze(dict(plan.base), context)  # bad or missing records: exit 2, nothing created
    artifacts = encode_all(result.artifacts)
    results_dir.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(context.tracking_uri)
    experiment_id = _experiment(client, study.name, results_dir, local_store)
    name = f"{study.name}-{args.preset}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    tags = {"analysis_only": "1", **({"source_run": result.source_run} if result.source_run else {})}
    parent_id = _open_parent_run(client, experiment_id, name, args, argv, plan, tags)
    now = int(time.time() * 1000)
    numbers = {k: float(v) for k, v in result.values.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
    client.log_batch(parent_id, metrics=[Metric(k, v, now, 0) for k, v in numbers.items()],
                     params=[Param(k, str(v)[:500]) for k, v in result.values.items() if k not in numbers])
    from sweeps.recording import log_artifact_bytes

    for path, data in artifacts.items():
        log_artifact_bytes(client, parent_id, path, data)
    client.set_terminated(parent_id, status="FINISHED")
    elapsed = time.perf_counter() - started
    _finish(study, args, context.tracking_uri, experiment_id, parent_id, results_dir,
            lambda runs: f"analysis only, {len(result.values)} fitted values in {elapsed:.1f} s"
                         + (f" from sweep {result.source_run}" if result.source_run else ""))
    return 0
