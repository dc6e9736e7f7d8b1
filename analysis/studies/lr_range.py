"""Figure and summary of the LR range test (sweeps/lr_range.py), from its MLflow records alone.

    python -m analysis lr_range [--parent-run ID]

Discrete test (one trial per learning rate): the final training loss of each trial vs its LR; a trial that
diverged (NaN/inf, or a final loss above 4x the smallest LR's) is drawn as a red cross. Continuous test (one
trial, LR raised every step, `lr_policy=range`): the mean training loss of each stage vs the stage's LR
(`train/lr`). Both mark lr_min and lr_max picked by `analysis.curves.pick_bounds` (the study stores them on
its parent run, where sweeps/cyclic_lr.py and sweeps/batch_size.py read them).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.curves import client_of, empty, history, pick_bounds  # noqa: E402
from analysis.plotting import save_figure  # noqa: E402
from analysis.records import RecordsError  # noqa: E402

METRIC = "train/loss"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "min"

DIVERGE_FACTOR = 4.0  # a final loss above 4x the smallest LR's (discrete) or the best stage's (continuous)


def lr_curve(runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(lr, loss, diverged) points of the range test and its kind: 'discrete' (one trial per LR, final training
    loss) or 'continuous' (one trial, LR raised every step; mean loss of each stage)."""
    if runs.empty:
        return pd.DataFrame(columns=["lr", "loss", "diverged"]), "discrete"
    if (runs.get("lr_policy") == "range").any():
        run = runs[runs["lr_policy"] == "range"].iloc[0]
        client = client_of(runs)
        if client is None:
            return pd.DataFrame(columns=["lr", "loss", "diverged"]), "continuous"
        curve = pd.DataFrame({"lr": history(client, run["run_id"], "train/lr"),
                              "loss": history(client, run["run_id"], "train/loss")}).dropna(subset=["lr"])
        finite = curve["loss"][np.isfinite(curve["loss"])]
        # NaN/inf, or the stage where the loss passed 4x its best and the run stopped
        curve["diverged"] = ~np.isfinite(curve["loss"]) | (curve["loss"] > DIVERGE_FACTOR * finite.min()
                                                           if len(finite) else False)
        return curve.sort_values("lr").reset_index(drop=True), "continuous"
    loss = runs["train/loss"] if "train/loss" in runs else pd.Series(np.nan, index=runs.index)
    diverged = (runs.get("trial_status", pd.Series("", index=runs.index)) == "diverged") | ~np.isfinite(loss)
    curve = pd.DataFrame({"lr": runs["lr"].astype(float), "loss": loss.where(~diverged), "diverged": diverged})
    curve = curve.groupby("lr", as_index=False).agg(loss=("loss", "mean"), diverged=("diverged", "all"))
    curve = curve.sort_values("lr").reset_index(drop=True)
    # A finite loss far above the untrained one (the smallest LR's) has blown up all the same.
    first = curve["loss"].dropna()
    if len(first):
        curve["diverged"] |= curve["loss"] > DIVERGE_FACTOR * first.iloc[0]
        curve["loss"] = curve["loss"].where(~curve["diverged"])
    return curve, "discrete"


def lr_bounds(runs: pd.DataFrame) -> tuple[float, float]:
    """(lr_min, lr_max) of the sweep's range test; RecordsError when the curve gives none."""
    curve, _ = lr_curve(runs)
    return pick_bounds(curve["lr"], curve["loss"].where(~curve["diverged"]))


def figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curve, kind = lr_curve(runs)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ok = curve[~curve["diverged"]]
    if ok.empty:
        empty(ax)
    else:
        ax.plot(ok["lr"], ok["loss"], "o-" if kind == "discrete" else "-", color="tab:blue", ms=5,
                label="final training loss" if kind == "discrete" else "training loss (mean of each stage)")
        bad = curve[curve["diverged"]]
        if len(bad):  # diverged: drawn at the top of the axis, since their loss is not a number
            top = ok["loss"].max() * 1.15
            ax.scatter(bad["lr"], [top] * len(bad), marker="x", color="tab:red", s=60, zorder=3,
                       label=f"diverged (loss NaN/inf or blown up), {len(bad)}")
        try:
            lo, hi = pick_bounds(curve["lr"], curve["loss"].where(~curve["diverged"]))
            ax.axvline(lo, color="tab:green", ls="--", label=f"lr_min = {lo:.3g}")
            ax.axvline(hi, color="tab:purple", ls="--", label=f"lr_max = {hi:.3g}")
        except RecordsError as e:
            ax.set_title(str(e), fontsize=8)
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss (cross-entropy)")
    title = ("LR range test: one trial per learning rate" if kind == "discrete"
             else "Continuous LR range test: LR raised every step")
    ax.set_title(title + ("\n" + ax.get_title() if ax.get_title() else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    return [save_figure(fig, out_dir / ("lr_range.png" if kind == "discrete" else "lr_range_continuous.png"))]


def summary(runs: pd.DataFrame) -> str:
    curve, kind = lr_curve(runs)
    lines = [f"{kind} LR range test: final training loss per learning rate" if kind == "discrete"
             else f"continuous LR range test: {len(curve)} stages"]
    if kind == "discrete":
        for row in curve.itertuples():
            lines.append(f"  lr {row.lr:9.2e}  " + ("diverged" if row.diverged else f"loss {row.loss:.4f}"))
    try:
        lo, hi = pick_bounds(curve["lr"], curve["loss"].where(~curve["diverged"]))
        lines.append(f"picked: lr_min = {lo:.3g}, lr_max = {hi:.3g}")
    except RecordsError as e:
        lines.append(f"no bounds picked: {e}")
    return "\n".join(lines)
