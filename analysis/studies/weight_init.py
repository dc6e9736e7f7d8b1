"""Figures, tables and summary of the weight-initialization study, from its MLflow records.

    python -m analysis weight_init [--parent-run ID] [--results-dir DIR]

1. `histograms_init.png` (and `histograms_trained.png`): rows = activation, columns = initialization;
   each cell overlays the activation histograms of the 5 hidden layers (one step line per layer, light to
   dark with depth; densities, seeds pooled) at initialization (after training). Exact zeros (ReLU's
   inactive units) are not in the histograms: the legend gives their fraction per layer. Read from each
   trial's `histograms.csv` and `layer_stats.csv` artifacts (trainables/studies/weight_init.py);
2. `layer_stats.png`: activation std (top) and gradient norm of each layer's weight (bottom) vs layer,
   log y, one panel per activation, one colour per initialization: at initialization (solid) and after
   training (dashed), mean over seeds with +-1 std bars;
3. `test_accuracy.png`: final test accuracy per configuration, mean over seeds with +-1 std bars and each
   seed as a dot; a configuration whose training diverged is marked so;
4. `configs.csv`: per configuration, the seeds, test accuracy (mean, std), diverged replicas, and at
   initialization the ratios last/first layer of the activation std and of the gradient norm (means over
   seeds) and the saturated fraction of the most saturated layer (tanh, sigmoid); `layers.csv`: mean and std over seeds of every layer statistic, per configuration and phase.

The summary names, per activation, the initialization whose activation std at init stays closest to constant
(|log(last/first)| smallest), leaving out saturated configurations (over half of a layer's units within 1% of
tanh's or sigmoid's bounds: a constant std of units stuck at +-1 is not a healthy signal).

Final accuracies are per replica (`analysis.records.per_replica`), and statistics per replica, so seeds
trained as separate trials or fused as one population give the same figures.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

from analysis.plotting import save_figure  # noqa: E402
from analysis.records import per_replica, trial_artifact  # noqa: E402
from trainables.studies.weight_init import HISTOGRAMS, LAYER_STATS  # noqa: E402

# The study's initializations (sweeps/weight_init.py) in the order the figures show them, with their labels, and
# its activations in order.
LABELS = {"normal_small": "N(0, 0.01²)", "normal_large": "N(0, 1)", "glorot": "Glorot normal", "he": "He normal"}
INITS = tuple(LABELS)
STUDY_ACTIVATIONS = ("tanh", "sigmoid", "relu")

METRIC = "test/accuracy"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "max"

COLORS = {"normal_small": "tab:blue", "normal_large": "tab:red", "glorot": "tab:green", "he": "tab:purple"}
STATS = ["act_mean", "act_std", "zero_frac", "sat_frac", "grad_norm"]
CONFIG_COLUMNS = ["activation", "init", "label", "seeds", "test_accuracy", "test_accuracy_std", "diverged",
                  "std_ratio", "grad_ratio", "saturated"]
SATURATED = 0.5  # a configuration whose most saturated layer at init has more than this fraction of units saturated


# ---------------------------------------------------------------- tables

def _usable(runs: pd.DataFrame) -> pd.DataFrame:
    """Trials of known configurations that did not fail (diverged ones keep their statistics at init)."""
    if runs.empty or "init" not in runs or "activation" not in runs:
        ok = runs.iloc[0:0]
    else:
        status = runs["trial_status"] if "trial_status" in runs else pd.Series("finished", index=runs.index)
        ok = runs[status.isin(["finished", "stopped", "diverged"]) & runs["init"].isin(list(INITS))]
    ok = ok.copy()
    ok.attrs.update(runs.attrs)
    return ok


def _activations(values) -> list[str]:
    present = set(values)
    return [a for a in STUDY_ACTIVATIONS if a in present] + sorted(present - set(STUDY_ACTIVATIONS))


def _inits(values) -> list[str]:
    return [i for i in INITS if i in set(values)]


def layer_tables(runs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(stats, histograms, run IDs without them): every trial's layer_stats.csv rows with its activation and
    init; its histograms.csv rows likewise, counts summed over trials (seeds run as separate trials)."""
    ok = _usable(runs)
    uri = ok.attrs.get("tracking_uri")
    stats, hists, missing = [], [], []
    for run in ok.to_dict("records"):
        try:
            stat = trial_artifact(uri, run["run_id"], LAYER_STATS)
            hist = trial_artifact(uri, run["run_id"], HISTOGRAMS)
        except (OSError, MlflowException):
            missing.append(run["run_id"])
            continue
        stats.append(stat.assign(activation=run["activation"], init=run["init"]))
        hists.append(hist.assign(activation=run["activation"], init=run["init"]))
    stat_cols = ["activation", "init", "phase", "replica", "seed", "layer", *STATS]
    stats_table = pd.concat(stats, ignore_index=True)[stat_cols] if stats else pd.DataFrame(columns=stat_cols)
    keys = ["activation", "init", "phase", "layer", "bin"]
    if hists:
        pooled = pd.concat(hists, ignore_index=True)
        # separate trials of one config share the bounded ranges; unbounded ones differ per trial: keep the first's
        hist_table = (pooled.groupby(keys, sort=False).agg(lo=("lo", "first"), hi=("hi", "first"),
                                                           count=("count", "sum")).reset_index())
    else:
        hist_table = pd.DataFrame(columns=[*keys, "lo", "hi", "count"])
    return stats_table, hist_table, missing


def layer_means(stats: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds of each statistic, per (activation, init, phase, layer)."""
    if stats.empty:
        return pd.DataFrame(columns=["activation", "init", "phase", "layer", "seeds", *STATS,
                                     *[f"{s}_std" for s in STATS]])
    grouped = stats.groupby(["activation", "init", "phase", "layer"])
    table = grouped[STATS].mean().join(grouped[STATS].std(ddof=1).fillna(0.0).add_suffix("_std"))
    table.insert(0, "seeds", grouped.size())
    table = table.reset_index()
    order = {a: i for i, a in enumerate(_activations(table["activation"]))}
    table["_a"] = table["activation"].map(order)
    table["_i"] = table["init"].map({k: i for i, k in enumerate(INITS)})
    table["_p"] = (table["phase"] != "init").astype(int)
    return table.sort_values(["_a", "_i", "_p", "layer"]).drop(columns=["_a", "_i", "_p"]).reset_index(drop=True)


def final_values(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per replica: activation, init, seed, final test accuracy (NaN when it diverged before any
    evaluation) and whether it diverged."""
    columns = ["activation", "init", "seed", "test_accuracy", "train_loss", "diverged"]
    ok = _usable(runs)
    if ok.empty:
        return pd.DataFrame(columns=columns)
    replicas = per_replica(ok)
    table = pd.DataFrame({"activation": replicas["activation"], "init": replicas["init"],
                          "seed": replicas["seed"] if "seed" in replicas else 0})
    table["test_accuracy"] = pd.to_numeric(replicas.get("test/accuracy", math.nan), errors="coerce")
    table["train_loss"] = pd.to_numeric(replicas.get("train/loss", math.nan), errors="coerce")
    status = replicas["trial_status"] if "trial_status" in replicas else pd.Series("finished", index=replicas.index)
    table["diverged"] = (~np.isfinite(table["train_loss"].astype(float))) | (status == "diverged").to_numpy()
    return table.reset_index(drop=True)[columns]


def per_config(final: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    """One row per (activation, init) in study order: seeds, test accuracy over the replicas that trained
    (mean, std), diverged replicas, and at init the last/first-layer ratios of act_std and grad_norm."""
    if final.empty:
        return pd.DataFrame(columns=CONFIG_COLUMNS)
    rows = []
    for activation in _activations(final["activation"]):
        for init in _inits(final.loc[final["activation"] == activation, "init"]):
            mine = final[(final["activation"] == activation) & (final["init"] == init)]
            trained = mine[~mine["diverged"].astype(bool)]["test_accuracy"].dropna()
            row = {"activation": activation, "init": init, "label": LABELS[init], "seeds": len(mine),
                   "test_accuracy": trained.mean() if len(trained) else math.nan,
                   "test_accuracy_std": trained.std(ddof=1) if len(trained) > 1 else 0.0,
                   "diverged": int(mine["diverged"].sum()), "std_ratio": math.nan, "grad_ratio": math.nan,
                   "saturated": math.nan}
            at_init = stats[(stats["activation"] == activation) & (stats["init"] == init) & (stats["phase"] == "init")]
            if len(at_init):
                first, last = at_init["layer"].min(), at_init["layer"].max()
                by = at_init.set_index(["seed", "layer"])
                for name, col in (("std_ratio", "act_std"), ("grad_ratio", "grad_norm")):
                    ratio = by[col].xs(last, level="layer") / by[col].xs(first, level="layer")
                    row[name] = float(ratio.mean())
                row["saturated"] = float(at_init.groupby("layer")["sat_frac"].mean().max())
            rows.append(row)
    return pd.DataFrame(rows)[CONFIG_COLUMNS]


# ---------------------------------------------------------------- figures

def figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stats, hists, _ = layer_tables(runs)
    final = final_values(runs)
    configs = per_config(final, stats)
    means = layer_means(stats)
    configs.to_csv(out_dir / "configs.csv", index=False)
    means.to_csv(out_dir / "layers.csv", index=False)
    paths = []
    if len(hists):
        for phase in ("init", "trained"):
            if (hists["phase"] == phase).any():
                paths.append(_histogram_grid(hists[hists["phase"] == phase], means, phase,
                                             out_dir / f"histograms_{phase}.png"))
    if len(means):
        paths.append(_layer_stats(means, out_dir / "layer_stats.png"))
    if len(configs):
        paths.append(_accuracy(configs, final, out_dir / "test_accuracy.png"))
    return paths


def _histogram_grid(hists: pd.DataFrame, means: pd.DataFrame, phase: str, path: Path) -> Path:
    activations, inits = _activations(hists["activation"]), _inits(hists["init"])
    fig, axes = plt.subplots(len(activations), len(inits), figsize=(3.4 * len(inits), 2.6 * len(activations)),
                             squeeze=False)
    for r, activation in enumerate(activations):
        for c, init in enumerate(inits):
            ax = axes[r][c]
            cell = hists[(hists["activation"] == activation) & (hists["init"] == init)]
            zeros = means[(means["activation"] == activation) & (means["init"] == init) & (means["phase"] == phase)]
            zero = dict(zip(zeros["layer"], zeros["zero_frac"]))
            layers = sorted(cell["layer"].unique())
            cmap = plt.get_cmap("viridis")
            for k, layer in enumerate(layers):
                h = cell[cell["layer"] == layer].sort_values("bin")
                total = h["count"].sum()
                if not total:
                    continue
                edges = np.append(h["lo"].to_numpy(), h["hi"].to_numpy()[-1])
                density = h["count"].to_numpy() / total / np.diff(edges)
                label = f"layer {layer}" + (f" ({100 * zero[layer]:.0f}% zeros)" if zero.get(layer, 0) > 0.01 else "")
                ax.stairs(density, edges, color=cmap(k / max(len(layers) - 1, 1)), label=label, linewidth=1.2)
            if activation not in ("tanh", "sigmoid"):  # unbounded: densities over decades, x up to 1e5
                ax.set_yscale("log")
                ax.ticklabel_format(axis="x", style="sci", scilimits=(-3, 3))
            if r == 0:
                ax.set_title(LABELS.get(init, init), fontsize=10)
            if c == 0:
                ax.set_ylabel(f"{activation}\ndensity{' (log)' if activation not in ('tanh', 'sigmoid') else ''}")
            if r == len(activations) - 1:
                ax.set_xlabel("activation")
            ax.tick_params(labelsize=7)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=6, loc="best")
            else:  # every activation of the phase was NaN (the trial diverged)
                ax.text(0.5, 0.5, "no finite activations\n(diverged)", ha="center", va="center", transform=ax.transAxes)
    fig.suptitle(f"Activation histograms per hidden layer, {'at initialization' if phase == 'init' else 'after training'}"
                 " (5 x 100 MLP, seeds pooled)", fontsize=11)
    return save_figure(fig, path)


def _layer_stats(means: pd.DataFrame, path: Path) -> Path:
    activations = _activations(means["activation"])
    fig, axes = plt.subplots(2, len(activations), figsize=(4.2 * len(activations), 7), squeeze=False)
    for c, activation in enumerate(activations):
        for r, (stat, name) in enumerate((("act_std", "activation std"), ("grad_norm", "‖dL/dW‖ of the layer"))):
            ax = axes[r][c]
            for init in _inits(means["init"]):
                for phase, style in (("init", "-"), ("trained", "--")):
                    line = means[(means["activation"] == activation) & (means["init"] == init)
                                 & (means["phase"] == phase)]
                    values = line[stat].to_numpy(float)
                    if not len(line) or not np.isfinite(values).any() or (values[np.isfinite(values)] <= 0).all():
                        continue
                    ax.errorbar(line["layer"], values, yerr=line[f"{stat}_std"].to_numpy(float), fmt="o" + style,
                                color=COLORS[init], markersize=3.5, capsize=2, linewidth=1.3 if phase == "init" else 0.9,
                                alpha=1.0 if phase == "init" else 0.7,
                                label=f"{LABELS[init]}{'' if phase == 'init' else ' (trained)'}")
            ax.set_yscale("log")
            ax.set_xticks(sorted(means["layer"].unique()))
            ax.set_title(f"{activation}: {name}", fontsize=10)
            ax.set_xlabel("hidden layer")
            ax.grid(alpha=0.3, which="both")
            if r == 0 and c == 0:
                ax.legend(fontsize=7)
    fig.suptitle("Per-layer statistics (mean ± std over seeds; solid: at initialization, dashed: after training)",
                 fontsize=11)
    return save_figure(fig, path)


def _accuracy(configs: pd.DataFrame, final: pd.DataFrame, path: Path) -> Path:
    activations, inits = _activations(configs["activation"]), _inits(configs["init"])
    width = 0.8 / len(inits)
    fig, ax = plt.subplots(figsize=(2.2 + 2.2 * len(activations), 4))
    for k, init in enumerate(inits):
        for a, activation in enumerate(activations):
            row = configs[(configs["activation"] == activation) & (configs["init"] == init)]
            if row.empty:
                continue
            row = row.iloc[0]
            x = a + (k - (len(inits) - 1) / 2) * width
            if math.isfinite(row["test_accuracy"]):
                ax.bar(x, 100 * row["test_accuracy"], width, yerr=100 * row["test_accuracy_std"], capsize=2,
                       color=COLORS[init], label=LABELS[init] if a == 0 else None)
                dots = final[(final["activation"] == activation) & (final["init"] == init)]["test_accuracy"].dropna()
                ax.plot([x] * len(dots), 100 * dots, "k.", markersize=3)
            else:
                ax.bar(x, 0, width, color=COLORS[init], label=LABELS[init] if a == 0 else None)
            if row["diverged"]:
                ax.text(x, 2, f"diverged\n{row['diverged']}/{row['seeds']}", ha="center", fontsize=6, rotation=90,
                        va="bottom")
    ax.axhline(10, color="gray", linestyle=":", linewidth=1, label="chance (10%)")
    ax.set_xticks(range(len(activations)), activations)
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("Final test accuracy per activation and initialization (mean ± std over seeds)", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return save_figure(fig, path)


# ---------------------------------------------------------------- summary

def summary(runs: pd.DataFrame) -> str:
    stats, _, missing = layer_tables(runs)
    final = final_values(runs)
    configs = per_config(final, stats)
    if configs.empty:
        return "no finished trials"
    lines = ["per configuration (final epoch; test accuracy mean ± std over the seeds that trained; at init: "
             "last/first hidden layer ratio of activation std and of gradient norm, mean over seeds):",
             f"  {'activation':<10} {'init':<13} {'seeds':>5} {'test acc %':>15} {'diverged':>8} "
             f"{'std L5/L1':>10} {'grad L5/L1':>10}"]
    for row in configs.itertuples():
        acc = (f"{100 * row.test_accuracy:.2f} ± {100 * row.test_accuracy_std:.2f}"
               if math.isfinite(row.test_accuracy) else "—")
        lines.append(f"  {row.activation:<10} {row.init:<13} {row.seeds:>5} {acc:>15} {row.diverged:>8} "
                     f"{row.std_ratio:>10.3g} {row.grad_ratio:>10.3g}")
    for activation in _activations(configs["activation"]):
        mine = configs[(configs["activation"] == activation) & np.isfinite(configs["std_ratio"])
                       & (configs["std_ratio"] > 0)]
        saturated = mine[mine["saturated"] > SATURATED]
        mine = mine[~(mine["saturated"] > SATURATED)]
        if mine.empty:
            continue
        steadiest = mine.loc[np.abs(np.log(mine["std_ratio"])).idxmin()]
        trained = configs[(configs["activation"] == activation) & np.isfinite(configs["test_accuracy"])]
        best = trained.loc[trained["test_accuracy"].idxmax()] if len(trained) else None
        line = (f"{activation}: the activation std is steadiest across layers at init with {steadiest['init']} "
                f"(last/first {steadiest['std_ratio']:.3g}; "
                + ", ".join(f"{r.init} {r.std_ratio:.3g}" for r in mine.itertuples() if r.init != steadiest["init"])
                + ")")
        if len(saturated):
            line += "; saturated at init, left out: " + ", ".join(
                f"{r.init} (up to {100 * r.saturated:.0f}% of a layer's units at the bounds, std ratio {r.std_ratio:.3g})"
                for r in saturated.itertuples())
        if best is not None:
            line += f"; best test accuracy: {best['init']} ({100 * best['test_accuracy']:.2f}%)"
        lines.append(line)
    if missing:
        lines.append(f"{len(missing)} trial(s) without layer statistics (ended before their first report)")
    first = runs.iloc[0]
    notes = [f"dataset={first.get('dataset', 'mnist')}"]
    if int(first.get("train_subset", 0) or 0):
        notes.append(f"at most {int(first['train_subset'])} training images")
    if "epochs" in first:
        notes.append(f"{int(first['epochs'])} epochs")
    lines.append(f"[{', '.join(notes)}]")
    return "\n".join(lines)
