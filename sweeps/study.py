"""What a study declares: its config, search space, presets and figures.

A study script builds one `Study` and hands it to `sweeps.runner.main`; it
implements nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd


@dataclass(frozen=True)
class Preset:
    """One scale of a study: overrides of the base config and the search space.

    `space` maps a config key to the values to sweep: a list (grid axis for
    --search grid, a categorical choice for optuna/random) or a Ray Tune domain
    such as `tune.loguniform(1e-4, 1e-1)` (sampled for optuna/random).
    """

    description: str
    config: dict[str, Any] = field(default_factory=dict)
    space: dict[str, Any] = field(default_factory=dict)
    num_samples: int = 8  # trials for --search optuna/random
    # Grid points whose keys vary together (e.g. each mode with its own learning rates: {"mode": "finetune",
    # "lr": 0.01}, ...): --search grid runs each point once, times the other axes of `space` (Tune's
    # points_to_evaluate); optuna/random draw each of their keys as a choice of its values.
    points: tuple[dict[str, Any], ...] = ()
    asha_grace_period: int = 1  # epochs before ASHA may stop a trial
    # An analysis-only step: train nothing, run the study's `analyze` on records already in the store
    # (e.g. fit models to another study's sweep) and record what it returns on a parent run.
    analysis_only: bool = False


@dataclass(frozen=True)
class Context:
    """What a study's hooks may read: the tracking store, and the sweep `--from-run` names."""

    tracking_uri: str
    from_run: str | None = None  # a parent run ID: read this sweep instead of the latest one

    def sweep(self, study: str, *, with_tag: str | None = None, tags: dict[str, str] | None = None):
        """The parent run of the sweep of `study` to read: the one --from-run names if it is a sweep of `study`,
        else the latest one carrying `with_tag` and `tags`; None if there is none (analysis.records.find_sweep)."""
        from analysis.records import find_sweep, sweep_study

        if self.from_run:
            named = find_sweep(self.tracking_uri, study, self.from_run)
            if named is not None and sweep_study(self.tracking_uri, named) == study:
                return named
        return find_sweep(self.tracking_uri, study, tags=tags, with_tag=with_tag)


@dataclass(frozen=True)
class Analysis:
    """What an analysis-only step found: values (numbers become metrics of its parent run, anything else
    params) and artifacts (name -> array/table/JSON, see trainables/artifacts.py), logged on its parent run."""

    values: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, Any] = field(default_factory=dict)
    source_run: str | None = None  # the parent run of the sweep it read (tagged on its own parent run)


@dataclass(frozen=True)
class Study:
    name: str
    description: str
    config_cls: type  # frozen dataclass of one trial's config
    trial_fn: Callable  # trial_fn(config: dict, data, session)
    make_data: Callable[[Any], Any]  # make_data(config) -> data shared by all trials (object store)
    presets: dict[str, Preset]
    metric: str  # e.g. "test/rmse"
    mode: str  # "min" or "max"
    figures: Callable[[pd.DataFrame, Any], list]  # figures(runs, out_dir) -> [png paths]
    summary: Callable[[pd.DataFrame], str]  # a few lines for the end of a sweep
    derived_params: Callable[[dict], dict] = lambda config: {}  # extra MLflow params of a trial
    # after_sweep(sweep) -> extra summary lines; for results stored on the parent run (e.g. lr_min/lr_max
    # picked from a range test) or published reference numbers printed beside ours. `sweep` is an
    # analysis.records.Sweep (its runs, parent run and tracking URI).
    after_sweep: Callable[[Any], str] | None = None
    # The config key of a trial's epoch count; None: one-shot trials (they fit once or run a fixed batch of
    # simulations, report once and are recorded as finished; ASHA does not apply).
    epochs_key: str | None = "epochs"
    default_preset: str = "quick"
    default_search: str = "grid"  # --search when not given (a study of continuous ranges: optuna or random)
    default_scheduler: str = "fifo"  # --scheduler when not given
    # ddp_overrides(config) -> per-trial DDP settings (trainables.runtime.ddp.DDPSettings fields, e.g. {"workers": 4});
    # a study that sets it runs every trial as a Ray Train DDP job (the scaling study sweeps the worker count).
    ddp_overrides: Callable[[dict], dict] | None = None
    # Its trial_fn trains data-parallel in a DDP worker (it reads `session.distributed`: the shared
    # image-classification loop does), so `--workers N` applies; other studies refuse the flag.
    data_parallel: bool = False
    # Time attributes ASHA may use besides the epoch (runner flag --asha-time NAME): name -> (result key of a
    # cumulative count the trial reports, units one epoch of a config adds). For studies whose trials do
    # different amounts of work per epoch (batch augmentation: M copies of every sample), e.g.
    # {"passes": ("train/passes", lambda config: config["batch_m"])}.
    asha_times: dict[str, tuple[str, Callable[[dict], float]]] = field(default_factory=dict)
    # prepare(base config, Context) -> base config: fills values read from earlier sweeps (e.g. lr_min and
    # lr_max of the latest LR range test) before anything is created; raises ConfigError/UsageError (exit 2).
    prepare: Callable[[dict, Context], dict] | None = None
    # analyze(base config, Context) -> Analysis: the step of an `analysis_only` preset (trains nothing).
    analyze: Callable[[dict, Context], Analysis] | None = None
    # population(config) -> True when the config's replicate seeds (--set seeds=N) can train as one population trial
    # (the config class then has a `seeds` field: N replicas in one process); else each seed is its own trial.
    population: Callable[[dict], bool] | None = None
    # Fusing is faster on a CPU too (tiny models, where per-step overhead dominates): --population auto fuses
    # there as well; otherwise auto fuses only trials that get a GPU (runner.fuse_population).
    population_on_cpu: bool = False
    # describe_data(data) -> artifacts describing the data every trial shares (name -> value by extension,
    # trainables/artifacts.py, e.g. a data-set summary), logged on the sweep's parent run for its figures.
    describe_data: Callable[[Any], dict[str, Any]] | None = None
    # Swept keys whose values may differ between the replicas of one population trial -> the config field that
    # then holds the list (e.g. {"optimizer": "optimizers"}: the methods of a grid train as one population).
    population_axes: dict[str, str] = field(default_factory=dict)
