"""What a study declares: its question, config, trial, presets, and the hooks it needs. A study script builds one
`Study` and hands it to `sweeps.runner.main`; it implements nothing itself.

    STUDY = Study(
        name="depth_width", doc=__doc__, config=RegressionConfig,
        trial=Trial(run="trainables.studies.depth_width.trial:train_regression",
                    data="trainables.studies.depth_width.trial:make_data"),
        presets={"smoke": Preset("3 networks, 3 epochs", config={"epochs": 3}, space={"widths": ["16", "32-16"]})},
    )

A declaration imports nothing heavy: the trial's functions are named as "module:function" (imported when the sweep
runs, so `--help` answers in well under a second), and the study's figures, metric and summary are those of
`analysis/studies/<name>.py` (`analysis.studies.load`). A study on the shared image loop declares its trial with
`image_trial(to_loop)`: its config (a `ClassifyConfig` subclass with the study's keys) and how it maps to the
loop's (`to_loop(cfg) -> trainables.image.trial.ImageTrial`), nothing else.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable


def resolve(ref: str | Callable | None) -> Callable | None:
    """A "module:function" reference as the function it names (a callable is returned as it is)."""
    if ref is None or callable(ref):
        return ref
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def no_data(config: Any) -> None:
    """Trial.data of a study whose trials share no data."""
    return None


@dataclass(frozen=True)
class LogUniform:
    """A search domain for optuna/random: log-uniform between `low` and `high` (Tune's loguniform)."""

    low: float
    high: float


@dataclass(frozen=True)
class Preset:
    """One scale of a study: overrides of the base config and the search space.

    `space` maps a config key to the values to sweep: a list (a grid axis for --search grid, a categorical choice
    for optuna/random) or a domain such as `LogUniform(1e-4, 1e-1)` (sampled for optuna/random).
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
    # GPUs each trial holds unless --gpus-per-trial says otherwise: paper presets, meant for GPUs, say how many
    # trials share one (depth_width: 1/16, measured with MPS on an H200); 0 = trials train on CPUs.
    gpus_per_trial: float = 0.0
    # An analysis-only step: train nothing, run the study's `analyze` on records already in the store
    # (e.g. fit models to another study's sweep) and record what it returns on a parent run.
    analysis_only: bool = False


@dataclass(frozen=True)
class Trial:
    """How a study's trials run. `run`, `data` and `params` name trainables functions ("module:function"):

    - run(config, data, session, device): trains one trial, reporting through `session`; `config` is the study's
      config mapped by `to_trial` (none: the study's config itself), `device` the one Ray assigned the trial;
    - data(config) -> what every trial shares, built once on the driver (shipped through the object store);
    - params(config) -> extra MLflow params of a trial's run (e.g. its parameter count).
    """

    run: str | Callable
    data: str | Callable
    params: str | Callable | None = None
    to_trial: Callable[[Any], Any] | None = None  # the study's config -> what `run` takes
    epochs: str | None = "epochs"  # the config field of a trial's epoch count; None: one-shot trials (report once)
    # population(config) -> whether the config's replicate seeds (--set seeds=N) can train as one population trial
    population: Callable[[Any], bool] | None = None
    population_on_cpu: bool = False  # fusing is faster on a CPU too (tiny models): --population auto fuses there
    # Swept keys whose values may differ between the replicas of one population trial -> the config field that
    # then holds them (e.g. {"optimizer": "optimizers"}: the methods of a grid train as one population).
    population_axes: dict[str, str] = field(default_factory=dict)
    data_parallel: bool = False  # `run` trains data-parallel in a DDP worker: --workers N applies
    # ddp(config) -> per-trial DDP settings (trainables.runtime.ddp.DDPSettings fields, e.g. {"workers": 4}); a
    # study that sets it runs every trial as a Ray Train DDP job (the scaling study sweeps the worker count)
    ddp: Callable[[Any], dict] | None = None
    # Time attributes ASHA may use besides the epoch (--asha-time NAME): name -> (result key of a cumulative count
    # the trial reports, units one epoch of a config adds), e.g. {"passes": ("train/passes", lambda c: c.batch_m)}
    asha_times: dict[str, tuple[str, Callable[[Any], float]]] = field(default_factory=dict)


def image_trial(to_loop: Callable[[Any], Any], *, epochs: str | None = "epochs", population_on_cpu: bool = False,
                population_axes: dict[str, str] | None = None, ddp: Callable[[Any], dict] | None = None,
                asha_times: dict | None = None) -> Trial:
    """The trial of a study on the shared image loop (trainables/image/trial.py): `to_loop(cfg)` maps the study's
    config to the loop's `ImageTrial` (its ClassifyConfig, probes and extra params); seeds of the small models
    train as one population; every trial can train data-parallel (--workers N)."""
    return Trial(run="trainables.image.trial:train_image", data="trainables.image.trial:make_trial_data",
                 params="trainables.image.trial:trial_params", to_trial=to_loop, epochs=epochs,
                 population=lambda cfg: _fuses(to_loop(cfg)), population_on_cpu=population_on_cpu,
                 population_axes=population_axes or {},
                 data_parallel=ddp is None, ddp=ddp, asha_times=asha_times or {})


def _fuses(trial: Any) -> bool:
    from trainables.image.config import supports_population

    return supports_population(trial.loop)


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
class Hooks:
    """What a study does besides training its trials (each optional)."""

    # prepare(base config, Context) -> base config: fills values read from earlier sweeps (e.g. lr_min and lr_max
    # of the latest LR range test) before anything is created; raises ConfigError/UsageError (exit 2).
    prepare: Callable[[Any, Context], Any] | None = None
    reads: str | None = None  # the study whose sweep `prepare`/`analyze` read (--from-run picks which one)
    # analyze(base config, Context) -> Analysis: the step of an `analysis_only` preset (trains nothing).
    analyze: Callable[[Any, Context], Analysis] | None = None
    # after_sweep(sweep) -> extra summary lines; for results stored on the parent run (e.g. lr_min/lr_max picked
    # from a range test) or published reference numbers printed beside ours (an analysis.records.Sweep).
    after_sweep: Callable[[Any], str] | None = None
    # describe_data(data) -> artifacts describing the data every trial shares (name -> value by extension,
    # trainables/artifacts.py, e.g. a data-set summary), logged on the sweep's parent run for its figures.
    describe_data: Callable[[Any], dict[str, Any]] | None = None


@dataclass(frozen=True)
class Study:
    name: str
    doc: str  # its script's docstring: the question on its first line, then example commands (`python ...` lines)
    config: type  # frozen dataclass of one trial's config; every field is a --set key
    trial: Trial
    presets: dict[str, Preset]
    hooks: Hooks = Hooks()
    default_preset: str = "quick"
    default_search: str = "grid"  # --search when not given (a study of continuous ranges: optuna or random)
    default_scheduler: str = "fifo"  # --scheduler when not given
    figures: str = ""  # the module of its figures, metric and summary; default analysis.studies.<name>

    @property
    def question(self) -> str:
        return self.doc.strip().splitlines()[0]

    @property
    def examples(self) -> list[str]:
        """The example command lines of its docstring, each with its comment."""
        return [line.strip() for line in self.doc.splitlines() if line.strip().startswith("python ")]

    @property
    def one_shot(self) -> bool:
        """Its trials report once (they fit once or run a fixed batch of simulations): no scheduler applies."""
        return self.trial.epochs is None

    @property
    def ddp_jobs(self) -> bool:
        """Every trial is a Ray Train DDP job (its own worker count), or may be one (--workers N)."""
        return self.trial.ddp is not None or self.trial.data_parallel
