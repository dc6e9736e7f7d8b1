"""The image-classification trial of every image study: one config, one loop (runnable with or without Ray).

    >>> from trainables.image.trial import ClassifyConfig, make_data, train_classifier
    >>> from trainables.runtime.session import LocalSession
    >>> config = {"dataset": "fashion_mnist", "model": "lenet5", "epochs": 2, "train_subset": 2000}
    >>> session = LocalSession(epochs=2); train_classifier(config, make_data(ClassifyConfig(**config)), session)

`ClassifyConfig` (every field a `--set` key, defaults and units in its comments) serves the
batch-augmentation and scaling studies (which subclass it) and the four learning-rate/batch-size
studies (which use it as is):

- model: any registered model; the small ones (mlp, lenet5) also take hidden widths (mlp), activation,
  weight initialization, batch norm on the input / hidden layers and dropout on the input / hidden layers;
  such options given to another model are a ConfigError;
- optimizer (trainables.training.optimizers): sgd, nesterov, adagrad, rmsprop, rmsprop_nesterov, adadelta, adam,
  adamw, with their hyperparameters; `weight_decay` is L2 through the optimizer;
- learning rate (`lr_policy`, stepped every optimizer step; trainables.training.schedules): constant, multistep,
  cosine (optionally after a linear warm-up), Smith's cyclical triangular / triangular2 / exp_range
  between lr_min and lr_max, and `range`, the continuous LR range test (LR raised every step);
- batch size (`batch_policy`): fixed; `cyclic` (one size per epoch, cycling between batch_min and
  batch_max with a rising trend); `range`, the batch-size range test (batch_min doubling to batch_max every
  `interval` steps). A step of more than `max_micro_batch` samples (or with `chunks` > 1) accumulates
  gradients over micro-batches weighted by their share, so the update equals the full batch's (exactly so
  without batch norm; with it each micro-batch normalizes itself, as ghost batch norm does).

The data set (uint8, in memory) is built once on the driver by `make_data` and moved to the trial's
device once; batches are index slices of a per-epoch permutation and augmentation runs batched on the
device (`trainables.training.augment`). On a GPU, AMP (bfloat16) and channels_last are on unless turned off.

The trial reports once per epoch. The two range tests instead report once per stage of `interval` steps
drawn from an endless stream of samples (their `epochs` is their number of stages, `ClassifyConfig.stages`)
and keep no checkpoints (a short single run, restarted from scratch if its process dies).
Metrics: `train/loss`, `train/accuracy`, `train/lr` (the LR of the epoch's first step; for the continuous
range test, of the stage's last step), `train/batch_size`, `train/iterations` (optimizer steps so far),
`test/loss`, `test/accuracy` (and `val/*` with a validation split; the continuous LR range test evaluates
nothing), `time/epoch_s`, `time/train_s` (cumulative, training only), `perf/images_per_s`,
`train/samples_seen` and `train/passes` (cumulative, batch-augmented copies included; passes = epoch x
batch_m), `perf/tflops` (achieved, forward+backward = 3x forward) and, where the device's peak is known,
`perf/ppp` (fraction of peak, PALEO); `time/iter_s` (mean step time of a worker) and
`perf/steady_images_per_s` (over epochs 2.., i.e. after the warm-up epoch). The first report of a
process also carries the device's name as the run param "GPU type" (`trainables.runtime.session.PARAMS_KEY`).
Artifacts: a model with batch norm attaches `batchnorm.csv` (every layer's learned gamma and beta per
channel and replica) at its last report and with every replicas table.

Populations (mlp, lenet5; trainables.training.population): `seeds` = N trains N replicas with seeds seed..seed+N-1,
fused; `optimizers` = (a, b, ...) trains one group of N replicas per method (each with its lr from `lrs`,
`trainables.training.population.ReplicaGroupOptimizer`), every group on the same seeds, data orders and dropout
masks as its separate runs would use. The metrics are then means over the replicas (with `_std`,
`population/diverged`, `population/size`); each replica's values go to `replicas.csv` (columns seed and,
with optimizers, optimizer and lr) and, every epoch so far, `replica_history.csv`.

Divergence: an epoch whose mean training loss is NaN/inf or above 4 x ln(classes) (far worse than
guessing) reports `train/loss` = inf (the number itself as `train/loss_raw`), so the session records the
trial as diverged and stops it. The continuous LR range test stops once a stage's loss exceeds 4x its
best stage's (`range/blew_up` = 1).

Data-parallel (in a `trainables.runtime.ddp.DDPSession`, whose `distributed` is set): the same loop, with
the model wrapped in DistributedDataParallel, each rank training on its shard of every epoch and
the epoch's statistics summed over ranks (loss, accuracy and images/s are the whole epoch's).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from trainables.training.augment import batch_augment, eval_transform
from trainables.training.classify import evaluate, train_one_epoch, train_steps
from trainables.config import ConfigError, from_dict
from trainables.models.stats import model_summary
from trainables.models.registry import ACTIVATIONS, MODELS, WEIGHT_INITS, batchnorm_layers, build_model
from trainables.training.optimizers import OPTIMIZERS, build_optimizer
from trainables.models.paleo import achieved_flops, peak_flops
from trainables.training.population import (Population, ReplicaGroupOptimizer, build_population, data_generators, replica_mean,
                                   replica_report)
from trainables.training.schedules import (BATCH_POLICIES, CYCLIC, LR_POLICIES, IndexStream, base_lr, batch_range,
                                  build_schedule, cyclic_batch_size, initial_lr, is_power_of_two, range_factor)
from trainables.runtime.session import PARAMS_KEY, load_training_state, training_state
from trainables.data.vision import DATASETS, VisionData, load_vision_data, to_device

IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32),
                "digits": (1, 28, 28)}
BATCHNORM_TABLE = "batchnorm.csv"  # a trial's learned batch-norm gamma and beta (batchnorm_table): run artifact
SMALL_MODELS = ("mlp", "lenet5")
# Config keys that only some models take -> those models (a changed value for another model is a ConfigError).
MODEL_OPTIONS = {"widths": ("mlp",), **{key: SMALL_MODELS for key in (
    "activation", "leaky_slope", "weight_init", "init_sigma", "input_batch_norm", "batch_norm", "dropout_input",
    "dropout_hidden")}}
# An epoch whose mean training loss exceeds this many times that of guessing (ln classes) has diverged; the
# continuous LR range test stops once a stage's loss exceeds this many times its best stage's (fastai's rule).
DIVERGE_FACTOR = 4.0


def check_dataset_and_model(dataset: str, model: str) -> None:
    """The config check every image trial shares: a known data set and a registered model."""
    if dataset not in IMAGE_SHAPES:
        raise ConfigError(f"dataset={dataset!r} is not one of {', '.join(IMAGE_SHAPES)}")
    if model not in MODELS:
        raise ConfigError(f"model={model!r} is not registered; choose from {', '.join(sorted(MODELS))}")


@dataclass(frozen=True)
class ClassifyConfig:
    # --- data
    dataset: str = "fashion_mnist"  # mnist | fashion_mnist | cifar10 | cifar100
    val_size: int = 0  # samples held out of the training set for validation
    train_subset: int = 0  # train on a seeded random subset of this many samples (0 = all)
    test_subset: int = 0
    data_dir: str = ""  # default: $DLSWEEPS_DATA_DIR or ~/.cache/dlsweeps/data
    crop_flip: bool = False  # 4-pixel pad + random crop + horizontal flip
    cutout: int = 0  # side of the cutout square in pixels (0 = off)
    batch_m: int = 1  # batch augmentation: M augmented copies of each sample per step
    # --- model
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
    # --- optimizer (trainables.training.optimizers)
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
    optimizers: tuple[str, ...] = ()  # mlp, lenet5: a population of methods, one replica group of `seeds` replicas
    #   per name, all else shared (e.g. adam,adagrad; the runner's --population fuses a study's optimizer axis
    #   into it); () = just `optimizer`
    lrs: tuple[float, ...] = ()  # with optimizers: each group's learning rate, in order (() = `lr` for all)
    # --- learning-rate policy (trainables.training.schedules), stepped every optimizer step
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
    # --- batch size
    epochs: int = 10  # training epochs (the range tests: set to their number of stages)
    batch_size: int = 64  # samples per optimizer step (before batch augmentation), batch_policy fixed
    batch_policy: str = "fixed"  # fixed | range (batch-size range test) | cyclic (per epoch)
    batch_min: int = 32  # range test start / cyclic lower bound (power of two); cyclic: 0 = from a range test
    batch_max: int = 16384  # range test end / cyclic upper bound (power of two); cyclic: 0 = from a range test
    batch_stepsize: int = 2  # cyclic batch size: half cycle in epochs
    max_micro_batch: int = 0  # samples (before batch augmentation) one forward/backward may hold; 0 = no limit
    chunks: int = 1  # micro-batches per step at least (gradient accumulation) when a batch does not fit
    # --- run
    target_accuracy: float = 0.0  # stop the trial once the eval accuracy reaches this (0 = never)
    amp: str = "auto"  # auto (on with CUDA) | on | off
    channels_last: str = "auto"  # auto (on with CUDA) | on | off
    seed: int = 0
    seeds: int = 1  # mlp, lenet5: replicas trained together as one population trial, seeds seed, seed+1, ...
    data_seed: int = 0

    def __post_init__(self) -> None:
        check_dataset_and_model(self.dataset, self.model)
        for key, allowed in (("optimizer", OPTIMIZERS), ("lr_policy", LR_POLICIES), ("batch_policy", BATCH_POLICIES),
                             ("stepsize_unit", ("epochs", "iterations")), ("fixed_lr", ("max", "min")),
                             ("activation", ACTIVATIONS), ("weight_init", WEIGHT_INITS),
                             ("amp", ("auto", "on", "off")), ("channels_last", ("auto", "on", "off"))):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}={getattr(self, key)!r} is not one of {', '.join(allowed)}")
        for key in ("epochs", "batch_size", "batch_m", "chunks", "lr_stages", "interval", "batch_stepsize", "seeds"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}={getattr(self, key)} must be a positive integer")
        for key in ("lr", "lr_min", "lr_max", "weight_decay", "eps", "batch_min", "batch_max", "max_micro_batch",
                    "warmup_epochs", "leaky_slope"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}={getattr(self, key)} must not be negative")
        for key in ("momentum", "rmsprop_momentum", "rmsprop_alpha", "adadelta_rho", "adam_beta1", "adam_beta2", "dropout_input",
                    "dropout_hidden"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"{key}={getattr(self, key)} must be in [0, 1)")
        for name in (self.optimizer, *self.optimizers):
            if name not in OPTIMIZERS:
                raise ConfigError(f"optimizers: {name!r} is not one of {', '.join(OPTIMIZERS)}")
            if name in ("nesterov", "rmsprop_nesterov") and self.momentum == 0:
                raise ConfigError(f"optimizer={name} needs momentum > 0")
        if self.lrs and (len(self.lrs) != len(self.optimizers) or min(self.lrs) <= 0):
            raise ConfigError(f"lrs={self.lrs} must give one positive learning rate per name in optimizers="
                              f"{self.optimizers}")
        if self.optimizers and self.lr_policy in (*CYCLIC, "range"):
            raise ConfigError(f"optimizers (a population of methods) takes lr_policy constant, multistep or cosine, "
                              f"not {self.lr_policy}")
        if self.init_sigma <= 0 or any(w <= 0 for w in self.widths):
            raise ConfigError(f"init_sigma={self.init_sigma} and the widths {self.widths} must be positive")
        if self.stepsize <= 0 or not 0 < self.gamma <= 1:
            raise ConfigError(f"stepsize={self.stepsize} must be > 0 and gamma={self.gamma} in (0, 1]")
        if self.lr_min and self.lr_max and self.lr_min >= self.lr_max:
            raise ConfigError(f"lr_min={self.lr_min:g} must be below lr_max={self.lr_max:g}")
        if self.warmup_epochs and self.lr_policy in (*CYCLIC, "range"):
            raise ConfigError(f"warmup_epochs applies to lr_policy constant, multistep or cosine, not {self.lr_policy}")
        if self.batch_policy in ("range", "cyclic"):
            for key in ("batch_min", "batch_max"):
                value = getattr(self, key)
                if value and not is_power_of_two(value):
                    raise ConfigError(f"{key}={value} must be a power of two for batch_policy={self.batch_policy}")
            if self.batch_min and self.batch_max and self.batch_min >= self.batch_max:
                raise ConfigError(f"batch_min={self.batch_min} must be below batch_max={self.batch_max}")
            if self.batch_policy == "range" and not (self.batch_min and self.batch_max):
                raise ConfigError("batch_policy=range needs batch_min and batch_max")
        if self.lr_policy == "range" and self.batch_policy == "range":
            raise ConfigError("lr_policy=range and batch_policy=range are two different range tests; pick one")
        if (self.seeds > 1 or self.optimizers) and not supports_population(self):
            raise ConfigError(f"seeds={self.seeds}, optimizers={self.optimizers}: a population trains "
                              f"{', '.join(sorted(SMALL_MODELS))} only, outside the range tests; for model="
                              f"{self.model!r} give each seed and optimizer its own trial")
        self._check_model_options()

    def _check_model_options(self) -> None:
        defaults = {f.name: f.default for f in dataclasses.fields(ClassifyConfig)}
        given = [key for key, models in MODEL_OPTIONS.items()
                 if self.model not in models and getattr(self, key) != defaults[key]]
        if given:
            takers = sorted({m for key in given for m in MODEL_OPTIONS[key]})
            raise ConfigError(f"{', '.join(given)}: option{'s' if len(given) > 1 else ''} of model "
                              f"{' and '.join(takers)} only, not of model={self.model!r}")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return IMAGE_SHAPES[self.dataset]

    @property
    def num_classes(self) -> int:
        return DATASETS[self.dataset].num_classes

    @property
    def range_test(self) -> bool:
        """One of the two range tests: reports per stage of `interval` steps, not per epoch."""
        return self.lr_policy == "range" or self.batch_policy == "range"

    @property
    def stages(self) -> int:
        """Reports the trial makes: its epochs, or the stages of a range test."""
        if self.lr_policy == "range":
            return self.lr_stages
        if self.batch_policy == "range":
            return len(batch_range(self.batch_min, self.batch_max))
        return self.epochs

    def batch_at(self, stage: int) -> int:
        """The batch size of stage (epoch, or range-test stage) `stage`, counted from 1."""
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
        if not self.optimizers:
            return [(self.optimizer, initial_lr(self))]
        return list(zip(self.optimizers, self.lrs or [initial_lr(self)] * len(self.optimizers)))

    def model_kwargs(self) -> dict[str, Any]:
        """The model options `build_model` takes for this config's model and data set."""
        if self.model not in SMALL_MODELS:
            return {}
        kw = {key: getattr(self, key) for key, models in MODEL_OPTIONS.items() if self.model in models}
        return {"image_size": self.image_shape[1], **kw}


def classify_values(cfg: ClassifyConfig) -> dict[str, Any]:
    """The image trial's own config values of `cfg`, a study's ClassifyConfig subclass (its study keys dropped)."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(ClassifyConfig)}


def check_runnable(cfg: ClassifyConfig, distributed: Any = None) -> None:
    """What a trial needs beyond a valid config: values that study hooks fill in (the LR and batch bounds
    from earlier range tests) and a single process for the range tests."""
    if cfg.lr_policy in (*CYCLIC, "range") and not (cfg.lr_min and cfg.lr_max):
        raise ConfigError(f"lr_policy={cfg.lr_policy} needs lr_min and lr_max")
    if not initial_lr(cfg):
        raise ConfigError(f"lr_policy={cfg.lr_policy} needs lr (or lr_{cfg.fixed_lr} with lr=0)")
    if cfg.batch_policy == "cyclic" and not (cfg.batch_min and cfg.batch_max):
        raise ConfigError("batch_policy=cyclic needs batch_min and batch_max")
    if distributed is not None and cfg.range_test:
        raise ConfigError("the range tests (lr_policy=range, batch_policy=range) run in one process, not under DDP")
    if distributed is not None and (cfg.seeds > 1 or cfg.optimizers):
        raise ConfigError(f"seeds={cfg.seeds}, optimizers={cfg.optimizers}: a population trial runs in one process, "
                          "not under DDP")


def supports_population(cfg: ClassifyConfig | dict) -> bool:
    """Whether a config's replicate seeds can train as one population trial (Study.population): the small
    models, whose layers trainables.training.population fuses, outside the range tests (a single run each)."""
    model = cfg["model"] if isinstance(cfg, dict) else cfg.model
    policies = ((cfg.get("lr_policy"), cfg.get("batch_policy")) if isinstance(cfg, dict)
                else (cfg.lr_policy, cfg.batch_policy))
    return model in SMALL_MODELS and "range" not in policies


def make_data(cfg: ClassifyConfig) -> VisionData:
    """Read the data set once on the driver (numpy, cheap to share through the object store)."""
    return load_vision_data(cfg.dataset, cfg.data_dir or None, val_size=cfg.val_size, split_seed=cfg.data_seed,
                            train_subset=cfg.train_subset or None, test_subset=cfg.test_subset or None,
                            subset_seed=cfg.data_seed)


def build_classifier(cfg: ClassifyConfig) -> torch.nn.Module:
    return build_model(cfg.model, num_classes=cfg.num_classes, in_channels=cfg.image_shape[0], **cfg.model_kwargs())


@functools.lru_cache(maxsize=64)
def _summary(model: str, dataset: str, model_kw: tuple[tuple[str, Any], ...] = ()) -> dict[str, int]:
    shape = IMAGE_SHAPES[dataset]
    return model_summary(model, shape, num_classes=DATASETS[dataset].num_classes, in_channels=shape[0],
                         **dict(model_kw))


def derived_params(config: dict[str, Any]) -> dict[str, Any]:
    """Parameter count and forward multiply-accumulates per sample, for MLflow."""
    cfg = from_dict(ClassifyConfig, config)
    return _summary(cfg.model, cfg.dataset, tuple(sorted(cfg.model_kwargs().items())))


def make_optimizer(cfg: ClassifyConfig, params, name: str | None = None, lr: float | None = None) -> torch.optim.Optimizer:
    """The config's optimizer (or the method `name` at `lr`, with the config's hyperparameters), at the learning
    rate of the first step."""
    name = name or cfg.optimizer
    return build_optimizer(name, params, lr=lr or initial_lr(cfg),
                           momentum=cfg.rmsprop_momentum if name == "rmsprop" else cfg.momentum,
                           weight_decay=cfg.weight_decay, alpha=cfg.rmsprop_alpha, rho=cfg.adadelta_rho,
                           betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.eps)


def make_population_optimizer(cfg: ClassifyConfig, params, replicas_per_group: int) -> torch.optim.Optimizer:
    """The trial's optimizer: the config's one over all parameters (one model, or a population of one method), or
    one per replica group of `optimizers`."""
    groups = cfg.replica_groups()
    if len(groups) == 1:
        return make_optimizer(cfg, params)
    k = replicas_per_group
    return ReplicaGroupOptimizer(params, [(g * k, (g + 1) * k, functools.partial(make_optimizer, cfg, name=name, lr=lr))
                                          for g, (name, lr) in enumerate(groups)])


def batchnorm_table(model: torch.nn.Module, seeds: list[int]) -> "pd.DataFrame | None":
    """The learned scale (gamma) and shift (beta) of every channel of every batch-norm layer (labels from
    trainables.models.registry.batchnorm_layers: input, conv1, ..., fc1, ...), one row each, per replica; None without
    batch norm."""
    import pandas as pd

    replicas = [model.replica(p) for p in range(model.size)] if isinstance(model, Population) else [model]
    rows = [{"replica": p, "seed": seed, "layer": layer, "channel": c, "gamma": g, "beta": b}
            for p, (replica, seed) in enumerate(zip(replicas, seeds))
            for layer, bn in batchnorm_layers(replica) if bn.affine
            for c, (g, b) in enumerate(zip(bn.weight.detach().cpu().tolist(), bn.bias.detach().cpu().tolist()))]
    return pd.DataFrame(rows) if rows else None


def device_peak(device: torch.device, amp: bool) -> float | None:
    """The device's peak FLOP/s if it is one of the known GPUs (tensor cores when AMP is on)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device).upper()
    for key in ("H100", "A100", "V100", "P100", "K80"):
        if key in name:
            try:
                return peak_flops(key, "tensor" if amp else "fp32")
            except (KeyError, ValueError):
                return peak_flops(key, "fp32")
    return None


def device_name(device: torch.device) -> str:
    """What the trial trains on, recorded as its run's param "GPU type": the CUDA device's name, else "cpu"."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def train_classifier(config: dict[str, Any], data: VisionData, session) -> None:
    cfg = from_dict(ClassifyConfig, config)
    dist = getattr(session, "distributed", None)  # set in a DDP worker (trainables.runtime.ddp)
    check_runnable(cfg, dist)
    device = dist.device if dist else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = cfg.amp == "on" or (cfg.amp == "auto" and device.type == "cuda")
    channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type == "cuda")
    torch.manual_seed(cfg.seed)
    on_device = to_device(data, device)
    evals = ([("val", on_device.val)] if len(on_device.val.labels) else []) + [("test", on_device.test)]
    eval_name = evals[0][0]  # what target_accuracy and ASHA look at

    groups = cfg.replica_groups()  # (optimizer, lr) per group of cfg.seeds replicas
    seeds = [cfg.seed + i for i in range(cfg.seeds)] * len(groups)  # every group: the same seeds, as separate runs
    population = len(seeds) > 1  # the replicas train fused, each with its own seed, init and data order
    if population:
        model = build_population(lambda: build_classifier(cfg), seeds, device)
        channels_last = False  # the fused convolutions run grouped over the replicas' channels
    else:
        model = build_classifier(cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    train = on_device.train
    n = len(train.labels)
    steps_per_epoch = max(1, n // (dist.world if dist else 1) // cfg.batch_size)
    # `model` stays the plain module (checkpoints, evaluation); a compressing hook starts after epoch 1
    net = dist.wrap(model, warmup_steps=steps_per_epoch) if dist else model
    optimizer = make_population_optimizer(cfg, model.parameters(), cfg.seeds)
    scheduler = build_schedule(cfg, optimizer, steps_per_epoch)
    generator = data_generators(seeds) if population else torch.Generator(device=device).manual_seed(cfg.seed)
    transform = functools.partial(eval_transform, mean=on_device.mean, std=on_device.std)
    if cfg.crop_flip or cfg.cutout or cfg.batch_m > 1:
        augment = functools.partial(batch_augment, m=cfg.batch_m, mean=on_device.mean, std=on_device.std,
                                    padding=4 if cfg.crop_flip else 0, flip=cfg.crop_flip, cutout=cfg.cutout)
    else:  # no augmentation: normalize only (and draw nothing from the generator)
        augment = lambda x, y, generator=None: (transform(x), y)  # noqa: E731
    macs = _summary(cfg.model, cfg.dataset, tuple(sorted(cfg.model_kwargs().items())))["flops_per_sample"]
    peak = device_peak(device, amp)
    log_chance = math.log(cfg.num_classes)

    if cfg.range_test:  # a short single run: no checkpoints, samples drawn from an endless stream
        start, train_s, samples_seen, stream = 0, 0.0, 0, IndexStream(n, generator, device)
    else:
        state = session.restore()
        start, train_s = load_training_state(state, model, optimizer, scheduler, generator)
        samples_seen = state.get("samples_seen", 0) if state else 0
    history = (state or {}).get("replica_history", []) if population and not cfg.range_test else None
    identity = {"seed": seeds, **({"optimizer": [name for name, _ in groups for _ in range(cfg.seeds)],
                                   "lr": [lr for _, lr in groups for _ in range(cfg.seeds)]} if cfg.optimizers else {})}
    iterations = scheduler.last_epoch  # optimizer steps so far
    steady = [0, 0.0]  # images and seconds of the epochs after the first (warm-up) one
    best_stage = math.inf  # continuous LR range test: the best stage loss so far

    for stage in range(start + 1, cfg.stages + 1):  # an epoch, or a stage of a range test
        batch = cfg.batch_at(stage)  # reported as scheduled; an epoch's steps hold at most the whole set
        step_batch = batch if cfg.range_test else min(batch, n)  # the range tests' stream serves any batch size
        lr = optimizer.param_groups[0]["lr"]
        if device.type == "cuda":
            torch.cuda.synchronize()
        common = dict(augment=augment, scheduler=scheduler, amp=amp, channels_last=channels_last,
                      chunks=cfg.micro_batches(step_batch))
        if cfg.range_test:
            stats = train_steps(net, optimizer, train, (stream.next(batch) for _ in range(cfg.interval)), generator,
                                **common)
        else:
            stats = train_one_epoch(net, optimizer, train, step_batch, generator,
                                    shard=dist.shard if dist else (0, 1), **common)
        if dist:
            stats = dist.reduce_epoch(stats)  # the whole epoch's loss/accuracy/samples; the slowest rank's time
            dist.sync_buffers(model)
        replicas: dict[str, list[float]] = {}  # a population's per-replica values; its metrics are their means
        if population:
            replicas = {"train/loss": [v if v <= DIVERGE_FACTOR * log_chance else math.nan for v in stats["loss"]],
                        "train/accuracy": stats["accuracy"]}
            stats = {**stats, "loss": replica_mean(replicas["train/loss"]),
                     "accuracy": replica_mean(replicas["train/accuracy"])}
        epoch_s = stats["seconds"]  # train_steps ends with a host sync, so this is the GPU's time too
        train_s += epoch_s
        iterations += stats["steps"]
        samples_seen += stats["samples"]
        if stage > 1 or cfg.stages == 1:
            steady = [steady[0] + stats["samples"], steady[1] + epoch_s]
        raw = loss = stats["loss"]
        if cfg.lr_policy == "range":
            lr = optimizer.param_groups[0]["lr"] / range_factor(cfg)  # the stage's last step's
        elif not cfg.range_test and raw > DIVERGE_FACTOR * log_chance:
            loss = math.inf  # far worse than guessing: it blew up (the session records the trial as diverged)
        metrics = {"train/loss": loss, "train/accuracy": stats["accuracy"], "train/lr": lr,
                   "train/batch_size": batch, "train/iterations": iterations,
                   "time/epoch_s": epoch_s, "time/train_s": train_s,
                   "perf/images_per_s": stats["samples"] / epoch_s,
                   "perf/steady_images_per_s": steady[0] / steady[1] if steady[1] else stats["samples"] / epoch_s,
                   "time/iter_s": stats.get("iter_s", epoch_s / max(stats["steps"], 1)),
                   # cumulative work, for ASHA's time (every epoch sees each sample batch_m times)
                   "train/samples_seen": samples_seen, "train/passes": stage * cfg.batch_m}
        if not cfg.range_test:
            metrics["train/loss_raw"] = raw
        metrics["perf/tflops"] = achieved_flops(macs, metrics["perf/images_per_s"]) / 1e12
        if peak:
            metrics["perf/ppp"] = metrics["perf/tflops"] * 1e12 / peak
        blew_up = cfg.lr_policy == "range" and math.isfinite(raw) and raw > DIVERGE_FACTOR * best_stage
        if blew_up:
            metrics["range/blew_up"] = 1
        best_stage = min(best_stage, raw) if math.isfinite(raw) else best_stage
        if math.isfinite(raw) and cfg.lr_policy != "range":
            for name, split in evals:
                result = evaluate(model, split.images, split.labels, 1000, transform=transform, amp=amp,
                                  channels_last=channels_last)
                if population:
                    replicas.update({f"{name}/loss": result["loss"], f"{name}/accuracy": result["accuracy"]})
                    result = {key: replica_mean(values) for key, values in result.items()}
                metrics[f"{name}/loss"], metrics[f"{name}/accuracy"] = result["loss"], result["accuracy"]
        elif cfg.lr_policy != "range":  # a NaN epoch is not evaluated; Tune needs the study's metric in every report
            for name, _ in evals:
                metrics[f"{name}/loss"] = metrics[f"{name}/accuracy"] = math.nan
        reached = cfg.target_accuracy > 0 and metrics.get(f"{eval_name}/accuracy", 0.0) >= cfg.target_accuracy
        if reached:
            metrics["target_reached"] = 1
        artifacts = None
        if population:
            spread, artifacts = replica_report(replicas, identity, stage, cfg.stages, history)
            metrics.update(spread, **{"population/size": len(seeds)})
        if stage == cfg.stages or reached or blew_up or artifacts is not None:  # the last report, or a table's
            table = batchnorm_table(model, seeds)  # the learned gamma and beta (a few hundred numbers)
            if table is not None:
                artifacts = {**(artifacts or {}), BATCHNORM_TABLE: table}
        state_fn = None if cfg.range_test else (  # noqa: E731
            lambda: {**training_state(model, optimizer, scheduler, generator, stage, train_s),
                     "samples_seen": samples_seen, **({"replica_history": history} if history is not None else {})})
        if stage == start + 1:  # once per process: the device this trial (or a resumed part of it) runs on
            metrics[PARAMS_KEY] = {"GPU type": device_name(device)}
        if not session.report(metrics, stage, state_fn, artifacts=artifacts) or reached or blew_up:
            return
