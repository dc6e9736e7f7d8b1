"""Figure and summary of the joint search over lr, batch size and weight decay (sweeps/joint_search.py).

    python -m analysis joint_search [--parent-run ID]

best_vs_budget.png: the best validation accuracy found so far vs trials (in creation order) and vs compute
(training samples processed by all trials, ASHA-stopped ones counting what they trained), for this sweep
and the latest sweep of the other search algorithm (optuna <-> random) in the same MLflow store.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.curves import empty, finished, latest_runs  # noqa: E402
from analysis.plotting import save_figure  # noqa: E402
from analysis.records import find_sweep  # noqa: E402

METRIC = "val/accuracy"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "max"


def search_trace(runs: pd.DataFrame) -> pd.DataFrame:
    """Best validation accuracy found so far after each trial (in creation order) and the compute spent
    (cumulative training samples; ASHA-stopped trials count what they trained)."""
    if runs.empty or "run_name" not in runs:
        return pd.DataFrame(columns=["trial", "best", "samples"])
    order = runs.assign(index=runs["run_name"].astype(str).str.extract(r"_(\d+)$")[0].astype(float)).sort_values("index")
    acc = order["val/accuracy"].astype(float).fillna(0.0) if "val/accuracy" in order else pd.Series(0.0, index=order.index)
    samples = order["train/samples_seen"].astype(float).fillna(0.0) if "train/samples_seen" in order else acc * 0
    return pd.DataFrame({"trial": np.arange(1, len(order) + 1), "best": acc.cummax().to_numpy(),
                         "samples": samples.cumsum().to_numpy()})


def _tags(runs: pd.DataFrame) -> dict[str, str]:
    """The parent run's tags (search, scheduler, ...) of the sweep `runs` belongs to."""
    uri, parent_id = runs.attrs.get("tracking_uri"), runs.attrs.get("parent_run_id")
    parent = find_sweep(uri, "joint_search", parent_id) if uri and parent_id else None
    return parent.data.tags if parent is not None else {}


def other_search(runs: pd.DataFrame) -> tuple[str, pd.DataFrame] | None:
    """The latest joint_search sweep run with the other search algorithm (optuna <-> random), same store."""
    mine = _tags(runs).get("search", "")
    if not mine:
        return None
    other = "random" if mine == "optuna" else "optuna"
    found = latest_runs(runs.attrs.get("tracking_uri"), "joint_search", tags={"search": other})
    return (other, found) if found is not None else None


def figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mine = _tags(runs)
    traces = [(f"{mine.get('search', 'this sweep')} + {mine.get('scheduler', '?')}", search_trace(runs))]
    other = other_search(runs)
    if other is not None:
        traces.append((f"{other[0]} (latest sweep)", search_trace(other[1])))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (name, trace), color in zip(traces, ["tab:red", "tab:gray"]):
        if len(trace):
            axes[0].step(trace["trial"], trace["best"], where="post", color=color, label=name)
            axes[1].step(trace["samples"], trace["best"], where="post", color=color, label=name)
    for ax, xlabel in zip(axes, ["trials", "compute: training samples processed (all trials)"]):
        if ax.has_data():
            ax.legend(fontsize=8)
        else:
            empty(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("best validation accuracy so far")
        ax.grid(True, alpha=0.3)
    note = "" if other is not None else " (no sweep with the other search in this store yet)"
    fig.suptitle("Joint search over lr, batch size, weight decay" + note, fontsize=10)
    return [save_figure(fig, out_dir / "best_vs_budget.png")]


def summary(runs: pd.DataFrame) -> str:
    ok = finished(runs)
    if ok.empty or "val/accuracy" not in ok:
        return "no finished trials"
    best = ok.loc[ok["val/accuracy"].astype(float).idxmax()]
    return (f"{len(runs)} trials; best validation accuracy {best['val/accuracy']:.4f} at lr={float(best['lr']):.3g}, "
            f"batch_size={int(best['batch_size'])}, weight_decay={float(best['weight_decay']):.3g} "
            f"(test accuracy {best.get('test/accuracy', float('nan')):.4f})")
