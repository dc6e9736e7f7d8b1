"""The shared image-classification trial, without Ray, on tiny real-format data sets."""

from __future__ import annotations

import math

import pytest

from fake_datasets import UncheckedCIFAR10, make_cifar, make_mnist
from trainables.config import ConfigError, from_dict
from trainables.image_classification import ClassifyConfig, derived_params, make_data, train_classifier
from trainables.session import LocalSession
from trainables.vision_data import DATASETS, DatasetSpec


@pytest.fixture
def fashion_dir(tmp_path):
    make_mnist(tmp_path, "FashionMNIST", n_train=600, n_test=200, learnable=True)
    return tmp_path


def test_trains_and_reports_every_metric(fashion_dir):
    config = {"dataset": "fashion_mnist", "model": "lenet5", "epochs": 3, "batch_size": 32, "lr": 0.05,
              "data_dir": str(fashion_dir), "val_size": 100}
    data = make_data(from_dict(ClassifyConfig, config))
    session = LocalSession(epochs=3)
    train_classifier(config, data, session)
    first, last = session.history[0], session.history[-1]
    for key in ("train/loss", "train/accuracy", "val/loss", "val/accuracy", "test/loss", "test/accuracy",
                "time/epoch_s", "time/train_s", "lr", "perf/images_per_s", "perf/tflops"):
        assert key in last and math.isfinite(last[key]), key
    assert last["train/loss"] < first["train/loss"]
    assert last["test/accuracy"] > 0.5  # ten classes, each a learnable pattern
    params = derived_params(config)
    assert params["n_params"] > 10_000 and params["flops_per_sample"] > params["n_params"]


def test_target_accuracy_stops_the_trial(fashion_dir):
    config = {"dataset": "fashion_mnist", "model": "lenet5", "epochs": 20, "batch_size": 32, "lr": 0.05,
              "data_dir": str(fashion_dir), "target_accuracy": 0.3}
    session = LocalSession(epochs=20)
    train_classifier(config, make_data(from_dict(ClassifyConfig, config)), session)
    assert len(session.history) < 20 and session.history[-1]["target_reached"] == 1
    assert session.history[-1]["test/accuracy"] >= 0.3


def test_cifar_batch_augmentation_and_resume(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "cifar10", DatasetSpec(UncheckedCIFAR10, 10))
    make_cifar(tmp_path, UncheckedCIFAR10, per_file=40, learnable=True)
    config = {"dataset": "cifar10", "model": "resnet20", "epochs": 2, "batch_size": 16, "batch_m": 2,
              "crop_flip": True, "cutout": 8, "data_dir": str(tmp_path), "lr_schedule": "multistep",
              "lr_milestones": "1", "lr": 0.1}
    data = make_data(from_dict(ClassifyConfig, config))
    straight = LocalSession(epochs=2, checkpoint_every=1)
    train_classifier(config, data, straight)
    # batch augmentation doubles the samples seen per epoch; the LR drops x10 after epoch 1
    assert straight.history[0]["lr"] == pytest.approx(0.1) and straight.history[1]["lr"] == pytest.approx(0.01)
    resumed = LocalSession(epochs=2, state=None)
    resumed.state = _state_after_first_epoch(config, data)
    train_classifier(config, data, resumed)
    assert [h["epoch"] for h in resumed.history] == [2]


def _state_after_first_epoch(config, data):
    session = LocalSession(epochs=2, checkpoint_every=1)

    class StopAfterOne:
        def restore(self):
            return None

        def report(self, metrics, epoch, state_fn=None):
            session.report(metrics, epoch, state_fn)
            return False

    train_classifier(config, data, StopAfterOne())
    return session.state


def test_bad_config_values():
    with pytest.raises(ConfigError, match="model='resnet9' is not registered"):
        from_dict(ClassifyConfig, {"model": "resnet9"})
    with pytest.raises(ConfigError, match="dataset='imagenet'"):
        from_dict(ClassifyConfig, {"dataset": "imagenet"})
    with pytest.raises(ConfigError, match="batch_m=0 must be a positive"):
        from_dict(ClassifyConfig, {"batch_m": 0})
