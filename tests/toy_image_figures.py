"""The test-only image study's figures and summary (what analysis/studies/<study>.py holds for a real study):
its metric and mode, one figure and a one-line answer, all read from the MLflow records."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.plotting import save_figure  # noqa: E402

METRIC = "test/accuracy"
MODE = "max"


def figures(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.bar(runs["smoothing"].astype(str), runs[METRIC])
    ax.set_xlabel("smoothing")
    ax.set_ylabel("test accuracy")
    return [save_figure(fig, Path(out_dir) / "accuracy_vs_smoothing.png")]


def summary(runs: pd.DataFrame) -> str:
    best = runs.sort_values(METRIC, ascending=False).iloc[0]
    return f"best smoothing {best['smoothing']}: test accuracy {best[METRIC]:.3f}"
