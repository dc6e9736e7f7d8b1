"""Figures and summary of the cyclical-LR study (sweeps/cyclic_lr.py), from its MLflow records alone.

    python -m analysis cyclic_lr [--parent-run ID]

1. cyclic_lr_curves.png: training and validation loss and accuracy vs epoch, one curve per policy;
2. lr_vs_iteration.png: the learning rate of every iteration, rebuilt from each trial's recorded config
   (the schedule is a pure function of the config and the iterations per epoch: trainables.training.schedules).
Summary: best validation accuracy and final test accuracy per policy.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.curves import POLICY_COLORS, best_accuracy, client_of, curve_figures, empty, finished, label, missing  # noqa: E402
from analysis.plotting import save_figure  # noqa: E402
from trainables.config import from_dict  # noqa: E402
from trainables.image.config import ClassifyConfig  # noqa: E402
from trainables.training.schedules import lr_schedule  # noqa: E402

METRIC = "val/accuracy"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "max"


def config_of(run: pd.Series) -> ClassifyConfig:
    """A trial's config from its MLflow params (keys the config does not know are left out)."""
    values = {k: run[k] for k in ClassifyConfig.__dataclass_fields__ if k in run and not missing(run[k])}
    values["data_dir"] = str(values.get("data_dir", "") or "")
    return from_dict(ClassifyConfig, values)


def lr_vs_iteration(runs: pd.DataFrame, out_dir: Path) -> Path:
    """The learning rate of every iteration of every finished trial."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    drawn = False
    for _, run in finished(runs).iterrows():
        if missing(run.get("train/iterations")) or missing(run.get("stopped_at_epoch")):
            continue
        total, epochs = int(run["train/iterations"]), int(run["stopped_at_epoch"])
        lrs = lr_schedule(config_of(run), total, max(1, total // max(epochs, 1)))
        ax.plot(range(1, total + 1), lrs, "-", color=POLICY_COLORS.get(run.get("lr_policy")), label=label(run))
        drawn = True
    if drawn:
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    else:
        empty(ax)
    ax.set_xlabel("iteration")
    ax.set_ylabel("learning rate (log scale)")
    ax.set_title("Learning rate vs iteration", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, out_dir / "lr_vs_iteration.png")


def figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [curve_figures(runs, out_dir, "cyclic_lr_curves.png", "Cyclical vs constant learning rate"),
            lr_vs_iteration(runs, out_dir)]


def summary(runs: pd.DataFrame) -> str:
    table = best_accuracy(runs, client_of(runs))
    if table.empty:
        return "no finished trials"
    lines = ["policy                                   best acc   final test acc"]
    for row in table.itertuples():
        lines.append(f"  {row.trial:<38} {row.best_accuracy:8.4f}   {row.final_test_accuracy:8.4f}")
    return "\n".join(lines)
