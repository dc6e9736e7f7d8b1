"""Figures and summary of the dying-ReLU study, from its MLflow records alone.

    python -m analysis dying_relu [--parent-run ID] [--results-dir DIR]

1. collapse_vs_width.png: the fraction of networks collapsed to a constant vs width (depth 10), one curve
   per activation, with a 95% Wilson score band over the `simulations` trainings, the born-dead fraction
   dashed, and Lu et al. 2019's reported value (over 90% at depth 10, width 2, ReLU) beside ours;
2. collapse_vs_depth.png: the same vs depth (width 2), drawn when the sweep has several depths;
3. output_std.png: the distribution of every network's output std on the grid relative to the target's
   (the collapse rule's threshold is a vertical line);
4. fits.png: a few collapsed and non-collapsed fits against the target (`fits.csv` artifacts), one panel per
   activation, from its run closest to depth 10, width 2.
The table collapse.csv holds the numbers of 1 and 2.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import norm  # noqa: E402

from analysis.plotting import save_figure  # noqa: E402
from analysis.records import trial_artifact  # noqa: E402

METRIC = "collapse/fraction"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "min"

LU_2019 = {"depth": 10, "width": 2, "activation": "relu", "collapse": 0.9,
           "text": "Lu et al. 2019: over 90% collapse at depth 10, width 2 (ReLU)"}
COLORS = {"relu": "tab:red", "leaky_relu": "tab:blue"}
TABLE = "collapse.csv"


def wilson(k: np.ndarray, n: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion k/n."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    z = norm.ppf(0.5 + level / 2)
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return center - half, center + half


def collapse_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished configuration: activation, depth, width, target, simulations, collapsed, fraction,
    95% Wilson interval, born dead."""
    cols = ["activation", "depth", "width", "target", "simulations", "collapsed", "collapse_fraction", "ci_low",
            "ci_high", "born_dead", "born_dead_fraction", "run_id"]
    if runs.empty or "collapse/count" not in runs:
        return pd.DataFrame(columns=cols)
    ok = runs[runs["collapse/count"].notna()]
    if "trial_status" in ok:
        ok = ok[ok["trial_status"].isin(["finished"])]
    table = pd.DataFrame({
        "activation": ok["activation"].astype(str), "depth": ok["depth"].astype(int), "width": ok["width"].astype(int),
        "target": ok["target"].astype(str), "simulations": ok["simulations"].astype(int),
        "collapsed": ok["collapse/count"].astype(int), "born_dead": ok["born_dead/count"].astype(int),
        "run_id": ok["run_id"]})
    table["collapse_fraction"] = table["collapsed"] / table["simulations"]
    table["ci_low"], table["ci_high"] = wilson(table["collapsed"], table["simulations"])
    table["born_dead_fraction"] = table["born_dead"] / table["simulations"]
    return table[cols].sort_values(["target", "activation", "depth", "width"]).reset_index(drop=True)


def _vs(ax, table: pd.DataFrame, axis: str) -> None:
    for activation, group in table.groupby("activation"):
        group = group.sort_values(axis)
        color = COLORS.get(activation)
        x = group[axis].to_numpy()
        ax.plot(x, group["collapse_fraction"], "o-", color=color, label=f"{activation}: collapsed")
        ax.fill_between(x, group["ci_low"], group["ci_high"], color=color, alpha=0.2, linewidth=0)
        ax.errorbar(x, group["collapse_fraction"], yerr=[group["collapse_fraction"] - group["ci_low"],
                    group["ci_high"] - group["collapse_fraction"]], fmt="none", ecolor=color, capsize=3)
        ax.plot(x, group["born_dead_fraction"], "s--", color=color, alpha=0.6, markersize=4,
                label=f"{activation}: born dead")
    if len(table):
        ax.set_xticks(sorted(table[axis].unique()))
    ax.set_ylim(-0.03, 1.03)
    ax.set_ylabel("fraction of networks")
    ax.grid(True, alpha=0.3)


def figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = collapse_table(runs)
    table.drop(columns="run_id").to_csv(out_dir / TABLE, index=False)
    uri = runs.attrs.get("tracking_uri")
    n = int(table["simulations"].max()) if len(table) else 0
    paths = []

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    by_width = table[table["depth"] == LU_2019["depth"]]
    _vs(ax, by_width, "width")
    ax.plot([LU_2019["width"]], [LU_2019["collapse"]], marker="^", color="black", linestyle="none", markersize=9,
            label="Lu et al. 2019 (ReLU): > 90%")
    ax.set_xlabel("width (units per hidden layer), depth 10")
    ax.set_title(f"Collapse to a constant, {n} trainings per point (95% Wilson band)", fontsize=9)
    ax.legend(fontsize=7)
    paths.append(save_figure(fig, out_dir / "collapse_vs_width.png"))

    if table["depth"].nunique() > 1:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        _vs(ax, table[table["width"] == LU_2019["width"]], "depth")
        ax.set_xlabel("depth (hidden layers), width 2")
        ax.set_title(f"Collapse vs depth, {n} trainings per point (95% Wilson band)", fontsize=9)
        ax.legend(fontsize=7)
        paths.append(save_figure(fig, out_dir / "collapse_vs_depth.png"))

    if uri and len(table):
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        bins = np.logspace(-12, 1, 40)
        for row in table.itertuples():
            sims = trial_artifact(uri, row.run_id, "simulations.csv")
            target_std = np.std(trial_artifact(uri, row.run_id, "fits.csv")["target"], ddof=1)
            ax.hist(np.clip(sims["output_std"] / target_std, 1e-12, None), bins=bins, histtype="step",
                    color=COLORS.get(row.activation), label=f"{row.activation}, width {row.width}, depth {row.depth}")
        tol = float(runs["collapse_tol"].iloc[0]) if "collapse_tol" in runs else 1e-3
        ax.axvline(tol, color="black", linestyle=":", label=f"collapse threshold {tol:g}")
        ax.set_xscale("log")
        ax.set_xlabel("std of the output on the grid / std of the target (clipped at 1e-12)")
        ax.set_ylabel("networks")
        ax.set_title("Every network's output spread after training", fontsize=9)
        ax.legend(fontsize=7)
        paths.append(save_figure(fig, out_dir / "output_std.png"))

        # one panel per activation: its run closest to the paper's setting (depth 10, width 2)
        closeness = (table["depth"] - LU_2019["depth"]).abs() * 100 + (table["width"] - LU_2019["width"]).abs()
        shown = table.assign(closeness=closeness).sort_values("closeness").groupby("activation").head(1)
        shown = shown.sort_values("activation", ascending=False)  # relu first
        fig, axes = plt.subplots(1, len(shown), figsize=(6.0 * len(shown), 4.4), squeeze=False)
        for ax, row in zip(axes[0], shown.itertuples()):
            fits = trial_artifact(uri, row.run_id, "fits.csv")
            ax.plot(fits["x"], fits["target"], color="black", linewidth=2.5, label="target")
            for col in fits.columns[2:]:
                kind, seed = col.split("_seed")
                ax.plot(fits["x"], fits[col], "--" if kind == "collapsed" else "-",
                        color="tab:red" if kind == "collapsed" else "tab:green", alpha=0.8,
                        label=f"{kind}, seed {seed}")
            ax.set_xlabel("x")
            ax.set_ylabel("f(x)")
            ax.set_title(f"Trained fits: {row.activation}, depth {row.depth}, width {row.width}", fontsize=9)
            ax.legend(fontsize=7)
            ax.grid(True, alpha=0.3)
        paths.append(save_figure(fig, out_dir / "fits.png"))
    return paths


def summary(runs: pd.DataFrame) -> str:
    table = collapse_table(runs)
    if table.empty:
        return "no finished trials"
    lines = ["collapse to a constant (95% Wilson interval) and born dead, per configuration:",
             f"  {'target':<7} {'activation':<11} {'depth':>5} {'width':>5} {'n':>5}  {'collapsed':>9}  "
             f"{'95% interval':<15} {'born dead':>9}"]
    for r in table.itertuples():
        lines.append(f"  {r.target:<7} {r.activation:<11} {r.depth:>5} {r.width:>5} {r.simulations:>5}  "
                     f"{r.collapse_fraction:>9.1%}  [{r.ci_low:.1%}, {r.ci_high:.1%}]  {r.born_dead_fraction:>9.1%}")
    lines.append(LU_2019["text"])
    return "\n".join(lines)
