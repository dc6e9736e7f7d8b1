"""Image datasets held in memory as uint8 arrays: MNIST, FashionMNIST, CIFAR-10, CIFAR-100 (and scikit-learn's
digits at 28x28, `trainables.digits`, the one real image set available offline).

Files are read (and, when missing, downloaded) by torchvision's own dataset classes, so the
on-disk formats and CIFAR's MD5 checks are the real ones. The data directory is the
`data_dir` argument, else `$DLSWEEPS_DATA_DIR`, else `~/.cache/dlsweeps/data`. Concurrent
trials share one download through a file lock; a failed download leaves nothing behind and
raises `DatasetUnavailableError` (one line: which files, where, how to get them).

    >>> data = load_vision_data("cifar10", val_size=5000)       # numpy, cheap for ray.put
    >>> dev = to_device(data, "cuda")                            # uint8 tensors, moved once

Fetch a dataset ahead of time (on a machine with internet):

    python -m trainables.vision_data cifar10 --data-dir /shared/data
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import filelock
import numpy as np
import torch
import torchvision

from trainables.digits import Digits

DEFAULT_DATA_DIR = "~/.cache/dlsweeps/data"


class DatasetUnavailableError(RuntimeError):
    """Dataset files are missing and could not be downloaded (the runner exits with code 2)."""


@dataclass(frozen=True)
class DatasetSpec:
    cls: type  # a torchvision dataset class (MNIST-like or CIFAR-like)
    num_classes: int


# One explicit registry; tests add entries for synthesized datasets.
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(torchvision.datasets.MNIST, 10),
    "fashion_mnist": DatasetSpec(torchvision.datasets.FashionMNIST, 10),
    "cifar10": DatasetSpec(torchvision.datasets.CIFAR10, 10),
    "cifar100": DatasetSpec(torchvision.datasets.CIFAR100, 100),
    "digits": DatasetSpec(Digits, 10),  # scikit-learn's 8x8 digits at 28x28, offline (trainables.digits)
}


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # (N, C, H, W) uint8
    labels: np.ndarray  # (N,) int64


@dataclass(frozen=True)
class VisionData:
    """Plain numpy arrays, so `ray.put` stores it once and trials read it zero-copy."""

    name: str
    num_classes: int
    mean: tuple[float, ...]  # per channel, on the [0, 1] scale, over the full official train set
    std: tuple[float, ...]
    train: Split
    val: Split  # empty (0 samples) unless val_size > 0
    test: Split

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])


@dataclass(frozen=True)
class TensorSplit:
    images: torch.Tensor  # (N, C, H, W) uint8 on the device
    labels: torch.Tensor  # (N,) int64 on the device


@dataclass(frozen=True)
class DeviceVisionData:
    name: str
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train: TensorSplit
    val: TensorSplit
    test: TensorSplit


def resolve_data_dir(path: str | os.PathLike | None = None) -> Path:
    """The argument, else $DLSWEEPS_DATA_DIR, else ~/.cache/dlsweeps/data (read at call time)."""
    return Path(path or os.environ.get("DLSWEEPS_DATA_DIR") or DEFAULT_DATA_DIR).expanduser().absolute()


def expected_files(cls: type) -> list[str]:
    """Paths, relative to the data dir, that torchvision's class reads."""
    if hasattr(cls, "resources"):  # MNIST family: uncompressed idx files under <Class>/raw/
        return [f"{cls.__name__}/raw/{os.path.splitext(os.path.basename(url))[0]}" for url, _ in cls.resources]
    names = [f for f, _ in cls.train_list + cls.test_list] + [cls.meta["filename"]]
    return [f"{cls.base_folder}/{f}" for f in names]


def _open(cls: type, root: Path, train: bool):
    try:
        return cls(str(root), train=train, download=False)
    except RuntimeError:  # torchvision: "Dataset not found or corrupted"
        return None


def _download(name: str, cls: type, root: Path) -> None:
    """Download into a private temp dir, then move the finished files into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".download-{name}-", dir=root))
    try:
        cls(str(tmp), train=True, download=True)
        for rel in expected_files(cls):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, root / rel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _read(name: str, root: Path, download: bool) -> tuple[object, object]:
    spec = DATASETS[name]
    root.mkdir(parents=True, exist_ok=True)
    # Trials start concurrently: one downloads, the others wait and then read.
    with filelock.FileLock(str(root / f".{name}.lock")):
        train, test = _open(spec.cls, root, True), _open(spec.cls, root, False)
        if train is None or test is None:
            bad = [f for f in expected_files(spec.cls) if not (root / f).is_file()] or ["(checksum mismatch)"]
            reason = "download disabled"
            if download:
                try:
                    _download(name, spec.cls, root)
                    train, test = _open(spec.cls, root, True), _open(spec.cls, root, False)
                    reason = "files unreadable after download"
                except Exception as e:  # no network, HTTP error, bad checksum: all end the same way
                    detail = " ".join(str(e).split())[:200]  # keep the error to one line
                    reason = f"download failed: {type(e).__name__}: {detail}"
            if train is None or test is None:
                raise DatasetUnavailableError(
                    f"dataset {name!r}: missing or corrupt {', '.join(bad)} under {root} ({reason}); "
                    f"run `python -m trainables.vision_data {name} --data-dir DIR` where there is internet "
                    f"and copy the files there, or point DLSWEEPS_DATA_DIR/--data-dir at a copy")
    return train, test


def _as_arrays(ds) -> Split:
    images = np.asarray(ds.data)
    images = images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)  # -> (N, C, H, W)
    return Split(np.ascontiguousarray(images, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64))


def _channel_stats(images: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    # Exact mean/std from a 256-bin histogram per channel: no float copy of the whole set.
    means, stds = [], []
    values = np.arange(256, dtype=np.float64) / 255.0
    for c in range(images.shape[1]):
        counts = np.bincount(images[:, c].ravel(), minlength=256).astype(np.float64)
        mean = (counts * values).sum() / counts.sum()
        means.append(float(mean))
        stds.append(float(np.sqrt((counts * (values - mean) ** 2).sum() / counts.sum())))
    return tuple(means), tuple(stds)


def _subset(split: Split, n: int | None, seed: int | None) -> Split:
    if n is None or n >= len(split.labels):
        return split
    idx = np.arange(n) if seed is None else np.sort(np.random.default_rng(seed).permutation(len(split.labels))[:n])
    return Split(split.images[idx], split.labels[idx])


def load_vision_data(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    val_size: int = 0,
    split_seed: int = 0,
    train_subset: int | None = None,
    test_subset: int | None = None,
    subset_seed: int | None = None,
    download: bool = True,
) -> VisionData:
    """Load a dataset into memory.

    val_size: samples moved from the official train set to a validation split, chosen by a
        permutation seeded with `split_seed` (e.g. 5000 for CIFAR-10's 45k/5k).
    train_subset / test_subset: keep only n samples of train (and val) / test, for small presets:
        the first n when `subset_seed` is None, else a seeded random subset (original order kept).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; registered: {', '.join(sorted(DATASETS))}")
    train_ds, test_ds = _read(name, resolve_data_dir(data_dir), download)
    train, test = _as_arrays(train_ds), _as_arrays(test_ds)
    mean, std = _channel_stats(train.images)
    n = len(train.labels)
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be in [0, {n}), got {val_size}")
    perm = np.random.default_rng(split_seed).permutation(n)
    val_idx, train_idx = np.sort(perm[:val_size]), np.sort(perm[val_size:])
    val = Split(train.images[val_idx], train.labels[val_idx])
    if val_size:
        train = Split(train.images[train_idx], train.labels[train_idx])
    return VisionData(
        name=name, num_classes=DATASETS[name].num_classes, mean=mean, std=std,
        train=_subset(train, train_subset, subset_seed),
        val=_subset(val, train_subset, subset_seed),
        test=_subset(test, test_subset, subset_seed),
    )


def to_device(data: VisionData, device: str | torch.device) -> DeviceVisionData:
    """Copy every split to `device` once (uint8 stays uint8: 4x less memory than float)."""

    def move(s: Split) -> TensorSplit:
        # torch.tensor copies, which also sidesteps the read-only buffers the Ray object store hands out.
        return TensorSplit(torch.tensor(s.images, device=device), torch.tensor(s.labels, device=device))

    return DeviceVisionData(data.name, data.num_classes, data.mean, data.std,
                            move(data.train), move(data.val), move(data.test))


def main() -> None:
    parser = argparse.ArgumentParser(description="Download a dataset into the data dir and print its shapes.")
    parser.add_argument("name", choices=sorted(DATASETS))
    parser.add_argument("--data-dir", default=None)
    args = parser.parse_args()
    try:
        data = load_vision_data(args.name, args.data_dir)
    except DatasetUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{data.name}: train {data.train.images.shape}, test {data.test.images.shape}, "
          f"mean {tuple(round(m, 4) for m in data.mean)}, std {tuple(round(s, 4) for s in data.std)}")


if __name__ == "__main__":
    main()
