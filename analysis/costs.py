"""What trials and sweeps cost, read from the keys the driver records (and what older stores fall back to).

    >>> from analysis.costs import trial_cost, sweep_cost
    >>> trial_cost(sweep.runs)            # one cost per trial and how to label it (the Pareto figure's x axis)
    >>> sweep_cost(sweep.parent)          # {"device-h": "0.012 GPU-h", "usd": "-", "wall min": "3.8"}

The driver records, per child run (trial): the metric `cost/device_s` at every epoch (cumulative device-seconds:
GPU-seconds, or CPU-core-seconds when the trial holds no GPU; its last value is the trial's total), `cost/usd`
(cumulative, only when a price is known) and the params `cost.device` (`gpu` or `cpu`), `cost.units` (GPUs or
CPU cores held) and `cost.usd_per_device_h` (absent when unpriced). Per parent run (sweep): the metrics
`cost/device_h`, `cost/usd` (when priced), `sweep/wall_s` and the tag `cost.device`.

A trial's cost is, in this order, the first that every trial compared has: its `cost/usd`, its `cost/device_s`
in device-hours, its training time (`time/train_s`, or another cumulative `time/*` total). Stores written before
the cost keys have none of them: trials fall back to training time, sweeps show "-".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

USD, DEVICE_S, DEVICE = "cost/usd", "cost/device_s", "cost.device"
SWEEP_DEVICE_H, SWEEP_WALL_S = "cost/device_h", "sweep/wall_s"
TIME_METRICS = ("time/train_s", "time/total_s", "time/fit_s", "time/schedule_s")  # cumulative per-trial time
DEVICE_HOURS = {"gpu": "GPU-h", "cpu": "CPU-core-h"}
DEVICE_NAMES = {"gpu": "GPU-hours", "cpu": "CPU core-hours"}
INF = 1e308  # MLflow's SQL store saves inf as the largest float: at least this is no finite value
MISSING = "-"


@dataclass(frozen=True)
class TrialCost:
    """One cost per trial (index of the runs given; NaN where unknown) and what it is."""

    values: pd.Series
    key: str  # the record it came from: cost/usd, cost/device_s or a time/* metric
    label: str  # axis label with its unit, e.g. "device time (GPU-hours)"
    unit: str  # short unit for tables: "$", "GPU-h", "CPU-h", "device-h", "s"


def finite(column: pd.Series) -> pd.Series:
    """Numbers of `column`, NaN where missing, non-numeric or infinite (MLflow's inf included)."""
    values = pd.to_numeric(column, errors="coerce").astype(float)
    return values.where(values.abs() < INF)


def _device_unit(runs: pd.DataFrame) -> tuple[str, str]:
    """(unit, axis label) of device-hours for these trials, from their `cost.device` params."""
    devices = set(runs[DEVICE].dropna().astype(str)) if DEVICE in runs else set()
    if len(devices) == 1 and next(iter(devices)) in DEVICE_HOURS:
        device = next(iter(devices))
        return DEVICE_HOURS[device], f"device time ({DEVICE_NAMES[device]})"
    if devices:
        return "device-h", f"device time (device-hours: {' and '.join(sorted(devices))})"
    return "device-h", "device time (device-hours)"


def trial_cost(runs: pd.DataFrame) -> TrialCost | None:
    """The cost of each trial of `runs` (see the module docstring for the order), or None when no key is
    recorded for all of them."""
    def complete(key: str) -> pd.Series | None:
        if key not in runs:
            return None
        values = finite(runs[key])
        return values if len(values) and values.notna().all() else None

    if (values := complete(USD)) is not None:
        return TrialCost(values, USD, "cost (USD)", "$")
    if (values := complete(DEVICE_S)) is not None:
        unit, label = _device_unit(runs)
        return TrialCost(values / 3600, DEVICE_S, label, unit)
    for key in TIME_METRICS:
        if (values := complete(key)) is not None:
            what = "training time" if key == "time/train_s" else key
            return TrialCost(values, key, f"{what} (s)", "s")
    return None


def _metric(run, key: str) -> float | None:
    value = run.data.metrics.get(key)
    return value if value is not None and math.isfinite(value) and abs(value) < INF else None


def format_usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:.2g}"


def sweep_cost(parent) -> dict[str, str]:
    """A sweep's cost as table cells, from its parent run (an mlflow Run): "device-h" (e.g. "0.012 GPU-h"),
    "usd" (e.g. "$0.031") and "wall min" (its wall time in minutes); "-" for each that is not recorded."""
    device_h, usd, wall_s = (_metric(parent, k) for k in (SWEEP_DEVICE_H, USD, SWEEP_WALL_S))
    unit = DEVICE_HOURS.get(parent.data.tags.get(DEVICE, ""), "device-h")
    return {"device-h": MISSING if device_h is None else f"{device_h:.3g} {unit}",
            "usd": MISSING if usd is None else format_usd(usd),
            "wall min": MISSING if wall_s is None else f"{wall_s / 60:.1f}"}


__all__ = ["TrialCost", "trial_cost", "sweep_cost", "finite", "format_usd", "TIME_METRICS", "DEVICE_HOURS"]
