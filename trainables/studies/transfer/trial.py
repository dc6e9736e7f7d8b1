"""The transfer-learning trial: an ImageNet-pretrained ResNet fine-tuned, or used as a fixed feature extractor,
on a Visual Decathlon domain (runnable with or without Ray).

    >>> from trainables.studies.transfer.config import TransferConfig
    >>> from trainables.studies.transfer.trial import make_data, train_transfer
    >>> from trainables.runtime.session import LocalSession
    >>> cfg = TransferConfig(mode="feature_extractor", lr=0.1, epochs=3, image_size=64, load_size=72)
    >>> train_transfer(cfg, make_data(cfg), LocalSession(epochs=3))     # device: the CPU

Two modes (`mode`), the same recipe otherwise (SGD, momentum 0.9, batch 64, the learning rate multiplied by
`lr_gamma` = 0.1 at each of `lr_decay_at` = 30%, 60% and 90% of the epochs, stepped per iteration):

- `finetune`: every layer trains at `lr`, the new final layer included; batch norm in training mode.
- `feature_extractor`: only the new final layer trains; the backbone is frozen (no gradients, eval mode, its
  batch-norm statistics ImageNet's; trainables.models.pretrained.TransferModel). Its forward pass still runs every
  step, on each step's augmented crops. `cache_features=true` is the fast path: no augmentation, the
  backbone's features of every image computed once (`time/features_s`), then the head trains on them.

Data (trainables.data.vision, built once on the driver and shared through the object store with the
pretrained state dict): images stored as uint8 squares of `load_size` (shorter side resized, centre crop),
moved to the trial's device once. Training batches take an Inception-style random-resized crop (scale
0.08-1, aspect 3/4-4/3) and a horizontal flip, resampled to `image_size` on the device
(trainables.training.augment.random_resized_crop_flip); evaluation takes the central 87.5% resized to `image_size`
(ImageNet's resize 256, crop 224). Both normalize with ImageNet's mean and std, which the weights expect.

Metrics every epoch: train/loss, train/accuracy, train/lr, val/loss, val/accuracy, test/loss, test/accuracy,
time/epoch_s (training only), time/eval_s, time/train_s (cumulative, the features' extraction included),
perf/images_per_s; at the last report `backbone/max_change`, the largest change of any backbone tensor from
the pretrained weights (0 for the feature extractor: the frozen layers did not move).
A diverging trial (loss NaN or above 4 ln(classes)) reports train/loss = inf and is recorded as diverged.
On a GPU: AMP (bfloat16) and channels_last unless turned off. Seeds are separate trials (a ResNet-50 is no
small model to fuse into a population).
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from trainables.training.augment import center_crop_resize, normalize, random_resized_crop_flip
from trainables.training.classify import evaluate, train_one_epoch
from trainables.image.trial import DIVERGE_FACTOR
from trainables.models.pretrained import (ARCHS, IMAGENET_MEAN, IMAGENET_STD, backbone_change, build_transfer_model,
                                   load_pretrained)
from trainables.runtime.devices import CPU
from trainables.runtime.session import load_training_state, training_state
from trainables.studies.transfer.config import CROP_FRACTION, TransferConfig
from trainables.data.vision import DATASETS, TensorSplit, VisionData, load_vision_data, to_device

@dataclass(frozen=True)
class TransferData:
    """What every trial gets through the object store: the images (uint8 numpy) and the pretrained weights."""

    images: VisionData
    state: dict[str, torch.Tensor]


def make_data(cfg: TransferConfig) -> TransferData:
    """Read the data set and the pretrained weights once, on the driver."""
    images = load_vision_data(cfg.dataset, cfg.data_dir or None, size=cfg.load_size,
                              train_subset=cfg.train_subset or None, test_subset=cfg.test_subset or None,
                              subset_seed=cfg.data_seed)
    return TransferData(images, load_pretrained(cfg.arch, cfg.weights, cfg.weights_path))


def train_transform(x: torch.Tensor, y: torch.Tensor, generator=None, *, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    return normalize(random_resized_crop_flip(x, size, generator), IMAGENET_MEAN, IMAGENET_STD), y


def eval_transform(x: torch.Tensor, *, size: int) -> torch.Tensor:
    return normalize(center_crop_resize(x, size, CROP_FRACTION), IMAGENET_MEAN, IMAGENET_STD)


@torch.no_grad()
def extract_features(model, images: torch.Tensor, transform, batch_size: int = 256, amp: bool = False,
                     channels_last: bool = False) -> torch.Tensor:
    """The frozen backbone's features (N, D), float32 on the images' device, of the test-time view of `images`."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        x = transform(images[i: i + batch_size])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=amp):
            out.append(model.features(x).float())
    return torch.cat(out) if out else torch.empty(0, model.head.in_features, device=images.device)


def train_transfer(cfg: TransferConfig, data: TransferData, session, device: torch.device = CPU) -> None:
    """Fine-tune (or train the head of) the pretrained network on `device`, reporting once per epoch."""
    amp = cfg.amp == "on" or (cfg.amp == "auto" and device.type == "cuda")
    channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type == "cuda")
    torch.manual_seed(cfg.seed)  # the new head's initialization
    on_device = to_device(data.images, device)
    model = build_transfer_model(cfg.arch, data.state, on_device.num_classes, frozen=cfg.frozen).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    to_eval = functools.partial(eval_transform, size=cfg.image_size)
    splits = {"train": on_device.train, "val": on_device.val, "test": on_device.test}
    started = time.perf_counter()
    if cfg.cached:  # the fast path: the backbone runs once per image; the head trains on its features
        splits = {name: TensorSplit(extract_features(model, s.images, to_eval, amp=amp, channels_last=channels_last),
                                    s.labels) for name, s in splits.items()}
        net, transform, augment, net_channels_last = model.head, (lambda x: x), None, False
    else:
        net, transform, net_channels_last = model, to_eval, channels_last
        augment = (functools.partial(train_transform, size=cfg.image_size) if cfg.augmented
                   else lambda x, y, generator=None: (to_eval(x), y))
    features_s = time.perf_counter() - started if cfg.cached else 0.0
    evals = [(name, splits[name]) for name in ("val", "test") if len(splits[name].labels)]

    n = len(splits["train"].labels)
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size) - (1 if n % cfg.batch_size == 1 else 0))
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [e * steps_per_epoch for e in cfg.decay_epochs()],
                                                     gamma=cfg.lr_gamma)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    state = session.restore()
    start, train_s = load_training_state(state, net, optimizer, scheduler, generator)
    train_s += features_s if start == 0 else 0.0
    log_chance = math.log(on_device.num_classes)

    for epoch in range(start + 1, cfg.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]
        if device.type == "cuda":
            torch.cuda.synchronize()
        stats = train_one_epoch(net, optimizer, splits["train"], min(cfg.batch_size, n), generator, augment=augment,
                                scheduler=scheduler, amp=amp, channels_last=net_channels_last)
        train_s += stats["seconds"]
        raw = stats["loss"]
        diverged = not math.isfinite(raw) or raw > DIVERGE_FACTOR * log_chance
        metrics = {"train/loss": math.inf if diverged else raw, "train/loss_raw": raw,
                   "train/accuracy": stats["accuracy"], "train/lr": lr, "time/epoch_s": stats["seconds"],
                   "time/train_s": train_s, "perf/images_per_s": stats["samples"] / stats["seconds"]}
        if cfg.cached:
            metrics["time/features_s"] = features_s
        eval_started = time.perf_counter()
        for name, split in evals:
            result = (evaluate(net, split.images, split.labels, 500, transform=transform, amp=amp,
                               channels_last=net_channels_last)
                      if not diverged else {"loss": math.nan, "accuracy": math.nan})
            metrics[f"{name}/loss"], metrics[f"{name}/accuracy"] = result["loss"], result["accuracy"]
        metrics["time/eval_s"] = time.perf_counter() - eval_started
        if epoch == cfg.epochs or diverged:
            metrics["backbone/max_change"] = backbone_change(model, data.state)
        state_fn = lambda: training_state(net, optimizer, scheduler, generator, epoch, train_s)  # noqa: E731
        if not session.report(metrics, epoch, state_fn) or diverged:
            return


@functools.lru_cache(maxsize=None)
def _backbone_size(arch: str) -> tuple[int, int]:
    """(parameters without the final layer, features the final layer takes)."""
    model = ARCHS[arch][0](weights=None)
    return sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in model.fc.parameters()), model.fc.in_features


def transfer_params(cfg: TransferConfig) -> dict[str, Any]:
    """What the trial trains, for MLflow: trained and total parameters, and the effective data settings."""
    total, features = _backbone_size(cfg.arch)
    head = features * (DATASETS[cfg.dataset].num_classes + 1)
    return {"n_params": total + head, "n_trained_params": head if cfg.frozen else total + head,
            "augmented": cfg.augmented, "features_cached": cfg.cached, "decay_epochs": "-".join(map(str, cfg.decay_epochs()))}
