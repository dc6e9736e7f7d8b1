"""Figures and summary of the bias-variance study, from its MLflow records alone.

    python -m analysis bias_variance [--parent-run ID] [--results-dir DIR]

1. illustration.png: the 20 points, the true f(x) = x + sin(1.5x) and the fits of degree 1, 3 and 10 (the
   runs of those degrees; artifacts illustration.csv and fits.csv), each labelled with its training MSE,
   its expected test MSE and the verdict (under-fits: bias^2 > variance; over-fits: variance > bias^2,
   from the 100-set experiment at that degree, see `verdicts`);
2. bias_variance.png: bias^2, variance and test MSE vs degree on the fixed test set (left) and over
   x ~ U[0, 10] (right, the population values), log scale, the best degree (lowest test MSE) marked;
3. ridge.png: degree 10 without and with L2 (one bar group per ridge alpha recorded at degree 10): bias^2,
   variance, test MSE, on the fixed test set and over x ~ U[0, 10];
4. fits_spread.png: for degrees 1, 3, 10 and 15 (those present), 20 of the 100 fits, their mean and f,
   i.e. bias (mean vs f) and variance (spread) seen directly.
Tables: bias_variance.csv (one row per degree), ridge.csv (degree 10, per alpha and regularization).
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

METRIC = "test/mse"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "min"

ILLUSTRATED = (1, 3, 10)  # the degrees of the 20-point illustration
RIDGE_DEGREE = 10
TABLE, RIDGE_TABLE = "bias_variance.csv", "ridge.csv"
COLUMNS = {"bv/bias2": "bias2", "bv/variance": "variance", "test/mse": "test_mse", "test/noise": "test_noise",
           "test/cross": "test_cross", "train/mse": "train_mse", "grid/bias2": "grid_bias2",
           "grid/variance": "grid_variance", "grid/mse": "grid_mse", "illustration/train_mse": "ill_train_mse",
           "illustration/test_mse": "ill_test_mse"}


def _finished(runs: pd.DataFrame) -> pd.DataFrame:
    if runs.empty or "test/mse" not in runs:
        return runs.iloc[0:0]
    ok = runs[runs["test/mse"].notna()]
    return ok[ok["trial_status"] == "finished"] if "trial_status" in ok else ok


def degree_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per degree (the unregularized numbers do not depend on ridge_alpha: the first run of each)."""
    ok = _finished(runs)
    if ok.empty:
        return pd.DataFrame(columns=["degree", *COLUMNS.values(), "run_id"])
    table = ok.sort_values(["degree", "ridge_alpha"]).groupby("degree", as_index=False).first()
    table = table[["degree", *COLUMNS, "run_id"]].rename(columns=COLUMNS)
    table["degree"] = table["degree"].astype(int)
    return table.reset_index(drop=True)


def ridge_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Degree RIDGE_DEGREE: the unregularized row, then one row per ridge alpha recorded."""
    ok = _finished(runs)
    ok = ok[ok["degree"] == RIDGE_DEGREE] if len(ok) else ok
    cols = ["fit", "alpha", "bias2", "variance", "test_mse", "train_mse", "grid_bias2", "grid_variance", "grid_mse"]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    first = ok.iloc[0]
    rows = [{"fit": "none", "alpha": 0.0, **{k: first[m] for m, k in [
        ("bv/bias2", "bias2"), ("bv/variance", "variance"), ("test/mse", "test_mse"), ("train/mse", "train_mse"),
        ("grid/bias2", "grid_bias2"), ("grid/variance", "grid_variance"), ("grid/mse", "grid_mse")]}}]
    for _, run in ok.sort_values("ridge_alpha").drop_duplicates("ridge_alpha").iterrows():
        rows.append({"fit": "ridge", "alpha": float(run["ridge_alpha"]), **{k: run[m] for m, k in [
            ("ridge/bias2", "bias2"), ("ridge/variance", "variance"), ("ridge/mse", "test_mse"),
            ("ridge/train_mse", "train_mse"), ("ridge/grid/bias2", "grid_bias2"),
            ("ridge/grid/variance", "grid_variance"), ("ridge/grid/mse", "grid_mse")]}})
    return pd.DataFrame(rows, columns=cols)


def verdicts(table: pd.DataFrame) -> dict[int, str]:
    """The illustrated degrees' verdicts from the 100-set experiment's population values: "under-fits" where
    bias^2 exceeds the variance (the error is systematic), "over-fits" where the variance exceeds bias^2
    (the fit follows the sample's noise)."""
    shown = table[table["degree"].isin(ILLUSTRATED)]
    return {int(r.degree): "under-fits" if r.grid_bias2 > r.grid_variance else "over-fits"
            for r in shown.itertuples()}


def _best(table: pd.DataFrame, column: str) -> pd.Series:
    return table.loc[table[column].idxmin()]


def figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table, ridge = degree_table(runs), ridge_table(runs)
    table.drop(columns="run_id").to_csv(out_dir / TABLE, index=False)
    ridge.to_csv(out_dir / RIDGE_TABLE, index=False)
    uri = runs.attrs.get("tracking_uri")
    noise = float(runs["noise_var"].iloc[0]) if "noise_var" in runs and len(runs) else 0.3
    paths = []
    if table.empty:
        return paths

    if uri:  # 1. the 20-point illustration
        fig, ax = plt.subplots(figsize=(7.0, 4.6))
        verdict = verdicts(table)
        first = True
        for row in table[table["degree"].isin(ILLUSTRATED)].itertuples():
            fits = trial_artifact(uri, row.run_id, "fits.csv")
            if first:
                points = trial_artifact(uri, row.run_id, "illustration.csv")
                ax.scatter(points["x"], points["y"], color="black", s=22, zorder=5, label=f"{len(points)} points")
                ax.plot(fits["x"], fits["f"], color="black", linewidth=2, label="true f(x) = x + sin(1.5x)")
                first = False
            ax.plot(fits["x"], fits["illustration"], linewidth=1.6,
                    label=f"degree {row.degree}: train MSE {row.ill_train_mse:.3f}, expected test MSE "
                          f"{row.ill_test_mse:.3g} ({verdict[row.degree]})")
        ax.set_ylim(-2, 13)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title(f"One data set, polynomial fits (noise variance {noise:g})", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
        ax.grid(True, alpha=0.3)
        paths.append(save_figure(fig, out_dir / "illustration.png"))

    # 2. bias^2, variance, MSE vs degree
    fig, axes = plt.subplots(1, 2, figsize=(12.0, 4.6))
    n_test = int(runs["n_test"].iloc[0]) if "n_test" in runs else 0
    for ax, (prefix, where) in zip(axes, [("", f"the fixed test set ({n_test} points)"),
                                          ("grid_", "x ~ U[0, 10] (population values, dense grid)")]):
        mse = f"{prefix}mse" if prefix else "test_mse"
        ax.plot(table["degree"], table[f"{prefix}bias2"], "o-", label="bias$^2$")
        ax.plot(table["degree"], table[f"{prefix}variance"], "s-", label="variance")
        ax.plot(table["degree"], table[mse], "^-", color="black", label="test MSE")
        ax.plot(table["degree"], table[f"{prefix}bias2"] + table[f"{prefix}variance"] + noise, ":", color="gray",
                label=f"bias$^2$ + variance + {noise:g}")
        ax.axhline(noise, color="gray", linewidth=0.8, linestyle="--", label=f"noise variance {noise:g}")
        best = _best(table, mse)
        ax.plot([best["degree"]], [best[mse]], marker="*", color="red", markersize=16, linestyle="none",
                label=f"best degree {int(best['degree'])}: MSE {best[mse]:.3f}")
        ax.set_yscale("log")
        ax.set_xticks(table["degree"])
        ax.set_xlabel("polynomial degree")
        ax.set_title(f"Over {where}", fontsize=9)
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=7)
    n_sets = int(runs["n_sets"].iloc[0]) if "n_sets" in runs else 0
    fig.suptitle(f"Bias-variance over {n_sets} training sets of {int(runs['n_train'].iloc[0])} points", fontsize=10)
    paths.append(save_figure(fig, out_dir / "bias_variance.png"))

    if len(ridge):  # 3. degree 10, with and without L2
        fig, axes = plt.subplots(1, 2, figsize=(12.0, 4.4))
        labels = ["none" if r.fit == "none" else f"ridge α={r.alpha:g}" for r in ridge.itertuples()]
        x = np.arange(len(ridge))
        for ax, (prefix, where) in zip(axes, [("", f"fixed test set ({n_test} points)"), ("grid_", "x ~ U[0, 10]")]):
            mse = f"{prefix}mse" if prefix else "test_mse"
            for i, (col, name) in enumerate([(f"{prefix}bias2", "bias$^2$"), (f"{prefix}variance", "variance"),
                                             (mse, "test MSE")]):
                bars = ax.bar(x + (i - 1) * 0.27, ridge[col], width=0.27, label=name)
                ax.bar_label(bars, fmt="%.3g", fontsize=6)
            ax.set_xticks(x, labels, fontsize=7)
            ax.set_yscale("log")
            ax.set_title(f"Degree {RIDGE_DEGREE}, with and without L2: {where}", fontsize=9)
            ax.legend(fontsize=7)
            ax.grid(True, alpha=0.3, axis="y")
        paths.append(save_figure(fig, out_dir / "ridge.png"))

    if uri:  # 4. the fits themselves
        shown = table[table["degree"].isin((1, 3, 10, 15))]
        fig, axes = plt.subplots(1, len(shown), figsize=(4.0 * len(shown), 3.8), squeeze=False, sharey=True)
        for ax, row in zip(axes[0], shown.itertuples()):
            fits = trial_artifact(uri, row.run_id, "fits.csv")
            for col in [c for c in fits.columns if c.startswith("fit_")]:
                ax.plot(fits["x"], fits[col], color="tab:blue", alpha=0.25, linewidth=0.8)
            ax.plot(fits["x"], fits["mean"], color="tab:red", linewidth=2, label="mean of the fits")
            ax.plot(fits["x"], fits["f"], color="black", linewidth=1.5, linestyle="--", label="f")
            ax.set_ylim(-2, 13)
            ax.set_title(f"degree {row.degree}: grid bias$^2$ {row.grid_bias2:.3g}, var {row.grid_variance:.3g}",
                         fontsize=8)
            ax.set_xlabel("x")
            ax.grid(True, alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.suptitle("20 of the fits (blue), their mean (red) and f (dashed)", fontsize=9)
        paths.append(save_figure(fig, out_dir / "fits_spread.png"))
    return paths


def summary(runs: pd.DataFrame) -> str:
    table, ridge = degree_table(runs), ridge_table(runs)
    if table.empty:
        return "no finished trials"
    n_test = int(runs["n_test"].iloc[0])
    lines = [f"per degree: bias^2, variance, test MSE on the fixed test set ({n_test} points); the same over "
             "x ~ U[0, 10] (grid)",
             f"  {'degree':>6} {'bias2':>8} {'variance':>9} {'test MSE':>9} {'b2+v+noise':>10}   "
             f"{'grid bias2':>10} {'grid var':>10} {'grid MSE':>10} {'train MSE':>9}"]
    noise = float(runs["noise_var"].iloc[0])
    for r in table.itertuples():
        lines.append(f"  {r.degree:>6} {r.bias2:>8.4f} {r.variance:>9.4g} {r.test_mse:>9.4g} "
                     f"{r.bias2 + r.variance + noise:>10.4g}   {r.grid_bias2:>10.4g} {r.grid_variance:>10.4g} "
                     f"{r.grid_mse:>10.4g} {r.train_mse:>9.4f}")
    best, best_grid = _best(table, "test_mse"), _best(table, "grid_mse")
    lines.append(f"best degree on the fixed test set: {int(best['degree'])} (test MSE {best['test_mse']:.4f}); "
                 f"over x ~ U[0, 10]: {int(best_grid['degree'])} (expected test MSE {best_grid['grid_mse']:.4f})")
    verdict = verdicts(table)
    if verdict:
        ill = table.set_index("degree")
        lines.append("20-point illustration: " + "; ".join(
            f"degree {d} {v} (train MSE {ill.loc[d, 'ill_train_mse']:.3f}, expected test MSE "
            f"{ill.loc[d, 'ill_test_mse']:.3g})" for d, v in sorted(verdict.items())))
    for r in ridge.itertuples():
        name = "degree 10 unregularized" if r.fit == "none" else f"degree 10 ridge alpha={r.alpha:g}"
        lines.append(f"{name:<32} test set: bias^2 {r.bias2:.4f} variance {r.variance:.4f} MSE {r.test_mse:.4f}; "
                     f"grid: bias^2 {r.grid_bias2:.4g} variance {r.grid_variance:.4g} MSE {r.grid_mse:.4g}")
    return "\n".join(lines)
