"""A sweep's plan, built once from the command line and the study's declaration, and each trial's plan from it.

    plan = resolve_plan(study, args, context)      # SweepPlan: validated, typed; UsageError/ConfigError on bad input
    trial = plan.trial(tune_config)                 # TrialPlan: the trial's typed config (parsed once), its name, ...

The sweep plan holds the study's base config (a frozen, typed dataclass shared by every trial), the swept axes with
their typed values, the search and scheduler settings, the resources a trial holds, its DDP settings and its
population (replicate seeds, fused axes). Ray Tune carries only the swept values, each as `encode_value` writes
it (tuples as '64-32'); a trial's plan reads them back once, on top of the base config.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any

from sweeps.cli import UsageError
from sweeps.study import Context, LogUniform, Study, resolve
from trainables.config import coerce_value, encode, encode_value, from_dict, parse_value


@dataclass(frozen=True)
class Resources:
    """What one trial holds while it runs (a DDP trial: its workers), and the price of its device-hours."""

    cpus: float
    gpus: float
    instance: str = ""  # the instance type its price comes from ("" when given directly)
    usd_per_device_h: float = 0.0  # 0: unpriced

    @property
    def device(self) -> str:
        return "gpu" if self.gpus > 0 else "cpu"

    @property
    def units(self) -> float:
        """GPUs held, or CPU cores where the trial holds no GPU: what its device-seconds count."""
        return self.gpus if self.gpus > 0 else self.cpus


@dataclass(frozen=True)
class SchedulerPlan:
    kind: str  # fifo | asha | optimus
    max_t: int  # epochs of the longest trial
    grace_period: int = 1  # epochs before ASHA may stop a trial
    reduction_factor: int = 3
    time_attr: str = "epoch"  # what ASHA's rungs count (a study's cumulative count: --asha-time)
    margin: float | None = None  # optimus: --stop-margin (None: its default)


@dataclass(frozen=True)
class Population:
    seeds: int = 1  # replicate seeds of every config (--set seeds=N)
    fused: bool = False  # the seeds (and `axes`) of a config train as one population trial
    axes: tuple[tuple[str, str], ...] = ()  # fused swept keys -> the config field holding their values


@dataclass(frozen=True)
class TrialPlan:
    """One trial: its typed config, what the study's trial function takes, its name and what it holds."""

    config: Any  # the study's config
    task: Any  # what the trial function runs: the config, or the study's mapping of it (an ImageTrial)
    name: str  # the swept values in short form, e.g. "widths=256-128-64" (its MLflow run's name)
    resources: Resources
    ddp: Any = None  # trainables.runtime.ddp.DDPSettings of a DDP trial, else None


@dataclass(frozen=True)
class SweepPlan:
    study: Study
    preset: str
    base: Any  # the study's config shared by every trial (typed)
    space: dict[str, Any]  # swept key -> tuple of typed values (a grid axis / choice), or a LogUniform domain
    points: tuple[dict[str, Any], ...]  # grid points of keys that vary together (Preset.points)
    search: str
    num_samples: int
    seed: int
    scheduler: SchedulerPlan
    resources: Resources
    population: Population
    metric: str  # what the trials are compared by (the study's figures: analysis/studies/<study>.py)
    mode: str  # min | max
    ddp: Any = None  # DDPSettings when every trial is a DDP job (before a study's per-trial overrides)

    @property
    def epochs(self) -> int:
        key = self.study.trial.epochs
        return int(getattr(self.base, key)) if key else 1

    def total_trials(self) -> int:
        """Trials the sweep will run: the grid's size, or the samples of optuna/random."""
        if self.search != "grid":
            return self.num_samples
        total = max(len(self.points), 1)
        for values in self.space.values():
            total *= 1 if isinstance(values, LogUniform) else len(values)
        return total

    def tune_space(self) -> dict[str, Any]:
        """The swept values as Tune carries them (encoded); domains and grids are made Tune's in sweeps.tuning."""
        keys = dict.fromkeys(key for point in self.points for key in point)
        space: dict[str, Any] = {key: tuple(dict.fromkeys(encode_value(p[key]) for p in self.points if key in p))
                                 for key in keys}
        for key, values in self.space.items():
            space[key] = values if isinstance(values, LogUniform) else tuple(encode_value(v) for v in values)
        return space

    def trial(self, values: dict[str, Any], device: Any = None) -> TrialPlan:
        """The plan of the trial Tune gave `values` (its swept keys, encoded): the config parsed once."""
        swept = {k: v for k, v in values.items() if k in self.space or any(k in p for p in self.points)}
        config = from_dict(self.study.config, {**encode(self.base), **swept}) if swept else self.base
        trial = self.study.trial
        task = trial.to_trial(config) if trial.to_trial else config
        ddp = self.trial_ddp(config)
        held = self.resources if ddp is None else dataclasses.replace(
            self.resources, cpus=ddp.workers * ddp.cpus_per_worker, gpus=ddp.workers * ddp.gpus_per_worker)
        return TrialPlan(config, task, trial_name(self.study.name, swept), held, ddp)

    def trial_ddp(self, config: Any) -> Any:
        """The DDP settings of a trial of `config`, with the study's per-trial ones (e.g. a job's workers)."""
        overrides = self.study.trial.ddp
        if self.ddp is None or overrides is None:
            return self.ddp
        return dataclasses.replace(self.ddp, **overrides(config))

    def grid_configs(self) -> list[Any]:
        """Every config of the grid (points times the listed axes; a domain keeps its base value)."""
        configs = [dataclasses.replace(self.base, **p) for p in self.points] or [self.base]
        for key, values in self.space.items():
            if not isinstance(values, LogUniform):
                configs = [dataclasses.replace(c, **{key: v}) for c in configs for v in values]
        return configs


def trial_name(study: str, swept: dict[str, Any]) -> str:
    """A trial's swept values in short form: 'widths=256-128-64', 'optimizer=adam regularization=l2 seed=1'."""
    parts = [f"{key}={_short(value)}" for key, value in swept.items()]
    return " ".join(parts) or study


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(encode_value(value))


# ---------------------------------------------------------------- building the plan

def resolve_plan(study: Study, args: argparse.Namespace, context: Context, metric: str, mode: str,
                 prepare: bool = True) -> SweepPlan:
    """The sweep's plan from its flags: every config it will run checked once (ConfigError/UsageError: exit 2).
    `prepare=False` leaves out the study's prepare hook (values read from earlier sweeps, a weights check)."""
    preset = study.presets[args.preset]
    base, seeds = base_config(study, preset.config, args.overrides, args.seed)
    if prepare and study.hooks.prepare is not None and not preset.analysis_only:
        base = study.hooks.prepare(base, context)  # e.g. bounds read from an earlier sweep
    pinned = {item.partition("=")[0] for item in args.overrides}
    typed = lambda key, value: coerce_value(study.config, key, value)  # noqa: E731
    space = {key: (values if isinstance(values, LogUniform) else tuple(typed(key, v) for v in values))
             for key, values in preset.space.items() if key not in pinned}
    points = tuple({k: typed(k, v) for k, v in p.items()} for p in _pinned_points(preset.points, pinned))
    for point in points:
        for key in point:
            space.pop(key, None)
    population = _population(study, args, base, space, seeds)
    if population.fused:  # the seeds of a config (and the values of its population axes) train as one trial
        base = dataclasses.replace(base, seeds=seeds, **{field: space.pop(key) for key, field in population.axes})
    _check_grid(base, space, points)
    if seeds > 1 and not population.fused:
        space["seed"] = tuple(args.seed + i for i in range(seeds))
    num_samples = args.num_samples if args.num_samples is not None else preset.num_samples
    if num_samples < 1:
        raise UsageError(f"--num-samples {num_samples} must be at least 1")
    plan = SweepPlan(study, args.preset, base, space, points, args.search,
                     num_samples if args.search != "grid" else max(len(points), 1), args.seed,
                     scheduler_plan(study, args, base, preset.asha_grace_period), resources(args), population,
                     metric, mode, ddp_settings(study, args))
    return plan


def base_config(study: Study, preset_values: dict[str, Any], overrides: list[str], seed: int) -> tuple[Any, int]:
    """The base config (the preset's values, then --set's, typed) and the replicate seeds --set seeds=N asks for."""
    values, seeds = dict(preset_values), 1
    if _has_field(study.config, "seed"):
        values["seed"] = seed
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r} is not KEY=VALUE; use e.g. --set lr=0.05")
        if key == "seeds" and not _has_field(study.config, "seed"):
            raise UsageError(f"seeds: {study.name}'s trials take no seed, so no replicate seeds; drop --set seeds")
        if key == "seeds":
            try:
                seeds = int(text)
            except ValueError:
                raise UsageError(f"seeds={text!r} should be an integer; use e.g. --set seeds=3") from None
            if seeds < 1:
                raise UsageError(f"seeds={seeds} must be at least 1")
            continue
        values[key] = parse_value(study.config, key, text)
    if "seeds" in values:  # a preset's own replicate count (e.g. weight_init's), unless --set seeds says otherwise
        seeds = seeds if any(i.startswith("seeds=") for i in overrides) else int(values["seeds"])
        values["seeds"] = 1
    return from_dict(study.config, values), seeds


def _has_field(cls: type, name: str) -> bool:
    return name in {f.name for f in dataclasses.fields(cls)}


def _pinned_points(points: tuple[dict[str, Any], ...], pinned: set[str]) -> tuple[dict[str, Any], ...]:
    """A preset's grid points less the keys given with --set (those are pinned); points that became the same
    run once."""
    kept: list[dict[str, Any]] = []
    for point in points:
        rest = {key: value for key, value in point.items() if key not in pinned}
        if rest and rest not in kept:
            kept.append(rest)
    return tuple(kept)


def _check_grid(base: Any, space: dict[str, Any], points: tuple[dict[str, Any], ...]) -> None:
    """Every grid point and every listed value of an axis, on the base config: a bad one fails before anything
    starts (ConfigError, exit 2)."""
    for point in points:
        dataclasses.replace(base, **point)
    for key, values in space.items():
        for value in () if isinstance(values, LogUniform) else values:
            dataclasses.replace(base, **{key: value})


def _population(study: Study, args: argparse.Namespace, base: Any, space: dict[str, Any], seeds: int) -> Population:
    """Whether replicas (seeds) of a config train fused in one population trial: where the study's models fuse,
    outside DDP, and as --population asks: on, off, or auto = where it is faster (on a GPU, where one small model
    leaves the device idle; on a CPU only for the tiny models of `population_on_cpu` studies: fusing LeNet-5 or a
    2x1000 MLP is ~1.2-1.4x slower on a CPU than separate runs, bench/population_models.py)."""
    trial = study.trial
    axes = tuple((key, field) for key, field in trial.population_axes.items()
                 if not isinstance(space.get(key), LogUniform) and len(space.get(key, ())) > 1)
    if seeds == 1 and not axes:
        return Population()
    policy = args.population
    possible = (trial.population is not None and args.workers is None and trial.ddp is None
                and trial.population(base))
    if policy == "on" and not possible:
        raise UsageError(f"--population on: {study.name}'s trials with this config cannot train as one population "
                         f"(a model trainables.training.population does not fuse, or DDP); use --population off")
    fused = possible and policy != "off" and (policy == "on" or args.gpus_per_trial > 0 or trial.population_on_cpu)
    return Population(seeds, fused, axes if fused else ())


def scheduler_plan(study: Study, args: argparse.Namespace, base: Any, grace_period: int) -> SchedulerPlan:
    if args.scheduler != "fifo" and study.one_shot:
        raise UsageError(f"{study.name}'s trials report once (one-shot): there is nothing for {args.scheduler} to "
                         f"stop early; use --scheduler fifo")
    if args.asha_time != "epoch" and args.scheduler != "asha":
        raise UsageError(f"--asha-time {args.asha_time} needs --scheduler asha")
    if args.stop_margin is not None and (args.scheduler != "optimus" or args.stop_margin < 0):
        raise UsageError(f"--stop-margin {args.stop_margin:g} needs --scheduler optimus and a margin >= 0, "
                         f"e.g. --scheduler optimus --stop-margin 0.2")
    epochs = int(getattr(base, study.trial.epochs)) if study.trial.epochs else 1
    time_attr = "epoch" if args.asha_time == "epoch" else study.trial.asha_times[args.asha_time][0]
    return SchedulerPlan(args.scheduler, epochs, min(grace_period, epochs), 3, time_attr, args.stop_margin)


def resources(args: argparse.Namespace) -> Resources:
    """A plain trial's resources (a DDP trial's are its workers', sweeps.tuning) and their price."""
    if args.cpus_per_trial <= 0 or args.gpus_per_trial < 0:
        raise UsageError("--cpus-per-trial must be > 0 and --gpus-per-trial >= 0")
    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise UsageError(f"--max-concurrent {args.max_concurrent} must be at least 1")
    from trainables.prices import device_hour_price

    device = "gpu" if args.gpus_per_trial > 0 or args.gpus_per_worker > 0 else "cpu"
    instance, usd = device_hour_price(device, args.instance_type, args.device_hour_price)
    return Resources(args.cpus_per_trial, args.gpus_per_trial, instance, usd)


def ddp_settings(study: Study, args: argparse.Namespace) -> Any:
    """DDP settings when every trial is a Ray Train job (--workers N, or a study whose jobs set their workers)."""
    if args.workers is None and study.trial.ddp is None:
        return None
    from trainables.runtime.ddp import DDPSettings

    settings = DDPSettings(workers=1 if args.workers is None else args.workers, cpus_per_worker=args.cpus_per_worker,
                           gpus_per_worker=args.gpus_per_worker, backend=args.ddp_backend,
                           max_failures=max(args.max_failures, 0))  # ConfigError on --workers 0, ...
    if not settings.runnable:
        raise UsageError("--ddp-backend nccl needs GPUs: add --gpus-per-worker 1, or use gloo on CPUs")
    return settings


def trial_params(plan: SweepPlan, trial: TrialPlan) -> dict[str, str]:
    """A trial run's params: its config (every field, encoded) and what the study's `params` derives from it."""
    params = {k: str(v) for k, v in encode(trial.config).items()}
    derive = resolve(plan.study.trial.params)
    if derive is not None:
        params.update({k: str(encode_value(v)) for k, v in derive(trial.task).items()})
    if trial.ddp is not None:
        s = trial.ddp
        params.update({"ddp.workers": str(s.workers), "ddp.backend": s.resolved_backend, "ddp.comm_hook": s.comm_hook,
                       "ddp.cpus_per_worker": str(s.cpus_per_worker), "ddp.gpus_per_worker": str(s.gpus_per_worker)})
    return params
