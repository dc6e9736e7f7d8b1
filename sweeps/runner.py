"""The shared sweep runner: one command line for every study.

    python sweeps/<study>.py [--preset smoke|quick|paper] [--search grid|optuna|random]
                             [--scheduler fifo|asha|optimus] [--set key=value ...] [--address auto] ...

`main` does five things, in order, so that bad input fails before anything is created:
1. parse the flags (sweeps.cli; `--help` imports neither Ray, torch nor MLflow) and build the sweep's plan
   (sweeps.plan: every config checked once, typed);
2. check what the sweep needs (sweeps.checks): writable folders, the tracking store, the storage, Ray;
3. build the study's data once on the driver (Tune ships it to every trial through the object store);
4. open a parent MLflow run (sweeps.parent) and run the trials with Ray Tune (sweeps.tuning; one child run per
   trial, sweeps.recording; one progress line per trial, sweeps.progress);
5. draw the figures from the MLflow records, log them to the parent run and print a summary: the answer, what the
   sweep cost, where the figures are, how to browse the runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from sweeps.cli import UsageError, fail, parse_args
from sweeps.study import Context, Study
from trainables.config import InputError


@dataclass(frozen=True)
class Where:
    """Where a sweep reads and writes: its results folder, its tracking store, a sweep it resumes."""

    results_dir: Path
    tracking_uri: str
    local_store: bool
    resume_from: Any = None  # the parent run of the sweep to resume


def main(study: Study, argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parse_args(study, argv)
        return _run(study, args, argv)
    except (UsageError, InputError) as e:  # bad input, from here or from the layers below: one line, exit 2
        fail(str(e))


def _run(study: Study, args: argparse.Namespace, argv: list[str]) -> int:
    from analysis.studies import load

    figures = load(study.name, study.question, module=study.figures or None)
    where, args = _where(study, args, argv)  # step 2 (before the plan: --resume reads the stored flags)
    context = Context(where.tracking_uri, args.from_run)
    from sweeps.plan import resolve_plan

    plan = resolve_plan(study, args, context, figures.metric, figures.mode)  # step 1
    if study.presets[args.preset].analysis_only:
        from sweeps.analysis_step import run_analysis_step

        return run_analysis_step(plan, figures, args, argv, context, where.results_dir, where.local_store)
    data = _data(plan)  # step 3: a data set that is missing or cannot be downloaded is refused before Ray starts
    mps = _start_ray(plan, args)
    try:
        return _sweep(plan, figures, args, argv, where, data)  # steps 4 and 5
    finally:
        if mps is not None:
            mps.stop()


def _where(study: Study, args: argparse.Namespace, argv: list[str]) -> tuple[Where, argparse.Namespace]:
    """Check the folders and the tracking store; with --resume, the sweep to continue and the flags it ran with."""
    from analysis.records import default_tracking_uri
    from sweeps import checks

    results_dir = Path(args.results_dir).expanduser().resolve()
    checks.check_folder(results_dir, "--results-dir")
    if args.data_dir:  # read by trainables.data.vision on the driver, where the data set is built
        data_dir = Path(args.data_dir).expanduser().resolve()
        checks.check_folder(data_dir, "--data-dir")
        os.environ["DLSWEEPS_DATA_DIR"] = str(data_dir)
    local_store = not os.environ.get("MLFLOW_TRACKING_URI")
    uri = default_tracking_uri(results_dir)
    if args.from_run:
        checks.check_from_run(uri, args.from_run)
    if not local_store:
        checks.check_tracking_uri(uri)
    resume_from = None
    if args.resume:
        resume_from = _sweep_to_resume(study, uri)
        stored = json.loads(resume_from.data.tags["sweep.argv"])
        args = parse_args(study, stored)
        args.resume, args.retry_errored = True, "--retry-errored" in argv
    checks.check_storage(args.storage, resume_from)
    return Where(results_dir, uri, local_store, resume_from), args


def _sweep_to_resume(study: Study, uri: str):
    from mlflow.tracking import MlflowClient

    from analysis.records import find_parent_run
    from sweeps import checks

    found = None
    if checks.store_exists(uri):
        checks.check_tracking_uri(uri)
        try:
            found = find_parent_run(MlflowClient(uri), study.name)
        except LookupError:
            found = None
    if found is None:
        raise UsageError(f"--resume: no earlier sweep of {study.name} in {uri}; run without --resume")
    return found


def _data(plan) -> Any:
    from sweeps.study import resolve

    trial = plan.study.trial
    return resolve(trial.data)(trial.to_trial(plan.base) if trial.to_trial else plan.base)


def _start_ray(plan, args: argparse.Namespace):
    """Start (or join) Ray and check that a trial fits a local Ray. A local Ray whose trials hold GPUs first starts
    the CUDA MPS daemon (trials sharing a GPU then run side by side); returns its handle, to stop after the sweep."""
    import ray

    from sweeps import checks

    local = not (args.address or os.environ.get("RAY_ADDRESS"))
    demands = checks.trial_demands(plan)
    said: list[str] = []  # MPS's line is printed once the sweep is known to start (an error stays one line)
    mps = None
    if local and any(gpus > 0 for _, _, gpus in demands):
        from trainables.runtime.mps import start_mps

        mps = start_mps(say=said.append)  # before ray.init: Ray's worker processes inherit its pipe folder
    try:
        checks.init_ray(args.address)
        if local:  # a local Ray cannot scale up
            fix = ("lower --workers, --cpus-per-worker or --gpus-per-worker" if plan.ddp is not None
                   else "lower --cpus-per-trial or --gpus-per-trial (0: train on the CPUs)")
            checks.check_trials_fit(demands, ray.cluster_resources(), fix)
    except UsageError:
        ray.shutdown()
        if mps is not None:
            mps.stop(say=lambda line: None)
        raise
    for line in said:
        print(line, file=sys.stderr)
    return mps


def _sweep(plan, figures, args: argparse.Namespace, argv: list[str], where: Where, data: Any) -> int:
    """Steps 4 and 5: the parent run, the trials, the figures and the summary."""
    import ray
    from mlflow.tracking import MlflowClient

    from analysis.report import status_counts
    from sweeps import costs, parent, tuning
    from sweeps.progress import ProgressLines
    from sweeps.recording import MLflowRecorder

    study = plan.study
    tuning.configure_tune(plan, args.verbose)
    client = MlflowClient(where.tracking_uri)
    experiment_id = parent.experiment(client, study.name, where.results_dir, where.local_store)
    storage = args.storage or str(where.results_dir / "ray")
    if where.resume_from is not None:
        parent_id = where.resume_from.info.run_id
        experiment_path = where.resume_from.data.tags["ray_experiment_path"]
        client.update_run(parent_id, status="RUNNING")
    else:
        name = f"{study.name}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        experiment_path = storage.rstrip("/") + "/" + name
        parent_id = parent.open_parent_run(client, experiment_id, name, plan, args, argv,
                                           {"ray_experiment_path": experiment_path})
        _describe_data(study, client, parent_id, data)
    settings = tuning.RunSettings(storage, experiment_path.rsplit("/", 1)[1], args.checkpoint_every,
                                  args.max_failures, args.max_concurrent if plan.ddp is None else
                                  (args.max_concurrent or 1),  # a DDP trial takes the machine
                                  args.verbose)
    recorder = MLflowRecorder(where.tracking_uri, experiment_id, parent_id, plan)
    callbacks = [recorder] + ([] if args.verbose else [
        ProgressLines(plan.total_trials(), plan.metric, plan.mode, lambda t: recorder.trial_plan(t).name)])
    started, status = time.perf_counter(), "FAILED"
    try:
        tuner = (tuning.restore_tuner(plan, data, settings, experiment_path, args.retry_errored)
                 if where.resume_from is not None else tuning.build_tuner(plan, data, settings, callbacks))
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
    totals = costs.record_totals(client, parent_id, elapsed)
    parent.finish(study, figures, args, where.tracking_uri, experiment_id, parent_id, where.results_dir,
                  lambda runs: f"{status_counts(runs)} in {elapsed:.1f} s",
                  extra="cost: " + costs.cost_line(totals, plan.resources.device))
    errors = sum(1 for r in results if r.error is not None)
    return 1 if errors and errors == len(results) else 0


def _describe_data(study: Study, client, parent_id: str, data: Any) -> None:
    """A study's description of its shared data (e.g. a data-set summary) on the parent run, for its figures."""
    if study.hooks.describe_data is None:
        return
    from sweeps.recording import log_artifact_bytes
    from trainables.artifacts import encode_all

    for path, blob in encode_all(study.hooks.describe_data(data)).items():
        log_artifact_bytes(client, parent_id, path, blob)
