"""Four figures that explain any sweep, drawn from its MLflow records alone (no study code needed).

    >>> from analysis.records import load_sweep
    >>> from analysis.overview import draw_overview, overview_notes
    >>> draw_overview(load_sweep("depth_width"), "test/rmse", "min", "results/depth_width")   # -> [paths]
    >>> overview_notes(sweep, "test/rmse", "min")     # why a figure was not drawn, one sentence each

Every sweep draws them at its end (analysis/report.py `render`), and `python -m analysis STUDY` redraws them:

- `overview_parallel.png`: parallel coordinates, one line per trial. An axis per swept parameter (the keys of
  the parent run's `space.*` params and `space.points`, those whose values varied), then the study's metric;
  lines coloured by the metric (brightest = best). Strings (model names, "256-128-64") sit on evenly spaced
  ticks, every one labelled (the figure grows to fit them) up to `MAX_LABELS` (40); with more, the best 40 that
  fit are labelled and the axis name says so. Numbers: a grid axis of up to 12 values labels each value,
  otherwise round values; integer parameters get integer ticks; positive numbers spanning more than two
  decades are drawn on a log axis ("(log)" in the label). Trials without a finite metric (diverged, error) are
  grey dashed lines ending below the metric axis.
- `overview_importance.png`: how much each swept parameter explains the metric, by Optuna's PED-ANOVA
  evaluator (`optuna.importance.PedAnovaImportanceEvaluator`, Watanabe et al. 2023: a few ms for hundreds of
  trials, unlike fANOVA's random forest) on an in-memory Optuna study of the trials with a finite metric
  (finished, and stopped by ASHA at the epoch they stopped). Only drawn with two or more swept parameters and
  at least `MIN_TRIALS` (4) such trials with different values: otherwise a sentence says why
  (`importance_note`, shown in the HTML report) and there is no figure.
- `overview_progress.png`: the best metric so far against the trial number (trials in order of their start)
  and against the training time spent (sum of the trials' `time/train_s`, or another `time/*` total, else
  each run's wall time), one line per (search, scheduler) of the study in the store: the latest sweep of each,
  so an optuna and a random sweep of one study compare in one figure.
- `overview_pareto.png`: the metric against each finished trial's cost, with the Pareto front named
  (analysis/pareto.py); drawn when at least two finished trials have a metric and a cost.

Each figure is drawn on its own: one that fails prints one warning line and the others are still drawn.
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.ticker import MaxNLocator
from mlflow.tracking import MlflowClient

from analysis.costs import INF, TIME_METRICS
from analysis.plotting import plt, save_figure
from analysis.records import PARENT_TAG, Sweep

MIN_TRIALS = 4  # fewer trials with a finite metric than this: no importances (a note instead)
FIGURES = ("overview_parallel.png", "overview_importance.png", "overview_progress.png", "overview_pareto.png")


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


MAX_LABELS = 40  # a categorical axis with more values labels the best this many (and says so)
MAX_VALUE_TICKS = 12  # a numeric axis with at most this many distinct values labels each of them
MIN_TICK_GAP = 0.035  # labels closer than this (share of the axis height) are thinned out


def _number_text(value: float, integer: bool, step: float | None = None) -> str:
    """A tick label: an integer, or with as many decimals as ticks `step` apart need (else 3 significant digits)."""
    if integer:
        return f"{int(round(value))}"
    if step and 1e-4 <= abs(step) and abs(value) < 1e6:
        return f"{value:.{max(0, math.ceil(-math.log10(abs(step)) - 1e-9))}f}"
    return f"{value:.3g}"


def _thin(ticks: list[tuple[float, str]], gap: float = MIN_TICK_GAP) -> list[tuple[float, str]]:
    """Keep the ticks that print clear of those kept before them (`gap` apart), in the order given (most
    wanted first); returned by height."""
    kept: list[tuple[float, str]] = []
    for y, text in ticks:
        if all(abs(y - other) >= gap for other, _ in kept):
            kept.append((y, text))
    return sorted(kept)


class Axis:
    """One swept parameter: categorical (evenly spaced labels) or numeric (linear or log; integer parameters get
    integer ticks)."""

    def __init__(self, key: str, values: pd.Series, declared: list | None):
        self.key = key
        present = values.dropna()
        self.categorical = (not all(_is_number(v) for v in present)
                            or (declared is not None and not all(_is_number(v) for v in declared)))
        self.labelled: list[str] | None = None  # the categories labelled, when not all of them are (`label_best`)
        if self.categorical:
            order = [_label(v) for v in (declared or [])]
            seen = sorted({_label(v) for v in present} - set(order))
            self.categories = [c for c in dict.fromkeys(order + seen) if c in {_label(v) for v in present}]
            self.log = False
        else:
            numbers = present.astype(float)
            self.low, self.high = float(numbers.min()), float(numbers.max())
            self.distinct = sorted(set(numbers))
            self.integer = bool((numbers == numbers.round()).all()) and (
                declared is None or all(isinstance(v, (int, np.integer)) for v in declared))
            self.log = self.low > 0 and self.high / self.low > 100

    def label_best(self, column: pd.Series, metric: pd.Series, mode: str) -> None:
        """With more than MAX_LABELS categories, label only the MAX_LABELS whose best trial is best."""
        if not self.categorical or len(self.categories) <= MAX_LABELS:
            return
        best = metric.groupby(self.values(column)).agg("max" if mode == "max" else "min")
        best = best.dropna().sort_values(ascending=(mode != "max"))
        self.labelled = list(best.index[:MAX_LABELS])

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
        return self._scale(self.values(column).to_numpy(dtype=float))

    def _scale(self, x: np.ndarray) -> np.ndarray:
        low, high = (math.log10(self.low), math.log10(self.high)) if self.log else (self.low, self.high)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.log10(x) if self.log else x
        return (x - low) / (high - low) if high > low else np.full_like(x, 0.5)

    def ticks(self, discrete: bool = True, gap: float = MIN_TICK_GAP) -> list[tuple[float, str]]:
        """(height, label) of each tick, labels at least `gap` apart. Categorical: every category, or with more
        than MAX_LABELS the best ones (`label_best`) that fit. Numeric: each distinct value when `discrete` and
        there are at most MAX_VALUE_TICKS of them (a grid axis); else decades (log) or about five round values,
        integers for an integer parameter."""
        if self.categorical:
            span = max(len(self.categories) - 1, 1)
            if self.labelled is None:
                return [(i / span, c) for i, c in enumerate(self.categories)]
            index = {c: i for i, c in enumerate(self.categories)}
            kept = _thin([(index[c] / span, c) for c in self.labelled], gap)
            self.labelled = [c for _, c in kept]
            return kept
        if self.high == self.low:  # one value: drawn mid-axis (position)
            return [(0.5, _number_text(self.low, self.integer))]
        if discrete and len(self.distinct) <= MAX_VALUE_TICKS:
            values = np.array(self.distinct)
        elif self.log:
            decades = np.arange(math.ceil(math.log10(self.low)), math.floor(math.log10(self.high)) + 1)
            values = 10.0 ** decades
            if not self.integer:
                return _thin([(float(y), f"1e{d}") for y, d in zip(self._scale(values), decades)], gap)
        else:
            locator = MaxNLocator(nbins=5, integer=self.integer)
            round_values = locator.tick_values(self.low, self.high)
            step = float(round_values[1] - round_values[0]) if len(round_values) > 1 else None
            values = np.array([v for v in round_values if self.low <= v <= self.high])
            return _thin([(float(y), _number_text(v, self.integer, step))
                          for y, v in zip(self._scale(values), values)], gap)
        return _thin([(float(y), _number_text(v, self.integer)) for y, v in zip(self._scale(values), values)], gap)

    @property
    def title(self) -> str:
        title = self.key + (" (log)" if self.log else "")
        if self.labelled is not None:
            title += f"\n(best {len(self.labelled)} of {len(self.categories)} labelled)"
        return title


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

LABEL_HEIGHT_IN = 0.13  # height one 7-point tick label needs on an axis, inches
PARALLEL_HEIGHT_IN = 4.8  # the figure's height when its labels fit in it
PARALLEL_MARGIN_IN = 1.4  # title, axis names and the legend below


def parallel_layout(labels: int) -> tuple[float, float]:
    """(figure height in inches, one label's height as a share of the axis) for a categorical axis of `labels`
    evenly spaced labels: the figure grows until they fit."""
    span = 1.17  # the y range drawn: -0.12 .. 1.05
    height = max(PARALLEL_HEIGHT_IN, PARALLEL_MARGIN_IN + span * LABEL_HEIGHT_IN * max(labels - 1, 0))
    return height, LABEL_HEIGHT_IN * span / (height - PARALLEL_MARGIN_IN)


def draw_parallel(sweep: Sweep, metric: str, mode: str, path: Path) -> Path:
    runs = sweep.runs
    axes = swept_axes(sweep)
    value = _metric(runs, metric)
    for a in axes:
        a.label_best(runs[a.key], value, mode)
    labels = max([len(a.labelled if a.labelled is not None else a.categories) for a in axes if a.categorical],
                 default=0)
    height, gap = parallel_layout(labels)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.8 * (len(axes) + 1) + 1.5), height))
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
    for x, a in enumerate(axes):
        ax.axvline(x, color="black", lw=0.8)
        for y, text in a.ticks(discrete=True, gap=gap):
            ax.text(x - 0.03, y, text, ha="right", va="center", fontsize=7)
    if metric_axis:
        ax.axvline(len(axes), color="black", lw=0.8)
        for y, text in metric_axis.ticks(discrete=False, gap=gap):  # right of the axis: no line crosses there
            ax.text(len(axes) + 0.03, y, text, ha="left", va="center", fontsize=7)
    ax.set_xticks(xs)
    ax.set_xticklabels([a.title for a in axes] + [metric_axis.title if metric_axis else metric], fontsize=9)
    ax.set_yticks([])
    ax.set_ylim(-0.12, 1.05)
    ax.set_xlim(-0.6, len(axes) + 0.35)
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    return save_figure(fig, path)


def importance_note(sweep: Sweep, metric: str) -> str:
    """Why the sweep gets no importance figure, as one sentence; "" when it gets one (two or more swept
    parameters and at least MIN_TRIALS trials with different finite values of `metric`)."""
    axes = swept_axes(sweep)
    if len(axes) < 2:
        swept = (f"only one parameter ({axes[0].key}) was swept" if axes
                 else "no swept parameter varied between the trials")
        return f"No importance figure: {swept}, so there is nothing to rank; the parallel-coordinates figure shows it."
    value = _metric(sweep.runs, metric).dropna()
    if len(value) < MIN_TRIALS:
        return (f"No importance figure: only {len(value)} trial(s) with a finite {metric}, and importances need "
                f"{MIN_TRIALS} or more.")
    if value.nunique() < 2:
        return f"No importance figure: every trial has the same {metric} ({value.iloc[0]:.4g}), nothing to explain."
    return ""


def importances(sweep: Sweep, metric: str, mode: str) -> tuple[dict[str, float], str]:
    """Swept parameter -> importance for `metric` (summing to 1), and a note ("" when there are importances):
    `importance_note`, or why the trials could not be used."""
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    note = importance_note(sweep, metric)
    if note:
        return {}, note
    axes = swept_axes(sweep)
    value = _metric(sweep.runs, metric)
    runs = sweep.runs[value.notna()]
    value = value[value.notna()]
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
        return {}, (f"No importance figure: only {len(trials)} trial(s) with every swept parameter, and importances "
                    f"need {MIN_TRIALS} or more.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if mode == "max" else "minimize")
    study.add_trials(trials)
    found = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(), normalize=True)
    return {k: float(v) for k, v in found.items()}, ""


def draw_importance(sweep: Sweep, metric: str, mode: str, path: Path) -> Path | None:
    """The importance bars; None (no figure) when `importances` gives a note instead."""
    found, note = importances(sweep, metric, mode)
    if not found:
        return None
    fig, ax = plt.subplots(figsize=(6.0, 0.5 * max(len(found), 3) + 1.6))
    ax.set_title(f"Importance for {metric} ({mode}), PED-ANOVA")
    names = list(found)[::-1]  # largest on top
    ax.barh(names, [found[n] for n in names], color="tab:blue")
    for y, n in enumerate(names):
        ax.text(found[n], y, f" {found[n]:.2f}", va="center", fontsize=8)
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("importance (sums to 1)")
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


def overview_notes(sweep: Sweep, metric: str, mode: str) -> list[str]:
    """One sentence for each overview figure that a sweep does not get, saying why (the HTML report shows them;
    a caller may print them). Empty when every figure is drawn."""
    from analysis.pareto import front_of

    notes = [importance_note(sweep, metric), front_of(sweep, metric, mode).note]
    return [note[0].upper() + note[1:] for note in notes if note]


def draw_overview(sweep: Sweep, metric: str, mode: str, out_dir: str | Path) -> list[Path]:
    """Write the overview PNGs to `out_dir` and return their paths. A figure with nothing to say is not drawn
    (`overview_notes` says why, and an older copy of it in `out_dir` is removed, so the folder shows this
    sweep); a figure that fails is left out with one warning line."""
    from analysis.pareto import draw_pareto

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, draw in zip(FIGURES, (draw_parallel, draw_importance, draw_progress, draw_pareto)):
        try:
            path = draw(sweep, metric, mode, out_dir / name)
        except Exception as e:  # noqa: BLE001  (an overview must never fail a sweep)
            plt.close("all")
            print(f"warning: {name} not drawn: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
            continue
        if path is None:
            (out_dir / name).unlink(missing_ok=True)
        else:
            paths.append(path)
    return paths


__all__ = ["draw_overview", "overview_notes", "draw_parallel", "draw_importance", "draw_progress", "importances",
           "importance_note", "swept_axes", "compared_sweeps", "FIGURES", "MIN_TRIALS", "MAX_LABELS"]
