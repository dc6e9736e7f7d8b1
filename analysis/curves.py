"""What the learning-rate and batch-size studies' analyses share (analysis/studies/lr_range.py, cyclic_lr.py,
batch_size.py, joint_search.py): the bound-picking rule, metric histories, the loss/accuracy-vs-epoch
figure and the best accuracy of each trial.

The picking rule (`pick_bounds`, for the LR range tests and the batch-size range test): on the curve of
training loss vs x (learning rate or batch size), ignoring diverged points, with L0 the loss at the
first (smallest) x and drop = L0 - min(loss):
  * x_min = the first x where the loss has fallen by 10% of the drop ("where the loss starts to fall");
  * x_max = the first x where the loss is within 5% of the drop of its minimum ("where it stops falling").
  If the two coincide (the whole drop happens in one grid step), x_min is the grid point before x_max.
  A curve whose loss falls by less than 1% of L0 has no bounds (a RecordsError says so).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from analysis.plotting import save_figure  # noqa: E402
from analysis.records import RecordsError, find_sweep, load_sweep  # noqa: E402
from trainables.training.schedules import CYCLIC  # noqa: E402

START_FRAC, PLATEAU_FRAC, MIN_DROP = 0.10, 0.05, 0.01
POLICY_COLORS = {"constant": "tab:gray", "triangular": "tab:blue", "triangular2": "tab:green",
                 "exp_range": "tab:red", "cyclic": "tab:purple", "fixed": "tab:gray", "range": "tab:orange",
                 "multistep": "tab:brown", "cosine": "tab:olive"}


def pick_bounds(x: Sequence[float], loss: Sequence[float]) -> tuple[float, float]:
    """(x_min, x_max) of a loss-vs-x curve by the rule in the module docstring; x must be increasing."""
    points = [(float(a), float(b)) for a, b in zip(x, loss) if math.isfinite(b)]
    if len(points) < 2:
        raise RecordsError("fewer than two non-diverged points on the curve: cannot pick bounds")
    xs, ls = zip(*points)
    first, best = ls[0], min(ls)
    drop = first - best
    if drop <= MIN_DROP * abs(first):
        raise RecordsError(f"the training loss never fell (from {first:.3g} to at best {best:.3g}): cannot pick bounds")
    i_min = next(i for i, v in enumerate(ls) if v <= first - START_FRAC * drop)
    i_max = next(i for i, v in enumerate(ls) if v <= best + PLATEAU_FRAC * drop)
    if i_min >= i_max:
        i_min = i_max - 1
    return xs[i_min], xs[i_max]


# ---------------------------------------------------------------- records

def client_of(runs: pd.DataFrame) -> MlflowClient | None:
    """The tracking client of a sweep's runs (the runner and `python -m analysis` put its URI in attrs)."""
    uri = runs.attrs.get("tracking_uri")
    return MlflowClient(uri) if uri else None


def history(client: MlflowClient, run_id: str, key: str) -> pd.Series:
    """One metric of one run over its steps (epochs, or a range test's stages)."""
    values = {m.step: m.value for m in client.get_metric_history(run_id, key)}
    return pd.Series(values, dtype=float).sort_index()


def latest_runs(tracking_uri: str | None, study: str, *, tags: dict[str, str] | None = None) -> pd.DataFrame | None:
    """The trials of the latest sweep of another `study` in the same store whose parent carries `tags`
    (analysis.records.find_sweep), with their store in attrs; None if there is none."""
    parent = find_sweep(tracking_uri, study, tags=tags) if tracking_uri else None
    if parent is None:
        return None
    runs = load_sweep(study, parent.info.run_id, tracking_uri).runs
    runs.attrs.update(tracking_uri=tracking_uri, parent_run_id=parent.info.run_id)
    return runs


def finished(runs: pd.DataFrame) -> pd.DataFrame:
    """Trials that ran to their end or were stopped by ASHA (not diverged, not failed)."""
    if runs.empty:
        return runs
    status = runs["trial_status"] if "trial_status" in runs else pd.Series("finished", index=runs.index)
    return runs[status.isin(["finished", "stopped"])]


def missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def empty(ax, text: str = "no finished trials to show") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center")


# ---------------------------------------------------------------- per-trial labels, curves, best accuracy

def label(row) -> str:
    """A trial's learning-rate policy in a few words (figure legends, tables)."""
    policy = row.get("lr_policy", "constant")
    if policy in CYCLIC:
        return f"{policy} [{float(row['lr_min']):.3g}, {float(row['lr_max']):.3g}]"
    lr = row.get("lr") or (row.get("lr_max") if row.get("fixed_lr", "max") == "max" else row.get("lr_min"))
    return f"{policy} lr {float(lr):.3g}"


def _policy_key(runs: pd.DataFrame) -> str:
    return "batch_policy" if "batch_policy" in runs and (runs["batch_policy"] == "cyclic").any() else "lr_policy"


def curve_figures(runs: pd.DataFrame, out_dir: Path, name: str, title: str) -> Path:
    """Training and validation loss and accuracy vs epoch, one curve per trial."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    client = client_of(runs)
    ok = finished(runs)
    eval_name = "val" if "val/accuracy" in runs and runs["val/accuracy"].notna().any() else "test"
    key = _policy_key(runs)
    for row_i, metric in enumerate(["loss", "accuracy"]):
        for col_i, split in enumerate(["train", eval_name]):
            ax = axes[row_i][col_i]
            drawn = False
            for _, run in ok.iterrows():
                if client is None:
                    break
                series = history(client, run["run_id"], f"{split}/{metric}")
                if len(series):
                    policy = run.get(key, "constant")
                    ax.plot(series.index, series.values, "-", color=POLICY_COLORS.get(policy),
                            label=label(run) if key == "lr_policy" else f"batch {policy}, {label(run)}")
                    drawn = True
            if not drawn:
                empty(ax, "no curves (no finished trials or no MLflow history)")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_xlabel("epoch")
            ax.set_ylabel(f"{'training' if split == 'train' else 'validation' if split == 'val' else 'test'} {metric}")
            ax.grid(True, alpha=0.3)
            if drawn and row_i == 0 and col_i == 0:
                ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, out_dir / name)


def best_accuracy(runs: pd.DataFrame, client: MlflowClient | None) -> pd.DataFrame:
    """Per trial: the best validation (else test) accuracy over its epochs, and the final test accuracy."""
    rows = []
    for _, run in finished(runs).iterrows():
        key = "val/accuracy" if not missing(run.get("val/accuracy")) else "test/accuracy"
        series = history(client, run["run_id"], key) if client is not None else pd.Series(dtype=float)
        best = series.max() if len(series) else run.get(key, np.nan)
        rows.append({"trial": label(run), "lr_policy": run.get("lr_policy"), "batch_policy": run.get("batch_policy"),
                     "best_accuracy": best, "best_on": key.split("/")[0], "final_test_accuracy": run.get("test/accuracy")})
    return pd.DataFrame(rows, columns=["trial", "lr_policy", "batch_policy", "best_accuracy", "best_on",
                                       "final_test_accuracy"])
