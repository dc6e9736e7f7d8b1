"""Figures and summary of the staleness study (asynchronous SGD, parameter server), from its MLflow records alone.

    python -m analysis staleness [--parent-run ID] [--results-dir DIR]

1. staleness_vs_ratio.png: mean (left) and max (right) staleness of the slowest and the fastest learner vs the
   speed ratio (fastest / slowest), one colour per learner count (wide, translucent), with the long-run mean
   sum_{j!=i} s_j / s_i as a thin black dashed line drawn on top (r and 1/r for two learners: it runs along the
   middle of the measured line where the two agree);
2. staleness_hist.png: the distribution of staleness (share of each learner's gradients) per speed ratio, for
   the smallest learner count swept (two learners: the slow one in orange, the fast one in blue);
3. timeline.png: one schedule (the run nearest ratio 2.5, smallest learner count): every gradient applied by
   time 4 as a read -> update bar per learner, annotated with its staleness.
The table staleness.csv holds, per run: learners, speed ratio, speeds, gradients, and per learner its mean and
max staleness and the long-run mean. Per-trial artifacts read: gradients.csv, staleness_counts.csv.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, SymmetricalLogLocator  # noqa: E402

from analysis.plotting import save_figure  # noqa: E402
from analysis.records import trial_artifact  # noqa: E402

METRIC = "staleness/mean"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "min"

TABLE = "staleness.csv"
TIMELINE_RATIO, TIMELINE_SPAN = 2.5, 4.0  # the schedule drawn: ratio nearest 2.5, time units [0, 4]
LEARNER_COLORS = plt.get_cmap("tab10")


def _n_learners(row: pd.Series) -> int:
    return sum(1 for key in row.index if key.startswith("learner") and key.endswith("/speed") and pd.notna(row[key]))


def staleness_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run and learner: learners, ratio, learner, speed, gradients, mean, max, expected."""
    cols = ["learners", "ratio", "learner", "speed", "gradients", "staleness_mean", "staleness_max", "expected_mean",
            "horizon", "run_id"]
    if runs.empty or "staleness/mean" not in runs:
        return pd.DataFrame(columns=cols)
    ok = runs[runs["staleness/mean"].notna()]
    if "trial_status" in ok:
        ok = ok[ok["trial_status"] == "finished"]
    rows = []
    for _, run in ok.iterrows():
        n = _n_learners(run)
        for i in range(n):
            rows.append({"learners": n, "ratio": float(run["speed_ratio"]), "learner": i,
                         "speed": run[f"learner{i}/speed"], "gradients": int(run[f"learner{i}/gradients"]),
                         "staleness_mean": run[f"learner{i}/staleness_mean"],
                         "staleness_max": int(run[f"learner{i}/staleness_max"]),
                         "expected_mean": run[f"learner{i}/expected_mean"], "horizon": float(run["horizon"]),
                         "run_id": run["run_id"]})
    if not rows:
        return pd.DataFrame(columns=cols)
    return pd.DataFrame(rows)[cols].sort_values(["learners", "ratio", "learner"]).reset_index(drop=True)


def figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = staleness_table(runs)
    table.drop(columns="run_id").to_csv(out_dir / TABLE, index=False)
    uri = runs.attrs.get("tracking_uri")
    if table.empty:
        return []
    paths = []

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    counts = sorted(table["learners"].unique())
    for c, n in enumerate(counts):
        group = table[table["learners"] == n]
        ends = group.groupby("run_id")["learner"].agg(["min", "max"])
        slow = group[group["learner"] == 0].sort_values("ratio")
        fast = group.merge(ends["max"].rename("last"), left_on="run_id", right_index=True)
        fast = fast[fast["learner"] == fast["last"]].sort_values("ratio")
        color = plt.get_cmap("Dark2")(c)
        for part, marker, name in ((slow, "o", "slowest"), (fast, "s", "fastest")):
            if n == 1 and name == "fastest":
                continue
            axes[0].plot(part["ratio"], part["staleness_mean"], marker + "-", color=color, linewidth=2.5,
                         markersize=7, alpha=0.55, label=f"{n} learners, {name}" if n > 1 else "1 learner")
            # the long run on top, thin and black: where it equals the measured mean it runs along its middle
            axes[0].plot(part["ratio"], part["expected_mean"], "--", color="black", linewidth=1, zorder=4,
                         label="long run: sum of the others' speeds / own speed" if c == 0 and name == "slowest"
                         else None)
            axes[1].plot(part["ratio"], part["staleness_max"], marker + "-", color=color,
                         label=f"{n} learners, {name}" if n > 1 else "1 learner")
    axes[0].set_yscale("symlog", linthresh=0.1)
    # ticks at 1, 2, 5 per decade, written as plain numbers: a narrow range still gets several labels
    axes[0].yaxis.set_major_locator(SymmetricalLogLocator(base=10, linthresh=0.1, subs=[1, 2, 5]))
    axes[0].yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    for ax, what in zip(axes, ("mean", "max")):
        ax.set_xscale("log")
        ratios = sorted(table["ratio"].unique())
        ax.set_xticks(ratios, [f"{r:g}" for r in ratios])
        ax.minorticks_off()
        ax.set_xlabel("speed ratio r = fastest / slowest (speeds evenly spaced from 1 to r)", fontsize=9)
        ax.set_ylabel(f"{what} staleness (updates between read and update)")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    last = sorted(range(len(labels)), key=lambda i: labels[i].startswith("long run"))  # the long run last
    axes[0].legend([handles[i] for i in last], [labels[i] for i in last], fontsize=8)
    axes[1].legend(fontsize=8)
    horizon = table["horizon"].iloc[0]
    axes[0].set_title(f"Mean staleness per learner (horizon {horizon:g} time units)\n"
                      f"measured (colour) and the long run (black dashed, on top)", fontsize=9)
    axes[1].set_title("Max staleness per learner", fontsize=9)
    paths.append(save_figure(fig, out_dir / "staleness_vs_ratio.png"))

    if not uri:
        return paths
    n_min = counts[0]
    runs_min = table[table["learners"] == n_min].groupby("run_id")["ratio"].first().sort_values()
    cols = min(4, len(runs_min))
    rows = int(np.ceil(len(runs_min) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, (run_id, ratio) in zip(axes.flat, runs_min.items()):
        counts_table = trial_artifact(uri, run_id, "staleness_counts.csv")
        width = 0.8 / n_min
        for i, part in counts_table.groupby("learner"):
            share = part["count"] / part["count"].sum()
            ax.bar(part["staleness"] + (i - (n_min - 1) / 2) * width, share, width=width,
                   color=LEARNER_COLORS(1 - i if n_min == 2 else i), label=f"learner {i}")
        ax.set_title(f"r = {ratio:g}", fontsize=9)
        ax.set_xlabel("staleness", fontsize=8)
        ax.set_ylabel("share of gradients", fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.grid(True, axis="y", alpha=0.3)
    for ax in list(axes.flat)[len(runs_min):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"Staleness distribution per speed ratio, {n_min} learners (learner 0 slowest)", fontsize=10)
    paths.append(save_figure(fig, out_dir / "staleness_hist.png"))

    run_id, ratio = min(runs_min.items(), key=lambda item: abs(item[1] - TIMELINE_RATIO))
    grads = trial_artifact(uri, run_id, "gradients.csv")
    grads = grads[grads["update_time"] <= TIMELINE_SPAN + 1e-9]
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.9 * n_min))
    for g in grads.itertuples():
        color = LEARNER_COLORS(1 - g.learner if n_min == 2 else g.learner)
        ax.barh(g.learner, g.update_time - g.read_time, left=g.read_time, height=0.5, color=color, alpha=0.35,
                edgecolor=color)
        ax.text((g.read_time + g.update_time) / 2, g.learner, str(g.staleness), ha="center", va="center", fontsize=9)
        ax.plot([g.update_time], [g.learner], "v", color=color, markersize=5)
    speeds = table[table["run_id"] == run_id].sort_values("learner")["speed"]
    ax.set_yticks(range(n_min), [f"learner {i}\nspeed {s:g}" for i, s in enumerate(speeds)])
    ax.set_xlabel("time (units); bar = read -> update (triangle), number = staleness")
    ax.set_xlim(0, TIMELINE_SPAN)
    ax.invert_yaxis()
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(f"Schedule at r = {ratio:g}: simultaneous updates served in learner order, each with its read",
                 fontsize=9)
    paths.append(save_figure(fig, out_dir / "timeline.png"))
    return paths


def summary(runs: pd.DataFrame) -> str:
    table = staleness_table(runs)
    if table.empty:
        return "no finished trials"
    lines = [f"staleness per learner (mean / max; long-run mean sum_j!=i s_j/s_i), horizon "
             f"{table['horizon'].iloc[0]:g} time units:"]
    for (n, ratio), group in table.groupby(["learners", "ratio"]):
        parts = [f"L{r.learner} (speed {r.speed:g}) {r.staleness_mean:.3f} / {r.staleness_max} ({r.expected_mean:.3f})"
                 for r in group.itertuples()]
        if len(parts) > 4:
            parts = parts[:2] + ["..."] + parts[-2:]
        lines.append(f"  {n} learners, r = {ratio:<5g}: " + "; ".join(parts))
    return "\n".join(lines)
