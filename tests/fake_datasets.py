"""Tiny data sets written in the real on-disk formats, read back through torchvision's real loaders.

Nothing is downloaded in tests: MNIST-family idx files and CIFAR python pickle batches are
synthesized here. `learnable=True` gives each class its own pixel pattern (plus noise), so a
model trained on them measurably improves.
"""

from __future__ import annotations

import pickle
import struct

import numpy as np
import torchvision


def write_idx(path, array: np.ndarray) -> None:
    """MNIST idx format: magic (0, 0, dtype 0x08 = uint8, ndim), big-endian dims, raw bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _images(rng, labels: np.ndarray, shape: tuple[int, ...], learnable: bool) -> np.ndarray:
    """Random pixels, or (learnable) a fixed random pattern per class plus noise, so a model can fit it."""
    if not learnable:
        return rng.integers(0, 256, size=(len(labels), *shape), dtype=np.uint8)
    patterns = np.random.default_rng(1234).integers(0, 256, size=(10, *shape))
    noise = rng.normal(0, 40, size=(len(labels), *shape))
    return np.clip(patterns[labels] * 0.7 + 40 + noise, 0, 255).astype(np.uint8)


def make_mnist(root, cls_name: str, n_train: int = 40, n_test: int = 12, seed: int = 0, learnable: bool = False):
    rng = np.random.default_rng(seed)
    raw = root / cls_name / "raw"
    data = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        images = _images(rng, labels, (28, 28), learnable)
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
        data[split] = (images, labels)
    return data


class UncheckedCIFAR10(torchvision.datasets.CIFAR10):
    """Test only: the real CIFAR-10 reader with MD5 checks off (a synthesized file cannot match them)."""

    train_list = [[f, None] for f, _ in torchvision.datasets.CIFAR10.train_list]
    test_list = [[f, None] for f, _ in torchvision.datasets.CIFAR10.test_list]
    meta = {**torchvision.datasets.CIFAR10.meta, "md5": None}


class UncheckedCIFAR100(torchvision.datasets.CIFAR100):
    train_list = [[f, None] for f, _ in torchvision.datasets.CIFAR100.train_list]
    test_list = [[f, None] for f, _ in torchvision.datasets.CIFAR100.test_list]
    meta = {**torchvision.datasets.CIFAR100.meta, "md5": None}


def make_cifar(root, cls, per_file: int = 8, seed: int = 0, learnable: bool = False) -> dict:
    """Python pickle batches as in the official archive: 'data' (N, 3072) uint8 rows in CHW order."""
    rng = np.random.default_rng(seed)
    folder = root / cls.base_folder
    folder.mkdir(parents=True)
    label_key = "labels" if cls.base_folder.startswith("cifar-10-") else "fine_labels"
    out = {}
    for name, _ in cls.train_list + cls.test_list:
        label_array = rng.integers(0, 10, size=per_file)
        data = _images(rng, label_array, (3072,), learnable)
        labels = label_array.tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, label_key: labels, "batch_label": name}, f)
        out[name] = (data.reshape(-1, 3, 32, 32), labels)
    with open(folder / cls.meta["filename"], "wb") as f:
        pickle.dump({cls.meta["key"]: [f"class{i}" for i in range(10)]}, f)
    return out
