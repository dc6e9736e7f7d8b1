"""scikit-learn's handwritten digits as a 28x28 image data set: the one real image set available offline.

    >>> from trainables.data.vision import load_vision_data
    >>> data = load_vision_data("digits")          # 1,437 train / 360 test images, 1x28x28 uint8, 10 classes

`sklearn.datasets.load_digits` ships with scikit-learn (no download): 1,797 images of 8x8 pixels with
values 0..16 (UCI optdigits, 43 writers). `Digits` upsamples them bilinearly to 28x28 (MNIST's size, so
the MNIST models run unchanged), rescales to 0..255 and splits them 80/20, stratified by class with a fixed
seed. It looks to `trainables.data.vision` like a torchvision data set (`Digits(root, train=...)` with
`.data` and `.targets`); `root` is unused. Where synthesized data is too easy to show a study's answer,
the quick presets are also checked on this set (README).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SIZE = 28
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def _split(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the train and test images: TEST_FRACTION of every class to test, by a seeded permutation."""
    rng = np.random.default_rng(SPLIT_SEED)
    test = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        test.extend(members[: round(len(members) * TEST_FRACTION)])
    test = np.sort(np.asarray(test))
    return np.setdiff1d(np.arange(len(labels)), test), test


def upsample(images: np.ndarray, size: int = SIZE) -> np.ndarray:
    """(N, 8, 8) values 0..16 -> (N, size, size) uint8 0..255, bilinear."""
    x = torch.from_numpy(images.astype(np.float32) / 16.0)[:, None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x[:, 0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()


class Digits:
    """The train or test split of the upsampled digits, shaped like torchvision's MNIST (`data`, `targets`)."""

    resources: list = []  # nothing to download or find on disk (trainables.data.vision.expected_files)

    def __init__(self, root=None, train: bool = True, download: bool = False):
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, labels = bunch.images, bunch.target.astype(np.int64)
        train_idx, test_idx = _split(labels)
        idx = train_idx if train else test_idx
        self.data = upsample(images[idx])
        self.targets = labels[idx]

    def __len__(self) -> int:
        return len(self.targets)
