"""The batch-augmentation trial: the shared image-classification trial plus a learning-rate rule for M.

    >>> from trainables.batch_augmentation import BatchAugmentConfig, train_batch_augment, he_milestones
    >>> he_milestones(50_000)            # He et al.'s 32k/48k iterations of batch 128, in epochs
    (82, 123)

Batch augmentation (Hoffer et al. 2019) keeps the batch of B distinct samples and the
steps per epoch (N / B) of the baseline; each step sees M*B augmented samples. The
learning rate is per step, so by default it is left alone (as in the paper);
`lr_scaling` multiplies it by M (linear, Goyal et al.) or sqrt(M) (Hoffer et al. 2017)
for comparison. Everything else (batched on-device augmentation, AMP, channels_last,
chunked gradient accumulation, the target-accuracy stop) is `trainables.image.trial`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from trainables.image import trial as ic
from trainables.config import ConfigError, from_dict

LR_SCALINGS = ("none", "linear", "sqrt")
HE_ITERATIONS = (32_000, 48_000)  # He et al. 2015, Sec. 4.2: lr / 10 at these iterations of batch 128
HE_BATCH = 128


def he_milestones(train_size: int = 50_000) -> tuple[int, ...]:
    """He et al.'s LR drops converted to epochs (samples seen / training-set size, rounded).

    50,000 images (the full CIFAR-10 train set, test on the 10k test set) -> (82, 123);
    45,000 (He et al.'s 45k/5k split) -> (91, 137). In epochs the batch size drops out,
    so the same milestones hold for B = 64 (twice as many steps per epoch)."""
    return tuple(round(it * HE_BATCH / train_size) for it in HE_ITERATIONS)


@dataclass(frozen=True)
class BatchAugmentConfig(ic.ClassifyConfig):
    # Defaults: the paper-scale recipe (ResNet-44, B = 64, crop+flip+cutout 16, He et al.'s schedule in epochs).
    dataset: str = "cifar10"
    model: str = "resnet44"
    epochs: int = 100  # at most; a trial stops at target_accuracy
    batch_size: int = 64  # B distinct samples per step; the step sees batch_m * B
    lr: float = 0.1  # per step, before lr_scaling
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_policy: str = "multistep"  # lr x lr_gamma at each of lr_milestones
    lr_milestones: tuple[int, ...] = he_milestones(50_000)  # epochs
    crop_flip: bool = True
    cutout: int = 16
    target_accuracy: float = 0.94  # on the test set (original images)
    lr_scaling: str = "none"  # none | linear (lr x M) | sqrt (lr x sqrt(M))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lr_scaling not in LR_SCALINGS:
            raise ConfigError(f"lr_scaling={self.lr_scaling!r} is not one of {', '.join(LR_SCALINGS)}")
        if not 0.0 <= self.target_accuracy <= 1.0:
            raise ConfigError(f"target_accuracy={self.target_accuracy} must be a fraction in [0, 1] (e.g. 0.94)")

    @property
    def effective_lr(self) -> float:
        factor = {"none": 1.0, "linear": float(self.batch_m), "sqrt": math.sqrt(self.batch_m)}[self.lr_scaling]
        return self.lr * factor


def classify_config(config: dict[str, Any]) -> dict[str, Any]:
    """The shared trial's config: lr scaled for M, the study-only keys dropped."""
    cfg = from_dict(BatchAugmentConfig, config)
    values = ic.classify_values(cfg)
    values["lr"] = cfg.effective_lr
    return values


def train_batch_augment(config: dict[str, Any], data: Any, session) -> None:
    ic.train_classifier(classify_config(config), data, BestAccuracySession(session))


def derived_params(config: dict[str, Any]) -> dict[str, Any]:
    """n_params, flops_per_sample, and the learning rate the trial actually used."""
    values = classify_config(config)
    return {**ic.derived_params(values), "lr_effective": values["lr"]}


class BestAccuracySession:
    """Wraps a session: every report also carries `test/error` and `test/best_accuracy`, the best test accuracy so far, so a
    trial that never reaches its target still records its best in its final metrics (kept in checkpoints)."""

    def __init__(self, session):
        self.session = session
        self.best = 0.0

    def __getattr__(self, name: str):  # anything else (e.g. a DDP session's `distributed`) is the inner session's
        return getattr(self.session, name)

    def restore(self) -> dict | None:
        state = self.session.restore()
        if state is not None:
            self.best = float(state.get("best_accuracy", 0.0))
        return state

    def report(self, metrics: dict[str, float], epoch: int, state_fn=None, artifacts=None) -> bool:
        if "test/accuracy" in metrics:
            self.best = max(self.best, metrics["test/accuracy"])
            # the error is what the study plots and ASHA ranks (min); the best accuracy survives the end of a trial
            metrics = {**metrics, "test/error": 1.0 - metrics["test/accuracy"], "test/best_accuracy": self.best}
        with_best = None if state_fn is None else (lambda: {**state_fn(), "best_accuracy": self.best})
        return self.session.report(metrics, epoch, with_best, artifacts)
