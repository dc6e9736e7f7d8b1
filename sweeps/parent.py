"""A sweep's parent MLflow run: how it was asked for (provenance), what it cost, and the summary it ends with.

    parent_id = open_parent_run(client, experiment_id, name, plan, args, argv, tags)
    record_totals(client, parent_id, wall_s)          # device-hours, $, wall time: from the trials' runs
    finish(study, figures, args, tracking_uri, experiment_id, parent_id, results_dir, headline)

`finish` draws the figures from the records alone (analysis.report), prints the summary (the same string goes into
the sweep's HTML report) and says where the figures are and how to open the runs in the MLflow UI.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import socket
import subprocess
import textwrap
from pathlib import Path
from typing import Callable

from sweeps.plan import SweepPlan
from trainables.config import encode, encode_value
from sweeps.study import Study

PROJECT_DIR = Path(__file__).resolve().parent.parent


def experiment(client, name: str, results_dir: Path, local_store: bool) -> str:
    """The study's MLflow experiment (created with its artifacts under RESULTS_DIR/mlartifacts for a local store)."""
    results_dir.mkdir(parents=True, exist_ok=True)  # checked writable before anything started (sweeps.checks)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    artifacts = (results_dir / "mlartifacts").as_uri() if local_store else None
    return client.create_experiment(name, artifact_location=artifacts,
                                    tags={"mlflow.experimentKind": "custom_model_development"})


def open_parent_run(client, experiment_id: str, name: str, plan: SweepPlan, args: argparse.Namespace,
                    argv: list[str], tags: dict[str, str]) -> str:
    """The sweep's parent run: how it was asked for (tags), and its base config, space and settings (params)."""
    from mlflow.entities import Param

    tags = {"sweep.parent": "1", "preset": args.preset, "search": args.search, "scheduler": args.scheduler,
            "sweep.argv": json.dumps(argv), "sweep.question": plan.study.question, "sweep.metric": plan.metric,
            "sweep.mode": plan.mode, "cost.device": plan.resources.device, **tags, **provenance_tags()}
    parent_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    items = [Param(k, v) for k, v in plan_params(plan).items()]
    for i in range(0, len(items), 100):
        client.log_batch(parent_id, params=items[i:i + 100])
    return parent_id


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


def plan_params(plan: SweepPlan) -> dict[str, str]:
    """What the parent run records of the plan: the base config, the space, the resources, the scheduler."""
    params = {f"base.{k}": str(v) for k, v in encode(plan.base).items()}
    params.update({f"space.{k}": str(list(v) if isinstance(v, tuple) else v)[:500] for k, v in plan.space.items()})
    if plan.points:
        import json

        params["space.points"] = json.dumps([{k: encode_value(v) for k, v in p.items()} for p in plan.points])[:6000]
    params.update({"num_samples": str(plan.num_samples), "cpus_per_trial": str(plan.resources.cpus),
                   "gpus_per_trial": str(plan.resources.gpus)})
    if plan.scheduler.kind == "asha":
        params.update({"asha.grace_period": str(plan.scheduler.grace_period),
                       "asha.reduction_factor": str(plan.scheduler.reduction_factor),
                       "asha.max_t": str(plan.scheduler.max_t), "asha.time_attr": plan.scheduler.time_attr})
    return params


def finish(study: Study, figures, args: argparse.Namespace, tracking_uri: str, experiment_id: str, parent_id: str,
           results_dir: Path, headline: Callable, extra: str = "") -> None:
    """Figures from the records (logged to the parent run), then the summary a finished sweep prints; the same
    summary text goes into the sweep's HTML report (results/<study>/report.html, logged as report/report.html)."""
    from analysis.records import load_sweep, ui_hint
    from analysis.report import publish_report, render

    sweep = load_sweep(study.name, parent_id, tracking_uri)
    out_dir = results_dir / study.name
    paths = render(sweep, figures.figures, out_dir, figures.metric, figures.mode)
    lines = [f"== {study.name} ({args.preset}, {args.search}, {args.scheduler}): {headline(sweep.runs)}",
             *([extra] if extra else []), figures.summary(sweep.runs)]
    if study.hooks.after_sweep is not None:
        lines.append(study.hooks.after_sweep(sweep))
    summary = "\n".join(line for line in lines if line)  # printed and shown in the report: one string
    print("\n" + summary)
    report = publish_report(sweep, figures, summary, paths, out_dir)
    folders = sorted({_shown(p.parent) for p in paths})
    names = " ".join(p.name if _shown(p.parent) == folders[0] else _shown(p) for p in paths)
    print("\n".join(textwrap.wrap(names, 100, initial_indent=f"figures and table in {folders[0]}/: ",
                                   subsequent_indent="  ", break_on_hyphens=False)) if paths else "no figures")
    if report is not None:
        print(f"report: {_shown(report)} ({report.stat().st_size / 1e6:.1f} MB, self-contained; "
              f"also the parent run's artifact report/{report.name})")
    print(f"MLflow (parent run {parent_id}): {ui_hint(tracking_uri, experiment_id)}")
    print(f"regenerate the figures: python -m analysis {study.name} --parent-run {parent_id}"
          + ("" if args.results_dir == "results" else f" --results-dir {shlex.quote(args.results_dir)}"))


def _shown(p: Path) -> str:
    return str(p.relative_to(Path.cwd()) if p.is_relative_to(Path.cwd()) else p)
