"""Figures and summary of the scaling study, from its MLflow records alone.

    python -m analysis scaling [--parent-run ID]

X(N) is the throughput of a job with N workers: training images per second over all workers,
after the first (warm-up) epoch (`perf/steady_images_per_s`). Weak-scaling efficiency
E(N) = X(N) / (N * X(1)) (1 = perfectly linear); drawn for strong scaling too. Cost of a job =
price per GPU-hour x GPUs (N x max(GPUs per worker, 1): a CPU worker is priced as one GPU, so the
CPU presets still show the shape) x total training time.

Figures: throughput, training time (and iteration time per worker), cost and efficiency vs the
number of learners, strong and weak on one axis each; and the all-reduce comparison (throughput
per DDP communication hook / backend, skipped variants marked).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.plotting import save_figure  # noqa: E402

METRIC = "perf/steady_images_per_s"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "max"

THROUGHPUT = "perf/steady_images_per_s"
MODES = {"strong": ("tab:blue", "strong scaling (global batch fixed)"),
         "weak": ("tab:orange", "weak scaling (batch per worker fixed)")}


def jobs(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished job with throughput, times, cost and efficiency."""
    if runs.empty or "mode" not in runs:
        return pd.DataFrame(columns=["mode", "workers", "variant", "throughput"])
    ok = runs[runs.get("trial_status", "finished").isin(["finished"]) & runs.get(THROUGHPUT, pd.Series(dtype=float)).notna()].copy()
    ok["workers"] = ok["workers"].astype(int)
    ok["throughput"] = ok[THROUGHPUT]
    gpus = ok["workers"] * ok.get("ddp.gpus_per_worker", 0).astype(float).clip(lower=1.0)
    ok["cost_usd"] = ok["price_per_gpu_hour"].astype(float) * gpus * ok["time/train_s"] / 3600
    ok["epoch_s"] = ok["time/train_s"] / ok["epochs"].astype(float)  # finished jobs ran every epoch
    # Weak scaling at N=1 is the strong job at N=1 when both use the same batch per worker.
    if not ((ok["mode"] == "weak") & (ok["workers"] == 1)).any():
        base = ok[(ok["mode"] == "strong") & (ok["workers"] == 1)]
        if len(base) and int(base["batch_per_worker"].iloc[0]) == int(ok.get("worker_batch", base["batch_per_worker"]).iloc[0]):
            ok = pd.concat([ok, base.assign(mode="weak")], ignore_index=True)
    ok["efficiency"] = float("nan")  # defined only where the mode has its N=1 job
    for mode in MODES:
        one = ok[(ok["mode"] == mode) & (ok["workers"] == 1)]["throughput"]
        if len(one):
            mask = ok["mode"] == mode
            ok.loc[mask, "efficiency"] = ok.loc[mask, "throughput"] / (ok.loc[mask, "workers"] * one.mean())
    order = {"strong": 0, "weak": 1, "hook": 2, "backend": 3}  # the scaling jobs first, then the comparison
    return ok.sort_values(["mode", "variant", "workers"], key=lambda c: c.map(order) if c.name == "mode" else c)


def _by_mode(ax, table: pd.DataFrame, y: str, ideal: bool = False) -> None:
    for mode, (color, label) in MODES.items():
        rows = table[table["mode"] == mode].groupby("workers")[y].mean()
        if rows.empty:
            continue
        ax.plot(rows.index, rows.values, "o-", color=color, label=label)
        if ideal and 1 in rows.index:
            ax.plot(rows.index, rows.loc[1] * rows.index, ":", color=color, alpha=0.6, label=f"linear ({mode})")


def _finish(ax, table: pd.DataFrame, ylabel: str, title: str, note: str = "") -> None:
    ax.set_xlabel("learners (DDP workers)")
    ax.set_ylabel(ylabel)
    ax.set_title(title + (f"\n({note})" if note else ""), fontsize=10)
    if ax.has_data():
        workers = sorted(table["workers"].unique())
        ax.set_xscale("log", base=2)
        ax.set_xticks(workers, [str(w) for w in workers])
        ax.minorticks_off()
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no finished jobs to show", transform=ax.transAxes, ha="center", va="center")
    ax.grid(True, alpha=0.3)


def _context(runs: pd.DataFrame) -> str:
    if runs.empty or "model" not in runs:
        return ""
    first = runs.iloc[0]
    return f"{first['model']} on {first['dataset']}, {int(first['epochs'])} epochs"


def figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = jobs(runs)
    context = _context(runs)
    paths = []

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    _by_mode(ax, table[table["mode"].isin(MODES)], "throughput", ideal=True)
    _finish(ax, table, "throughput (images/s, after epoch 1)", "Throughput vs learners", context)
    paths.append(save_figure(fig, out_dir / "throughput_vs_learners.png"))

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4.2))
    _by_mode(a, table, "time/train_s")
    _finish(a, table, "total training time (s, excluding evaluation)", "Training time vs learners", context)
    _by_mode(b, table, "time/iter_s")
    _finish(b, table, "iteration time per worker (s/step, slowest rank)", "Iteration time vs learners")
    paths.append(save_figure(fig, out_dir / "training_time_vs_learners.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    _by_mode(ax, table, "cost_usd")
    price = ""
    if len(table):
        price = f"{table['priced_instance'].iloc[0]} at ${float(table['price_per_gpu_hour'].iloc[0]):.2f}/GPU-h"
    _finish(ax, table, "cost (USD = price/GPU-h x GPUs x training time)", "Cost vs learners", price)
    paths.append(save_figure(fig, out_dir / "cost_vs_learners.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    _by_mode(ax, table, "efficiency")
    if ax.has_data():
        ax.axhline(1.0, color="gray", ls=":", label="perfect scaling")
        ax.set_ylim(0, max(1.1, float(table["efficiency"].max()) * 1.1))
    _finish(ax, table, "efficiency E(N) = X(N) / (N X(1))", "Scaling efficiency vs learners", context)
    paths.append(save_figure(fig, out_dir / "efficiency_vs_learners.png"))

    paths.append(_allreduce_figure(runs, table, out_dir / "allreduce_comparison.png"))
    return paths


NOT_RUN = {"skipped": "skipped: NCCL needs GPUs (none given)", "error": "failed: see the trial's error in MLflow",
           "diverged": "diverged"}


def _not_run(runs: pd.DataFrame) -> list[tuple[str, int, str]]:
    """(variant, N, status) of the comparison's jobs that have no throughput: skipped, failed, diverged."""
    if runs.empty or "trial_status" not in runs or "variant" not in runs:
        return []
    rows = runs[runs["trial_status"].isin(list(NOT_RUN)) & runs["mode"].isin(["hook", "backend", "weak"])]
    return [(str(r.variant), int(r.workers), str(r.trial_status)) for r in rows.itertuples()]


def comparison(runs: pd.DataFrame, table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Throughput per (variant, N) for the all-reduce comparison, and a note per job that did not run."""
    rows = table[table["mode"].isin(["hook", "backend"])][["variant", "workers", "throughput"]]
    base = table[(table["mode"] == "weak")][["workers", "throughput"]].assign(variant="allreduce")
    base = base[~base["workers"].isin(rows[rows["variant"] == "allreduce"]["workers"])]
    rows = pd.concat([base, rows], ignore_index=True)
    notes = [f"{variant} at N={n} {NOT_RUN[status]}" for variant, n, status in _not_run(runs)]
    return rows, notes


def _allreduce_figure(runs: pd.DataFrame, table: pd.DataFrame, path: Path) -> Path:
    rows, notes = comparison(runs, table)
    missing = {(variant, n): status for variant, n, status in _not_run(runs)}
    variants = list(dict.fromkeys(list(rows["variant"]) + [v for v, _ in missing]))
    workers = sorted(set(rows["workers"]) | {n for _, n in missing})
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    width = 0.8 / max(len(variants), 1)
    for i, variant in enumerate(variants):
        for j, n in enumerate(workers):
            x = j + (i - (len(variants) - 1) / 2) * width
            value = rows[(rows["variant"] == variant) & (rows["workers"] == n)]["throughput"]
            color = plt.cm.tab10(i)
            if len(value):
                ax.bar(x, value.mean(), width, color=color, label=variant)
            elif (variant, n) in missing:
                ax.bar(x, 0, width, color=color, label=variant)
                ax.text(x, 0, missing[(variant, n)], rotation=90, ha="center", va="bottom", fontsize=8)
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))  # one legend entry per variant
    ax.set_xticks(range(len(workers)), [str(n) for n in workers])
    ax.set_xlabel("learners (DDP workers)")
    ax.set_ylabel("throughput (images/s, after epoch 1)")
    title = "All-reduce variants: DDP comm hooks (one node) and backends (spread)"
    ax.set_title(title + ("\n" + "; ".join(notes) if notes else ""), fontsize=9)
    if seen:
        ax.legend(seen.values(), seen.keys(), fontsize=8)
    else:
        ax.text(0.5, 0.5, "no finished comparison jobs", transform=ax.transAxes, ha="center", va="center")
    ax.grid(True, axis="y", alpha=0.3)
    return save_figure(fig, path)


def summary(runs: pd.DataFrame) -> str:
    table = jobs(runs)
    if table.empty:
        return "no finished jobs"
    lines = [f"  {'job':<18} {'N':>3} {'batch/w':>7} {'images/s':>9} {'epoch s':>8} {'train s':>8} "
             f"{'iter ms':>8} {'cost $':>8} {'E(N)':>5} {'test acc':>8}"]
    for _, r in table.iterrows():
        job = str(r["job"]) if r["mode"] != "weak" or "weak" in str(r["job"]) else f"{r['job']} (=weak-1)"
        lines.append(f"  {job:<18} {int(r['workers']):>3} {int(r['batch_per_worker']):>7} {r['throughput']:>9.0f} "
                     f"{r['epoch_s']:>8.2f} {r['time/train_s']:>8.1f} {r['time/iter_s'] * 1000:>8.1f} "
                     f"{r['cost_usd']:>8.4f} {r.get('efficiency', float('nan')):>5.2f} {r['test/accuracy']:>8.3f}")
    _, notes = comparison(runs, table)
    return "\n".join(["jobs (throughput X after the warm-up epoch; E(N) = X(N) / (N X(1))):", *lines, *notes])
