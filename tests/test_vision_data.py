"""Datasets read through the real torchvision loaders from tiny files in the real on-disk formats."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
import torch
import torchvision

from fake_datasets import UncheckedCIFAR10, UncheckedCIFAR100, make_cifar, make_mnist, write_idx  # noqa: F401
from trainables import vision_data
from trainables.vision_data import DATASETS, DatasetSpec, DatasetUnavailableError, load_vision_data, to_device


@pytest.fixture
def registry(monkeypatch):
    def add(name: str, cls: type, num_classes: int = 10) -> None:
        monkeypatch.setitem(DATASETS, name, DatasetSpec(cls, num_classes))

    return add


@pytest.mark.parametrize("cls_name,name", [("MNIST", "mnist"), ("FashionMNIST", "fashion_mnist")])
def test_mnist_family_real_files(tmp_path, cls_name, name):
    raw = make_mnist(tmp_path, cls_name)
    data = load_vision_data(name, tmp_path, download=False)
    assert data.train.images.shape == (40, 1, 28, 28) and data.train.images.dtype == np.uint8
    assert data.test.images.shape == (12, 1, 28, 28) and data.test.labels.dtype == np.int64
    np.testing.assert_array_equal(data.train.images[:, 0], raw["train"][0])
    np.testing.assert_array_equal(data.test.labels, raw["t10k"][1])
    pixels = raw["train"][0].astype(np.float64) / 255
    assert data.mean[0] == pytest.approx(pixels.mean()) and data.std[0] == pytest.approx(pixels.std())
    assert data.val.images.shape == (0, 1, 28, 28)


def test_cifar10_pickles_and_split(tmp_path, registry):
    registry("cifar10_test", UncheckedCIFAR10)
    raw = make_cifar(tmp_path, UncheckedCIFAR10)
    data = load_vision_data("cifar10_test", tmp_path, val_size=10, split_seed=3)
    assert data.image_shape == (3, 32, 32)
    assert len(data.train.labels) == 30 and len(data.val.labels) == 10 and len(data.test.labels) == 8
    np.testing.assert_array_equal(data.test.images, raw["test_batch"][0])
    # train + val is a partition of the original 40 images, fixed by the seed.
    full = np.concatenate([raw[f"data_batch_{i}"][0] for i in range(1, 6)])
    merged = np.concatenate([data.train.images, data.val.images]).reshape(40, -1)
    assert sorted(map(bytes, merged)) == sorted(map(bytes, full.reshape(40, -1)))
    again = load_vision_data("cifar10_test", tmp_path, val_size=10, split_seed=3)
    np.testing.assert_array_equal(again.val.images, data.val.images)
    other = load_vision_data("cifar10_test", tmp_path, val_size=10, split_seed=4)
    assert not np.array_equal(other.val.images, data.val.images)
    assert all(0.4 < m < 0.6 for m in data.mean) and len(data.std) == 3


def test_cifar100_fine_labels(tmp_path, registry):
    registry("cifar100_test", UncheckedCIFAR100, 100)
    raw = make_cifar(tmp_path, UncheckedCIFAR100)
    data = load_vision_data("cifar100_test", tmp_path)
    assert data.num_classes == 100
    np.testing.assert_array_equal(data.train.labels, raw["train"][1])


def test_cifar_checksums_checked_in_production(tmp_path):
    # The same synthesized files under the production class fail its MD5 check.
    make_cifar(tmp_path, torchvision.datasets.CIFAR10)
    with pytest.raises(DatasetUnavailableError, match="checksum"):
        load_vision_data("cifar10", tmp_path, download=False)


def test_subsets(tmp_path):
    raw = make_mnist(tmp_path, "MNIST")
    first = load_vision_data("mnist", tmp_path, train_subset=5, test_subset=3)
    np.testing.assert_array_equal(first.train.images[:, 0], raw["train"][0][:5])
    assert len(first.test.labels) == 3
    a = load_vision_data("mnist", tmp_path, train_subset=5, subset_seed=1)
    b = load_vision_data("mnist", tmp_path, train_subset=5, subset_seed=1)
    np.testing.assert_array_equal(a.train.images, b.train.images)
    assert not np.array_equal(a.train.images, first.train.images)


def test_env_var_and_device(tmp_path, monkeypatch):
    make_mnist(tmp_path, "MNIST")
    monkeypatch.setenv("DLSWEEPS_DATA_DIR", str(tmp_path))
    data = load_vision_data("mnist", download=False)
    dev = to_device(data, "cpu")
    assert dev.train.images.dtype == torch.uint8 and dev.train.labels.dtype == torch.int64
    assert torch.equal(dev.train.images, torch.from_numpy(data.train.images))
    # Numpy-only payload: pickles small and round-trips (what ray.put does).
    assert pickle.loads(pickle.dumps(data)).train.images.shape == data.train.images.shape


def test_missing_files_one_line_error(tmp_path):
    with pytest.raises(DatasetUnavailableError) as err:
        load_vision_data("fashion_mnist", tmp_path / "empty", download=False)
    msg = str(err.value)
    assert "\n" not in msg and "FashionMNIST/raw/train-images-idx3-ubyte" in msg and str(tmp_path) in msg


class UnreachableMNIST(torchvision.datasets.MNIST):
    mirrors = ["http://127.0.0.1:9/"]  # the discard port: connection refused at once, like no network


def test_failed_download_leaves_nothing(tmp_path, registry):
    registry("unreachable", UnreachableMNIST)
    with pytest.raises(DatasetUnavailableError, match="download failed"):
        load_vision_data("unreachable", tmp_path)
    leftovers = [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []


def test_default_dir(monkeypatch):
    monkeypatch.delenv("DLSWEEPS_DATA_DIR", raising=False)
    assert str(vision_data.resolve_data_dir()).endswith(".cache/dlsweeps/data")


def test_download_through_real_torchvision_path(tmp_path, registry):
    """A local HTTP server stands in for the MNIST mirror: files are fetched, MD5-checked,
    gunzipped by torchvision, then moved from the private temp dir into place."""
    import functools
    import gzip
    import hashlib
    import http.server
    import threading

    served = tmp_path / "served"
    data = make_mnist(served, "src")
    resources = []
    for raw in sorted((served / "src" / "raw").iterdir()):
        gz = served / f"{raw.name}.gz"
        gz.write_bytes(gzip.compress(raw.read_bytes()))
        resources.append((gz.name, hashlib.md5(gz.read_bytes()).hexdigest()))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cls = type("LocalMNIST", (torchvision.datasets.MNIST,),
                   {"mirrors": [f"http://127.0.0.1:{server.server_address[1]}/"], "resources": resources})
        registry("local", cls)
        root = tmp_path / "data"
        loaded = load_vision_data("local", root)
    finally:
        server.shutdown()
    np.testing.assert_array_equal(loaded.train.images[:, 0], data["train"][0])
    assert sorted(p.name for p in (root / "LocalMNIST" / "raw").iterdir()) == sorted(
        p.name for p in (served / "src" / "raw").iterdir())  # only the idx files, no archives
    assert [p.name for p in root.iterdir() if p.name.startswith(".download")] == []


def test_digits_is_scikit_learns_digits_at_28x28_split_by_class():
    from sklearn.datasets import load_digits

    from trainables.digits import upsample

    data = load_vision_data("digits", val_size=100)
    assert data.train.images.shape[1:] == (1, 28, 28) and data.train.images.dtype == np.uint8
    assert len(data.train.labels) + len(data.val.labels) + len(data.test.labels) == 1797
    counts = np.bincount(data.test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # a stratified 20% of ~180 images per class
    # the upsampled image of a digit, shrunk back to 8x8, is that digit again (values 0..16 -> 0..255)
    original = load_digits().images[0]
    small = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(upsample(original[None]))[None].float(), 8)
    assert np.corrcoef(small.flatten().numpy(), original.flatten())[0, 1] > 0.95
    again = load_vision_data("digits", val_size=100)
    assert np.array_equal(again.test.images, data.test.images)  # a fixed split
