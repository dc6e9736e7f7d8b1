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
    asha_grace_period: int = 1  # epochs before ASHA may stop a trial


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
    epochs_key: str = "epochs"
    default_preset: str = "quick"
    default_search: str = "grid"  # --search when not given (a study of continuous ranges: optuna or random)
    default_scheduler: str = "fifo"  # --scheduler when not given
    # ddp_overrides(config) -> per-trial DDP settings (trainables.ddp.DDPSettings fields, e.g. {"workers": 4});
    # a study that sets it runs every trial as a Ray Train DDP job (the scaling study sweeps the worker count).
    ddp_overrides: Callable[[dict], dict] | None = None
    # Time attributes ASHA may use besides the epoch (runner flag --asha-time NAME): name -> (result key of a
    # cumulative count the trial reports, units one epoch of a config adds). For studies whose trials do
    # different amounts of work per epoch (batch augmentation: M copies of every sample), e.g.
    # {"passes": ("train/passes", lambda config: config["batch_m"])}.
    asha_times: dict[str, tuple[str, Callable[[dict], float]]] = field(default_factory=dict)
    # prepare(base config, tracking URI) -> base config: fills values read from earlier sweeps (e.g. lr_min and
    # lr_max of the latest LR range test) before anything is created; raises ConfigError/UsageError (exit 2).
    prepare: Callable[[dict, str], dict] | None = None
