"""A finished sweep's per-epoch curves, read back from MLflow, for replaying a scheduler over them.

    >>> from analysis.recorded_curves import read_curves
    >>> sweep = read_curves("sqlite:////abs/results/mlflow.db", "depth_width", "test/rmse", "min")
    >>> [(t.name, len(t.values)) for t in sweep.trials]       # in the order the trials started

Only a sweep whose every trial ran to its end can be replayed: scheduler fifo (or none recorded) and every
child run's `trial_status` `finished` or `diverged`; a trial stopped early or failed has a cut curve, so
`read_curves` raises `ReplayError` for it, as it does for a study whose trials are one-shot (one value each, no
epochs) or for a sweep that does not exist.

Each trial's curve: the metric's history with the epoch as the step (MLflow's inf, stored as the largest
float, turned back into inf, so a scheduler sees what it saw live), and the device-seconds each epoch cost: the
increments of the cumulative `cost/device_s` when recorded, else `time/epoch_s` (training seconds per epoch).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from analysis.costs import DEVICE_S, INF
from analysis.records import RecordsError, find_parent_run, number_or_text

EPOCH_SECONDS = "time/epoch_s"
REPLAYABLE = ("finished", "diverged")  # trials that ran until they ended by themselves


class ReplayError(ValueError):
    """The sweep cannot be replayed; the message says why, in one line."""


@dataclass
class TrialCurve:
    """One trial of the recorded sweep: its curve of the metric and what each epoch cost."""

    run_id: str
    name: str
    config: dict  # its params (numbers parsed), for short labels of the swept values
    start: int  # the run's start time, ms
    status: str  # finished or diverged
    epochs: list[int]  # the steps recorded, 1, 2, ...
    values: list[float]  # the metric at each of them
    device_s: list[float]  # device-seconds each epoch cost (NaN where unknown)

    @property
    def final(self) -> float:
        """The metric at its last epoch (NaN when not finite: a diverged trial)."""
        value = self.values[-1] if self.values else math.nan
        return value if math.isfinite(value) else math.nan


@dataclass
class RecordedSweep:
    study: str
    parent_run_id: str
    metric: str
    mode: str
    trials: list[TrialCurve]  # by start time: the order the trials ran in
    params: dict = field(default_factory=dict)  # the parent run's params
    device_source: str = DEVICE_S  # where the per-epoch costs came from: cost/device_s, time/epoch_s or both

    @property
    def max_t(self) -> int:
        """The sweep's epochs: the longest curve."""
        return max(t.epochs[-1] for t in self.trials)


def _history(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    """step -> value of one metric (the last value logged at a step wins)."""
    return {m.step: m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.timestamp)}


def _restore_inf(value: float) -> float:
    return math.copysign(math.inf, value) if abs(value) >= INF else value


def _epoch_costs(client: MlflowClient, run_id: str, epochs: list[int]) -> tuple[list[float], str]:
    cumulative = _history(client, run_id, DEVICE_S)
    if cumulative:
        costs, before = [], 0.0
        for epoch in epochs:
            now = cumulative.get(epoch, math.nan)
            costs.append(now - before)
            before = now if math.isfinite(now) else before
        return costs, DEVICE_S
    seconds = _history(client, run_id, EPOCH_SECONDS)
    return [seconds.get(epoch, math.nan) for epoch in epochs], EPOCH_SECONDS


def read_curves(tracking_uri: str, study: str, metric: str, mode: str,
                parent_run_id: str | None = None) -> RecordedSweep:
    """The curves of sweep `parent_run_id` of `study` (default: its latest sweep); ReplayError when there is no
    such sweep or it cannot be replayed."""
    client = MlflowClient(tracking_uri)
    try:
        parent = find_parent_run(client, study, parent_run_id)
    except RecordsError as e:
        raise ReplayError(str(e)) from None
    except MlflowException as e:
        raise ReplayError(f"no run {parent_run_id!r} in {tracking_uri}: {str(e).splitlines()[0]}") from None
    run_id = parent.info.run_id
    if parent.data.tags.get("sweep.parent") != "1":
        raise ReplayError(f"run {run_id} is no sweep's parent run (no tag sweep.parent=1)")
    experiment = client.get_experiment(parent.info.experiment_id).name
    if experiment != study:
        raise ReplayError(f"run {run_id} is a sweep of {experiment!r}, not of {study!r}")
    scheduler = parent.data.tags.get("scheduler", "fifo")
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'",
                                  max_results=50_000)
    if not children:
        raise ReplayError(f"sweep {run_id} of {study} has no trials")
    statuses = [c.data.tags.get("trial_status", "unknown") for c in children]
    cut = {s: statuses.count(s) for s in statuses if s not in REPLAYABLE}
    if scheduler != "fifo" or cut:
        why = ", ".join(f"{n} {s}" for s, n in sorted(cut.items())) or f"scheduler {scheduler}"
        raise ReplayError(f"sweep {run_id} of {study} cannot be replayed: its trials did not all run to the end "
                          f"({why}), so their curves are cut; replay a --scheduler fifo sweep")
    children = sorted(children, key=lambda c: (c.info.start_time, c.info.run_id))
    histories = [_history(client, c.info.run_id, metric) for c in children]
    if all(len(h) <= 1 for h in histories):
        raise ReplayError(f"{study}'s trials are one-shot (at most one {metric} each, no epochs): there is nothing "
                          f"for a scheduler to stop")
    trials, sources = [], set()
    for child, history in zip(children, histories):
        epochs = sorted(step for step in history if step >= 1)
        if not epochs:
            raise ReplayError(f"trial {child.info.run_name} of sweep {run_id} recorded no {metric} per epoch")
        costs, source = _epoch_costs(client, child.info.run_id, epochs)
        sources.add(source)
        trials.append(TrialCurve(
            run_id=child.info.run_id, name=child.info.run_name or child.info.run_id,
            config={k: number_or_text(v) for k, v in child.data.params.items()}, start=child.info.start_time,
            status=child.data.tags["trial_status"], epochs=epochs,
            values=[_restore_inf(history[e]) for e in epochs], device_s=costs))
    return RecordedSweep(study, run_id, metric, mode, trials, dict(parent.data.params), " and ".join(sorted(sources)))


def device_seconds(trial: TrialCurve, epochs: int) -> float:
    """Device-seconds of the trial's first `epochs` epochs (NaN when a cost is unknown)."""
    return float(np.sum(trial.device_s[:epochs]))


__all__ = ["read_curves", "RecordedSweep", "TrialCurve", "ReplayError", "device_seconds"]
