"""A test-only study on the platform's one-shot, artifact and analysis-only paths (run as a script by
tests/test_platform.py): each trial fits a line to noisy points once, reports once and hands its points
and residuals to its MLflow run; the `fit` preset trains nothing and fits the mean slope of the latest
sweep's trials, recorded on a parent run of its own.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.plotting import save_figure  # noqa: E402
from analysis.records import RecordsError, load_sweep, trial_artifact  # noqa: E402
from sweeps.runner import main  # noqa: E402
from sweeps.study import Analysis, Context, Hooks, Preset, Study, Trial, no_data  # noqa: E402

# This module is also the study's figures (Study.figures): its metric, figures and summary.
METRIC, MODE = "fit/rmse", "min"


@dataclass(frozen=True)
class FitConfig:
    slope: float = 2.0
    noise: float = 0.1
    n: int = 50
    seed: int = 0


def fit_once(cfg: FitConfig, data, session, device=None) -> None:
    rng = np.random.default_rng(cfg.seed)
    x = rng.uniform(-1, 1, cfg.n)
    y = cfg.slope * x + rng.normal(0, cfg.noise, cfg.n)
    slope, intercept = np.polyfit(x, y, 1)
    residuals = y - (slope * x + intercept)
    session.report({"fit/slope": slope, "fit/intercept": intercept, "fit/rmse": float(np.sqrt((residuals**2).mean())),
                    "lr": 0.5},  # a key without "/" is recorded too
                   1, artifacts={"residuals.npy": residuals, "data/points.csv": pd.DataFrame({"x": x, "y": y}),
                                 "fit.json": {"slope": slope}})


def figures(runs: pd.DataFrame, out_dir: Path) -> list[Path]:
    uri, parent = runs.attrs["tracking_uri"], runs.attrs["parent_run_id"]
    fig, ax = plt.subplots()
    if runs.empty:  # the analysis-only step: its fitted values are on the parent run
        slopes = trial_artifact(uri, parent, "fits/slopes.csv")
        ax.bar(range(len(slopes)), slopes["slope"])
        ax.set_xlabel("trial")
        ax.set_ylabel("fitted slope")
        return [save_figure(fig, Path(out_dir) / "slopes.png")]
    for run_id in runs["run_id"]:  # drawn from the trials' artifacts alone
        points = trial_artifact(uri, run_id, "data/points.csv")
        ax.scatter(points["x"], points["y"], s=4)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return [save_figure(fig, Path(out_dir) / "fit_points.png")]


def summary(runs: pd.DataFrame) -> str:
    return "analysis step" if runs.empty else f"slopes: {', '.join(f'{v:.3f}' for v in runs['fit/slope'])}"


def analyze(base: dict, context: Context) -> Analysis:
    source = context.sweep("toy_fit", with_tag="ray_experiment_path")  # a sweep that trained something
    if source is None:
        raise RecordsError("no toy_fit sweep to fit; run its trials first")
    runs = load_sweep("toy_fit", source.info.run_id, context.tracking_uri).runs
    slopes = runs[["run_id", "fit/slope"]].rename(columns={"fit/slope": "slope"})
    return Analysis(values={"mean_slope": float(slopes["slope"].mean()), "trials": len(slopes), "method": "mean"},
                    artifacts={"fits/slopes.csv": slopes}, source_run=source.info.run_id)


STUDY = Study(
    name="toy_fit",
    doc="test-only: one-shot line fits with artifacts",
    config=FitConfig,
    trial=Trial(run=fit_once, data=no_data, epochs=None),
    presets={"smoke": Preset("two fits", space={"slope": [1.0, 3.0]}),
             "fit": Preset("the mean slope of the latest sweep (trains nothing)", analysis_only=True)},
    default_preset="smoke",
    hooks=Hooks(analyze=analyze, reads="toy_fit"),
    figures="toy_fit_study",
)

if __name__ == "__main__":
    sys.exit(main(STUDY))
