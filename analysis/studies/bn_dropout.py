"""Figures, table and summary of the batch-norm-vs-dropout study, from its MLflow records.

    python -m analysis bn_dropout [--parent-run ID]

1. `bn_params_violins.png`: the learned gamma (top row) and beta (bottom row) of every batch-norm
   layer (input, conv1, conv2, fc1, fc2), one violin per layer over its channels (all seeds pooled),
   one column per setup with batch norm; a layer of few values (the input's single channel per seed
   on MNIST) also shows them as points. Read from each trial's `batchnorm.csv` artifact;
2. `curves.png`: training and test loss, and training and test accuracy shown as error = 100 -
   accuracy (%, log scale, where the setups differ by tenths of a percent), vs epoch, one colour per
   setup: the mean over seeds, a band of +-1 std when there are several. Training values are the
   means over each epoch's batches in training mode (dropout on, batch statistics), test values a
   full evaluation after the epoch;
3. `test_error.png`: final test error per setup, mean over seeds with +-1 std bars and each seed as
   a dot, beside LeNet-5's published 0.95% (LeCun et al. 1998);
4. `setups.csv`: per setup, the seeds, final train/test loss and accuracy (mean and std over seeds)
   and the test error in %.

Final values are per replica (`analysis.records.per_replica`) and curves per replica and epoch
(`analysis.records.replica_curves`), so seeds trained as separate trials and seeds fused in one
population trial give the same figures. Diverged or failed trials are left out (the summary counts
them). The summary answers the study's two questions from the numbers: each difference is printed
with its standard error over seeds (sqrt(s1^2/n1 + s2^2/n2)), and called a difference only when it
exceeds twice that; with one seed there is no spread to judge by, and it says so.
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
from mlflow.exceptions import MlflowException  # noqa: E402

from analysis.plotting import save_figure  # noqa: E402
from analysis.records import per_replica, replica_curves, trial_artifact  # noqa: E402
from trainables.image.trial import BATCHNORM_TABLE  # noqa: E402

# The five setups of the study (sweeps/bn_dropout.py), in the order the figures show them, and their labels.
LABELS = {"bn": "(a) batch norm", "bn_input": "(b) batch norm + on input", "dropout": "(c) dropout 0.2/0.5",
          "bn_dropout": "(d) batch norm + dropout", "baseline": "(e) neither"}
SETUPS = tuple(LABELS)
WITH_BATCH_NORM = ("bn", "bn_input", "bn_dropout")

METRIC = "test/accuracy"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "max"

LECUN_LENET5_ERROR = 0.95  # % test error of LeNet-5 on MNIST, no distortions (LeCun et al. 1998, Fig. 9)
METRICS = {"train/loss": "train_loss", "train/accuracy": "train_accuracy", "test/loss": "test_loss",
           "test/accuracy": "test_accuracy"}
COLORS = {"bn": "tab:blue", "bn_input": "tab:purple", "dropout": "tab:orange", "bn_dropout": "tab:green",
          "baseline": "tab:gray"}
MARKERS = {"bn": "o", "bn_input": "^", "dropout": "s", "bn_dropout": "D", "baseline": "v"}  # curves that overlap
TABLE_COLUMNS = ["setup", "label", "seeds", *[c for name in METRICS.values() for c in (name, f"{name}_std")],
                 "test_error_pct", "test_error_pct_std", "diverged"]
SIGNIFICANCE = 2.0  # a difference counts when it exceeds this many standard errors


# ---------------------------------------------------------------- tables

def _usable(runs: pd.DataFrame) -> pd.DataFrame:
    """Trials that ended normally (finished, or stopped by a scheduler), known setups only."""
    if runs.empty or "setup" not in runs:
        ok = runs.iloc[0:0]
    else:
        status = runs["trial_status"] if "trial_status" in runs else pd.Series("finished", index=runs.index)
        ok = runs[status.isin(["finished", "stopped"]) & runs["setup"].isin(list(SETUPS))]
    ok = ok.copy()
    ok.attrs.update(runs.attrs)
    return ok


def _order(setups) -> list[str]:
    return [s for s in SETUPS if s in set(setups)]


def final_values(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per replica (setup, seed): its final train/test loss and accuracy, test error in %, and whether it
    diverged (a replica of a population trial whose training loss blew up while the others trained on)."""
    columns = ["setup", "seed", *METRICS.values(), "test_error_pct", "diverged"]
    ok = _usable(runs)
    if ok.empty:
        return pd.DataFrame(columns=columns)
    replicas = per_replica(ok)
    table = pd.DataFrame({"setup": replicas["setup"],
                          "seed": replicas["seed"] if "seed" in replicas else 0})
    for key, name in METRICS.items():
        table[name] = pd.to_numeric(replicas[key], errors="coerce") if key in replicas else math.nan
    table["test_error_pct"] = 100 * (1 - table["test_accuracy"])
    table["diverged"] = ~np.isfinite(table["train_loss"].astype(float))
    return table.dropna(subset=["test_accuracy"]).reset_index(drop=True)[columns]


def per_setup(final: pd.DataFrame) -> pd.DataFrame:
    """Mean and std (over seeds; 0 for one seed) of every final value, one row per setup in study order; diverged
    replicas are counted, not averaged."""
    trained = final[~final["diverged"].astype(bool)] if len(final) else final
    if trained.empty:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    values = [*METRICS.values(), "test_error_pct"]
    grouped = trained.groupby("setup")
    table = grouped[values].mean()
    std = grouped[values].std(ddof=1).fillna(0.0).add_suffix("_std")
    table = table.join(std)
    table["seeds"] = grouped.size()
    table["diverged"] = final.groupby("setup")["diverged"].sum().reindex(table.index).fillna(0).astype(int)
    table = table.reindex(_order(table.index)).reset_index()
    table["label"] = table["setup"].map(LABELS)
    return table[TABLE_COLUMNS]


def bn_parameters(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """All trials' batchnorm.csv tables, with their setup: setup, seed, layer, channel, gamma, beta; and the
    run IDs of BN trials without one (e.g. stopped before their last report)."""
    ok = _usable(runs)
    uri = ok.attrs.get("tracking_uri")
    tables, missing = [], []
    for run in ok.to_dict("records"):
        if run["setup"] not in WITH_BATCH_NORM:
            continue
        try:
            table = trial_artifact(uri, run["run_id"], BATCHNORM_TABLE)
        except (OSError, MlflowException):
            missing.append(run["run_id"])
            continue
        tables.append(table.assign(setup=run["setup"]))
    columns = ["setup", "seed", "layer", "channel", "gamma", "beta"]
    return (pd.concat(tables, ignore_index=True)[columns] if tables else pd.DataFrame(columns=columns)), missing


# ---------------------------------------------------------------- figures

def figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ok = _usable(runs)
    params, _ = bn_parameters(ok)
    curves = replica_curves(ok, list(METRICS)) if len(ok) else pd.DataFrame()
    final = final_values(ok)
    table = per_setup(final)
    trained = final[~final["diverged"].astype(bool)]
    paths = [violins(params, out_dir / "bn_params_violins.png"),
             curve_figure(curves, out_dir / "curves.png", _data_name(ok)),
             error_bars(table, trained, out_dir / "test_error.png")]
    table.to_csv(out_dir / "setups.csv", index=False, float_format="%.6g")
    return paths + [out_dir / "setups.csv"]


def _empty(ax, text: str = "no finished trials to show") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9)


def violins(params: pd.DataFrame, path: Path) -> Path:
    setups = _order(params["setup"].unique()) if len(params) else []
    columns = max(len(setups), 1)
    fig, axes = plt.subplots(2, columns, figsize=(3.6 * columns + 0.6, 6.2), squeeze=False)
    for col, setup in enumerate(setups):
        group = params[params["setup"] == setup]
        layers = list(pd.unique(group["layer"]))  # model order, as the trial wrote them
        seeds = group["seed"].nunique()
        for row, name in enumerate(("gamma", "beta")):
            ax = axes[row, col]
            values = [group.loc[group["layer"] == layer, name].to_numpy(float) for layer in layers]
            values = [v[np.isfinite(v)] for v in values]  # a diverged replica's are NaN
            positions = np.arange(len(layers))
            wide = [i for i, v in enumerate(values) if len(v) >= 3 and np.ptp(v) > 0]
            if wide:
                parts = ax.violinplot([values[i] for i in wide], positions[wide], widths=0.8, showmedians=True)
                for body in parts["bodies"]:
                    body.set_facecolor(COLORS[setup])
                    body.set_alpha(0.5)
                for lines in ("cmedians", "cmins", "cmaxes", "cbars"):
                    parts[lines].set_color(COLORS[setup])
            for i, v in enumerate(values):
                if i not in wide or len(v) <= 20:  # few values (the input's one per seed): the values themselves
                    ax.plot(np.full(len(v), i), v, "o", color=COLORS[setup], ms=4)
            ax.axhline(1.0 if name == "gamma" else 0.0, color="gray", lw=0.8, ls=":")  # the initial value
            ax.set_xticks(positions, [f"{layer}\n({len(v)})" for layer, v in zip(layers, values)], fontsize=8)
            ax.set_ylabel(f"{name} ({'scale' if name == 'gamma' else 'shift'})")
            ax.grid(True, axis="y", alpha=0.3)
            if row == 0:
                ax.set_title(f"{LABELS[setup]}\n{seeds} seed{'s' if seeds > 1 else ''}", fontsize=9)
    if not setups:
        for ax in axes[:, 0]:
            _empty(ax, "no batch-norm parameters recorded")
    fig.suptitle("Learned batch-norm parameters per layer (channels of all seeds; dotted: initial value; "
                 "(n) values per layer)", fontsize=10)
    return save_figure(fig, path)


def _data_name(runs: pd.DataFrame) -> str:
    names = runs["dataset"].dropna().unique() if "dataset" in runs else ["mnist"]
    return ", ".join({"mnist": "MNIST"}.get(str(n), str(n)) for n in names) or "MNIST"


def curve_figure(curves: pd.DataFrame, path: Path, data_name: str = "MNIST") -> Path:
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.4))
    panels = [(axes[0, 0], "train_loss", "training loss (dropout on)", False),
              (axes[0, 1], "test_loss", "test loss", False),
              (axes[1, 0], "train_accuracy", "training error = 100 - accuracy (%)", True),
              (axes[1, 1], "test_accuracy", "test error = 100 - accuracy (%)", True)]
    have = len(curves) and "setup" in curves
    for setup in _order(curves["setup"].unique()) if have else []:
        group = curves[curves["setup"] == setup].rename(columns=METRICS)
        seed_col = "seed" if "seed" in group else None
        seeds = group[seed_col].nunique() if seed_col else 1
        label = LABELS[setup] + (f" ({seeds} seeds)" if seeds > 1 else "")
        for ax, column, _, as_error in panels:
            if column not in group:
                continue
            values = group[["step", column]].dropna()
            if as_error:
                values[column] = 100 * (1 - values[column])
            stats = values.groupby("step")[column].agg(["mean", "std"]).fillna(0.0)
            ax.plot(stats.index, stats["mean"], "-", marker=MARKERS[setup], ms=4, mfc="none", color=COLORS[setup],
                    label=label)
            if seeds > 1:
                ax.fill_between(stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"],
                                color=COLORS[setup], alpha=0.2, lw=0)
    for ax, column, ylabel, as_error in panels:
        if not ax.has_data():
            _empty(ax)
        elif all(line.get_ydata().min() > 0 for line in ax.get_lines()):
            ax.set_yscale("log")
        if column == "test_accuracy" and ax.has_data():
            ax.axhline(LECUN_LENET5_ERROR, color="black", ls="--", lw=1, label="LeNet-5, LeCun et al. 1998")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    if axes[1, 1].has_data():
        axes[1, 1].legend(fontsize=8)
    fig.suptitle(f"LeNet-5 on {data_name}: batch norm, dropout, both, neither (mean over seeds, band +-1 std)",
                 fontsize=10)
    return save_figure(fig, path)


def error_bars(table: pd.DataFrame, final: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.2, 4.6))
    for i, row in enumerate(table.itertuples()):
        ax.bar(i, row.test_error_pct, yerr=row.test_error_pct_std if row.seeds > 1 else None, capsize=5,
               color=COLORS[row.setup], alpha=0.75)
        seeds = final.loc[final["setup"] == row.setup, "test_error_pct"].to_numpy()
        ax.plot(np.full(len(seeds), i) + np.linspace(-0.15, 0.15, len(seeds)), seeds, "o", color="black", ms=3)
        spread = f"\n± {row.test_error_pct_std:.2f}" if row.seeds > 1 else ""
        ax.annotate(f"{row.test_error_pct:.2f}%{spread}", (i, row.test_error_pct + row.test_error_pct_std),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 3), textcoords="offset points")
    if len(table):
        ax.set_xticks(np.arange(len(table)),
                      [f"{LABELS[s]}\n{n} seed{'s' if n > 1 else ''}" for s, n in zip(table["setup"], table["seeds"])],
                      fontsize=7)
        ax.axhline(LECUN_LENET5_ERROR, color="black", ls="--", lw=1,
                   label=f"LeNet-5: {LECUN_LENET5_ERROR}% (LeCun et al. 1998, all of MNIST)")
        top = (table["test_error_pct"] + table["test_error_pct_std"]).max()
        ax.set_ylim(0, max(top, final["test_error_pct"].max(), LECUN_LENET5_ERROR) * 1.25)
        ax.legend(fontsize=8, loc="upper left")
    else:
        _empty(ax)
    ax.set_ylabel("final test error (%)")
    ax.set_title("Final test error per setup (mean over seeds, bars ±1 std, dots: seeds)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    return save_figure(fig, path)


# ---------------------------------------------------------------- text

def _value(row) -> str:
    seeds = int(row["seeds"])
    spread = f" ± {row['test_error_pct_std']:.2f}" if seeds > 1 else ""
    return f"{row['test_error_pct']:.2f}%{spread} ({row['setup']}, {seeds} seed{'s' if seeds > 1 else ''})"


def compare(a: pd.Series, b: pd.Series) -> str:
    """'a' against 'b' in test error: the difference, its standard error over seeds, and what that allows saying."""
    diff = a["test_error_pct"] - b["test_error_pct"]
    text = f"{abs(diff):.2f} points {'lower' if diff < 0 else 'higher'}" if diff else "the same"
    if min(a["seeds"], b["seeds"]) < 2:
        return f"{text} with one seed: no spread to judge by (rerun with --set seeds=3)"
    se = math.sqrt(a["test_error_pct_std"] ** 2 / a["seeds"] + b["test_error_pct_std"] ** 2 / b["seeds"])
    if se == 0:  # every seed of both gave the same value
        return f"{text}, in every seed: {'no difference' if not diff else 'better' if diff < 0 else 'worse'}"
    ratio = abs(diff) / se
    text += f", {ratio:.1f}x its standard error ({se:.2f})"
    if ratio <= SIGNIFICANCE:
        return f"{text}: no clear difference"
    return f"{text}: {'better' if diff < 0 else 'worse'} beyond the spread over seeds"


def summary(runs: pd.DataFrame) -> str:
    final = final_values(runs)
    table = per_setup(final)
    if table.empty:
        return "no finished trials"
    lines = ["per setup (final epoch; mean ± std over seeds; training values in training mode):",
             f"  {'setup':<11} {'seeds':>5} {'train loss':>14} {'train acc %':>15} {'test loss':>14} "
             f"{'test acc %':>15} {'test err %':>13}"]
    for row in table.itertuples():
        cells = [f"{getattr(row, name):.4f} ± {getattr(row, name + '_std'):.4f}" for name in ("train_loss",)]
        cells.append(f"{100 * row.train_accuracy:.2f} ± {100 * row.train_accuracy_std:.2f}")
        cells.append(f"{row.test_loss:.4f} ± {row.test_loss_std:.4f}")
        cells.append(f"{100 * row.test_accuracy:.2f} ± {100 * row.test_accuracy_std:.2f}")
        cells.append(f"{row.test_error_pct:.2f} ± {row.test_error_pct_std:.2f}")
        lines.append(f"  {row.setup:<11} {row.seeds:>5} {cells[0]:>14} {cells[1]:>15} {cells[2]:>14} "
                     f"{cells[3]:>15} {cells[4]:>13}")
    left_out = [f"{row.setup}: {row.diverged} diverged replica{'s' if row.diverged > 1 else ''}"
                for row in table.itertuples() if row.diverged]
    if "trial_status" in runs and "setup" in runs and len(runs):
        bad = runs[~runs["trial_status"].isin(["finished", "stopped"])]
        left_out += [f"{setup}: {len(group)} {status} trial{'s' if len(group) > 1 else ''}"
                     for (setup, status), group in bad.groupby(["setup", "trial_status"])]
    if left_out:
        lines.append("left out of the means: " + "; ".join(left_out))
    rows = {row["setup"]: row for _, row in table.iterrows()}

    if "bn" in rows and "bn_input" in rows:
        lines.append(f"batch norm on the input: test error {_value(rows['bn_input'])} vs {_value(rows['bn'])}: "
                     f"{compare(rows['bn_input'], rows['bn'])}")
    else:
        lines.append("batch norm on the input: n/a (needs setups bn and bn_input)")

    if all(s in rows for s in ("bn", "dropout", "bn_dropout")):
        best = min((rows["bn"], rows["dropout"]), key=lambda r: r["test_error_pct"])
        lines.append(f"do they add up: bn_dropout {_value(rows['bn_dropout'])} vs the better alone, "
                     f"{_value(best)}: {compare(rows['bn_dropout'], best)}")
        if "baseline" in rows:
            base = rows["baseline"]
            gains = {s: base["test_error_pct"] - rows[s]["test_error_pct"] for s in ("bn", "dropout", "bn_dropout")}
            lines.append(f"  test error below baseline {_value(base)}: bn {gains['bn']:+.2f}, dropout "
                         f"{gains['dropout']:+.2f}, together {gains['bn_dropout']:+.2f} points "
                         f"(the two alone sum to {gains['bn'] + gains['dropout']:+.2f})")
    else:
        lines.append("do they add up: n/a (needs setups bn, dropout and bn_dropout)")

    best = table.loc[table["test_error_pct"].idxmin()]
    scale = _scale(runs)
    lines.append(f"LeNet-5 reference (LeCun et al. 1998): {LECUN_LENET5_ERROR}% test error (all 60k MNIST images, "
                 f"no distortions); ours, best: {_value(best)}{scale}")
    return "\n".join(lines)


def _scale(runs: pd.DataFrame) -> str:
    """What our numbers were trained on, when it differs from the reference's (a subset, another data set)."""
    first = runs.iloc[0]
    notes = []
    if first.get("dataset", "mnist") != "mnist":
        notes.append(f"dataset={first['dataset']}, not comparable")
    subset = int(first.get("train_subset", 0) or 0)
    if subset:
        notes.append(f"at most {subset} training images")
    if "epochs" in first:
        notes.append(f"{int(first['epochs'])} epochs")
    return f" [{', '.join(notes)}]" if notes else ""
