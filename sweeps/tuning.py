"""The Ray Tune (and Ray Train) assembly of a sweep: its search space, searcher, scheduler and the trainable Ray runs.

    tuner = build_tuner(plan, data, settings, recorder, callbacks)     # a tune.Tuner, or
    tuner = restore_tuner(plan, data, settings, experiment_path, retry_errored=False)

What runs in a trial's process is `run_trial`: it reads its plan from the swept values Tune gives it (the config is
parsed there, once), takes the device Ray assigned it (trainables.runtime.devices), and calls the study's trial
function with a `TuneSession`, or runs it as a Ray Train DDP job (trainables.runtime.ddp) when the trial has
workers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

from sweeps.plan import SweepPlan
from sweeps.study import LogUniform, resolve


@dataclass(frozen=True)
class RunSettings:
    """How the sweep's trials run, beyond what they compute."""

    storage: str  # Ray Tune's storage path: a folder or s3://bucket/prefix
    name: str  # the experiment's folder name under `storage`
    checkpoint_every: int = 10  # epochs; 0 = never
    max_failures: int = 2
    max_concurrent: int | None = None
    verbose: bool = False  # Tune's status tables (else our progress lines)


def configure_tune(plan: SweepPlan, verbose: bool) -> None:
    """Keep the console to our progress lines (or Tune's tables with --verbose); drop what MLflow already records;
    ride out a storage outage."""
    # Each tune.report is a round trip to the driver (~5 ms), 15% of a 30 ms epoch. Without a scheduler that acts
    # on every result, let the trial actor hand over results in batches (up to 1 s or a checkpoint). ASHA and
    # optimus must see every result as it comes, to stop a trial at the epoch they judge it.
    buffered = plan.scheduler.kind == "fifo"
    os.environ["TUNE_RESULT_BUFFER_LENGTH"] = "200" if buffered else "1"
    os.environ["TUNE_RESULT_BUFFER_MIN_TIME_S"] = "1.0" if buffered else "0"
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # MLflow is the record: no per-trial JSON/CSV
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "1" if verbose else "0"  # quiet: our progress lines only (sweeps.progress)
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):  # "Creating initial MLflow database tables"
        logging.getLogger(name).setLevel(logging.WARNING)
    # ...hence Tune's result grid finds no per-trial metrics files and says so for every trial.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    from trainables.runtime import ray_internals

    ray_internals.quiet_trial_start_end()  # a config and a result box per trial would bury the status
    ray_internals.tolerate_failed_checkpoint_deletes()  # an S3 outage must not break Tune's checkpoint bookkeeping
    ray_internals.shorten_storage_error_logs()  # ...nor bury the progress in tracebacks


def param_space(plan: SweepPlan) -> dict[str, Any]:
    """The swept values as Tune's domains: grid axes (or choices for optuna/random), log-uniform ranges, and the
    keys of grid points (pinned by the searcher's points_to_evaluate)."""
    from ray import tune

    space = {}
    point_keys = {key for point in plan.points for key in point}
    for key, values in plan.tune_space().items():
        if isinstance(values, LogUniform):
            space[key] = tune.loguniform(values.low, values.high)
        elif key in point_keys or plan.search != "grid":
            space[key] = tune.choice(list(values))
        else:
            space[key] = tune.grid_search(list(values))
    return space


def searcher(plan: SweepPlan):
    from trainables.config import encode_value

    if plan.search == "grid" and plan.points:
        from ray.tune.search import BasicVariantGenerator

        return BasicVariantGenerator(points_to_evaluate=[{k: encode_value(v) for k, v in p.items()}
                                                         for p in plan.points])
    if plan.search != "optuna":
        return None
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return OptunaSearch(seed=plan.seed)


def scheduler(plan: SweepPlan):
    s, metric, mode = plan.scheduler, plan.metric, plan.mode
    if s.kind == "fifo":
        return None
    if s.kind == "optimus":
        from analysis.schedulers import DEFAULT_MARGIN, OptimusScheduler

        margin = DEFAULT_MARGIN if s.margin is None else s.margin
        return OptimusScheduler(metric, mode, time_attr="epoch", max_t=s.max_t, margin=margin)
    from ray.tune.schedulers import ASHAScheduler

    if s.time_attr == "epoch":
        return ASHAScheduler(time_attr="epoch", max_t=s.max_t, grace_period=s.grace_period,
                             reduction_factor=s.reduction_factor)
    # A cumulative count (e.g. data passes): the longest trial may reach epochs x its per-epoch units; the grace
    # period is that of the trial doing the least work per epoch, so it still gets `grace_period` epochs.
    per_epoch = next(f for key, f in plan.study.trial.asha_times.values() if key == s.time_attr)
    units = [per_epoch(config) for config in plan.grid_configs()]
    return ASHAScheduler(time_attr=s.time_attr, max_t=s.max_t * max(units), grace_period=s.grace_period * min(units),
                         reduction_factor=s.reduction_factor)


def trainable(plan: SweepPlan, data: Any, settings: RunSettings):
    """`run_trial` with the sweep's plan and data (shipped once through the object store) and the resources each
    trial holds: its own CPUs/GPUs, or a sliver for a DDP trial, whose workers hold the resources."""
    from ray import tune

    fn = tune.with_parameters(run_trial, data=data, plan=plan, checkpoint_every=settings.checkpoint_every)
    if plan.ddp is not None:
        from trainables.runtime.ddp import DRIVER_CPU

        return tune.with_resources(fn, {"cpu": DRIVER_CPU})
    return tune.with_resources(fn, {"cpu": plan.resources.cpus, "gpu": plan.resources.gpus})


def run_trial(config: dict, data: Any = None, plan: SweepPlan | None = None, checkpoint_every: int = 0) -> None:
    """What Ray runs in a trial's process: the trial's plan (its config parsed here, once), then its training."""
    trial = plan.trial(config)
    run = resolve(plan.study.trial.run)
    epochs = int(getattr(trial.config, plan.study.trial.epochs)) if plan.study.trial.epochs else 1
    if trial.ddp is not None:
        from trainables.runtime.ddp import run_ddp_trial

        run_ddp_trial(run, trial.task, epochs, trial.ddp, data, checkpoint_every, plan.metric)
        return
    from trainables.runtime.devices import assigned_device
    from trainables.runtime.session import run_with_tune

    run_with_tune(run, trial.task, data, assigned_device(), epochs, checkpoint_every)


def build_tuner(plan: SweepPlan, data: Any, settings: RunSettings, callbacks: list):
    from ray import tune

    metric, mode = plan.metric, plan.mode
    return tune.Tuner(
        trainable(plan, data, settings),
        param_space=param_space(plan),
        tune_config=tune.TuneConfig(
            metric=metric, mode=mode, search_alg=searcher(plan), scheduler=scheduler(plan),
            num_samples=plan.num_samples, max_concurrent_trials=settings.max_concurrent, reuse_actors=True),
        run_config=tune.RunConfig(
            name=settings.name, storage_path=settings.storage, callbacks=callbacks,
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            failure_config=tune.FailureConfig(max_failures=settings.max_failures),
            verbose=1 if settings.verbose else 0),
    )


def restore_tuner(plan: SweepPlan, data: Any, settings: RunSettings, experiment_path: str, retry_errored: bool):
    from ray import tune

    return tune.Tuner.restore(experiment_path, trainable(plan, data, settings), resume_unfinished=True,
                              resume_errored=retry_errored)
