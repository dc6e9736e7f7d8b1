"""Figures and summary of the depth-vs-width study, from its MLflow records alone.

    python -m analysis depth_width [--parent-run ID]

1. test RMSE vs total hidden units, one curve per depth (all trials of networks with
   the same total averaged; the band is +-1 std over them, networks and seeds);
2. test RMSE vs number of parameters, one curve per depth;
3. training time (excluding evaluation) vs number of parameters, one curve per depth.
Replicate seeds are averaged, with a band (and error bars) of ±1 std; a population trial (seeds
trained together, one run) counts as its seeds, read from its `replicas.csv` artifact. Diverged trials are left
out (and counted in the title); trials stopped early by ASHA are drawn hollow,
their RMSE being the one at the epoch they stopped.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from analysis.plotting import save_figure  # noqa: E402
from analysis.records import per_replica  # noqa: E402

METRIC = "test/rmse"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "min"

DEPTH_COLORS = {1: "tab:blue", 2: "tab:orange", 3: "tab:green"}
RMSE = "test/rmse"
TRAIN_S = "time/train_s"


def _usable(runs: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    runs = runs.copy()
    if "trial_status" not in runs:
        runs["trial_status"] = "finished"
    ok = runs[runs["trial_status"].isin(["finished", "stopped"]) & runs[RMSE].notna()].copy()
    ok["widths"] = ok["widths"].astype(str)  # "64" parses as a number, "64-32" does not
    return ok, len(runs) - len(ok)


def per_network(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per network: mean and std over replicate seeds."""
    ok, _ = _usable(runs)
    grouped = ok.groupby(["n_layers", "widths"], as_index=False)
    table = grouped.agg(
        total_units=("total_units", "first"), n_params=("n_params", "first"),
        rmse=(RMSE, "mean"), rmse_std=(RMSE, "std"), train_s=(TRAIN_S, "mean"), train_s_std=(TRAIN_S, "std"),
        seeds=(RMSE, "size"), stopped=("trial_status", lambda s: bool((s == "stopped").any())),
    )
    return table.fillna({"rmse_std": 0.0, "train_s_std": 0.0}).sort_values(["n_layers", "n_params"])


def _title_note(runs: pd.DataFrame) -> str:
    ok, dropped = _usable(runs)
    seeds = int(ok.groupby("widths").size().max()) if len(ok) else 0
    population = "seeds" in runs and (runs["seeds"].fillna(1).astype(int) > 1).any()
    notes = [f"{seeds} seeds per network (mean, band ±1 std)" if seeds > 1 else ""]
    notes.append("seeds trained as one population: time of all seeds" if population else "")
    notes.append(f"{dropped} diverged/failed trial(s) left out" if dropped else "")
    return "; ".join(n for n in notes if n)


def _curve(ax, x, y, band_lo, band_hi, depth, hollow) -> None:
    color = DEPTH_COLORS.get(depth, None)
    ax.plot(x, y, "-", color=color, label=f"{depth} hidden layer{'s' if depth > 1 else ''}")
    ax.fill_between(x, band_lo, band_hi, color=color, alpha=0.15, linewidth=0)
    spread = np.asarray(band_hi, dtype=float) - np.asarray(band_lo, dtype=float)
    if (spread > 0).any():  # a band is invisible where a curve has a single point: add error bars
        ax.errorbar(x, y, yerr=[y - np.asarray(band_lo, dtype=float), np.asarray(band_hi, dtype=float) - y],
                    fmt="none", ecolor=color, alpha=0.6, capsize=2)
    ax.scatter(x[~hollow], y[~hollow], color=color, s=14, zorder=3)
    if hollow.any():
        ax.scatter(x[hollow], y[hollow], facecolors="none", edgecolors=color, s=30, zorder=3,
                   label=f"stopped early (ASHA), depth {depth}")


def figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = per_replica(runs)  # population trials: one row per seed
    nets = per_network(runs)
    note = _title_note(runs)
    paths = []

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ok, _ = _usable(runs)
    for depth, group in ok.groupby("n_layers"):
        # every trial of a depth and total (networks and seeds alike) counts once
        by_total = group.groupby("total_units").agg(rmse=(RMSE, "mean"), std=(RMSE, "std"),
                                                    stopped=("trial_status", lambda s: bool((s == "stopped").any())))
        by_total = by_total.fillna({"std": 0.0}).reset_index()
        _curve(ax, by_total["total_units"].to_numpy(), by_total["rmse"].to_numpy(), by_total["rmse"] - by_total["std"],
               by_total["rmse"] + by_total["std"], depth, by_total["stopped"].to_numpy())
    _finish(ax, "total hidden units", "test RMSE (units of f)", "Test RMSE vs total hidden units", note)
    if ax.has_data():
        ax.set_xticks([16, 32, 64, 128, 256, 512])
    paths.append(save_figure(fig, out_dir / "rmse_vs_hidden_units.png"))

    for y, std, ylabel, title, name in [
        ("rmse", "rmse_std", "test RMSE (units of f)", "Test RMSE vs parameters", "rmse_vs_params.png"),
        ("train_s", "train_s_std", "training time (s, excluding evaluation)", "Training time vs parameters",
         "train_time_vs_params.png"),
    ]:
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        for depth, group in nets.groupby("n_layers"):
            _curve(ax, group["n_params"].to_numpy(), group[y].to_numpy(), group[y] - group[std], group[y] + group[std],
                   depth, group["stopped"].to_numpy())
        _finish(ax, "number of parameters", ylabel, title, note)
        paths.append(save_figure(fig, out_dir / name))
    return paths


def _finish(ax, xlabel: str, ylabel: str, title: str, note: str) -> None:
    if not ax.has_data():
        ax.text(0.5, 0.5, "no finished trials to show", transform=ax.transAxes, ha="center", va="center")
    else:
        ax.set_xscale("log")
        ax.set_yscale("log")
        # plain numbers; on y also the 2x, 3x and 5x minor ticks (RMSE spans less than a decade)
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "235" else ""))
        ax.legend(fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title + ("\n" + note.replace("; ", "\n") if note else ""), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)


def summary(runs: pd.DataFrame) -> str:
    nets = per_network(per_replica(runs))
    if nets.empty:
        return "no finished trials"
    best = nets.loc[nets.groupby("n_layers")["rmse"].idxmin()]
    lines = ["best network per depth (lowest test RMSE):",
             f"  {'depth':>5}  {'widths':<14} {'params':>8}  {'test RMSE':>9}  {'train s':>8}"]
    for row in best.itertuples():
        lines.append(f"  {row.n_layers:>5}  {row.widths:<14} {row.n_params:>8}  {row.rmse:>9.2f}  {row.train_s:>8.1f}")
    return "\n".join(lines)
