"""The image trial's config, `ClassifyConfig`, built from six parts that each validate themselves.

    >>> cfg = ClassifyConfig(dataset="cifar10", model="resnet20", lr_policy="cosine", epochs=30)
    >>> cfg.image_shape, cfg.num_classes, cfg.stages
    ((3, 32, 32), 10, 30)

Every field is a flat `--set` key and an MLflow param of the trial's run (`--set lr=0.1`, `--set widths=512-256`);
the parts only group them for the reader and for validation:

- `DataOptions`: which data set, which subsets and splits, and the augmentation of training batches;
- `ModelOptions`: the registered model and, for the small ones (mlp, lenet5), their widths, activation,
  initialization, batch norm and dropout;
- `OptimizerOptions`: the torch optimizer and its hyperparameters (trainables.training.optimizers);
- `LRSchedule`: the learning-rate policy, stepped every optimizer step (trainables.training.schedules);
- `BatchSchedule`: epochs, the batch size and its policy, and gradient accumulation;
- `RunOptions`: seeds and population size, mixed precision, memory format, CUDA-graph capture, the target stop.

A study that runs on the image trial subclasses `ClassifyConfig` with its own defaults and keys, and maps its
config to the trial's in its declaration (sweeps/<study>.py, `to_loop(cfg) -> ImageTrial`: the loop's config, the
probes that add to its reports, extra params). `loop_config(cfg)` is the trial's own part of any such subclass.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from trainables.config import ConfigError

# The registries this config is checked against (models, data sets, optimizers, schedules) import torch; they are
# imported where a config is checked or used, so that reading this module (a study's `--help`) does not.
CYCLIC = ("triangular", "triangular2", "exp_range")  # = trainables.training.schedules.CYCLIC (tested)

SMALL_MODELS = ("mlp", "lenet5")  # the models trainables.training.population fuses, and their options below take
# Config keys that only some models take -> those models (a changed value for another model is a ConfigError).
MODEL_OPTIONS = {"widths": ("mlp",), **{key: SMALL_MODELS for key in (
    "activation", "leaky_slope", "weight_init", "init_sigma", "input_batch_norm", "batch_norm", "dropout_input",
    "dropout_hidden")}}
SWITCHES = ("auto", "on", "off")


def _one_of(cfg: Any, key: str, allowed) -> None:
    if getattr(cfg, key) not in allowed:
        raise ConfigError(f"{key}={getattr(cfg, key)!r} is not one of {', '.join(allowed)}")


def _positive(cfg: Any, *keys: str) -> None:
    for key in keys:
        if getattr(cfg, key) <= 0:
            raise ConfigError(f"{key}={getattr(cfg, key)} must be a positive integer")


def _not_negative(cfg: Any, *keys: str) -> None:
    for key in keys:
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{key}={getattr(cfg, key)} must not be negative")


def _fraction(cfg: Any, *keys: str) -> None:
    for key in keys:
        if not 0.0 <= getattr(cfg, key) < 1.0:
            raise ConfigError(f"{key}={getattr(cfg, key)} must be in [0, 1)")


@dataclass(frozen=True)
class DataOptions:
    dataset: str = "fashion_mnist"  # a name in trainables.data.vision.DATASETS with a fixed image shape
    val_size: int = 0  # samples held out of the training set for validation
    train_subset: int = 0  # train on a seeded random subset of this many samples (0 = all)
    test_subset: int = 0
    data_dir: str = ""  # default: $DLSWEEPS_DATA_DIR or ~/.cache/dlsweeps/data
    crop_flip: bool = False  # 4-pixel pad + random crop + horizontal flip
    cutout: int = 0  # side of the cutout square in pixels (0 = off)
    batch_m: int = 1  # batch augmentation: M augmented copies of each sample per step

    def check_data(self) -> None:
        from trainables.data.vision import DATASETS

        shaped = [name for name, spec in DATASETS.items() if spec.shape]
        if self.dataset not in shaped:
            raise ConfigError(f"dataset={self.dataset!r} is not one of {', '.join(shaped)}")
        _positive(self, "batch_m")
        _not_negative(self, "val_size", "train_subset", "test_subset", "cutout")


@dataclass(frozen=True)
class ModelOptions:
    model: str = "lenet5"  # any name in trainables.models.registry.MODELS
    widths: tuple[int, ...] = (1000, 1000)  # mlp only: hidden layer widths (units), e.g. --set widths=512-256
    activation: str = "relu"  # mlp, lenet5: relu | leaky_relu | tanh | sigmoid | elu | gelu
    leaky_slope: float = 0.01  # leaky_relu's slope for negative inputs
    weight_init: str = "default"  # mlp, lenet5: default (PyTorch's) | normal (N(0, init_sigma^2)) |
    #   glorot = xavier (N(0, 2/(n_in+n_out))) | he = kaiming (N(0, 2/n_in)); biases 0 for the explicit schemes
    init_sigma: float = 0.01  # weight_init=normal: standard deviation of the weights
    input_batch_norm: bool = False  # mlp, lenet5: batch norm on the input
    batch_norm: bool = False  # mlp, lenet5: batch norm after every hidden layer (before its activation)
    dropout_input: float = 0.0  # mlp, lenet5: dropout probability on the input (e.g. 0.2)
    dropout_hidden: float = 0.0  # mlp: after every hidden layer; lenet5: after its hidden FC layers (e.g. 0.5)

    def check_model(self) -> None:
        from trainables.models.registry import ACTIVATIONS, MODELS, WEIGHT_INITS

        if self.model not in MODELS:
            raise ConfigError(f"model={self.model!r} is not registered; choose from {', '.join(sorted(MODELS))}")
        _one_of(self, "activation", ACTIVATIONS)
        _one_of(self, "weight_init", WEIGHT_INITS)
        _not_negative(self, "leaky_slope")
        _fraction(self, "dropout_input", "dropout_hidden")
        if self.init_sigma <= 0 or any(w <= 0 for w in self.widths):
            raise ConfigError(f"init_sigma={self.init_sigma} and the widths {self.widths} must be positive")
        defaults = {f.name: f.default for f in dataclasses.fields(ModelOptions)}
        given = [key for key, models in MODEL_OPTIONS.items()
                 if self.model not in models and getattr(self, key) != defaults[key]]
        if given:
            takers = sorted({m for key in given for m in MODEL_OPTIONS[key]})
            raise ConfigError(f"{', '.join(given)}: option{'s' if len(given) > 1 else ''} of model "
                              f"{' and '.join(takers)} only, not of model={self.model!r}")


@dataclass(frozen=True)
class OptimizerOptions:
    optimizer: str = "sgd"  # sgd | nesterov | adagrad | rmsprop | rmsprop_nesterov | adadelta | adam | adamw
    lr: float = 0.01  # learning rate (per step); 0 = the range test's bound named by fixed_lr
    momentum: float = 0.9  # sgd, nesterov, rmsprop_nesterov
    rmsprop_momentum: float = 0.0  # rmsprop: classical momentum (0 = plain RMSProp, Goodfellow et al. Alg. 8.5)
    weight_decay: float = 0.0  # L2 penalty through the optimizer (adamw: decoupled decay)
    rmsprop_alpha: float = 0.99  # rmsprop, rmsprop_nesterov: decay rate of the squared-gradient average (rho)
    adadelta_rho: float = 0.9  # adadelta: decay rate of its running averages
    adam_beta1: float = 0.9  # adam, adamw: decay rate of the gradient average
    adam_beta2: float = 0.999  # adam, adamw: decay rate of the squared-gradient average
    eps: float = 0.0  # numerical-stability delta; 0 = the optimizer's usual (adagrad 1e-10, adadelta 1e-6, else 1e-8)

    def check_optimizer(self) -> None:
        from trainables.training.optimizers import OPTIMIZERS

        _one_of(self, "optimizer", OPTIMIZERS)
        _not_negative(self, "lr", "weight_decay", "eps")
        _fraction(self, "momentum", "rmsprop_momentum", "rmsprop_alpha", "adadelta_rho", "adam_beta1", "adam_beta2")


@dataclass(frozen=True)
class LRSchedule:
    lr_policy: str = "constant"  # constant | multistep | cosine | triangular | triangular2 | exp_range | range
    lr_milestones: tuple[int, ...] = ()  # multistep: epochs at which the LR is multiplied by lr_gamma
    lr_gamma: float = 0.1  # multistep: factor at each milestone
    warmup_epochs: int = 0  # constant/multistep/cosine: linear warm-up from lr/10 (Goyal et al.)
    fixed_lr: str = "max"  # which range-test bound a non-cyclical policy uses when lr=0: max | min
    lr_min: float = 0.0  # cyclical lower bound / range-test start (the LR studies read it from an LR range test)
    lr_max: float = 0.0  # cyclical upper bound / range-test end
    stepsize: float = 2.0  # cyclical: half cycle, in stepsize_unit (Smith: 2-10 epochs)
    stepsize_unit: str = "epochs"  # epochs | iterations
    gamma: float = 0.99994  # exp_range: amplitude x gamma**iteration (Smith's CIFAR-10 value)
    lr_stages: int = 20  # continuous LR range test (lr_policy=range): reports, each `interval` steps
    interval: int = 50  # range tests: steps per stage (per LR report / per batch size)

    def check_lr_schedule(self) -> None:
        from trainables.training.schedules import LR_POLICIES

        _one_of(self, "lr_policy", LR_POLICIES)
        _one_of(self, "stepsize_unit", ("epochs", "iterations"))
        _one_of(self, "fixed_lr", ("max", "min"))
        _positive(self, "lr_stages", "interval")
        _not_negative(self, "lr_min", "lr_max", "warmup_epochs")
        if self.stepsize <= 0 or not 0 < self.gamma <= 1:
            raise ConfigError(f"stepsize={self.stepsize} must be > 0 and gamma={self.gamma} in (0, 1]")
        if self.lr_min and self.lr_max and self.lr_min >= self.lr_max:
            raise ConfigError(f"lr_min={self.lr_min:g} must be below lr_max={self.lr_max:g}")
        if self.warmup_epochs and self.lr_policy in (*CYCLIC, "range"):
            raise ConfigError(f"warmup_epochs applies to lr_policy constant, multistep or cosine, not {self.lr_policy}")


@dataclass(frozen=True)
class BatchSchedule:
    epochs: int = 10  # training epochs (the range tests: set to their number of stages)
    batch_size: int = 64  # samples per optimizer step (before batch augmentation), batch_policy fixed
    batch_policy: str = "fixed"  # fixed | range (batch-size range test) | cyclic (per epoch)
    batch_min: int = 32  # range test start / cyclic lower bound (power of two); cyclic: 0 = from a range test
    batch_max: int = 16384  # range test end / cyclic upper bound (power of two); cyclic: 0 = from a range test
    batch_stepsize: int = 2  # cyclic batch size: half cycle in epochs
    max_micro_batch: int = 0  # samples (before batch augmentation) one forward/backward may hold; 0 = no limit
    chunks: int = 1  # micro-batches per step at least (gradient accumulation) when a batch does not fit

    def check_batch_schedule(self) -> None:
        from trainables.training.schedules import BATCH_POLICIES, is_power_of_two

        _one_of(self, "batch_policy", BATCH_POLICIES)
        _positive(self, "epochs", "batch_size", "chunks", "batch_stepsize")
        _not_negative(self, "batch_min", "batch_max", "max_micro_batch")
        if self.batch_policy not in ("range", "cyclic"):
            return
        for key in ("batch_min", "batch_max"):
            value = getattr(self, key)
            if value and not is_power_of_two(value):
                raise ConfigError(f"{key}={value} must be a power of two for batch_policy={self.batch_policy}")
        if self.batch_min and self.batch_max and self.batch_min >= self.batch_max:
            raise ConfigError(f"batch_min={self.batch_min} must be below batch_max={self.batch_max}")
        if self.batch_policy == "range" and not (self.batch_min and self.batch_max):
            raise ConfigError("batch_policy=range needs batch_min and batch_max")


@dataclass(frozen=True)
class RunOptions:
    target_accuracy: float = 0.0  # stop the trial once the eval accuracy reaches this (0 = never)
    amp: str = "auto"  # auto (on with CUDA) | on | off
    channels_last: str = "auto"  # auto (on with CUDA) | on | off
    seed: int = 0
    seeds: int = 1  # mlp, lenet5: replicas trained together as one population trial, seeds seed, seed+1, ...
    optimizers: tuple[str, ...] = ()  # mlp, lenet5: a population of methods, one replica group of `seeds` replicas
    #   per name, all else shared (e.g. adam,adagrad; the runner's --population fuses a study's optimizer axis
    #   into it); () = just `optimizer`
    lrs: tuple[float, ...] = ()  # with optimizers: each group's learning rate, in order (() = `lr` for all)
    capture: str = "auto"  # CUDA graphs: auto (on a GPU where the step's shapes are static: a fixed batch size,
    #   no range test, no DDP, no adagrad) | on (refused where it cannot apply) | off: replay each captured step
    data_seed: int = 0

    def check_run(self) -> None:
        from trainables.training.optimizers import OPTIMIZERS

        _one_of(self, "amp", SWITCHES)
        _one_of(self, "channels_last", SWITCHES)
        _one_of(self, "capture", SWITCHES)
        _positive(self, "seeds")
        for name in self.optimizers:
            if name not in OPTIMIZERS:
                raise ConfigError(f"optimizers: {name!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.lrs and (len(self.lrs) != len(self.optimizers) or min(self.lrs) <= 0):
            raise ConfigError(f"lrs={self.lrs} must give one positive learning rate per name in optimizers="
                              f"{self.optimizers}")


@dataclass(frozen=True)
class ClassifyConfig(RunOptions, BatchSchedule, LRSchedule, OptimizerOptions, ModelOptions, DataOptions):
    """Fields in the order data, model, optimizer, learning rate, batch, run (dataclasses collect a class's
    bases from the last one)."""

    def __post_init__(self) -> None:
        for check in (self.check_data, self.check_model, self.check_optimizer, self.check_lr_schedule,
                      self.check_batch_schedule, self.check_run):
            check()
        self._check_across_parts()

    def _check_across_parts(self) -> None:
        for name in (self.optimizer, *self.optimizers):
            if name in ("nesterov", "rmsprop_nesterov") and self.momentum == 0:
                raise ConfigError(f"optimizer={name} needs momentum > 0")
        if self.optimizers and self.lr_policy in (*CYCLIC, "range"):
            raise ConfigError(f"optimizers (a population of methods) takes lr_policy constant, multistep or cosine, "
                              f"not {self.lr_policy}")
        if self.lr_policy == "range" and self.batch_policy == "range":
            raise ConfigError("lr_policy=range and batch_policy=range are two different range tests; pick one")
        if (self.seeds > 1 or self.optimizers) and not supports_population(self):
            raise ConfigError(f"seeds={self.seeds}, optimizers={self.optimizers}: a population trains "
                              f"{', '.join(sorted(SMALL_MODELS))} only, outside the range tests; for model="
                              f"{self.model!r} give each seed and optimizer its own trial")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        from trainables.data.vision import DATASETS

        return DATASETS[self.dataset].shape

    @property
    def num_classes(self) -> int:
        from trainables.data.vision import DATASETS

        return DATASETS[self.dataset].num_classes

    @property
    def range_test(self) -> bool:
        """One of the two range tests: reports per stage of `interval` steps, not per epoch."""
        return self.lr_policy == "range" or self.batch_policy == "range"

    @property
    def stages(self) -> int:
        """Reports the trial makes: its epochs, or the stages of a range test."""
        from trainables.training.schedules import batch_range

        if self.lr_policy == "range":
            return self.lr_stages
        if self.batch_policy == "range":
            return len(batch_range(self.batch_min, self.batch_max))
        return self.epochs

    def batch_at(self, stage: int) -> int:
        """The batch size of stage (epoch, or range-test stage) `stage`, counted from 1."""
        from trainables.training.schedules import batch_range, cyclic_batch_size

        if self.batch_policy == "range":
            return batch_range(self.batch_min, self.batch_max)[stage - 1]
        if self.batch_policy == "cyclic":
            return cyclic_batch_size(stage - 1, self.epochs, self.batch_min, self.batch_max, self.batch_stepsize)
        return self.batch_size

    def micro_batches(self, batch: int) -> int:
        """Micro-batches of a step of `batch` samples: at least `chunks`, and none above max_micro_batch."""
        if not self.max_micro_batch:
            return self.chunks
        return max(self.chunks, math.ceil(batch / self.max_micro_batch))

    def replica_groups(self) -> list[tuple[str, float]]:
        """(optimizer, lr) of each group of `seeds` replicas: the `optimizers` population, else this one run's."""
        from trainables.training.schedules import initial_lr

        if not self.optimizers:
            return [(self.optimizer, initial_lr(self))]
        return list(zip(self.optimizers, self.lrs or [initial_lr(self)] * len(self.optimizers)))

    def model_kwargs(self) -> dict[str, Any]:
        """The model options `build_model` takes for this config's model and data set."""
        if self.model not in SMALL_MODELS:
            return {}
        kw = {key: getattr(self, key) for key, models in MODEL_OPTIONS.items() if self.model in models}
        return {"image_size": self.image_shape[1], **kw}


@dataclass(frozen=True)
class ImageTrial:
    """What one image trial trains (a study's `to_loop` builds it from the study's config): the loop's config, the
    probes that add to its reports, and the params its run records beside the model's size."""

    loop: ClassifyConfig
    probes: tuple = ()  # trainables.image.probes.Probe
    params: dict[str, Any] = field(default_factory=dict)  # e.g. the learning rate a study's rule gave


LOOP_FIELDS = tuple(f.name for f in dataclasses.fields(ClassifyConfig))


def loop_config(cfg: ClassifyConfig, **changes: Any) -> ClassifyConfig:
    """The image trial's own config of `cfg` (a study's ClassifyConfig subclass: its study keys dropped), with
    `changes` applied; validated once, as a ClassifyConfig."""
    if type(cfg) is ClassifyConfig and not changes:
        return cfg
    values = {name: getattr(cfg, name) for name in LOOP_FIELDS}
    return ClassifyConfig(**{**values, **changes})


def plain_trial(cfg: ClassifyConfig) -> ImageTrial:
    """The `to_loop` of a study that trains the loop's config as it is (the study's own keys, if any, are read by
    its analysis, not by the trial)."""
    return ImageTrial(loop=loop_config(cfg))


def supports_population(cfg: ClassifyConfig) -> bool:
    """Whether a config's replicate seeds can train as one population trial: the small models, whose layers
    trainables.training.population fuses, outside the range tests (a single run each)."""
    return cfg.model in SMALL_MODELS and "range" not in (cfg.lr_policy, cfg.batch_policy)
