"""Three figures that explain any sweep, drawn from its MLflow records alone (no study code needed).

    >>> from analysis.records import load_sweep
    >>> from analysis.overview import draw_overview
    >>> draw_overview(load_sweep("depth_width"), "test/rmse", "min", "results/depth_width")

Every sweep draws them at its end (analysis/report.py `render`), and `python -m analysis STUDY` redraws them:

- `overview_parallel.png`: parallel coordinates, one line per trial. An axis per swept parameter (the keys of
  the parent run's `space.*` params and `space.points`, those whose values varied), then the study's metric;
  lines coloured by the metric (brightest = best). Strings (model names, "256-128-64") sit on evenly spaced
  ticks; positive numbers spanning more than two decades are drawn on a log axis ("(log)" in the label).
  Trials without a finite metric (diverged, error) are grey dashed lines ending below the metric axis.
- `overview_importance.png`: how much each swept parameter explains the metric, by Optuna's PED-ANOVA
  evaluator (`optuna.importance.PedAnovaImportanceEvaluator`, Watanabe et al. 2023: a few ms for hundreds of
  trials, unlike fANOVA's random forest) on an in-memory Optuna study of the trials with a finite metric
  (finished, and stopped by ASHA at the epoch they stopped). A single swept parameter gets importance 1.0 and
  a note; fewer than `MIN_TRIALS` (4) such trials, or all with the same value, give no bars and a note saying
  why.
- `overview_progress.png`: the best metric so far against the trial number (trials in order of their start)
  and against the training time spent (sum of the trials' `time/train_s`, or another `time/*` total, else
  each run's wall time), one line per (search, scheduler) of the study in the store: the latest sweep of each,
  so an optuna and a random sweep of one study compare in one figure.

Each figure is drawn on its own: one that fails prints one warning line and the others are still drawn.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from analysis.plotting import plt, save_figure
from analysis.records import PARENT_TAG, Sweep

MIN_TRIALS = 4  # fewer trials with a finite metric than this: no importances (a note instead)
TIME_METRICS = ("time/train_s", "time/total_s", "time/fit_s", "time/schedule_s")  # cumulative per-trial time
INF = 1e308  # MLflow's SQL store saves inf as the largest float: at least this is no finite value
FIGURES = ("overview_parallel.png", "overview_importance.png", "overview_progress.png")


# ---------------------------------------------------------------- the swept axes

def _declared(parent_params: dict[str, str]) -> dict[str, list | None]:
    """Swept key -> its declared values (a list: grid axis or choice) or None (a sampled domain)."""
    axes: dict[str, list | None] = {}
    for name, text in parent_params.items():
        if not name.startswith("space.") or name == "space.points":
            continue
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):  # a Ray Tune domain is stored as its repr
            value = None
        axes[name[len("space."):]] = list(value) if isinstance(value, (list, tuple)) else None
    try:
        points = json.loads(parent_params.get("space.points", "[]"))
    except ValueError:  # truncated on a very large grid: its keys are still in the trials' params
        points = []
    for point in points:
        for key, value in point.items():
            if axes.get(key) is not None or key not in axes:
                axes.setdefault(key, []).append(value)
    return axes


def _label(value) -> str:
    if isinstance(value, tuple):  # as the runner encodes it for Tune
        return "-".join(map(str, value)) if all(isinstance(v, int) for v in value) else ",".join(map(str, value))
    return str(value)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)


class Axis:
    """One swept parameter: categorical (evenly spaced labels) or numeric (linear or log)."""

    def __init__(self, key: str, values: pd.Series, declared: list | None):
        self.key = key
        present = values.dropna()
        self.categorical = (not all(_is_number(v) for v in present)
                            or (declared is not None and not all(_is_number(v) for v in declared)))
        if self.categorical:
            order = [_label(v) for v in (declared or [])]
            seen = sorted({_label(v) for v in present} - set(order))
            self.categories = [c for c in dict.fromkeys(order + seen) if c in {_label(v) for v in present}]
            self.log = False
        else:
            numbers = present.astype(float)
            self.low, self.high = float(numbers.min()), float(numbers.max())
            self.integer = bool((numbers == numbers.round()).all()) and (
                declared is None or all(isinstance(v, (int, np.integer)) for v in declared))
            self.log = self.low > 0 and self.high / self.low > 100

    def values(self, column: pd.Series) -> pd.Series:
        if self.categorical:
            return column.map(lambda v: _label(v) if not (isinstance(v, float) and math.isnan(v)) else None)
        return pd.to_numeric(column, errors="coerce")

    def position(self, column: pd.Series) -> np.ndarray:
        """Each value's height on the axis, in [0, 1]."""
        if self.categorical:
            index = {c: i for i, c in enumerate(self.categories)}
            span = max(len(self.categories) - 1, 1)
            return np.array([index[v] / span if v in index else np.nan for v in self.values(column)])
        x = self.values(column).to_numpy(dtype=float)
        low, high = (math.log10(self.low), math.log10(self.high)) if self.log else (self.low, self.high)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.log10(x) if self.log else x
        return (x - low) / (high - low) if high > low else np.full_like(x, 0.5)

    def ticks(self) -> list[tuple[float, str]]:
        if self.categorical:
            n = len(self.categories)
            step = max(1, math.ceil(n / 12))  # at most ~12 labels on one axis
            span = max(n - 1, 1)
            return [(i / span, self.categories[i]) for i in range(0, n, step)]
        if self.log:
            low, high = math.log10(self.low), math.log10(self.high)
            decades = range(math.ceil(low), math.floor(high) + 1)
            return [((d - low) / (high - low), f"1e{d}") for d in decades]
        if self.high == self.low:  # one value: drawn mid-axis (position)
            return [(0.5, f"{self.low:.3g}")]
        values = np.linspace(self.low, self.high, 5)
        span = self.high - self.low or 1.0
        return [((v - self.low) / span, f"{v:.3g}") for v in values]

    @property
    def title(self) -> str:
        return self.key + (" (log)" if self.log else "")


def swept_axes(sweep: Sweep) -> list[Axis]:
    """The parameters the sweep varied (declared in its parent run and with more than one value in its trials)."""
    runs = sweep.runs
    axes = []
    for key, declared in _declared(sweep.parent.data.params).items():
        if key not in runs or runs[key].dropna().map(_label).nunique() < 2:
            continue
        axes.append(Axis(key, runs[key], declared))
    return axes


def _metric(runs: pd.DataFrame, metric: str) -> pd.Series:
    if metric not in runs:
        return pd.Series(np.nan, index=runs.index)
    values = pd.to_numeric(runs[metric], errors="coerce").astype(float)
    return values.where(np.isfinite(values) & (values.abs() < INF))


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=10, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------- the figures

def draw_parallel(sweep: Sweep, metric: str, mode: str, path: Path) -> Path:
    runs = sweep.runs
    axes = swept_axes(sweep)
    value = _metric(runs, metric)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * (len(axes) + 1) + 1.5), 4.8))
    ax.set_title(f"{len(runs)} trials: swept parameters and {metric} ({mode})", fontsize=10)
    if not axes:
        _note(ax, "no swept parameter varied between the trials")
        return save_figure(fig, path)
    finite = value.notna().to_numpy()
    metric_axis = Axis(metric, value[finite], None) if finite.sum() >= 1 else None
    heights = [a.position(runs[a.key]) for a in axes]
    heights.append(metric_axis.position(value) if metric_axis else np.full(len(runs), np.nan))
    ys = np.column_stack(heights)
    xs = np.arange(len(axes) + 1)
    cmap = plt.get_cmap("viridis" if mode == "max" else "viridis_r")  # brightest = best
    if finite.any():
        vmin, vmax = float(value[finite].min()), float(value[finite].max())
        pad = 0.0 if vmax > vmin else (abs(vmin) * 0.05 or 1.0)  # one value: a readable colorbar around it
        norm = plt.Normalize(vmin - pad, vmax + pad)
        order = np.argsort(value.to_numpy() * (1 if mode == "max" else -1))  # best drawn last, on top
        for i in order:
            if finite[i]:
                ax.plot(xs, ys[i], color=cmap(norm(value.iloc[i])), lw=1.4, alpha=0.85)
        bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, pad=0.02)
        bar.set_label(metric)
    failed = np.flatnonzero(~finite)
    for n, i in enumerate(failed):
        y = ys[i].copy()
        y[-1] = -0.08  # below the metric axis: no value
        ax.plot(xs, y, color="0.55", ls="--", lw=1.0, label=f"no finite {metric} ({len(failed)})" if n == 0 else None)
    if len(failed):
        ax.legend(loc="upper left", bbox_to_anchor=(0, -0.12), fontsize=8, frameon=False)
    for x, a in enumerate(axes + ([metric_axis] if metric_axis else [])):
        ax.axvline(x, color="black", lw=0.8)
        for y, text in a.ticks():
            ax.text(x - 0.03, y, text, ha="right", va="center", fontsize=7)
    ax.set_xticks(xs)
    ax.set_xticklabels([a.title for a in axes] + [metric_axis.title if metric_axis else metric], fontsize=9)
    ax.set_yticks([])
    ax.set_ylim(-0.12, 1.05)
    ax.set_xlim(-0.6, len(axes) + 0.2)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    return save_figure(fig, path)


def importances(sweep: Sweep, metric: str, mode: str) -> tuple[dict[str, float], str]:
    """Swept parameter -> importance for `metric` (summing to 1), and a note ("" when the bars say it all)."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    axes = swept_axes(sweep)
    if not axes:
        return {}, "no swept parameter varied between the trials"
    value = _metric(sweep.runs, metric)
    runs = sweep.runs[value.notna()]
    value = value[value.notna()]
    if len(runs) < MIN_TRIALS:
        return {}, f"only {len(runs)} trial(s) with a finite {metric}: importances need {MIN_TRIALS} or more"
    if value.nunique() < 2:
        return {}, f"every trial has the same {metric} ({value.iloc[0]:.4g}): nothing to explain"
    if len(axes) == 1:
        return {axes[0].key: 1.0}, f"{axes[0].key} is the only swept parameter"
    distributions = {}
    for a in axes:
        if a.categorical:
            distributions[a.key] = CategoricalDistribution(a.categories)
        elif a.integer:
            distributions[a.key] = IntDistribution(int(a.low), int(a.high), log=a.log)
        else:
            distributions[a.key] = FloatDistribution(a.low, a.high, log=a.log)
    trials = []
    for (_, run), y in zip(runs.iterrows(), value):
        params = {}
        for a in axes:
            v = a.values(run[[a.key]]).iloc[0]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                break
            params[a.key] = v if a.categorical else (int(v) if a.integer else float(v))
        else:
            trials.append(optuna.trial.create_trial(params=params, distributions=distributions, value=float(y)))
    if len(trials) < MIN_TRIALS:
        return {}, f"only {len(trials)} trial(s) with every swept parameter: importances need {MIN_TRIALS} or more"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    study.add_trials(trials)
    found = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), normalize=True)
    return {k: float(v) for k, v in found.items()}, ""


def draw_importance(sweep: Sweep, metric: str, mode: str, path: Path) -> Path:
    found, note = importances(sweep, metric, mode)
    fig, ax = plt.subplots(figsize=(6.0, 0.5 * max(len(found), 3) + 1.6))
    ax.set_title(f"Importance for {metric} ({mode}), PED-ANOVA")
    if not found:
        _note(ax, note)
        return save_figure(fig, path)
    names = list(found)[::-1]  # largest on top
    ax.barh(names, [found[n] for n in names], color="tab:blue")
    for y, n in enumerate(names):
        ax.text(found[n], y, f" {found[n]:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("importance (sums to 1)")
    if note:
        ax.text(0.98, 0.02, note, ha="right", va="bottom", transform=ax.transAxes, fontsize=8, color="0.3")
    return save_figure(fig, path)


def _trials_in_order(client: MlflowClient, experiment_id: str, parent_id: str, metric: str) -> pd.DataFrame:
    """One row per trial of a sweep, by start time: its final metric (NaN if none) and its training seconds."""
    runs = client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'", max_results=50_000)
    rows = []
    for run in runs:
        m = run.data.metrics
        seconds = next((m[k] for k in TIME_METRICS if k in m and np.isfinite(m[k])), None)
        if seconds is None:
            end = run.info.end_time or run.info.start_time
            seconds = (end - run.info.start_time) / 1000
        value = m.get(metric, np.nan)
        rows.append({"start": run.info.start_time, "seconds": float(seconds),
                     "value": value if np.isfinite(value) and abs(value) < INF else np.nan})
    return pd.DataFrame(rows, columns=["start", "seconds", "value"]).sort_values("start", kind="stable")


def compared_sweeps(client: MlflowClient, sweep: Sweep) -> dict[str, str]:
    """(search, scheduler) label -> parent run ID: this sweep, and the latest sweep of each other kind."""
    experiment_id = sweep.parent.info.experiment_id
    parents = client.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = '1'",
                                 order_by=["attributes.start_time DESC"], max_results=1000)

    def label(run) -> str:
        tags = run.data.tags
        return f"{tags.get('search', '?')}, {tags.get('scheduler', '?')}"

    chosen = {label(sweep.parent): sweep.parent_run_id}
    for run in parents:
        if run.data.tags.get("analysis_only") == "1":
            continue
        chosen.setdefault(label(run), run.info.run_id)
    return chosen


def draw_progress(sweep: Sweep, metric: str, mode: str, path: Path) -> Path:
    client = MlflowClient(sweep.tracking_uri)
    best = np.fmax if mode == "max" else np.fmin
    fig, (by_trial, by_time) = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    drawn = 0
    for label, parent_id in compared_sweeps(client, sweep).items():
        trials = _trials_in_order(client, sweep.parent.info.experiment_id, parent_id, metric)
        if trials["value"].notna().sum() == 0:
            continue
        so_far = best.accumulate(trials["value"].to_numpy())
        this = " (this sweep)" if parent_id == sweep.parent_run_id else ""
        text = f"{label}{this}: {len(trials)} trials"
        line = by_trial.step(np.arange(1, len(trials) + 1), so_far, where="post", marker="o", ms=3, label=text)
        by_time.step(np.cumsum(trials["seconds"].to_numpy()), so_far, where="post", marker="o", ms=3,
                     color=line[0].get_color())
        drawn += 1
    if not drawn:
        for ax in (by_trial, by_time):
            _note(ax, f"no trial with a finite {metric}")
        return save_figure(fig, path)
    by_trial.set_xlabel("trial (in order of start)")
    by_trial.set_ylabel(f"best {metric} so far ({mode})")
    by_time.set_xlabel("training time spent (s, summed over trials)")
    by_trial.legend(fontsize=8, title="search, scheduler", title_fontsize=8)
    fig.suptitle(f"Best {metric} found so far")
    return save_figure(fig, path)


def draw_overview(sweep: Sweep, metric: str, mode: str, out_dir: str | Path) -> list[Path]:
    """Write the three overview PNGs to `out_dir` and return their paths (a figure that fails is left out,
    with one warning line)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in zip(FIGURES, (draw_parallel, draw_importance, draw_progress)):
        try:
            paths.append(draw(sweep, metric, mode, out_dir / name))
        except Exception as e:  # noqa: BLE001  (an overview must never fail a sweep)
            plt.close("all")
            print(f"warning: {name} not drawn: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    return paths


__all__ = ["draw_overview", "draw_parallel", "draw_importance", "draw_progress", "importances", "swept_axes", "compared_sweeps",
           "FIGURES", "MIN_TRIALS"]
