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


# ---- Visual Decathlon file data sets: JPEGs of varying size plus the official split/label files ----

class UncheckedFlowers102(torchvision.datasets.Flowers102):
    """Test only: the real Flowers102 reader with the .mat files' MD5 checks off."""

    _file_dict = {k: (f, None) for k, (f, _) in torchvision.datasets.Flowers102._file_dict.items()}


def _class_colours(classes: int) -> np.ndarray:
    """A distinct, saturated colour per class (hues spread around the wheel)."""
    hues = np.arange(classes) / classes
    k = (hues[:, None] * 6 + np.array([5, 3, 1])) % 6
    return (255 * (1 - np.clip(np.minimum(k, 4 - k), 0, 1))).astype(np.float64)  # (classes, 3) RGB


def _jpeg(path, rng, label: int, colours: np.ndarray, size_range: tuple[int, int], learnable: bool) -> None:
    """A non-square JPEG: (learnable) the class colour with class-specific stripes, plus noise."""
    from PIL import Image

    w, h = rng.integers(size_range[0], size_range[1] + 1, size=2)
    if learnable:
        stripes = ((np.arange(w)[None, :] // (2 + label)) % 2)[..., None] * 60.0  # (1, w, 1) vertical bars
        pixels = colours[label] * 0.7 + stripes + rng.normal(0, 20, size=(h, w, 3))
    else:
        pixels = rng.integers(0, 256, size=(h, w, 3))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path, quality=90)


def _split_labels(classes: int, per_split: tuple[int, int, int]) -> dict[str, list[int]]:
    return {s: [c for c in range(classes) for _ in range(n)] for s, n in zip(("train", "val", "test"), per_split)}


def make_flowers102(root, classes: int = 3, per_split: tuple[int, int, int] = (3, 2, 2),
                    size_range: tuple[int, int] = (40, 90), seed: int = 0, learnable: bool = True) -> dict:
    """flowers-102/jpg/image_%05d.jpg, imagelabels.mat (1-based labels), setid.mat (trnid/valid/tstid).
    Returns {split: labels (0-based, in the split's order)}."""
    from scipy.io import savemat

    rng, colours = np.random.default_rng(seed), _class_colours(classes)
    base = root / "flowers-102"
    splits = _split_labels(classes, per_split)
    all_labels, ids = [], {}
    for split, labels in splits.items():
        ids[split] = list(range(len(all_labels) + 1, len(all_labels) + len(labels) + 1))  # ids are 1-based
        all_labels += labels
    order = rng.permutation(len(all_labels))  # shuffle ids so a split is not one contiguous range
    image_label = np.empty(len(all_labels), dtype=np.int64)
    for split in splits:
        ids[split] = [int(order[i - 1]) + 1 for i in ids[split]]
        for image_id, label in zip(ids[split], splits[split]):
            image_label[image_id - 1] = label
            _jpeg(base / "jpg" / f"image_{image_id:05d}.jpg", rng, label, colours, size_range, learnable)
    savemat(base / "imagelabels.mat", {"labels": (image_label + 1)[None, :]})
    savemat(base / "setid.mat", {"trnid": np.array([ids["train"]]), "valid": np.array([ids["val"]]),
                                 "tstid": np.array([ids["test"]])})
    return splits


def make_dtd(root, classes: int = 3, per_split: tuple[int, int, int] = (3, 2, 2),
             size_range: tuple[int, int] = (40, 90), seed: int = 0, learnable: bool = True) -> dict:
    """dtd/dtd/images/<class>/<class>_%04d.jpg and dtd/dtd/labels/{train,val,test}1.txt ("<class>/<file>")."""
    rng, colours = np.random.default_rng(seed), _class_colours(classes)
    names = [f"texture{c}" for c in range(classes)]  # sorted order = label order, as DTD derives it
    data = root / "dtd" / "dtd"
    (data / "labels").mkdir(parents=True, exist_ok=True)
    splits = _split_labels(classes, per_split)
    count = 0
    for split, labels in splits.items():
        lines = []
        for label in labels:
            count += 1
            file = f"{names[label]}_{count:04d}.jpg"
            _jpeg(data / "images" / names[label] / file, rng, label, colours, size_range, learnable)
            lines.append(f"{names[label]}/{file}\n")
        (data / "labels" / f"{split}1.txt").write_text("".join(lines))
    return splits


def make_fgvc_aircraft(root, classes: int = 3, per_split: tuple[int, int, int] = (3, 2, 2),
                       size_range: tuple[int, int] = (40, 90), seed: int = 0, learnable: bool = True) -> dict:
    """fgvc-aircraft-2013b/data/images/<id>.jpg, variants.txt (one name a line: the label order) and
    images_variant_{train,val,test}.txt ("<id> <variant name>", names may hold spaces)."""
    rng, colours = np.random.default_rng(seed), _class_colours(classes)
    names = [f"Model {c}-100" for c in range(classes)]
    data = root / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "variants.txt").write_text("".join(f"{n}\n" for n in names))
    splits = _split_labels(classes, per_split)
    count = 1000000
    for split, labels in splits.items():
        lines = []
        for label in labels:
            count += 1
            _jpeg(data / "images" / f"{count:07d}.jpg", rng, label, colours, size_range, learnable)
            lines.append(f"{count:07d} {names[label]}\n")
        (data / f"images_variant_{split}.txt").write_text("".join(lines))
    return splits
