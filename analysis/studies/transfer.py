"""Figures, table and summary of the transfer-learning study, from its MLflow records.

    python -m analysis transfer [--parent-run ID]

1. `accuracy_curves.png`: test accuracy vs epoch, one panel per mode (fine-tuning, feature extractor), one
   line per learning rate (diverged trials end with a cross);
2. `best_accuracy_vs_lr.png`: per mode, the test accuracy at each trial's best validation epoch vs its
   learning rate (log axis); a diverged trial is a cross on the axis;
3. `epoch_time.png`: training seconds per epoch of each mode (median over epochs, mean over trials), the
   feature extractor's cached-features path as a third bar with its one-off extraction time, and evaluation
   time beside them: the speed difference of the two modes;
4. `dataset.png` (+ `splits.csv`, `classes.csv`): the target data set's summary recorded on the parent run;
5. `transfer.csv`: per trial the mode, lr, best validation accuracy and its epoch, the test accuracy there,
   the final test accuracy, seconds per epoch and status.

Seeds (separate trials) are averaged per (mode, lr). The summary names the winner (the best validation
accuracy) with the numbers behind it, and prints the PyTorch transfer-learning tutorial's reference beside ours.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from analysis.datasets import artifacts_from_run, draw_summary  # noqa: E402
from analysis.plotting import save_figure  # noqa: E402
from analysis.records import replica_curves  # noqa: E402

METRIC = "val/accuracy"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "max"

MODES = {"finetune": "fine-tuning (all layers)", "feature_extractor": "feature extractor (new final layer only)"}
COLORS = {"finetune": "tab:red", "feature_extractor": "tab:blue"}
# PyTorch's transfer-learning tutorial: ResNet-18 on ants vs bees (~120 training images per class), 25 epochs.
TUTORIAL = {"finetune": 0.93, "feature_extractor": 0.95}
TABLE_COLUMNS = ["mode", "lr", "seed", "status", "best_val_accuracy", "best_epoch", "test_accuracy",
                 "final_test_accuracy", "epochs", "epoch_s", "eval_s", "features_s"]
CURVE_KEYS = ["val/accuracy", "test/accuracy", "time/epoch_s", "time/eval_s"]


def _status(run: pd.Series) -> str:
    status = run.get("trial_status")
    return status if isinstance(status, str) else ("finished" if run.get("status") == "FINISHED" else "error")


def trial_table(runs: pd.DataFrame, curves: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per trial: its best validation epoch and the test accuracy there (model selection on the
    validation split), the final test accuracy, and the median seconds per epoch."""
    if runs.empty or "mode" not in runs:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    curves = replica_curves(runs, CURVE_KEYS) if curves is None else curves
    rows = []
    for _, run in runs.iterrows():
        mine = curves[curves["run_id"] == run["run_id"]].sort_values("step") if len(curves) else curves
        row = {"mode": run["mode"], "lr": float(run["lr"]), "seed": run.get("seed", 0), "status": _status(run),
               "epochs": int(mine["step"].max()) if len(mine) else 0,
               "epoch_s": float(mine["time/epoch_s"].median()) if len(mine) else math.nan,
               "eval_s": float(mine["time/eval_s"].median()) if len(mine) else math.nan,
               "features_s": float(run.get("time/features_s", math.nan)),
               "final_test_accuracy": float(run.get("test/accuracy", math.nan))}
        val = mine["val/accuracy"] if len(mine) else pd.Series(dtype=float)
        if val.notna().any():
            best = mine.loc[val.idxmax()]
            row.update(best_val_accuracy=float(best["val/accuracy"]), best_epoch=int(best["step"]),
                       test_accuracy=float(best["test/accuracy"]))
        else:  # no validation split (or diverged before any evaluation): the final test accuracy
            row.update(best_val_accuracy=math.nan, best_epoch=row["epochs"], test_accuracy=row["final_test_accuracy"])
        rows.append(row)
    return pd.DataFrame(rows, columns=TABLE_COLUMNS).sort_values(["mode", "lr"], ignore_index=True)


def per_setting(table: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per (mode, lr); a setting counts as diverged when any of its seeds did."""
    if table.empty:
        return table
    ok = table[table["status"].isin(["finished", "stopped"])]
    means = ok.groupby(["mode", "lr"], as_index=False)[["best_val_accuracy", "test_accuracy", "epoch_s",
                                                        "eval_s"]].mean()
    counts = table.groupby(["mode", "lr"], as_index=False).agg(
        seeds=("status", "size"), diverged=("status", lambda s: int((s == "diverged").sum())))
    return counts.merge(means, on=["mode", "lr"], how="left")


def _accuracy_curves(runs: pd.DataFrame, curves: pd.DataFrame, out_dir: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, (mode, title) in zip(axes, MODES.items()):
        mine = runs[runs["mode"] == mode] if "mode" in runs else runs.iloc[:0]
        lrs = sorted(mine["lr"].astype(float).unique()) if len(mine) else []
        cmap = plt.get_cmap("viridis", max(len(lrs), 2))
        for _, run in mine.iterrows():
            curve = curves[curves["run_id"] == run["run_id"]].sort_values("step")
            color = cmap(lrs.index(float(run["lr"])))
            ax.plot(curve["step"], 100 * curve["test/accuracy"], "-", color=color, lw=1.5,
                    label=f"lr {float(run['lr']):g}" + (" (diverged)" if _status(run) == "diverged" else ""))
            if _status(run) == "diverged" and len(curve):
                ax.plot(curve["step"].iloc[-1], 0, "x", color=color, ms=9, mew=2)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if len(mine):
            handles, labels = ax.get_legend_handles_labels()
            unique = dict(zip(labels, handles))
            ax.legend(unique.values(), unique.keys(), fontsize=8)
        else:
            ax.text(0.5, 0.5, "no trials of this mode", transform=ax.transAxes, ha="center")
    axes[0].set_ylabel("test accuracy (%)")
    fig.suptitle(f"Transfer learning: test accuracy per epoch {_about(runs)}", fontsize=11)
    return save_figure(fig, out_dir / "accuracy_curves.png")


def _best_vs_lr(table: pd.DataFrame, runs: pd.DataFrame, out_dir: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    settings = per_setting(table)
    for mode, title in MODES.items():
        mine = settings[settings["mode"] == mode] if len(settings) else settings
        ok = mine[mine["test_accuracy"].notna()]
        ax.plot(ok["lr"], 100 * ok["test_accuracy"], "o-", color=COLORS[mode], label=title)
        for lr in mine.loc[mine["test_accuracy"].isna(), "lr"]:
            ax.plot(lr, 0, "x", color=COLORS[mode], ms=10, mew=2)
            ax.annotate("diverged", (lr, 0), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=7,
                        color=COLORS[mode])
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("test accuracy at the best validation epoch (%)")
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title(f"Best accuracy per mode vs learning rate {_about(runs)}", fontsize=10)
    return save_figure(fig, out_dir / "best_accuracy_vs_lr.png")


def timing(table: pd.DataFrame) -> pd.DataFrame:
    """Seconds per epoch of each training path (mean over its trials): fine-tuning, the feature extractor
    through the backbone every step, and the feature extractor on cached features."""
    if table.empty:
        return pd.DataFrame(columns=["path", "epoch_s", "eval_s", "features_s", "trials"])
    ok = table[table["status"].isin(["finished", "stopped"]) & table["epoch_s"].notna()]
    path = np.where(ok["mode"] == "finetune", "fine-tuning",
                    np.where(ok["features_s"].notna(), "feature extractor, cached features", "feature extractor"))
    return (ok.assign(path=path).groupby("path", as_index=False)
            .agg(epoch_s=("epoch_s", "mean"), eval_s=("eval_s", "mean"), features_s=("features_s", "mean"),
                 trials=("epoch_s", "size")))


def _epoch_time(table: pd.DataFrame, runs: pd.DataFrame, out_dir: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4))
    times = timing(table)
    if times.empty:
        ax.text(0.5, 0.5, "no finished trials to show", transform=ax.transAxes, ha="center")
    else:
        x = np.arange(len(times))
        ax.bar(x - 0.2, times["epoch_s"], 0.4, color="tab:purple", label="training, per epoch")
        ax.bar(x + 0.2, times["eval_s"], 0.4, color="tab:gray", label="evaluation (val + test), per epoch")
        for i, row in times.iterrows():
            note = f"{row['epoch_s']:.3g} s"
            if not math.isnan(row["features_s"]):
                note += f"\n+ {row['features_s']:.3g} s once\n(features)"
            ax.annotate(note, (i - 0.2, row["epoch_s"]), textcoords="offset points", xytext=(0, 3), ha="center",
                        fontsize=8)
        ax.set_xticks(x, times["path"], fontsize=8)
        ax.legend(fontsize=8)
    ax.set_ylabel("seconds")
    ax.set_title(f"Time per epoch of each mode {_about(runs)}", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    return save_figure(fig, out_dir / "epoch_time.png")


def _about(runs: pd.DataFrame) -> str:
    """e.g. "(resnet50 on flowers102, 224 px)" from the trials' params."""
    if runs.empty or "arch" not in runs:
        return ""
    first = runs.iloc[0]
    return f"({first['arch']} on {first['dataset']}, {first['image_size']} px)"


def figures(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    curves = replica_curves(runs, CURVE_KEYS) if not runs.empty else pd.DataFrame(columns=["run_id", "step",
                                                                                           *CURVE_KEYS])
    table = trial_table(runs, curves)
    paths = [_accuracy_curves(runs, curves, out_dir), _best_vs_lr(table, runs, out_dir),
             _epoch_time(table, runs, out_dir)]
    uri, parent = runs.attrs.get("tracking_uri"), runs.attrs.get("parent_run_id")
    summary = artifacts_from_run(uri, parent) if uri and parent else None
    if summary:
        paths += draw_summary(summary, out_dir)
    table_path = out_dir / "transfer.csv"
    table.to_csv(table_path, index=False)
    return [*paths, table_path]


def _pct(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{100 * value:.1f}%"


def summary(runs: pd.DataFrame) -> str:
    table = trial_table(runs)
    settings = per_setting(table)
    ok = settings[settings["best_val_accuracy"].notna()] if len(settings) else settings
    if ok.empty:
        return "no trial finished with a validation accuracy: nothing to compare"
    best = {mode: ok[ok["mode"] == mode].sort_values("best_val_accuracy").iloc[-1]
            for mode in MODES if (ok["mode"] == mode).any()}
    winner = max(best.values(), key=lambda r: r["best_val_accuracy"])
    lines = [f"winner: {MODES[winner['mode']]} at lr {winner['lr']:g}: test accuracy {_pct(winner['test_accuracy'])} "
             f"at its best validation epoch (validation {_pct(winner['best_val_accuracy'])})"]
    if len(best) == 2:
        gap = best["finetune"]["test_accuracy"] - best["feature_extractor"]["test_accuracy"]
        lines.append(f"best of each mode: fine-tuning lr {best['finetune']['lr']:g} "
                     f"{_pct(best['finetune']['test_accuracy'])}, feature extractor lr "
                     f"{best['feature_extractor']['lr']:g} {_pct(best['feature_extractor']['test_accuracy'])} "
                     f"(fine-tuning {100 * gap:+.1f} points)")
    for mode in MODES:
        mine = settings[settings["mode"] == mode]
        if len(mine):
            cells = [f"lr {r['lr']:g}: " + ("diverged" if r["diverged"] else _pct(r["test_accuracy"]))
                     for _, r in mine.iterrows()]
            lines.append(f"  {mode}: " + ", ".join(cells))
    times = timing(table).set_index("path")
    if {"fine-tuning", "feature extractor"} <= set(times.index):
        ft, fe = times.loc["fine-tuning", "epoch_s"], times.loc["feature extractor", "epoch_s"]
        lines.append(f"training time per epoch: fine-tuning {ft:.3g} s, feature extractor {fe:.3g} s "
                     f"({ft / fe:.1f}x faster: no backward pass through the backbone)")
    if "feature extractor, cached features" in times.index:
        row = times.loc["feature extractor, cached features"]
        lines.append(f"cached features: {row['epoch_s']:.3g} s per epoch after {row['features_s']:.3g} s "
                     f"extracting them once")
    lines.append(f"reference (PyTorch transfer-learning tutorial, ResNet-18, ants vs bees): fine-tuning "
                 f"~{TUTORIAL['finetune']:.2f}, feature extractor ~{TUTORIAL['feature_extractor']:.2f} in about "
                 f"half the time; ours: {_pct(best['finetune']['test_accuracy']) if 'finetune' in best else 'n/a'}"
                 f" and {_pct(best['feature_extractor']['test_accuracy']) if 'feature_extractor' in best else 'n/a'}")
    return "\n".join(lines)
