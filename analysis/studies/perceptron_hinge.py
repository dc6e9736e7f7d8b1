"""Figures and summary of the perceptron-vs-hinge study, from its MLflow records alone.

    python -m analysis perceptron_hinge [--parent-run ID] [--results-dir DIR]

1. decision_lines.png: the training set of repetition 0 (artifact example_train.csv), the true line x1 = x2
   and the line w . x = 0 each loss learned on it (w from repetitions.csv);
2. accuracy.png: histograms of the test accuracy over the repetitions, one per loss (means and stds in the
   legend);
3. disagreement.png: per test point, the fraction of training sets whose prediction differs from the
   majority (predictions.npy on the shared test set), as a scatter over the unit square per loss, and its
   distribution per loss;
4. angles.png: the angle of w to the true normal and to each training set's max-margin direction.
Table: perceptron_hinge.csv, one row per loss.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.plotting import save_figure  # noqa: E402
from analysis.records import trial_artifact  # noqa: E402
from trainables.studies.perceptron_hinge import disagreement  # noqa: E402

METRIC = "test/acc_mean"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "max"

TABLE = "perceptron_hinge.csv"
COLUMNS = {"test/acc_mean": "acc_mean", "test/acc_std": "acc_std", "test/disagreement": "disagreement",
           "test/unstable_points": "unstable_points", "train/converged_fraction": "converged",
           "train/epochs_mean": "epochs_mean", "train/epochs_max": "epochs_max",
           "angle/true_deg_mean": "angle_true_deg", "angle/true_deg_std": "angle_std_deg",
           "angle/maxmargin_deg_mean": "angle_maxmargin_deg", "margin/geometric_mean": "geometric_margin",
           "margin/functional_min": "functional_margin_min"}


def loss_name(margin: float) -> str:
    return {0.0: "perceptron (a=0)", 1.0: "hinge (a=1)"}.get(float(margin), f"a={margin:g}")


def loss_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run (loss): its margin a, lr, repetitions and the summary metrics."""
    cols = ["loss", "margin", "lr", "repetitions", "max_epochs", *COLUMNS.values(), "run_id"]
    if runs.empty or "test/acc_mean" not in runs:
        return pd.DataFrame(columns=cols)
    ok = runs[runs["test/acc_mean"].notna()]
    if "trial_status" in ok:
        ok = ok[ok["trial_status"] == "finished"]
    table = ok.rename(columns=COLUMNS).sort_values(["margin", "lr"])
    table["loss"] = [loss_name(m) for m in table["margin"]]
    return table[cols].reset_index(drop=True)


def figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = loss_table(runs)
    table.drop(columns="run_id").to_csv(out_dir / TABLE, index=False)
    uri = runs.attrs.get("tracking_uri")
    if table.empty or not uri:
        return []
    reps = {r.run_id: trial_artifact(uri, r.run_id, "repetitions.csv") for r in table.itertuples()}
    colors = dict(zip(table["run_id"], plt.rcParams["axes.prop_cycle"].by_key()["color"][:len(table)]))
    paths = []

    fig, ax = plt.subplots(figsize=(8.4, 4.9))  # 1. one training set, both lines; the legend on the right
    example = trial_artifact(uri, table["run_id"].iloc[0], "example_train.csv")
    for sign, marker in ((1, "o"), (-1, "x")):
        part = example[example["y"] == sign]
        ax.scatter(part["x1"], part["x2"], marker=marker, color="black", s=30,
                   label="y = +1 (x1 > x2)" if sign > 0 else "y = -1")
    t = np.linspace(0, 1, 2)
    for r in table.itertuples():
        w = reps[r.run_id].iloc[0]
        # w1 x1 + w2 x2 = 0  ->  x2 = -(w1 / w2) x1
        ax.plot(t, -(w["w1"] / w["w2"]) * t, color=colors[r.run_id], linewidth=2,
                label=f"{r.loss}: w = ({w['w1']:.2f}, {w['w2']:.2f}),\n"
                      f"{'converged' if w['converged'] else 'not converged'} in {int(w['epochs'])} epochs")
    # on top of the learned lines, which lie close to it
    ax.plot(t, t, color="black", linewidth=1.2, linestyle="--", zorder=4, label="true line x1 = x2")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_anchor("W")  # the square plot at the left, its legend right of it
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.set_title("Training set 0 and the learned lines w . x = 0 (no bias)", fontsize=10)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.04, 1.0), borderaxespad=0)
    paths.append(save_figure(fig, out_dir / "decision_lines.png"))

    fig, ax = plt.subplots(figsize=(6.4, 4.4))  # 2. test accuracy
    bins = np.linspace(min(rep["test_acc"].min() for rep in reps.values()), 1.0, 40)
    for r in table.itertuples():
        ax.hist(reps[r.run_id]["test_acc"], bins=bins, histtype="step", linewidth=1.8, color=colors[r.run_id],
                label=f"{r.loss}: {r.acc_mean:.4f} ± {r.acc_std:.4f}")
    ax.set_xlabel(f"test accuracy ({int(runs['n_test'].iloc[0])} shared test points)")
    ax.set_ylabel("training sets")
    ax.set_yscale("log")
    ax.set_title(f"Test accuracy over {int(table['repetitions'].iloc[0])} training sets of "
                 f"{int(runs['n_train'].iloc[0])} points (mean ± std)", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    paths.append(save_figure(fig, out_dir / "accuracy.png"))

    test = trial_artifact(uri, table["run_id"].iloc[0], "test_set.csv")  # 3. disagreement per test point
    dis = {r.run_id: disagreement(trial_artifact(uri, r.run_id, "predictions.npy")) for r in table.itertuples()}
    fig, axes = plt.subplots(1, len(table) + 1, figsize=(4.6 * (len(table) + 1), 4.4))
    vmax = 0.5  # min(p, 1 - p) is at most 1/2
    for ax, r in zip(axes, table.itertuples()):
        order = np.argsort(dis[r.run_id])  # the unstable points on top
        sc = ax.scatter(test["x1"].to_numpy()[order], test["x2"].to_numpy()[order], c=dis[r.run_id][order], s=8,
                        cmap="viridis", vmin=0, vmax=vmax)
        ax.plot(t, t, color="red", linewidth=0.8)
        ax.set_aspect("equal")
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        ax.set_title(f"{r.loss}: mean {r.disagreement:.4f}, {r.unstable_points:.1%} points > 5%", fontsize=8)
    fig.colorbar(sc, ax=axes[len(table) - 1], fraction=0.046, pad=0.04, label="disagreement with the majority")
    ax = axes[-1]
    bins = np.linspace(0, 0.5, 26)
    for r in table.itertuples():
        ax.hist(dis[r.run_id], bins=bins, histtype="step", linewidth=1.8, color=colors[r.run_id], label=r.loss)
    ax.set_yscale("log")
    ax.set_xlabel("disagreement with the majority")
    ax.set_ylabel("test points")
    ax.set_title("Distribution over the test points", fontsize=8)
    ax.legend(fontsize=7)
    paths.append(save_figure(fig, out_dir / "disagreement.png"))

    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.4))  # 4. directions
    for r in table.itertuples():
        rep = reps[r.run_id]
        axes[0].hist(rep["angle_deg"] + 45, bins=60, histtype="step", linewidth=1.6, color=colors[r.run_id],
                     label=f"{r.loss}: std {r.angle_std_deg:.2f}°")
        axes[1].hist(np.clip((rep["angle_deg"] - rep["maxmargin_angle_deg"]).abs(), 1e-3, None),
                     bins=np.logspace(-3, 2, 50), histtype="step", linewidth=1.6, color=colors[r.run_id],
                     label=f"{r.loss}: mean {r.angle_maxmargin_deg:.3f}°")
    axes[0].set_xlabel("angle of w to the true normal (1, -1), degrees\n ")  # two lines, as on the right
    axes[1].set_xlabel("|angle of w - angle of the max-margin normal|, degrees\n"
                       "(log scale; below 1e-3 counted at 1e-3)")
    axes[1].set_xscale("log")
    for ax in axes:
        ax.set_ylabel("training sets")
        ax.legend(fontsize=8)
    fig.suptitle("Direction of the learned w", fontsize=10)
    paths.append(save_figure(fig, out_dir / "angles.png"))
    return paths


def summary(runs: pd.DataFrame) -> str:
    table = loss_table(runs)
    if table.empty:
        return "no finished trials"
    lines = [f"{'loss':<17} {'lr':>4} {'test acc (mean ± std)':>22} {'disagree':>8} {'>5% pts':>7} {'converged':>9} "
             f"{'epochs':>7} {'angle to max-margin':>19} {'geom. margin':>12}"]
    for r in table.itertuples():
        lines.append(f"{r.loss:<17} {r.lr:>4g} {r.acc_mean:>13.4f} ± {r.acc_std:.4f} {r.disagreement:>8.4f} "
                     f"{r.unstable_points:>7.1%} {r.converged:>9.1%} {r.epochs_mean:>7.1f} "
                     f"{r.angle_maxmargin_deg:>18.3f}° {r.geometric_margin:>12.4f}")
    if {0.0, 1.0} <= set(table["margin"].astype(float)):
        p, h = (table[table["margin"] == m].iloc[0] for m in (0.0, 1.0))
        steadier = "hinge" if h["disagreement"] < p["disagreement"] else "perceptron"
        lines.append(
            f"more stable: {steadier} (mean disagreement with the majority {h['disagreement']:.4f} hinge vs "
            f"{p['disagreement']:.4f} perceptron; test-accuracy std {h['acc_std']:.4f} vs {p['acc_std']:.4f}). "
            f"Why: the perceptron stops at the first w that separates the sample; the hinge keeps pushing until "
            f"every point has y w.x >= 1, towards the max-margin direction (mean angle to it "
            f"{h['angle_maxmargin_deg']:.3f}° hinge vs {p['angle_maxmargin_deg']:.3f}° perceptron).")
    return "\n".join(lines)
