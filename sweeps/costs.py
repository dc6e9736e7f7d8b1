"""What a sweep costs: each trial's device-seconds and their price, and the sweep's totals.

A trial's device-seconds are Tune's `time_total_s` (the trial's running time, restarts included) times what it
holds: its GPUs, or its CPU cores where it holds no GPU (a DDP trial: its workers'). The price per device-hour
comes from trainables/prices.py (`--instance-type`, `--device-hour-price`). The driver's recorder adds
`cost/device_s` (and `cost/usd`) to every report of a trial's run, and params saying what was counted; at the end
the parent run gets the totals (`cost/device_h`, `cost/usd`, `sweep/wall_s`), which the summary prints in one line:

    cost: 22 trials, 0.31 GPU-h, $0.95, 4.1 min wall
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweeps.plan import TrialPlan


def cost_metrics(result: dict[str, Any], trial: "TrialPlan") -> dict[str, float]:
    """The trial's device-seconds so far (and their price) at this report."""
    device_s = float(result.get("time_total_s", 0.0)) * trial.resources.units
    out = {"cost/device_s": device_s}
    if trial.resources.usd_per_device_h:
        out["cost/usd"] = device_s / 3600 * trial.resources.usd_per_device_h
    return out


def cost_params(trial: "TrialPlan") -> dict[str, str]:
    r = trial.resources
    params = {"cost.device": r.device, "cost.units": f"{r.units:g}"}
    if r.usd_per_device_h:
        params.update({"cost.usd_per_device_h": f"{r.usd_per_device_h:g}", "cost.instance": r.instance or "given"})
    return params


def record_totals(client, parent_id: str, wall_s: float) -> dict[str, float]:
    """The sweep's totals on its parent run: device-hours and USD over its trials' runs, and its wall time."""
    from mlflow.entities import Metric

    children = client.search_runs([client.get_run(parent_id).info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'", max_results=50_000)
    totals = {"cost/device_h": sum(r.data.metrics.get("cost/device_s", 0.0) for r in children) / 3600,
              "sweep/wall_s": wall_s, "sweep/trials": float(len(children))}
    priced = [r.data.metrics["cost/usd"] for r in children if "cost/usd" in r.data.metrics]
    if priced:
        totals["cost/usd"] = sum(priced)
    now = int(time.time() * 1000)
    client.log_batch(parent_id, metrics=[Metric(k, v, now, 0) for k, v in totals.items()])
    return totals


def cost_line(totals: dict[str, float], device: str) -> str:
    """'22 trials, 0.31 GPU-h, $0.95, 4.1 min wall'."""
    unit = "GPU-h" if device == "gpu" else "CPU-core-h"
    usd = totals.get("cost/usd")
    price = "" if usd is None else f", ${usd:.2f}" if usd >= 0.1 else f", ${usd:.2g}"
    wall = totals["sweep/wall_s"]
    return (f"{int(totals['sweep/trials'])} trials, {totals['cost/device_h']:.2g} {unit}{price}, "
            + (f"{wall / 60:.1f} min wall" if wall >= 60 else f"{wall:.0f} s wall"))


