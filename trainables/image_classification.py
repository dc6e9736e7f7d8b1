"""The image-classification trial shared by the image studies (runnable with or without Ray).

    >>> from trainables.image_classification import ClassifyConfig, make_data, train_classifier
    >>> from trainables.session import LocalSession
    >>> cfg = ClassifyConfig(dataset="fashion_mnist", model="lenet5", epochs=2, train_subset=2000)
    >>> s = LocalSession(epochs=2); train_classifier(config_dict, make_data(cfg), s)

The data set (uint8, in memory) is built once on the driver by `make_data` and
moved to the trial's device once; batches are index slices of a per-epoch
permutation and augmentation runs batched on the device (`trainables.augment`).
On a GPU, AMP (bfloat16) and channels_last are on unless turned off.

Per epoch the trial reports `train/loss`, `train/accuracy`, `test/loss`,
`test/accuracy` (and `val/*` when a validation split is asked for),
`time/epoch_s`, `time/train_s` (cumulative, training only), `lr`,
`perf/images_per_s`, `train/samples_seen` and `train/passes` (cumulative, batch-augmented copies
included; passes = epoch x batch_m), `perf/tflops` (achieved, forward+backward = 3x forward)
and, where the device's peak is known, `perf/ppp` (fraction of peak, PALEO); `time/iter_s` (mean
step time of a worker) and `perf/steady_images_per_s` (over epochs 2.., i.e. after the warm-up epoch).

Data-parallel (in a `trainables.ddp.DDPSession`, whose `distributed` is set): the same loop, with
the model wrapped in DistributedDataParallel, each rank training on its shard of every epoch and
the epoch's statistics summed over ranks (loss, accuracy and images/s are the whole epoch's).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from trainables.augment import batch_augment, eval_transform
from trainables.classify import evaluate, train_one_epoch
from trainables.config import ConfigError, from_dict
from trainables.model_stats import model_summary
from trainables.models import MODELS, build_model
from trainables.paleo import achieved_flops, peak_flops
from trainables.session import load_training_state, training_state
from trainables.vision_data import DATASETS, VisionData, load_vision_data, to_device

IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32)}
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta")
LR_SCHEDULES = ("constant", "multistep", "cosine")


def check_dataset_and_model(dataset: str, model: str) -> None:
    """The config check every image trial shares: a known data set and a registered model."""
    if dataset not in IMAGE_SHAPES:
        raise ConfigError(f"dataset={dataset!r} is not one of {', '.join(IMAGE_SHAPES)}")
    if model not in MODELS:
        raise ConfigError(f"model={model!r} is not registered; choose from {', '.join(sorted(MODELS))}")


@dataclass(frozen=True)
class ClassifyConfig:
    dataset: str = "fashion_mnist"  # mnist | fashion_mnist | cifar10 | cifar100
    model: str = "lenet5"  # any name in trainables.models.MODELS
    epochs: int = 10
    batch_size: int = 64  # samples per optimizer step (before batch augmentation)
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9  # SGD / RMSProp momentum
    nesterov: bool = False
    weight_decay: float = 0.0  # L2 penalty through the optimizer
    lr_schedule: str = "constant"  # constant | multistep (x lr_gamma at each milestone) | cosine (to 0)
    lr_milestones: tuple[int, ...] = ()  # epochs, for multistep
    lr_gamma: float = 0.1
    warmup_epochs: int = 0  # linear warm-up from lr/10 (Goyal et al.)
    crop_flip: bool = False  # 4-pixel pad + random crop + horizontal flip
    cutout: int = 0  # side of the cutout square in pixels (0 = off)
    batch_m: int = 1  # batch augmentation: M augmented copies of each sample per step
    chunks: int = 1  # micro-batches per step (gradient accumulation) when a batch does not fit
    val_size: int = 0  # samples held out of the training set for validation
    train_subset: int = 0  # train on a seeded random subset of this many samples (0 = all)
    test_subset: int = 0
    data_dir: str = ""  # default: $DLSWEEPS_DATA_DIR or ~/.cache/dlsweeps/data
    target_accuracy: float = 0.0  # stop the trial once the eval accuracy reaches this (0 = never)
    amp: str = "auto"  # auto (on with CUDA) | on | off
    channels_last: str = "auto"  # auto (on with CUDA) | on | off
    seed: int = 0
    data_seed: int = 0

    def __post_init__(self) -> None:
        check_dataset_and_model(self.dataset, self.model)
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer={self.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"lr_schedule={self.lr_schedule!r} is not one of {', '.join(LR_SCHEDULES)}")
        for key in ("epochs", "batch_size", "batch_m", "chunks"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}={getattr(self, key)} must be a positive integer")
        if self.lr <= 0:
            raise ConfigError(f"lr={self.lr} must be positive")
        for key in ("amp", "channels_last"):
            if getattr(self, key) not in ("auto", "on", "off"):
                raise ConfigError(f"{key}={getattr(self, key)!r} must be auto, on or off")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return IMAGE_SHAPES[self.dataset]

    @property
    def num_classes(self) -> int:
        return DATASETS[self.dataset].num_classes


def make_data(cfg: ClassifyConfig) -> VisionData:
    """Read the data set once on the driver (numpy, cheap to share through the object store).
    Any config with ClassifyConfig's data fields will do (the LR/batch studies' LRBatchConfig too)."""
    return load_vision_data(cfg.dataset, cfg.data_dir or None, val_size=cfg.val_size, split_seed=cfg.data_seed,
                            train_subset=cfg.train_subset or None, test_subset=cfg.test_subset or None,
                            subset_seed=cfg.data_seed)


def build_classifier(cfg: ClassifyConfig) -> torch.nn.Module:
    channels, height, _ = cfg.image_shape
    kw: dict[str, Any] = {"image_size": height} if cfg.model in ("mlp", "lenet5") else {}
    return build_model(cfg.model, num_classes=cfg.num_classes, in_channels=channels, **kw)


@functools.lru_cache(maxsize=64)
def _summary(model: str, dataset: str) -> dict[str, int]:
    cfg = ClassifyConfig(model=model, dataset=dataset)
    channels, height, _ = cfg.image_shape
    kw = {"image_size": height} if model in ("mlp", "lenet5") else {}
    return model_summary(model, cfg.image_shape, num_classes=cfg.num_classes, in_channels=channels, **kw)


def derived_params(config: dict[str, Any]) -> dict[str, Any]:
    """Parameter count and forward multiply-accumulates per sample, for MLflow."""
    cfg = from_dict(ClassifyConfig, config)
    return _summary(cfg.model, cfg.dataset)


def build_optimizer(cfg: ClassifyConfig, params) -> torch.optim.Optimizer:
    wd = cfg.weight_decay
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=wd)
    if cfg.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=wd)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "adagrad": torch.optim.Adagrad,
           "adadelta": torch.optim.Adadelta}[cfg.optimizer]
    return cls(params, lr=cfg.lr, weight_decay=wd)


def build_schedule(cfg: ClassifyConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """A per-step learning-rate schedule (epoch-based recipes converted to steps)."""
    total = cfg.epochs * steps_per_epoch
    if cfg.lr_schedule == "multistep":
        main = torch.optim.lr_scheduler.MultiStepLR(optimizer, [m * steps_per_epoch for m in cfg.lr_milestones],
                                                    gamma=cfg.lr_gamma)
    elif cfg.lr_schedule == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total, 1))
    else:
        main = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if cfg.warmup_epochs <= 0:
        return main
    warm = cfg.warmup_epochs * steps_per_epoch
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=warm)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warmup, main], milestones=[warm])


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


def train_classifier(config: dict[str, Any], data: VisionData, session) -> None:
    cfg = from_dict(ClassifyConfig, config)
    dist = getattr(session, "distributed", None)  # set in a DDP worker (trainables.ddp)
    device = dist.device if dist else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = cfg.amp == "on" or (cfg.amp == "auto" and device.type == "cuda")
    channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type == "cuda")
    torch.manual_seed(cfg.seed)
    on_device = to_device(data, device)
    eval_split = on_device.val if len(on_device.val.labels) else on_device.test
    eval_name = "val" if len(on_device.val.labels) else "test"

    model = build_classifier(cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    steps_per_epoch = max(1, len(on_device.train.labels) // (dist.world if dist else 1) // cfg.batch_size)
    # `model` stays the plain module (checkpoints, evaluation); a compressing hook starts after epoch 1
    net = dist.wrap(model, warmup_steps=steps_per_epoch) if dist else model
    optimizer = build_optimizer(cfg, model.parameters())
    scheduler = build_schedule(cfg, optimizer, steps_per_epoch)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    augment = functools.partial(batch_augment, m=cfg.batch_m, mean=on_device.mean, std=on_device.std,
                                padding=4 if cfg.crop_flip else 0, flip=cfg.crop_flip, cutout=cfg.cutout)
    transform = functools.partial(eval_transform, mean=on_device.mean, std=on_device.std)
    macs = _summary(cfg.model, cfg.dataset)["flops_per_sample"]
    peak = device_peak(device, amp)

    start_epoch, train_s = load_training_state(session.restore(), model, optimizer, scheduler, generator)
    steady = [0, 0.0]  # images and seconds of the epochs after the first (warm-up) one

    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        if device.type == "cuda":
            torch.cuda.synchronize()
        stats = train_one_epoch(net, optimizer, on_device.train, cfg.batch_size, generator, augment=augment,
                                scheduler=scheduler, amp=amp, channels_last=channels_last, chunks=cfg.chunks,
                                shard=dist.shard if dist else (0, 1))
        if dist:
            stats = dist.reduce_epoch(stats)  # the whole epoch's loss/accuracy/samples; the slowest rank's time
            dist.sync_buffers(model)
        epoch_s = stats["seconds"]  # train_one_epoch ends with a host sync, so this is the GPU's time too
        train_s += epoch_s
        if epoch > 1 or cfg.epochs == 1:
            steady = [steady[0] + stats["samples"], steady[1] + epoch_s]
        metrics = {"train/loss": stats["loss"], "train/accuracy": stats["accuracy"], "lr": lr,
                   "time/epoch_s": epoch_s, "time/train_s": train_s,
                   "perf/images_per_s": stats["samples"] / epoch_s,
                   "perf/steady_images_per_s": steady[0] / steady[1] if steady[1] else stats["samples"] / epoch_s,
                   "time/iter_s": stats.get("iter_s", epoch_s / max(stats["steps"], 1)),
                   # cumulative work, for ASHA's time (every epoch sees each sample batch_m times, same count each epoch)
                   "train/samples_seen": epoch * stats["samples"], "train/passes": epoch * cfg.batch_m}
        metrics["perf/tflops"] = achieved_flops(macs, metrics["perf/images_per_s"]) / 1e12
        if peak:
            metrics["perf/ppp"] = metrics["perf/tflops"] * 1e12 / peak
        if math.isfinite(stats["loss"]):
            for name, split in ((eval_name, eval_split),) + ((("test", on_device.test),) if eval_name == "val" else ()):
                result = evaluate(model, split.images, split.labels, 1000, transform=transform, amp=amp,
                                  channels_last=channels_last)
                metrics[f"{name}/loss"], metrics[f"{name}/accuracy"] = result["loss"], result["accuracy"]
        state_fn = lambda: training_state(model, optimizer, scheduler, generator, epoch, train_s)  # noqa: E731
        reached = cfg.target_accuracy > 0 and metrics.get(f"{eval_name}/accuracy", 0.0) >= cfg.target_accuracy
        if reached:
            metrics["target_reached"] = 1
        if not session.report(metrics, epoch, state_fn) or reached:
            return
