"""Shared fixtures. Tests run real Ray, real MLflow (SQLite) and real torch on small data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture
def clean_env(monkeypatch):
    """No tracking server or cluster from the caller's shell leaks into a test."""
    for key in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        monkeypatch.delenv(key, raising=False)


def faults(**variables: str) -> dict[str, str]:
    """Environment that arms a test's fault injection (tests/faults/sitecustomize.py) in every process of a sweep:
    e.g. faults(DLSWEEPS_TEST_KILL_AFTER_CHECKPOINT="10:marker")."""
    path = os.pathsep.join(p for p in (str(ROOT / "tests" / "faults"), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, **variables}


def run_script(args: list[str], cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, *args], cwd=cwd, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def latest_sweep(results: Path, study: str):
    """The MLflow client of `results/mlflow.db`, the latest sweep of `study` in it (its parent run) and the runs
    of that sweep's trials: what a study's end-to-end test reads back after `main(...)`."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{Path(results) / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(study).experiment_id
    parent = client.search_runs([experiment], "tags.`sweep.parent` = '1'")[0]  # newest first
    children = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return client, parent, children


def sweep_plan(study, argv: list[str], tracking_uri: str = "sqlite:///:memory:", prepare: bool = False):
    """The plan `python sweeps/<study>.py ARGV` would run (sweeps.plan), built without starting anything (and
    without the study's prepare hook unless asked: it may read earlier sweeps or weights files)."""
    from analysis.studies import load
    from sweeps.cli import parse_args
    from sweeps.plan import resolve_plan
    from sweeps.study import Context

    figures = load(study.name, module=study.figures or None)
    return resolve_plan(study, parse_args(study, argv), Context(tracking_uri), figures.metric, figures.mode, prepare)
