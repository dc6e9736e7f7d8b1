"""Figures, table and summary of the optimizers study, from its MLflow records.

    python -m analysis optimizers [--parent-run ID]

1. `train_loss_curves.png`: training loss vs epoch per method, L2 panel and dropout panel on the same axes
   (mean over seeds, band = +-1 std);
2. `training_time.png`: training time per method (all epochs, evaluation excluded), L2 and dropout bars
   side by side (error bars: std over seeds);
3. `test_accuracy.png` and `test_accuracy.csv`: final test accuracy per method in both settings, and the
   table of every number above (final training loss, test accuracy and error, time, seeds).

Methods that ran fused in one population trial (--population) and methods that ran as separate trials give
the same rows: curves come from `replica_curves`, final values from `per_replica`. The models are the same up to
float rounding, which AdaGrad's tiny default delta (1e-10) can amplify: a gradient element that is rounding
noise around 0 gets a full +-lr first step in one and none in the other (with eps=1e-8 they agree). A fused replica's time is
its share of the population's (the trial's time over its replicas): fused training is cheaper per model, so
compare times within one sweep. A trial that diverged shows its curve up to the blow-up and "diverged" in
the table.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.plotting import save_figure  # noqa: E402
from analysis.records import per_replica, replica_curves  # noqa: E402
from trainables.studies.optimizers import METHODS, REGULARIZATIONS  # noqa: E402

METRIC = "test/accuracy"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "max"

LABELS = {"adagrad": "AdaGrad", "rmsprop": "RMSProp", "rmsprop_nesterov": "RMSProp+Nesterov",
          "adadelta": "AdaDelta", "adam": "Adam"}
COLORS = dict(zip(METHODS, plt.get_cmap("tab10").colors))
# Published references (see ../shared/REFERENCES.md)
SRIVASTAVA_DROPOUT_ERROR = 1.25  # % test error, dropout MLP with ReLU on MNIST (Srivastava et al. 2014, Table 2)
SRIVASTAVA_STANDARD_ERROR = 1.6  # % test error, the standard (no dropout) MLP
KINGMA_BA_FASTEST = "adam"  # Kingma & Ba 2015, Fig. 2: Adam converges fastest on this MLP with dropout


def _ordered(values) -> list[str]:
    values = list(dict.fromkeys(values))
    return [m for m in METHODS if m in values] + sorted(v for v in values if v not in METHODS)


def _usable(runs: pd.DataFrame) -> pd.DataFrame:
    if runs.empty or "regularization" not in runs or "optimizer" not in runs:
        return runs.iloc[0:0]
    return runs[runs.get("trial_status", pd.Series("finished", index=runs.index)) != "error"]


def replicas(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per trained model (method, regularization, seed) with its final numbers; a fused replica's time
    is its share of its population's."""
    rows = per_replica(_usable(runs)).copy()
    if rows.empty:
        return rows
    size = rows["population/size"].fillna(1) if "population/size" in rows else 1
    rows["time_s"] = rows["time/train_s"] / size
    # the learning rate the model trained with: a separate trial's derived method_lr, a fused replica's lr
    rows["used_lr"] = rows["method_lr"].fillna(rows.get("lr")) if "method_lr" in rows else rows.get("lr")
    rows["diverged"] = ~np.isfinite(pd.to_numeric(rows.get("train/loss"), errors="coerce").fillna(np.inf))
    return rows


def table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per method and regularization: seeds, final training loss, test accuracy and error (%), time (s)."""
    rows = replicas(runs)
    if rows.empty:
        return pd.DataFrame()
    out = []
    for (reg, method), group in rows.groupby(["regularization", "optimizer"], sort=False):
        ok = group[~group["diverged"]]
        acc = ok["test/accuracy"] if "test/accuracy" in ok else pd.Series(dtype=float)
        out.append({
            "regularization": reg, "method": method, "seeds": len(group), "diverged": int(group["diverged"].sum()),
            "lr": group["used_lr"].iloc[0],
            "train_loss": ok["train/loss"].mean(), "train_loss_std": ok["train/loss"].std(ddof=1),
            "test_accuracy": acc.mean(), "test_accuracy_std": acc.std(ddof=1),
            "test_error_pct": 100 * (1 - acc.mean()), "time_s": group["time_s"].mean(),
            "time_s_std": group["time_s"].std(ddof=1),
        })
    result = pd.DataFrame(out)
    order = {m: i for i, m in enumerate(_ordered(result["method"]))}
    return result.sort_values(["regularization", "method"], key=lambda c: c.map(order) if c.name == "method"
                              else c.map({r: i for i, r in enumerate(REGULARIZATIONS)})).reset_index(drop=True)


def curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of the training loss per (regularization, method, epoch)."""
    long = replica_curves(_usable(runs), ["train/loss"])
    if long.empty:
        return long
    long = long[np.isfinite(pd.to_numeric(long["train/loss"], errors="coerce"))]
    grouped = long.groupby(["regularization", "optimizer", "step"])["train/loss"]
    return grouped.agg(["mean", "std", "count"]).reset_index()


def figures(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    summary = table(runs)
    if summary.empty:
        return []
    paths = [_loss_curves(curves(runs), out_dir / "train_loss_curves.png", _dataset(runs)),
             _time_bars(summary, out_dir / "training_time.png"),
             _accuracy_bars(summary, out_dir / "test_accuracy.png")]
    csv = out_dir / "test_accuracy.csv"
    summary.to_csv(csv, index=False, float_format="%.6g")
    return paths + [csv]


def _dataset(runs: pd.DataFrame) -> str:
    return str(runs["dataset"].iloc[0]) if "dataset" in runs and len(runs) else "?"


def _loss_curves(long: pd.DataFrame, path: Path, dataset: str) -> Path:
    regs = [r for r in REGULARIZATIONS if r in set(long.get("regularization", []))] or list(REGULARIZATIONS)
    fig, axes = plt.subplots(1, len(regs), figsize=(6 * len(regs), 4.2), sharey=True, squeeze=False)
    for ax, reg in zip(axes[0], regs):
        part = long[long["regularization"] == reg]
        for method in _ordered(part["optimizer"]):
            line = part[part["optimizer"] == method].sort_values("step")
            ax.plot(line["step"], line["mean"], label=LABELS.get(method, method), color=COLORS.get(method))
            band = line["std"].fillna(0)
            ax.fill_between(line["step"], (line["mean"] - band).clip(lower=1e-8), line["mean"] + band,
                            color=COLORS.get(method), alpha=0.2)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title("L2 regularization" if reg == "l2" else "dropout (0.2 input, 0.5 hidden)")
        ax.grid(alpha=0.3, which="both")
    axes[0][0].set_ylabel("training loss (cross-entropy)")
    axes[0][-1].legend()
    fig.suptitle(f"MLP 2x1000 ReLU on {dataset}: training loss per method (mean, band = +-1 std over seeds)")
    return save_figure(fig, path)


def _grouped_bars(summary: pd.DataFrame, column: str, err: str, ylabel: str, title: str, path: Path,
                  scale: float = 1.0, top: float | None = None) -> Path:
    """Bars per method, one per regularization; with `top` (a ceiling such as 100%) the axis starts just below
    the lowest bar, so differences of a few points stay visible."""
    methods = _ordered(summary["method"])
    regs = [r for r in REGULARIZATIONS if r in set(summary["regularization"])]
    x = np.arange(len(methods))
    width = 0.8 / max(len(regs), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(methods)), 4.2))
    for i, reg in enumerate(regs):
        part = summary[summary["regularization"] == reg].set_index("method").reindex(methods)
        heights = part[column] * scale
        bars = ax.bar(x + (i - (len(regs) - 1) / 2) * width, heights.fillna(0), width,
                      yerr=(part[err] * scale).fillna(0), capsize=3, label=reg, alpha=0.85)
        errors = (part[err] * scale).fillna(0)
        for bar, value, spread, diverged in zip(bars, heights, errors, part["diverged"].fillna(0)):
            label = "diverged" if diverged and math.isnan(value) else f"{value:.3g}"
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height() + spread), ha="center",
                        va="bottom", fontsize=7)
    if top is not None:
        values = summary[column].dropna() * scale
        if len(values):
            low = float((values - (summary[err].fillna(0) * scale)).min())
            span = max(top - low, 0.02 * top)  # all bars at the top (a toy set): still a visible range
            ax.set_ylim(max(0.0, top - 1.15 * span), top + 0.05 * span)
    ax.set_xticks(x, [LABELS.get(m, m) for m in methods])
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    return save_figure(fig, path)


def _time_bars(summary: pd.DataFrame, path: Path) -> Path:
    return _grouped_bars(summary, "time_s", "time_s_std", "training time, all epochs (s)",
                         "Training time per method, L2 vs dropout", path)


def _accuracy_bars(summary: pd.DataFrame, path: Path) -> Path:
    fig_path = _grouped_bars(summary, "test_accuracy", "test_accuracy_std", "test accuracy (%)",
                             "Final test accuracy per method, L2 vs dropout (mean, bars +-1 std)", path, scale=100,
                             top=100.0)
    return fig_path


def summary(runs: pd.DataFrame) -> str:
    t = table(runs)
    if t.empty:
        return "no finished trials"
    lines = []
    for reg in [r for r in REGULARIZATIONS if r in set(t["regularization"])]:
        part = t[(t["regularization"] == reg) & t["train_loss"].notna()]
        if part.empty:
            lines.append(f"{reg}: every method diverged")
            continue
        low = part.loc[part["train_loss"].idxmin()]
        best = part.loc[part["test_accuracy"].idxmax()]
        lines.append(f"{reg:>7}: lowest training loss {LABELS.get(low['method'], low['method'])} "
                     f"({low['train_loss']:.4g}); best test accuracy {LABELS.get(best['method'], best['method'])} "
                     f"{100 * best['test_accuracy']:.2f}% (error {best['test_error_pct']:.2f}%)")
    both = t.pivot_table(index="method", columns="regularization", values="time_s")
    if {"l2", "dropout"} <= set(both.columns):
        ratios = (both["dropout"] / both["l2"]).dropna().reindex(_ordered(both.index)).dropna()
        lines.append("training time with dropout / with L2: " + ", ".join(
            f"{LABELS.get(m, m)} {r:.2f}x" for m, r in ratios.items()))
    fastest = fastest_with_dropout(runs)
    if fastest:
        lines.append(f"fastest to converge with dropout (lowest mean training loss over the epochs): "
                     f"{LABELS.get(fastest, fastest)}; Kingma & Ba 2015, Fig. 2: Adam")
    dropout = t[(t["regularization"] == "dropout") & t["test_accuracy"].notna()]
    if len(dropout):
        best = dropout.loc[dropout["test_accuracy"].idxmax()]
        lines.append(f"best dropout test error: ours {best['test_error_pct']:.2f}% ({LABELS.get(best['method'])}, "
                     f"{_dataset(runs)}) vs Srivastava et al. 2014: {SRIVASTAVA_DROPOUT_ERROR}% (dropout, ReLU, full "
                     f"MNIST; their standard MLP {SRIVASTAVA_STANDARD_ERROR}%)")
    return "\n".join(lines)


def fastest_with_dropout(runs: pd.DataFrame) -> str | None:
    """The method whose mean training loss with dropout, averaged over the epochs, is lowest (area under the
    curve: the method that got low soonest), among methods that never diverged."""
    long = curves(runs)
    if long.empty:
        return None
    part = long[long["regularization"] == "dropout"]
    t = table(runs)
    diverged = set(t[(t["regularization"] == "dropout") & (t["diverged"] > 0)]["method"])
    area = part[~part["optimizer"].isin(diverged)].groupby("optimizer")["mean"].mean()
    return None if area.empty else str(area.idxmin())
