"""MLflow records of a sweep -> pandas.

    >>> from analysis.records import load_sweep
    >>> sweep = load_sweep("depth_width")          # latest sweep of the study
    >>> sweep.runs[["widths", "n_params", "test/rmse", "trial_status"]]

One row per child run (trial): its params (numbers parsed), its final metrics
(the last value of each, i.e. at the epoch the trial ended) and its tags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from trainables.config import InputError

PARENT_TAG = "sweep.parent"
DEFAULT_RESULTS_DIR = "results"


def default_tracking_uri(results_dir: str | os.PathLike = DEFAULT_RESULTS_DIR) -> str:
    """`MLFLOW_TRACKING_URI` if set, else a SQLite file under the results directory."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return "sqlite:///" + str(Path(results_dir).resolve() / "mlflow.db")


@dataclass
class Sweep:
    parent: Run
    runs: pd.DataFrame
    tracking_uri: str

    @property
    def parent_run_id(self) -> str:
        return self.parent.info.run_id


class RecordsError(InputError, LookupError):
    """No such study or sweep in the tracking store; the message says what to run."""


def number_or_text(text: str):
    """An MLflow param's value as an int or float where it reads as one, else the text."""
    for cast in (int, float):
        try:
            return cast(text)
        except (TypeError, ValueError):
            pass
    return text


def find_sweep(tracking_uri: str, study: str, parent_run_id: str | None = None, *,
               tags: dict[str, str] | None = None, with_tag: str | None = None) -> Run | None:
    """The one way to find a sweep (its parent run) in a store: the run `parent_run_id` if given,
    else the latest sweep of `study` whose tags equal `tags` and that carries the tag `with_tag`
    (e.g. `lr_max`, stored by an LR range test). None when there is none; an absent SQLite store
    is not created just to look."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[len("sqlite:///"):]).exists():
        return None
    client = MlflowClient(tracking_uri)
    if parent_run_id:
        return client.get_run(parent_run_id)
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        return None
    clauses = [f"tags.`{PARENT_TAG}` = '1'"]
    clauses += [f"tags.`{key}` = '{value}'" for key, value in (tags or {}).items()]
    if with_tag:
        clauses.append(f"tags.`{with_tag}` != ''")
    found = client.search_runs([experiment.experiment_id], filter_string=" and ".join(clauses),
                               order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


def sweep_study(tracking_uri: str, parent: Run) -> str:
    """The study a sweep belongs to (its experiment's name)."""
    return MlflowClient(tracking_uri).get_experiment(parent.info.experiment_id).name


def find_parent_run(client: MlflowClient, study: str, parent_run_id: str | None = None) -> Run:
    """`find_sweep` for a study that must have one: RecordsError naming the command to run otherwise."""
    parent = find_sweep(client.tracking_uri, study, parent_run_id)
    if parent is None:
        raise RecordsError(f"no sweep of {study!r} at {client.tracking_uri}; run `python sweeps/{study}.py` first")
    return parent


# Params renamed since stores were first written: old name -> the name the analysis reads (MACs are not FLOPs).
RENAMED_PARAMS = {"flops_per_sample": "macs_per_sample"}


def load_sweep(study: str, parent_run_id: str | None = None, tracking_uri: str | None = None) -> Sweep:
    tracking_uri = tracking_uri or default_tracking_uri()
    client = MlflowClient(tracking_uri)
    parent = find_parent_run(client, study, parent_run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
        max_results=50_000,
    )
    rows = []
    for run in children:
        row = {"run_id": run.info.run_id, "run_name": run.info.run_name, "status": run.info.status}
        row.update({RENAMED_PARAMS.get(k, k): number_or_text(v) for k, v in run.data.params.items()})
        row.update(run.data.metrics)
        row.update({k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")})
        rows.append(row)
    runs = pd.DataFrame(rows)
    runs.attrs.update(tracking_uri=tracking_uri, parent_run_id=parent.info.run_id)  # for figures reading artifacts
    return Sweep(parent=parent, runs=runs, tracking_uri=tracking_uri)


def metric_history(sweep: Sweep, key: str) -> pd.DataFrame:
    """Long table (run_id, step, value) of one metric over epochs, for curves."""
    client = MlflowClient(sweep.tracking_uri)
    rows = [
        {"run_id": run_id, "step": m.step, "value": m.value}
        for run_id in sweep.runs.get("run_id", [])
        for m in client.get_metric_history(run_id, key)
    ]
    return pd.DataFrame(rows, columns=["run_id", "step", "value"])


def _populations(runs: pd.DataFrame) -> pd.Series:
    """Which runs are population trials (several replicas in one run: seeds > 1, or a population of methods)."""
    size = runs["population/size"].fillna(1) if "population/size" in runs else pd.Series(1, index=runs.index)
    seeds = pd.to_numeric(runs["seeds"], errors="coerce").fillna(1) if "seeds" in runs else 1
    return ((size > 1) | (seeds > 1)) & (runs.get("trial_status", pd.Series("", index=runs.index)) != "error")


def per_replica(runs: pd.DataFrame, table: str = "replicas.csv") -> pd.DataFrame:
    """One row per replica: each population trial is expanded into the rows of its replicas table artifact
    (their columns, e.g. seed, optimizer and final metrics, replace the run's); other runs stay as they are.
    Needs `runs.attrs["tracking_uri"]` (set by `load_sweep`)."""
    uri = runs.attrs.get("tracking_uri")
    if runs.empty or not uri or not _populations(runs).any():
        return runs
    rows = []
    for (_, run), population in zip(runs.iterrows(), _populations(runs)):
        if not population:
            rows.append(run.to_dict())
            continue
        try:
            replicas = trial_artifact(uri, run["run_id"], table)
        except (OSError, MlflowException):  # a run that ended before its first table: keep its means
            rows.append(run.to_dict())
            continue
        rows.extend({**run.to_dict(), **replica} for replica in replicas.to_dict("records"))
    expanded = pd.DataFrame(rows)
    expanded.attrs.update(runs.attrs)
    return expanded


def replica_curves(runs: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """One row per (replica, epoch): the run's columns (a population trial's replica columns, e.g. seed and
    optimizer, replace them), "step" and each metric of `keys`. Ordinary runs give their MLflow metric
    histories, population trials their `replica_history.csv` artifact, so a figure drawn from this table does
    not depend on whether replicas were fused. Needs `runs.attrs["tracking_uri"]` (set by `load_sweep`)."""
    uri = runs.attrs.get("tracking_uri")
    if runs.empty or not uri:
        return pd.DataFrame(columns=[*runs.columns, "step", *keys])
    client = MlflowClient(uri)
    rows = []
    for (_, run), population in zip(runs.iterrows(), _populations(runs)):
        base = run.drop(labels=[k for k in keys if k in run.index]).to_dict()
        if population:
            try:
                history = trial_artifact(uri, run["run_id"], "replica_history.csv")
                rows.extend({**base, **row} for row in history.to_dict("records"))
                continue
            except (OSError, MlflowException):  # no history kept: fall back to the run's means
                pass
        steps: dict[int, dict] = {}
        for key in keys:
            for m in client.get_metric_history(run["run_id"], key):
                steps.setdefault(m.step, {})[key] = m.value
        rows.extend({**base, "step": step, **values} for step, values in sorted(steps.items()))
    curves = pd.DataFrame(rows)
    for key in keys:
        if key not in curves:
            curves[key] = float("nan")
    curves.attrs.update(runs.attrs)
    return curves


def trial_artifact(tracking_uri: str, run_id: str, path: str):
    """An artifact a trial (or an analysis step) attached to its run (trainables/artifacts.py), decoded:
    an ndarray (.npy), DataFrame (.csv), JSON value (.json), str (.txt) or bytes."""
    import mlflow.artifacts

    from trainables.artifacts import decode

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per file buries the summary
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, tracking_uri=tracking_uri)
    return decode(path, Path(local).read_bytes())


def ui_hint(tracking_uri: str, experiment_id: str) -> str:
    """How to open the runs table (parents with nested trials) in the MLflow UI."""
    if tracking_uri.startswith(("http://", "https://")):
        return f"open {tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs"
    return (f"mlflow ui --backend-store-uri {tracking_uri}\n  then open "
            f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs")


def log_artifacts(tracking_uri: str, run_id: str, paths: list[Path], artifact_path: str = "figures") -> None:
    client = MlflowClient(tracking_uri)
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path)


__all__ = ["Sweep", "RecordsError", "load_sweep", "metric_history", "default_tracking_uri", "ui_hint",
           "log_artifacts", "find_parent_run", "find_sweep", "sweep_study", "trial_artifact", "per_replica", "replica_curves"]
