"""Learning-rate and batch-size policies for the LR/batch studies (FashionMNIST, MiniGoogLeNet).

    >>> from trainables.lr_batch import LRBatchConfig, make_data, train_lr_batch
    >>> from trainables.session import LocalSession
    >>> config = {"lr_policy": "exp_range", "lr_min": 1e-3, "lr_max": 0.1, "epochs": 2, "train_subset": 2000}
    >>> train_lr_batch(config, make_data(LRBatchConfig(**config)), LocalSession(epochs=2))

One trial function, several policies (all SGD with momentum, no augmentation):

- learning rate (`lr_policy`): `constant`; Smith's cyclical policies `triangular`, `triangular2`,
  `exp_range` (torch's `CyclicLR`, stepped every iteration; half cycle `stepsize` in epochs or
  iterations; exp_range scales the amplitude by `gamma ** iteration`); `range`: the continuous LR
  range test, the LR multiplied every step so that it grows exponentially from `lr_min` to `lr_max`
  over `lr_stages * interval` steps, one report per `interval` steps (`train/lr` = LR of its last step,
  `train/loss` = the stage's mean loss). It stops once the loss exceeds 4x its best (it diverged).
- batch size (`batch_policy`): `fixed`; `range`: the batch-size range test, the batch doubling from
  `batch_min` to `batch_max` every `interval` iterations, one report per batch size (train loss of the
  stage, test accuracy after it); `cyclic`: a per-epoch batch size cycling between `batch_min` and
  `batch_max` with an increasing trend (`cyclic_batch_size`).

A step whose batch exceeds `max_micro_batch` accumulates gradients over micro-batches, each weighted
by its share, so the update equals the full batch's (exactly so without batch norm; with it each
micro-batch normalizes with its own statistics, as in ghost batch norm).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F

from trainables.augment import eval_transform
from trainables.classify import evaluate, train_one_epoch
from trainables.config import ConfigError, from_dict
from trainables.image_classification import IMAGE_SHAPES, check_dataset_and_model, derived_params as _derived_params
from trainables.image_classification import make_data  # noqa: F401  (the same data fields: the study's make_data)
from trainables.models import build_model
from trainables.session import load_training_state, training_state
from trainables.vision_data import DATASETS, TensorSplit, VisionData, to_device

LR_POLICIES = ("constant", "triangular", "triangular2", "exp_range", "range")
CYCLIC = ("triangular", "triangular2", "exp_range")
BATCH_POLICIES = ("fixed", "range", "cyclic")
# Continuous LR test: stop once the stage loss exceeds 4x its best (fastai's rule). Epoch policies: a loss above
# 4x that of guessing, ln(classes), counts as diverged.
DIVERGE_FACTOR = 4.0


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


@dataclass(frozen=True)
class LRBatchConfig:
    dataset: str = "fashion_mnist"
    model: str = "mini_googlenet"
    epochs: int = 5  # training epochs (range tests: number of reports, set from their stages)
    batch_size: int = 64  # samples per optimizer step (batch_policy fixed)
    lr: float = 0.0  # learning rate of lr_policy constant; 0 = lr_max (or lr_min with fixed_lr=min)
    fixed_lr: str = "max"  # which range-test bound a constant LR uses when lr=0: max | min
    lr_policy: str = "constant"  # constant | triangular | triangular2 | exp_range | range
    lr_min: float = 0.0  # cyclic lower bound / range-test start; 0 = from the latest lr_range sweep
    lr_max: float = 0.0  # cyclic upper bound / range-test end; 0 = from the latest lr_range sweep
    stepsize: float = 2.0  # half cycle of the cyclic LR, in stepsize_unit (Smith: 2-10 epochs)
    stepsize_unit: str = "epochs"  # epochs | iterations
    gamma: float = 0.99994  # exp_range: amplitude x gamma**iteration (Smith's CIFAR-10 value)
    lr_stages: int = 20  # continuous LR range test: reports (each `interval` steps)
    interval: int = 50  # iterations per stage of the range tests (per LR report / per batch size)
    batch_policy: str = "fixed"  # fixed | range | cyclic
    batch_min: int = 32  # range test start / cyclic lower bound (power of two); 0 = from the batch range test
    batch_max: int = 16384  # range test end / cyclic upper bound (power of two); 0 = from the batch range test
    batch_stepsize: int = 2  # cyclic batch: half cycle in epochs
    max_micro_batch: int = 1024  # samples one forward/backward pass may hold (memory); above: accumulation
    momentum: float = 0.9
    weight_decay: float = 0.0
    val_size: int = 0  # samples held out of the training set for validation
    train_subset: int = 0  # 0 = all
    test_subset: int = 0
    data_dir: str = ""  # default: $DLSWEEPS_DATA_DIR or ~/.cache/dlsweeps/data
    seed: int = 0
    data_seed: int = 0

    def __post_init__(self) -> None:
        check_dataset_and_model(self.dataset, self.model)
        for key, allowed in (("lr_policy", LR_POLICIES), ("batch_policy", BATCH_POLICIES),
                             ("stepsize_unit", ("epochs", "iterations")), ("fixed_lr", ("max", "min"))):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}={getattr(self, key)!r} is not one of {', '.join(allowed)}")
        for key in ("epochs", "batch_size", "lr_stages", "interval", "batch_stepsize", "max_micro_batch"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}={getattr(self, key)} must be a positive integer")
        for key in ("lr", "lr_min", "lr_max", "weight_decay", "batch_min", "batch_max"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}={getattr(self, key)} must not be negative")
        if self.stepsize <= 0 or not 0 < self.gamma <= 1:
            raise ConfigError(f"stepsize={self.stepsize} must be > 0 and gamma={self.gamma} in (0, 1]")
        if self.lr_min and self.lr_max and self.lr_min >= self.lr_max:
            raise ConfigError(f"lr_min={self.lr_min:g} must be below lr_max={self.lr_max:g}")
        if self.batch_policy in ("range", "cyclic"):
            for key in ("batch_min", "batch_max"):
                value = getattr(self, key)
                if value and not is_power_of_two(value):
                    raise ConfigError(f"{key}={value} must be a power of two for batch_policy={self.batch_policy}")
            if self.batch_min and self.batch_max and self.batch_min >= self.batch_max:
                raise ConfigError(f"batch_min={self.batch_min} must be below batch_max={self.batch_max}")
        if self.lr_policy == "range" and self.batch_policy == "range":
            raise ConfigError("lr_policy=range and batch_policy=range are two different range tests; pick one")

    @property
    def constant_lr(self) -> float:
        return self.lr or (self.lr_max if self.fixed_lr == "max" else self.lr_min)

    def chunks(self, batch: int) -> int:
        """Micro-batches per step so that none exceeds max_micro_batch (gradient accumulation)."""
        return max(1, math.ceil(batch / self.max_micro_batch))


# ---------------------------------------------------------------- schedules (pure functions, tested)

def cyclic_scheduler(cfg: LRBatchConfig, optimizer: torch.optim.Optimizer,
                     steps_per_epoch: int) -> torch.optim.lr_scheduler.CyclicLR:
    """Smith's cyclical LR between lr_min and lr_max, stepped once per iteration."""
    step_up = cfg.stepsize * steps_per_epoch if cfg.stepsize_unit == "epochs" else cfg.stepsize
    # Smith's CLR keeps momentum fixed; torch cycles it by default.
    return torch.optim.lr_scheduler.CyclicLR(optimizer, base_lr=cfg.lr_min, max_lr=cfg.lr_max,
                                             step_size_up=max(1, round(step_up)), mode=cfg.lr_policy,
                                             gamma=cfg.gamma, cycle_momentum=False)


def lr_schedule(cfg: LRBatchConfig, iterations: int, steps_per_epoch: int) -> list[float]:
    """The learning rate of each of the first `iterations` steps (for figures and tests)."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.constant_lr or 1.0)
    if cfg.lr_policy == "constant":
        return [cfg.constant_lr] * iterations
    if cfg.lr_policy == "range":
        factor = range_factor(cfg)
        return [cfg.lr_min * factor**i for i in range(iterations)]
    scheduler = cyclic_scheduler(cfg, optimizer, steps_per_epoch)
    lrs = []
    for _ in range(iterations):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def range_factor(cfg: LRBatchConfig) -> float:
    """Per-step LR multiplier of the continuous range test: lr_min -> lr_max over all its steps."""
    steps = cfg.lr_stages * cfg.interval
    return (cfg.lr_max / cfg.lr_min) ** (1.0 / max(steps - 1, 1))


def batch_range(batch_min: int, batch_max: int) -> list[int]:
    """Batch sizes of the batch-size range test: batch_min doubling up to batch_max."""
    sizes = [batch_min]
    while sizes[-1] * 2 <= batch_max:
        sizes.append(sizes[-1] * 2)
    return sizes


def cyclic_batch_size(epoch: int, epochs: int, batch_min: int, batch_max: int, stepsize: int) -> int:
    """Batch size of epoch `epoch` (0-based) of the cyclical batch-size policy.

    In log2 space, a triangular wave (Smith's CLR formula with the epoch as iteration) between a lower
    bound and log2(batch_max); the lower bound rises linearly from log2(batch_min) to log2(batch_max)
    over training, so the batch cycles with an increasing trend and ends at batch_max: the analogue of
    exp_range's decaying LR (a larger batch, like a smaller LR, lowers the gradient noise).
    Rounded to a power of two."""
    lo, hi = math.log2(batch_min), math.log2(batch_max)
    cycle = math.floor(1 + epoch / (2 * stepsize))
    x = abs(epoch / stepsize - 2 * cycle + 1)  # 1 at the cycle's ends, 0 at its middle
    wave = max(0.0, 1 - x)  # 0 -> 1 -> 0 over a cycle
    floor = lo + (hi - lo) * epoch / max(epochs - 1, 1)
    return 2 ** round(floor + (hi - floor) * wave)


# ---------------------------------------------------------------- training

def accumulate_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, chunks: int) -> torch.Tensor:
    """Backward of the mean cross-entropy over (x, y) in `chunks` micro-batches; returns the (detached)
    loss. Each micro-batch's loss is weighted by its share, so the summed gradient is the full batch's."""
    total = torch.zeros((), device=x.device)
    for xs, ys in zip(x.chunk(chunks), y.chunk(chunks)):
        loss = F.cross_entropy(model(xs), ys)  # no AMP in these trials: logits in the model's dtype
        (loss * (len(ys) / len(y))).backward()
        total += loss.detach() * len(ys)
    return total / len(y)


class IndexStream:
    """Endless random order over n samples (a fresh permutation each pass), served in batches of any size."""

    def __init__(self, n: int, generator: torch.Generator, device: torch.device):
        self.n, self.generator, self.device = n, generator, device
        self.perm = torch.empty(0, dtype=torch.long, device=device)

    def next(self, batch: int) -> torch.Tensor:
        while len(self.perm) < batch:
            self.perm = torch.cat([self.perm, torch.randperm(self.n, device=self.device, generator=self.generator)])
        idx, self.perm = self.perm[:batch], self.perm[batch:]
        return idx


def train_steps(model, optimizer, split: TensorSplit, stream: IndexStream, batch: int, steps: int, chunks: int,
                transform: Callable, scheduler=None) -> float:
    """`steps` SGD steps of `batch` samples drawn from `stream`; returns the mean loss (nan if not finite)."""
    model.train()
    total = torch.zeros((), device=split.images.device)
    for _ in range(steps):
        idx = stream.next(batch)
        optimizer.zero_grad(set_to_none=True)
        total += accumulate_gradients(model, transform(split.images[idx]), split.labels[idx], chunks)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    loss = (total / steps).item()  # one sync per stage
    return loss if math.isfinite(loss) else math.nan


def derived_params(config: dict[str, Any]) -> dict[str, Any]:
    return _derived_params({"model": config["model"], "dataset": config["dataset"]})


def stages(cfg: LRBatchConfig) -> int:
    """Reports a trial makes: epochs, or the stages of a range test."""
    if cfg.lr_policy == "range":
        return cfg.lr_stages
    if cfg.batch_policy == "range":
        return len(batch_range(cfg.batch_min, cfg.batch_max))
    return cfg.epochs


def train_lr_batch(config: dict[str, Any], data: VisionData, session) -> None:
    cfg = from_dict(LRBatchConfig, config)
    if cfg.lr_policy in (*CYCLIC, "range") and not (cfg.lr_min and cfg.lr_max):
        raise ConfigError(f"lr_policy={cfg.lr_policy} needs lr_min and lr_max")
    if cfg.lr_policy == "constant" and not cfg.constant_lr:
        raise ConfigError("lr_policy=constant needs lr (or lr_min/lr_max)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(cfg.seed)
    d = to_device(data, device)
    channels = IMAGE_SHAPES[cfg.dataset][0]
    kw = {"image_size": IMAGE_SHAPES[cfg.dataset][1]} if cfg.model in ("mlp", "lenet5") else {}
    model = build_model(cfg.model, num_classes=DATASETS[cfg.dataset].num_classes, in_channels=channels, **kw).to(device)
    start_lr = cfg.lr_min if cfg.lr_policy in (*CYCLIC, "range") else cfg.constant_lr
    optimizer = torch.optim.SGD(model.parameters(), lr=start_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    transform = functools.partial(eval_transform, mean=d.mean, std=d.std)
    evals = [("val", d.val)] if len(d.val.labels) else []
    evals.append(("test", d.test))

    def evaluation() -> dict[str, float]:
        out = {}
        for name, split in evals:
            result = evaluate(model, split.images, split.labels, 1000, transform=transform)
            out[f"{name}/loss"], out[f"{name}/accuracy"] = result["loss"], result["accuracy"]
        return out

    n = len(d.train.labels)
    if cfg.lr_policy == "range" or cfg.batch_policy == "range":
        _range_test(cfg, model, optimizer, d.train, IndexStream(n, generator, device), transform, evaluation, session)
        return

    steps_per_epoch = max(1, n // cfg.batch_size)
    scheduler = (cyclic_scheduler(cfg, optimizer, steps_per_epoch) if cfg.lr_policy in CYCLIC
                 else torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0))
    start_epoch, train_s = load_training_state(session.restore(), model, optimizer, scheduler, generator)
    iterations = scheduler.last_epoch
    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        batch = cfg.batch_size if cfg.batch_policy == "fixed" else cyclic_batch_size(
            epoch - 1, cfg.epochs, cfg.batch_min, cfg.batch_max, cfg.batch_stepsize)
        lr = optimizer.param_groups[0]["lr"]
        stats = train_one_epoch(model, optimizer, d.train, min(batch, n), generator,
                                augment=lambda x, y, generator=None: (transform(x), y),
                                scheduler=scheduler, chunks=cfg.chunks(min(batch, n)))
        train_s += stats["seconds"]
        iterations += stats["steps"]
        loss = stats["loss"]
        if loss > DIVERGE_FACTOR * math.log(DATASETS[cfg.dataset].num_classes):
            # Far worse than guessing (ln C): it blew up. Recorded as diverged (the session stops the trial on
            # a non-finite loss); the number itself is kept as train/loss_raw.
            loss = math.inf
        metrics = {"train/loss": loss, "train/loss_raw": stats["loss"], "train/accuracy": stats["accuracy"],
                   "train/lr": lr, "train/batch_size": batch, "train/iterations": iterations, "time/epoch_s": stats["seconds"],
                   "time/train_s": train_s, "train/samples_seen": epoch * stats["samples"]}
        if math.isfinite(stats["loss"]):
            metrics.update(evaluation())
        state_fn = lambda: training_state(model, optimizer, scheduler, generator, epoch, train_s)  # noqa: E731
        if not session.report(metrics, epoch, state_fn):
            return


def _range_test(cfg, model, optimizer, train: TensorSplit, stream: IndexStream, transform, evaluation,
                session) -> None:
    """The continuous LR range test or the batch-size range test: one report per stage, no checkpoints
    (a short single run; restarted from scratch if its process dies)."""
    if cfg.lr_policy == "range":
        scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=range_factor(cfg))
        plan = [cfg.batch_size] * cfg.lr_stages
    else:
        scheduler = None
        plan = batch_range(cfg.batch_min, cfg.batch_max)
    best, train_s, iterations, samples = math.inf, 0.0, 0, 0
    for stage, batch in enumerate(plan, start=1):
        started = time.perf_counter()
        loss = train_steps(model, optimizer, train, stream, batch, cfg.interval, cfg.chunks(batch), transform,
                           scheduler)
        train_s += time.perf_counter() - started
        iterations += cfg.interval
        samples += cfg.interval * batch
        lr = optimizer.param_groups[0]["lr"] / (range_factor(cfg) if scheduler is not None else 1.0)  # last step's
        metrics = {"train/loss": loss, "train/lr": lr, "train/batch_size": batch, "train/iterations": iterations,
                   "train/samples_seen": samples, "time/train_s": train_s}
        blew_up = cfg.lr_policy == "range" and math.isfinite(loss) and loss > DIVERGE_FACTOR * best
        if math.isfinite(loss) and not blew_up and cfg.batch_policy == "range":
            metrics.update(evaluation())
        best = min(best, loss) if math.isfinite(loss) else best
        if blew_up:
            metrics["range/blew_up"] = 1
        if not session.report(metrics, stage) or blew_up:
            return
