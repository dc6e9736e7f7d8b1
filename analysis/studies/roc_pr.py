"""Figures and summary of the ROC / PR / PR-gain study, from its MLflow records alone.

    python -m analysis roc_pr [--parent-run ID] [--results-dir DIR]

1. roc.png: ROC curves (FPR, TPR) of every classifier over its operating points (linear interpolation is right
   in ROC space), the random classifiers' diagonal and the all-positive classifier at (1, 1);
2. pr.png: PR curves as steps (precision at recall R_k held over (R_{k-1}, R_k], the curve whose area is the
   average precision; Davis & Goadrich 2006: linear interpolation between PR points is wrong), the
   all-positive classifier at (recall 1, precision pi) and the baseline precision = pi;
3. prg.png: precision-recall-gain curves (Flach & Kull 2015) over recall gain in [0, 1] (trainables/studies/roc_pr.py:
   crossing points added, area by the trapezoid rule in PRG space), the all-positive classifier at (1, 0).
The table roc_pr.csv holds AUROC, AUPR (average precision), AUPRG and the trapezoid AUPR per classifier.
Curves come from each trial's points.csv and prg.csv artifacts.
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

METRIC = "test/auprg"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "max"

TABLE = "roc_pr.csv"
COLORS = {"adaboost": "tab:orange", "logistic": "tab:blue"}
NAMES = {"adaboost": "AdaBoost", "logistic": "logistic regression"}
REFERENCE = ("Davis & Goadrich (ICML 2006): ROC dominance <=> PR dominance, PR points must not be joined linearly "
             "(AUPR here = average precision); Flach & Kull (NIPS 2015): PRG curve, AUPRG over recall gain [0, 1]")


def area_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per finished trial: classifier, dataset, positive class, pi, n_test, AUROC, AUPR, AUPRG,
    AUPR by the trapezoid (wrong, for contrast), run_id."""
    cols = ["classifier", "dataset", "positive_class", "seed", "pi", "n_test", "auroc", "aupr", "auprg",
            "aupr_trapezoid", "run_id"]
    if runs.empty or "test/auprg" not in runs:
        return pd.DataFrame(columns=cols)
    ok = runs[runs["test/auprg"].notna()]
    if "trial_status" in ok:
        ok = ok[ok["trial_status"] == "finished"]
    table = pd.DataFrame({
        "classifier": ok["classifier"].astype(str), "dataset": ok["dataset"].astype(str),
        "positive_class": ok["positive_class"].astype(str) if "positive_class" in ok else "",
        "seed": ok["seed"].astype(int), "pi": ok["test/pi"], "n_test": ok["data/n_test"].astype(int),
        "auroc": ok["test/auroc"], "aupr": ok["test/aupr"], "auprg": ok["test/auprg"],
        "aupr_trapezoid": ok["test/aupr_trapezoid"], "run_id": ok["run_id"]})
    return table[cols].sort_values(["dataset", "classifier", "seed"]).reset_index(drop=True)


def _label(row) -> str:
    name = NAMES.get(row.classifier, row.classifier)
    return name if row.seed == 0 else f"{name} (seed {row.seed})"


def figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = area_table(runs)
    table.drop(columns="run_id").to_csv(out_dir / TABLE, index=False)
    uri = runs.attrs.get("tracking_uri")
    if not uri or table.empty:
        return []
    curves = {row.run_id: (trial_artifact(uri, row.run_id, "points.csv"), trial_artifact(uri, row.run_id, "prg.csv"))
              for row in table.itertuples()}
    first = table.iloc[0]
    what = f"{first.dataset}, positive = {first.positive_class}, test set n = {first.n_test}, pi = {first.pi:.3f}"
    paths = []

    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    for row in table.itertuples():
        pts = curves[row.run_id][0]
        ax.plot(pts["fpr"], pts["tpr"], "-", color=COLORS.get(row.classifier), linewidth=1.6,
                label=f"{_label(row)}: AUROC {row.auroc:.4f}")
    ax.plot([0, 1], [0, 1], ":", color="gray", label="random classifiers (diagonal)")
    ax.plot([1], [1], "s", color="black", markersize=8, label="all-positive classifier (1, 1)")
    ax.set(xlabel="false positive rate", ylabel="true positive rate (recall)", xlim=(-0.02, 1.02), ylim=(-0.02, 1.03))
    ax.set_title(f"ROC curves\n{what}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(True, alpha=0.3)
    paths.append(save_figure(fig, out_dir / "roc.png"))

    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    for row in table.itertuples():
        pts = curves[row.run_id][0].iloc[1:]  # the origin has no precision
        # average precision's curve: precision P_k over recall (R_{k-1}, R_k]
        recall = np.r_[0.0, pts["recall"].to_numpy()]
        precision = np.r_[pts["precision"].iloc[0], pts["precision"].to_numpy()]
        ax.step(recall, precision, where="pre", color=COLORS.get(row.classifier), linewidth=1.6,
                label=f"{_label(row)}: AUPR (average precision) {row.aupr:.4f}")
    pi = float(table["pi"].iloc[0])
    ax.axhline(pi, linestyle=":", color="gray", label=f"baseline precision = pi = {pi:.3f}")
    ax.plot([1], [pi], "s", color="black", markersize=8, label="all-positive classifier (1, pi)")
    ax.set(xlabel="recall", ylabel="precision", xlim=(-0.02, 1.02), ylim=(0, 1.03))
    ax.set_title(f"Precision-recall curves (steps, not linear interpolation)\n{what}", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(True, alpha=0.3)
    paths.append(save_figure(fig, out_dir / "pr.png"))

    fig, ax = plt.subplots(figsize=(5.6, 5.2))
    for row in table.itertuples():
        prg = curves[row.run_id][1]
        ax.plot(prg["recall_gain"], prg["precision_gain"], "-", color=COLORS.get(row.classifier), linewidth=1.6,
                label=f"{_label(row)}: AUPRG {row.auprg:.4f}")
        crossing = prg[prg["crossing"] == 1]
        ax.plot(crossing["recall_gain"], crossing["precision_gain"], "o", mfc="none", color=COLORS.get(row.classifier),
                markersize=6)
    ax.plot([1], [0], "s", color="black", markersize=8, label="all-positive classifier (1, 0)")
    ax.plot([0, 1, 1, 0, 0], [0, 0, 1, 1, 0], "-", color="gray", linewidth=0.8)
    ax.set(xlabel="recall gain  (rec - pi) / ((1 - pi) rec)", ylabel="precision gain  (prec - pi) / ((1 - pi) prec)",
           xlim=(-0.03, 1.03), ylim=(min(-0.03, float(min(c[1]["precision_gain"].min() for c in curves.values()))),
                                     1.03))
    ax.set_title(f"Precision-recall-gain curves (open circles: added crossings)\n{what}", fontsize=9)
    ax.legend(fontsize=7, loc="lower left")
    ax.grid(True, alpha=0.3)
    paths.append(save_figure(fig, out_dir / "prg.png"))
    return paths


def summary(runs: pd.DataFrame) -> str:
    table = area_table(runs)
    if table.empty:
        return "no finished trials"
    first = table.iloc[0]
    lines = [f"{first.dataset}: positive class {first.positive_class!r}, test set of {first.n_test}, pi = {first.pi:.4f}",
             f"  {'classifier':<20} {'AUROC':>7} {'AUPR(AP)':>9} {'AUPRG':>7}   {'AUPR trapezoid (wrong)':>22}"]
    for r in table.itertuples():
        lines.append(f"  {_label(r):<20} {r.auroc:>7.4f} {r.aupr:>9.4f} {r.auprg:>7.4f}   {r.aupr_trapezoid:>22.4f}")
    lines.append(REFERENCE)
    return "\n".join(lines)
