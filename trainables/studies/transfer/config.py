"""The transfer-learning study's config: a pretrained ResNet fine-tuned or used as a feature extractor, on a Visual
Decathlon domain.

This module imports no torch at its top (a study's `--help` reads it in milliseconds; checking a config reads the
data-set and weights registries); the trial is trainables/studies/transfer/trial.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainables.config import ConfigError

MODES = ("finetune", "feature_extractor")
CROP_FRACTION = 0.875  # test-time centre crop: 224 of 256


@dataclass(frozen=True)
class TransferConfig:
    # --- data
    dataset: str = "flowers102"  # flowers102 (VGG-Flowers) | dtd | fgvc_aircraft, or a test's registered set
    image_size: int = 224  # pixels per side the network sees (crops are resampled to it)
    load_size: int = 256  # side of the stored squares (shorter side resized to it, centre-cropped)
    train_subset: int = 0  # train (and validate) on a seeded random subset of this many images (0 = all)
    test_subset: int = 0
    data_dir: str = ""  # default: $DLSWEEPS_DATA_DIR or ~/.cache/dlsweeps/data
    augment: bool = True  # random-resized crop + flip for training; false: the test-time centre crop
    # --- model
    arch: str = "resnet50"  # resnet18 | resnet34 | resnet50 | resnet101 (trainables.models.pretrained)
    weights: str = "IMAGENET1K_V1"  # torchvision's weights name (resnet50: IMAGENET1K_V1 76.1% | IMAGENET1K_V2 80.9%)
    weights_path: str = ""  # a saved state dict of `arch` to start from instead (e.g. offline)
    mode: str = "finetune"  # finetune (all layers) | feature_extractor (only the new final layer)
    cache_features: bool = False  # feature_extractor: no augmentation, backbone features computed once
    # --- optimizer: SGD with momentum, multi-step decay
    lr: float = 0.01  # initial learning rate (per step)
    momentum: float = 0.9
    weight_decay: float = 0.0  # L2 through the optimizer (on the trained parameters)
    batch_size: int = 64
    epochs: int = 200
    lr_decay_at: tuple[float, ...] = (0.3, 0.6, 0.9)  # fractions of the epochs after which lr is multiplied by lr_gamma
    lr_gamma: float = 0.1
    # --- run
    amp: str = "auto"  # auto (on with CUDA) | on | off
    channels_last: str = "auto"  # auto (on with CUDA) | on | off
    seed: int = 0
    data_seed: int = 0  # which subset (train_subset/test_subset)

    def __post_init__(self) -> None:
        from trainables.data.vision import DATASETS
        from trainables.models.pretrained import weights_entry

        targets = [name for name, spec in DATASETS.items() if spec.official_splits]  # the Decathlon domains
        if self.dataset not in targets:
            raise ConfigError(f"dataset={self.dataset!r} is not one of {', '.join(targets)} (the Visual Decathlon "
                              f"domains registered in trainables.data.vision)")
        weights_entry(self.arch, self.weights)
        for key, allowed in (("mode", MODES), ("amp", ("auto", "on", "off")), ("channels_last", ("auto", "on", "off"))):
            if getattr(self, key) not in allowed:
                raise ConfigError(f"{key}={getattr(self, key)!r} is not one of {', '.join(allowed)}")
        for key in ("image_size", "load_size", "batch_size", "epochs"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}={getattr(self, key)} must be a positive integer")
        if self.image_size > self.load_size:
            raise ConfigError(f"image_size={self.image_size} is larger than load_size={self.load_size}; store the "
                              f"images at least as large as the crops (e.g. load_size=256 for 224)")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.momentum < 1 or not 0 < self.lr_gamma <= 1:
            raise ConfigError(f"lr={self.lr} must be > 0, weight_decay >= 0, momentum in [0, 1), lr_gamma in (0, 1]")
        if any(not 0 < f < 1 for f in self.lr_decay_at) or list(self.lr_decay_at) != sorted(self.lr_decay_at):
            raise ConfigError(f"lr_decay_at={self.lr_decay_at} must be increasing fractions of the epochs in (0, 1), "
                              f"e.g. 0.3,0.6,0.9")

    @property
    def frozen(self) -> bool:
        return self.mode == "feature_extractor"

    @property
    def cached(self) -> bool:
        """Whether the head trains on cached features (the feature extractor's fast path)."""
        return self.frozen and self.cache_features

    @property
    def augmented(self) -> bool:
        return self.augment and not self.cached

    def decay_epochs(self) -> list[int]:
        """Epochs after which the learning rate drops (e.g. 60, 120, 180 of 200)."""
        return sorted({max(1, round(f * self.epochs)) for f in self.lr_decay_at})
