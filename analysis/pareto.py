"""Accuracy against cost: the study's metric against each finished trial's cost, and the Pareto front.

    >>> from analysis.pareto import pareto_front, front_of, draw_pareto
    >>> pareto_front([1, 2, 3], [0.5, 0.4, 0.45], "min")     # indices of the front, cheapest first
    [0, 1]
    >>> front_of(sweep, "test/rmse", "min").front               # the front's trials (a DataFrame)
    >>> draw_pareto(sweep, "test/rmse", "min", "results/depth_width/overview_pareto.png")

Drawn with the other overview figures (analysis/overview.py) for every sweep with at least two finished trials
with a finite metric and a cost; the HTML report lists the front. A trial is on the front when no other finished
trial costs no more and is no worse, and is strictly cheaper or strictly better. The cost is the trial's
`cost/usd`, else its `cost/device_s` in device-hours, else its training time (analysis/costs.py). Trials stopped
early (ASHA, optimus) are drawn faded at the metric and cost they stopped at, and are left out of the front:
their configurations were never trained to the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from analysis.costs import TrialCost, finite, trial_cost
from analysis.plotting import plt, save_figure

MIN_TRIALS = 2  # finished trials with a metric and a cost needed for the figure
MAX_NAMED = 12  # front trials named on the figure (the table lists them all)
CONFIG, COST = "config", "cost"


def pareto_front(costs: Sequence[float], values: Sequence[float], mode: str) -> list[int]:
    """Indices of the points no other point dominates, by increasing cost (ties: best value first). A point
    dominates another when it costs no more and is no worse, and is strictly cheaper or strictly better;
    points with a NaN cost or value are never on the front."""
    cost = np.asarray(costs, dtype=float)
    value = np.asarray(values, dtype=float) * (1.0 if mode == "min" else -1.0)  # lower is better from here on
    valid = np.isfinite(cost) & np.isfinite(value)
    front = []
    for i in np.flatnonzero(valid):
        no_worse = valid & (cost <= cost[i]) & (value <= value[i])
        strictly = (cost < cost[i]) | (value < value[i])
        if not (no_worse & strictly).any():
            front.append(int(i))
    return sorted(front, key=lambda i: (cost[i], value[i]))


def short_config(run: pd.Series, keys: Sequence[str]) -> str:
    """The trial's swept values in short form: `widths=256-128-64`, `lr=0.001 batch_size=64`."""
    parts = []
    for key in keys:
        value = run.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        text = f"{value:.3g}" if isinstance(value, (float, np.floating)) else str(value)
        parts.append(f"{key}={text}")
    return " ".join(parts) or str(run.get("run_name", run.get("run_id", "?")))


@dataclass
class Front:
    """The finished trials compared (with columns config and cost), their cost's description, the front's
    rows (cheapest first) and the trials stopped early (drawn, never on the front)."""

    trials: pd.DataFrame
    cost: TrialCost | None
    front: pd.DataFrame
    stopped: pd.DataFrame
    note: str  # why there is no figure ("" when there is one)


def front_of(sweep, metric: str, mode: str) -> Front:
    """The Pareto front of a sweep's finished trials (`sweep`: analysis.records.Sweep)."""
    from analysis.overview import swept_axes  # the overview draws this figure; it knows the swept parameters

    runs = sweep.runs
    keys = [a.key for a in swept_axes(sweep)]
    status = runs["trial_status"] if "trial_status" in runs else pd.Series("finished", index=runs.index)
    value = finite(runs[metric]) if metric in runs else pd.Series(np.nan, index=runs.index)
    finished = runs[(status == "finished") & value.notna()].assign(**{metric: value})
    empty = finished.iloc[:0]
    if len(finished) < MIN_TRIALS:
        return Front(finished, None, empty, empty,
                     f"no cost figure: {len(finished)} finished trial(s) with a finite {metric}, it needs "
                     f"{MIN_TRIALS} or more")
    cost = trial_cost(finished)
    if cost is None:
        return Front(finished, None, empty, empty,
                     "no cost figure: the trials record no cost (cost/usd, cost/device_s) nor training time")
    finished = finished.assign(**{COST: cost.values,
                                  CONFIG: [short_config(run, keys) for _, run in finished.iterrows()]})
    order = pareto_front(finished[COST], finished[metric], mode)
    stopped = runs[status == "stopped"]
    stopped_cost = trial_cost(stopped) if len(stopped) else None
    if stopped_cost is not None and stopped_cost.key == cost.key:
        stopped = stopped.assign(**{COST: stopped_cost.values, metric: finite(stopped[metric])})
    else:
        stopped = empty
    return Front(finished, cost, finished.iloc[order], stopped, "")


def cost_text(value: float, unit: str) -> str:
    return f"${value:.3g}" if unit == "$" else f"{value:.3g} {unit}"


def pareto_figure(found: Front, metric: str, mode: str):
    """The figure of a front (`front_of` with no note): the finished trials, the stopped ones faded, the front as
    a step line with numbered points, and the front's trials listed beside the plot. Returns the matplotlib
    Figure, not yet saved."""
    trials, front, cost = found.trials, found.front, found.cost
    named = front.head(MAX_NAMED)
    fig, (ax, key) = plt.subplots(1, 2, figsize=(11.0, 5.0), gridspec_kw={"width_ratios": [2.3, 1]})
    ax.scatter(trials[COST], trials[metric], s=22, color="tab:blue", alpha=0.6, label=f"finished ({len(trials)})")
    if len(found.stopped):
        ax.scatter(found.stopped[COST], found.stopped[metric], s=22, facecolors="none", edgecolors="0.55",
                   label=f"stopped early ({len(found.stopped)}), at their stop")
    ax.step(front[COST], front[metric], where="post", color="tab:orange", lw=1.5, zorder=3)
    ax.scatter(front[COST], front[metric], s=40, color="tab:orange", zorder=4,
               label=f"Pareto front ({len(front)})")
    for n, (_, row) in enumerate(named.iterrows(), start=1):  # numbers by the points, names in the key
        ax.annotate(str(n), (row[COST], row[metric]), xytext=(5, 4), textcoords="offset points", fontsize=9,
                    fontweight="bold", color="0.1", zorder=5)
    lines = [f"{n}. {row[CONFIG]}\n    {metric} {row[metric]:.4g}, {cost_text(row[COST], cost.unit)}"
             for n, (_, row) in enumerate(named.iterrows(), start=1)]
    if len(front) > MAX_NAMED:
        lines.append(f"... and {len(front) - MAX_NAMED} more (report.html)")
    key.axis("off")
    key.set_title("the front, cheapest first", fontsize=9, loc="left")
    key.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=8, family="monospace",
             transform=key.transAxes)
    costs = trials[COST]
    if costs.min() > 0 and costs.max() / costs.min() > 100:
        ax.set_xscale("log")
    ax.set_xlabel(cost.label)
    ax.set_ylabel(f"{metric} ({'higher' if mode == 'max' else 'lower'} is better)")
    ax.set_title(f"{metric} against cost: {len(front)} of {len(trials)} finished trials on the front", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def draw_pareto(sweep, metric: str, mode: str, path: str | Path) -> Path | None:
    """Write the figure to `path` and return it; None (nothing written) when `front_of` gives a note instead."""
    found = front_of(sweep, metric, mode)
    if found.note:
        return None
    return save_figure(pareto_figure(found, metric, mode), Path(path))


def front_table(sweep, metric: str, mode: str) -> pd.DataFrame:
    """The front as a small table (cheapest first): trial, config, the metric and the cost with its unit."""
    found = front_of(sweep, metric, mode)
    if found.note:
        return pd.DataFrame(columns=["trial", CONFIG, metric, COST])
    front = found.front
    return pd.DataFrame({"trial": front.get("run_name", front["run_id"]).to_numpy(),
                         CONFIG: front[CONFIG].to_numpy(), metric: front[metric].to_numpy(),
                         f"{COST} ({found.cost.unit})": front[COST].to_numpy()})


__all__ = ["pareto_front", "front_of", "pareto_figure", "draw_pareto", "front_table", "short_config", "cost_text",
           "Front"]
