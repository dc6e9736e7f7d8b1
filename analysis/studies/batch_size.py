"""Figures and summary of the batch-size study (sweeps/batch_size.py), from its MLflow records alone.

    python -m analysis batch_size [--parent-run ID]

Range test (`batch_policy=range`, one trial): loss_vs_batch_size.png, the training loss of each batch size
(log x) with b_min/b_max picked by `analysis.curves.pick_bounds` (the study stores them on its parent run,
where the cyclic presets read them), and batch_range_vs_cyclic_lr.png/.csv, its final test accuracy
beside the latest cyclic_lr sweep's trials in the same store.
Cyclical batch size (`batch_policy=cyclic`): cyclic_batch_curves.png (loss and accuracy vs epoch),
batch_size_vs_epoch.png, and cyclic_batch_vs_cyclic_lr.png/.csv, the best accuracy of the cyclical-batch
and the cyclical-LR runs.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.curves import (best_accuracy, client_of, curve_figures, empty, finished, history, label,  # noqa: E402
                             latest_runs, pick_bounds)
from analysis.plotting import save_figure  # noqa: E402
from analysis.records import RecordsError  # noqa: E402

METRIC = "test/accuracy"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "max"


def _cyclic(runs: pd.DataFrame) -> bool:
    return "batch_policy" in runs and (runs["batch_policy"] == "cyclic").any()


def batch_curve(runs: pd.DataFrame) -> pd.DataFrame:
    """(batch_size, loss, test_accuracy) of the batch-size range test: one point per stage."""
    client = client_of(runs)
    ranged = runs[runs["batch_policy"] == "range"] if "batch_policy" in runs else runs.iloc[0:0]
    if ranged.empty or client is None:
        return pd.DataFrame(columns=["batch_size", "loss", "test_accuracy"])
    run_id = ranged.iloc[0]["run_id"]
    curve = pd.DataFrame({"batch_size": history(client, run_id, "train/batch_size"),
                          "loss": history(client, run_id, "train/loss"),
                          "test_accuracy": history(client, run_id, "test/accuracy")})
    return curve.dropna(subset=["batch_size"]).reset_index(drop=True)


def batch_bounds(runs: pd.DataFrame) -> tuple[int, int]:
    """(b_min, b_max) of the sweep's range test; RecordsError when the curve gives none."""
    curve = batch_curve(runs)
    lo, hi = pick_bounds(curve["batch_size"], curve["loss"])
    return int(lo), int(hi)


def comparison_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Best accuracy of each policy: the latest cyclic_lr sweep's trials (same store), then this sweep's."""
    ours = best_accuracy(runs, client_of(runs))
    ours.insert(0, "study", "batch_size")
    other = latest_runs(runs.attrs.get("tracking_uri"), "cyclic_lr")
    ref = best_accuracy(other, client_of(other)) if other is not None else best_accuracy(pd.DataFrame(), None)
    ref.insert(0, "study", "cyclic_lr")
    return pd.concat([ref, ours], ignore_index=True)


def _range_figure(runs: pd.DataFrame, out_dir: Path) -> Path:
    curve = batch_curve(runs)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if curve.empty:
        empty(ax)
    else:
        ax.plot(curve["batch_size"], curve["loss"], "o-", color="tab:blue",
                label="training loss (mean over the batch size's iterations)")
        try:
            lo, hi = pick_bounds(curve["batch_size"], curve["loss"])
            ax.axvline(lo, color="tab:green", ls="--", label=f"b_min = {int(lo)}")
            ax.axvline(hi, color="tab:purple", ls="--", label=f"b_max = {int(hi)}")
        except RecordsError as e:
            ax.text(0.02, 0.02, str(e), transform=ax.transAxes, fontsize=7)
        ax.set_xscale("log", base=2)
        ax.set_xticks(curve["batch_size"], [str(int(b)) for b in curve["batch_size"]], fontsize=7)
        ax.legend(fontsize=8)
    ax.set_xlabel("batch size (log scale; doubled every `interval` iterations)")
    ax.set_ylabel("training loss (cross-entropy)")
    ax.set_title("Batch-size range test at a fixed learning rate", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, out_dir / "loss_vs_batch_size.png")


def _batch_vs_epoch(runs: pd.DataFrame, out_dir: Path) -> Path:
    client = client_of(runs)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    drawn = False
    for _, run in finished(runs).iterrows():
        series = history(client, run["run_id"], "train/batch_size") if client else pd.Series(dtype=float)
        if len(series):
            ax.step(series.index, series.values, where="mid", label=label(run))
            drawn = True
    if drawn:
        ax.set_yscale("log", base=2)
        ax.legend(fontsize=8)
    else:
        empty(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("batch size (log2 scale)")
    ax.set_title("Cyclical batch size with an increasing trend", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, out_dir / "batch_size_vs_epoch.png")


def _comparison_figure(table: pd.DataFrame, cyclic: bool, out_dir: Path, name: str) -> Path:
    fig, ax = plt.subplots(figsize=(7.5, 0.6 + 0.45 * max(len(table), 1)))
    if table.empty:
        empty(ax)
    else:
        labels = [f"{r.study}: {r.trial}" + (f" (batch {r.batch_policy})" if r.study == "batch_size" else "")
                  for r in table.itertuples()]
        metric = "best_accuracy" if cyclic else "final_test_accuracy"
        colors = ["tab:red" if s == "cyclic_lr" else "tab:purple" for s in table["study"]]
        ax.barh(labels, table[metric].astype(float), color=colors)
        for i, v in enumerate(table[metric].astype(float)):
            ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
        ax.set_xlim(0, 1.1)
        if not (table["study"] == "cyclic_lr").any():
            ax.set_title("no cyclic_lr sweep in this MLflow store to compare with", fontsize=8)
    ax.set_xlabel("best validation accuracy" if cyclic else "final test accuracy")
    ax.set_title(("Best accuracy: cyclical batch size vs cyclical LR" if cyclic
                  else "Final test accuracy: batch-size range run vs cyclical LR") + (
        "\n" + ax.get_title() if ax.get_title() else ""), fontsize=10)
    return save_figure(fig, out_dir / f"{name}.png")


def figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cyclic = _cyclic(runs)
    if cyclic:
        paths = [curve_figures(runs, out_dir, "cyclic_batch_curves.png",
                               "Cyclical batch size (fixed lr_min): loss and accuracy"),
                 _batch_vs_epoch(runs, out_dir)]
    else:
        paths = [_range_figure(runs, out_dir)]
    table = comparison_table(runs)
    name = "cyclic_batch_vs_cyclic_lr" if cyclic else "batch_range_vs_cyclic_lr"
    table.to_csv(out_dir / f"{name}.csv", index=False)
    return paths + [_comparison_figure(table, cyclic, out_dir, name), out_dir / f"{name}.csv"]


def summary(runs: pd.DataFrame) -> str:
    lines = []
    if not _cyclic(runs):
        curve = batch_curve(runs)
        for row in curve.itertuples():
            lines.append(f"  batch {int(row.batch_size):>6}  loss {row.loss:.4f}  test acc {row.test_accuracy:.4f}")
        try:
            lo, hi = pick_bounds(curve["batch_size"], curve["loss"])
            lines.append(f"picked: b_min = {int(lo)}, b_max = {int(hi)}")
        except RecordsError as e:
            lines.append(f"no batch bounds picked: {e}")
    table = comparison_table(runs)
    if len(table):
        lines.append("study       policy                                   best acc   final test acc")
        for row in table.itertuples():
            trial = row.trial + ("" if row.study != "batch_size" else f" batch {row.batch_policy}")
            lines.append(f"  {row.study:<10} {trial:<40} {row.best_accuracy:8.4f}   {row.final_test_accuracy:8.4f}")
    return "\n".join(lines) or "no finished trials"
