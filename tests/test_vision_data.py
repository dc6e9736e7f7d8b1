"""Datasets read through the real torchvision loaders from tiny files in the real on-disk formats."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import pickle
import time

import numpy as np
import pytest
import torch
import torchvision

from fake_datasets import (UncheckedCIFAR10, UncheckedCIFAR100, UncheckedFlowers102, make_cifar, make_dtd,  # noqa: F401
                           make_fgvc_aircraft, make_flowers102, make_mnist, write_idx)
from trainables.data import vision as vision_data
from trainables.data.vision import DATASETS, DatasetSpec, DatasetUnavailableError, load_vision_data, to_device


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
    assert "\n" not in msg and str(tmp_path) in msg
    assert ("missing or corrupt FashionMNIST/raw/{train-images-idx3-ubyte,train-labels-idx1-ubyte,"
            "t10k-images-idx3-ubyte,t10k-labels-idx1-ubyte} under") in msg  # grouped by folder, as a shell would


class UnreachableMNIST(torchvision.datasets.MNIST):
    mirrors = ["http://127.0.0.1:9/"]  # the discard port: connection refused at once, like no network


def test_failed_download_leaves_nothing(tmp_path, registry):
    registry("unreachable", UnreachableMNIST)
    with pytest.raises(DatasetUnavailableError) as err:
        load_vision_data("unreachable", tmp_path)
    msg = str(err.value)
    # the cause in whole words (torchvision's multi-line "Tried <mirror>, got: <urlopen error ...>" reduced)
    assert "\n" not in msg and "(download failed: [Errno 111] Connection refused (127.0.0.1));" in msg
    assert list(tmp_path.iterdir()) == []  # no temp folder, no .unreachable.lock


@pytest.fixture
def mnist_offline(monkeypatch):
    """The production 'mnist' entry (its offline hint) with no network: its mirror refuses at once."""
    monkeypatch.setitem(DATASETS, "mnist", dataclasses.replace(DATASETS["mnist"], cls=UnreachableMNIST))


def test_mnist_error_names_the_offline_sets(tmp_path, mnist_offline):
    with pytest.raises(DatasetUnavailableError) as err:
        load_vision_data("mnist", tmp_path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("dataset 'mnist': missing or corrupt UnreachableMNIST/raw/")
    assert msg.endswith("; offline: `--set dataset=mnist5k` (5,000 real MNIST images, no download) or "
                        "`--set dataset=digits`")
    assert "python -m trainables.data.vision mnist --data-dir DIR" in msg


@pytest.mark.parametrize("name", ["fashion_mnist", "cifar10", "cifar100"])
def test_no_offline_copy_but_a_smoke_check(tmp_path, name):
    with pytest.raises(DatasetUnavailableError) as err:
        load_vision_data(name, tmp_path, download=False)
    msg = str(err.value)
    assert "\n" not in msg and "(download disabled)" in msg
    assert msg.endswith("there is no offline copy of it, but `--set dataset=mnist5k` or `--set dataset=digits` "
                        "runs offline for a smoke check")
    assert list(tmp_path.iterdir()) == []  # download=False creates nothing


def test_download_cause_in_whole_words():
    cause = vision_data._download_cause
    long = RuntimeError("the server said " + "something quite long " * 20 + "\nand a second line")
    text = cause(long, torchvision.datasets.CIFAR10)
    assert text.startswith("RuntimeError: the server said something") and text.endswith(" long ...")
    assert len(text) < 130 and "second line" not in text
    two_mirrors = RuntimeError("Error downloading x.gz:\nTried https://a.example/mnist/, got:\n<urlopen error "
                               "[Errno -3] Temporary failure in name resolution>\nTried http://b.example/, got:\n"
                               "HTTP Error 503: Service Unavailable\n")
    assert cause(two_mirrors, UnreachableMNIST) == ("[Errno -3] Temporary failure in name resolution (a.example); "
                                                    "HTTP Error 503: Service Unavailable (b.example)")
    import urllib.error
    refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    assert cause(refused, torchvision.datasets.CIFAR10) == "[Errno 111] Connection refused (www.cs.toronto.edu)"
    assert cause(OSError(28, "No space left on device"), torchvision.datasets.CIFAR10) == \
        "OSError: [Errno 28] No space left on device"


def test_http_error_names_status_and_host(tmp_path, registry):
    """A real HTTP server that has no such file: CIFAR's download fails with a 404."""
    import functools
    import http.server
    import threading

    (tmp_path / "served").mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/cifar-10-python.tar.gz"
        registry("cifar_404", type("Cifar404", (UncheckedCIFAR10,), {"url": url}))
        with pytest.raises(DatasetUnavailableError) as err:
            load_vision_data("cifar_404", tmp_path / "data")
    finally:
        server.shutdown()
    msg = str(err.value)
    assert "\n" not in msg and "(download failed: HTTP 404 File not found (127.0.0.1));" in msg
    assert list((tmp_path / "data").iterdir()) == []


# ---- the lock between concurrent trials, and data folders that cannot be written ----

def _count_under_lock(lock_path, counter, rounds: int) -> None:
    """Read-sleep-write a counter under the lock: without mutual exclusion, increments get lost."""
    for _ in range(rounds):
        with vision_data._DataLock(lock_path):
            n = int(counter.read_text())
            time.sleep(0.0005)
            counter.write_text(str(n + 1))


def test_lock_excludes_across_processes_and_leaves_no_file(tmp_path):
    """Every holder removes the lock file on release; a waiter that wakes on a removed file must start over,
    else it and a newcomer on the new file hold the lock together (and lose increments here)."""
    counter = tmp_path / "counter"
    counter.write_text("0")
    lock_path = tmp_path / ".x.lock"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_count_under_lock, args=(lock_path, counter, 60)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0] * 4
    assert int(counter.read_text()) == 240
    assert not lock_path.exists()


def _load_unreachable(root, queue) -> None:
    DATASETS["unreachable"] = DatasetSpec(UnreachableMNIST, 10)  # in this forked child only
    try:
        load_vision_data("unreachable", root)
        queue.put("loaded")
    except DatasetUnavailableError as e:
        queue.put(str(e))


def test_concurrent_failed_downloads_leave_nothing(tmp_path):
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_load_unreachable, args=(tmp_path, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    messages = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
    assert all("download failed: [Errno 111] Connection refused" in m for m in messages), messages
    assert list(tmp_path.iterdir()) == []


def test_data_folder_that_cannot_be_created(tmp_path, mnist_offline):
    (tmp_path / "file").write_text("")
    folder = tmp_path / "file" / "data"  # under a regular file: no one can create it
    with pytest.raises(DatasetUnavailableError) as err:
        load_vision_data("mnist", folder)
    msg = str(err.value)
    assert "\n" not in msg and f"the data folder {folder} cannot be created ({tmp_path / 'file'} is a file" in msg
    assert "pass --data-dir" in msg and "`--set dataset=mnist5k`" in msg


def test_read_only_folder_with_the_files_is_read_as_is(tmp_path):
    folder = tmp_path / "ro"
    raw = make_mnist(folder, "MNIST")
    before = sorted(p.relative_to(folder) for p in folder.rglob("*"))
    folder.chmod(0o500)
    try:
        data = load_vision_data("mnist", folder)  # download allowed, but nothing is needed: no lock taken
    finally:
        folder.chmod(0o700)
    np.testing.assert_array_equal(data.test.labels, raw["t10k"][1])
    assert sorted(p.relative_to(folder) for p in folder.rglob("*")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into a 0o500 folder")
def test_read_only_folder_without_the_files(tmp_path, mnist_offline):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    try:
        with pytest.raises(DatasetUnavailableError) as err:
            load_vision_data("mnist", folder)
    finally:
        folder.chmod(0o700)
    msg = str(err.value)
    assert "\n" not in msg and f"under {folder}, a folder this process cannot write" in msg
    assert "pass --data-dir" in msg and "`--set dataset=mnist5k`" in msg and "download failed" not in msg
    assert list(folder.iterdir()) == []


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

    from trainables.data.digits import upsample

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


def test_classes_names_per_label(tmp_path):
    make_mnist(tmp_path, "MNIST")
    assert load_vision_data("mnist", tmp_path).classes[:2] == ("0 - zero", "1 - one")  # torchvision's own
    assert load_vision_data("digits").classes == tuple("0123456789")
    bare = vision_data.VisionData("x", 3, (0.5,), (0.2,), *[vision_data.Split(np.zeros((0, 1, 2, 2), np.uint8),
                                                                                np.zeros(0, np.int64))] * 3)
    assert bare.classes == ("0", "1", "2")  # positional construction (no names) keeps working


# ---- file data sets (Visual Decathlon domains): JPEGs of varying size, official splits ----

@pytest.fixture
def flowers(monkeypatch):
    """'flowers_test': the production flowers102 entry with the .mat MD5 checks off and 3 classes."""
    spec = dataclasses.replace(DATASETS["flowers102"], cls=UncheckedFlowers102, num_classes=3)
    monkeypatch.setitem(DATASETS, "flowers_test", spec)
    return "flowers_test"


@pytest.mark.parametrize("name,make", [("flowers_test", make_flowers102), ("dtd", make_dtd),
                                       ("fgvc_aircraft", make_fgvc_aircraft)])
def test_file_datasets_official_splits(tmp_path, flowers, name, make):
    splits = make(tmp_path, classes=3, per_split=(3, 2, 1))
    data = load_vision_data(name, tmp_path, size=24, download=False)
    assert data.train.images.shape == (9, 3, 24, 24) and data.train.images.dtype == np.uint8
    assert data.val.images.shape == (6, 3, 24, 24) and data.test.images.shape == (3, 3, 24, 24)
    for split in ("train", "val", "test"):
        assert sorted(getattr(data, split).labels.tolist()) == sorted(splits[split])
    assert len(data.classes) == data.num_classes == DATASETS[name].num_classes
    expected = {"flowers_test": ("pink primrose", "hard-leaved pocket orchid", "canterbury bells"),
                "dtd": ("texture0", "texture1", "texture2"),
                "fgvc_aircraft": ("Model 0-100", "Model 1-100", "Model 2-100")}[name]
    assert data.classes[:3] == expected
    assert len(data.mean) == 3 and all(0.1 < m < 0.9 for m in data.mean)
    # learnable: each class's images share a colour, so the class means differ clearly
    means = np.stack([data.train.images[data.train.labels == c].mean(axis=(0, 2, 3)) for c in range(3)])
    assert np.abs(means[:, None] - means[None]).max(axis=2)[~np.eye(3, dtype=bool)].min() > 40
    sub = load_vision_data(name, tmp_path, size=24, train_subset=4, test_subset=2, subset_seed=1)
    assert len(sub.train.labels) == 4 and len(sub.val.labels) == 4 and len(sub.test.labels) == 2


def test_default_size_is_256(tmp_path):
    make_dtd(tmp_path, classes=2, per_split=(1, 1, 1))
    assert load_vision_data("dtd", tmp_path).image_shape == (3, 256, 256)


def test_resize_shorter_side_then_center_crop(tmp_path):
    from PIL import Image

    make_dtd(tmp_path, classes=2, per_split=(1, 1, 1))
    first = (tmp_path / "dtd/dtd/labels/train1.txt").read_text().split()[0]
    wide = np.zeros((40, 120, 3), np.uint8)
    wide[:, :40, 0] = wide[:, 40:80, 1] = wide[:, 80:, 2] = 255  # red | green | blue thirds
    Image.fromarray(wide).save(tmp_path / "dtd/dtd/images" / first, quality=95)
    data = load_vision_data("dtd", tmp_path, size=16)
    image = data.train.images[0].astype(float)  # the first line of train1.txt
    assert image[1].mean() > 230 and image[0].mean() < 25 and image[2].mean() < 25  # only the green centre kept


def _jpgs(root):
    return sorted(root.rglob("*.jpg"))


def test_compact_cache_is_used_and_a_partial_one_ignored(tmp_path, flowers):
    make_flowers102(tmp_path, classes=3, per_split=(2, 1, 1))
    first = load_vision_data(flowers, tmp_path, size=20)
    cache = tmp_path / ".compact" / "flowers_test-20.npz"
    assert cache.is_file() and [p.name for p in cache.parent.iterdir()] == [cache.name]  # no temp file left
    originals = {p: p.read_bytes() for p in _jpgs(tmp_path)}
    for p in originals:
        p.unlink()  # a second load must not need the images
    again = load_vision_data(flowers, tmp_path, size=20)
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(again, split).images, getattr(first, split).images)
        np.testing.assert_array_equal(getattr(again, split).labels, getattr(first, split).labels)
    assert again.classes == first.classes and again.mean == first.mean
    with pytest.raises(DatasetUnavailableError, match="image_"):  # another size is not cached: the jpgs are gone
        load_vision_data(flowers, tmp_path, size=18)
    for p, data in originals.items():
        p.write_bytes(data)
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])  # a torn write
    rebuilt = load_vision_data(flowers, tmp_path, size=20)
    np.testing.assert_array_equal(rebuilt.train.images, first.train.images)
    assert np.load(cache)["train_images"].shape == first.train.images.shape  # rewritten whole


def test_unwritable_cache_is_skipped(tmp_path):
    make_dtd(tmp_path, classes=2, per_split=(1, 1, 1))
    (tmp_path / ".compact").write_text("not a folder")  # mkdir fails, as in a read-only data dir
    data = load_vision_data("dtd", tmp_path, size=12)
    assert data.image_shape == (3, 12, 12) and (tmp_path / ".compact").read_text() == "not a folder"


def test_size_and_val_size_errors(tmp_path):
    make_dtd(tmp_path, classes=2, per_split=(2, 1, 1))
    with pytest.raises(ValueError, match="official validation split") as err:
        load_vision_data("dtd", tmp_path, val_size=1)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="size must be 0"):
        load_vision_data("digits", size=32)


@pytest.mark.parametrize("name,missing", [
    ("dtd", "dtd/dtd/images, dtd/dtd/labels/{train1.txt,val1.txt,test1.txt}"),
    ("fgvc_aircraft", "fgvc-aircraft-2013b/data/{images,variants.txt,images_variant_train.txt,"),
    ("flowers102", "flowers-102/{jpg,imagelabels.mat,setid.mat}")])
def test_file_dataset_missing_one_line_error(tmp_path, name, missing):
    with pytest.raises(DatasetUnavailableError) as err:
        load_vision_data(name, tmp_path / "empty", download=False)
    msg = str(err.value)
    assert "\n" not in msg and missing in msg and str(tmp_path) in msg
    assert f"python -m trainables.data.vision {name} --data-dir DIR" in msg
    assert "mnist5k" not in msg  # no offline alternative for transfer learning's data sets


def test_missing_image_names_the_file(tmp_path):
    make_fgvc_aircraft(tmp_path, classes=2, per_split=(1, 1, 1))
    victim = _jpgs(tmp_path)[0]
    victim.unlink()
    with pytest.raises(DatasetUnavailableError) as err:
        load_vision_data("fgvc_aircraft", tmp_path, size=8, download=False)
    assert "\n" not in str(err.value) and str(victim.relative_to(tmp_path)) in str(err.value)
    assert not (tmp_path / ".compact" / "fgvc_aircraft-8.npz").exists()


def test_flowers_checksums_checked_in_production(tmp_path):
    make_flowers102(tmp_path, classes=2, per_split=(1, 1, 1))
    with pytest.raises(DatasetUnavailableError, match="checksum"):
        load_vision_data("flowers102", tmp_path, download=False)
