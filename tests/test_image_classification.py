"""The shared image-classification trial (one config, one loop for every image study), without Ray, on tiny
real-format data sets."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from fake_datasets import UncheckedCIFAR10, make_cifar, make_mnist
from trainables.config import ConfigError, from_dict
from trainables.image.config import ClassifyConfig
from trainables.image.trial import build_classifier, make_data, model_params
from trainables.image.trial import train_classifier as train_typed
from trainables.training.schedules import range_factor
from trainables.runtime.session import LocalSession
from trainables.data.vision import DATASETS


def train_classifier(config: dict, data, session) -> None:
    """The loop on a config given as the plain values a trial receives (parsed once, as a trial does)."""
    train_typed(from_dict(ClassifyConfig, config), data, session)


def derived_params(config: dict) -> dict:
    return model_params(from_dict(ClassifyConfig, config))


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
                "time/epoch_s", "time/train_s", "train/lr", "perf/images_per_s", "perf/tflops"):
        assert key in last and math.isfinite(last[key]), key
    assert last["train/loss"] < first["train/loss"]
    assert last["test/accuracy"] > 0.5  # ten classes, each a learnable pattern
    params = derived_params(config)
    assert params["n_params"] > 10_000 and params["macs_per_sample"] > params["n_params"]


def test_target_accuracy_stops_the_trial(fashion_dir):
    config = {"dataset": "fashion_mnist", "model": "lenet5", "epochs": 20, "batch_size": 32, "lr": 0.05,
              "data_dir": str(fashion_dir), "target_accuracy": 0.3}
    session = LocalSession(epochs=20)
    train_classifier(config, make_data(from_dict(ClassifyConfig, config)), session)
    assert len(session.history) < 20 and session.history[-1]["target_reached"] == 1
    assert session.history[-1]["test/accuracy"] >= 0.3


def test_cifar_batch_augmentation_and_resume(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(DATASETS["cifar10"], cls=UncheckedCIFAR10))
    make_cifar(tmp_path, UncheckedCIFAR10, per_file=40, learnable=True)
    config = {"dataset": "cifar10", "model": "resnet20", "epochs": 2, "batch_size": 16, "batch_m": 2,
              "crop_flip": True, "cutout": 8, "data_dir": str(tmp_path), "lr_policy": "multistep",
              "lr_milestones": "1", "lr": 0.1}
    data = make_data(from_dict(ClassifyConfig, config))
    straight = LocalSession(epochs=2, checkpoint_every=1)
    train_classifier(config, data, straight)
    # batch augmentation doubles the samples seen per epoch; the LR drops x10 after epoch 1
    assert straight.history[0]["train/lr"] == pytest.approx(0.1) and straight.history[1]["train/lr"] == pytest.approx(0.01)
    resumed = LocalSession(epochs=2, state=None)
    resumed.state = _state_after_first_epoch(config, data)
    train_classifier(config, data, resumed)
    assert [h["epoch"] for h in resumed.history] == [2]


def _state_after_first_epoch(config, data):
    session = LocalSession(epochs=2, checkpoint_every=1)

    class StopAfterOne:
        def restore(self):
            return None

        def report(self, metrics, epoch, state_fn=None, artifacts=None):
            session.report(metrics, epoch, state_fn, artifacts)
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


# ---------------------------------------------------------------- LR and batch-size policies of the one loop

def _run(fashion_dir, **config):
    config = {"dataset": "fashion_mnist", "model": "lenet5", "batch_size": 16, "data_dir": str(fashion_dir), **config}
    cfg = from_dict(ClassifyConfig, config)
    session = LocalSession(epochs=cfg.stages, checkpoint_every=1)
    train_classifier(config, make_data(cfg), session)
    return cfg, session.history


def test_continuous_lr_range_test_raises_the_lr_every_step(fashion_dir):
    cfg, history = _run(fashion_dir, lr_policy="range", lr_min=1e-5, lr_max=10.0, lr_stages=6, interval=3)
    lrs = [h["train/lr"] for h in history]
    assert 2 <= len(history) <= 6 and all(b > a for a, b in zip(lrs, lrs[1:]))
    assert lrs[0] == pytest.approx(1e-5 * range_factor(cfg) ** 2)  # the last of the first stage's 3 steps
    assert [h["train/iterations"] for h in history] == [3 * (i + 1) for i in range(len(history))]
    assert not any(key.startswith(("test/", "val/")) for h in history for key in h)  # nothing evaluated
    assert len(history) == 6 or history[-1].get("range/blew_up") == 1


def test_batch_size_range_test_doubles_the_batch_and_accumulates(fashion_dir):
    cfg, history = _run(fashion_dir, batch_policy="range", batch_min=64, batch_max=1024, interval=1,
                        max_micro_batch=256, lr=0.05)
    # batches beyond the 600 training images are served by the stream all the same
    assert cfg.stages == 5 and [h["train/batch_size"] for h in history] == [64, 128, 256, 512, 1024]
    assert [h["train/samples_seen"] for h in history] == [64, 192, 448, 960, 1984]
    assert all(math.isfinite(h["test/accuracy"]) and h["train/lr"] == 0.05 for h in history)


def test_cyclic_batch_size_and_cyclic_lr_resume(fashion_dir):
    config = dict(batch_policy="cyclic", batch_min=16, batch_max=64, batch_stepsize=1, epochs=3,
                  lr_policy="exp_range", lr_min=1e-3, lr_max=0.1, stepsize=1, gamma=0.99, val_size=100)
    _, history = _run(fashion_dir, **config)
    assert [h["train/batch_size"] for h in history] == [16, 64, 64]
    assert history[0]["train/lr"] == pytest.approx(1e-3) and history[1]["train/lr"] != history[0]["train/lr"]
    assert all("val/accuracy" in h and "test/accuracy" in h for h in history)
    # Resumed from the checkpoint after epoch 2: the last epoch is the same as straight through.
    full = {"dataset": "fashion_mnist", "model": "lenet5", "batch_size": 16, "data_dir": str(fashion_dir), **config}
    data = make_data(from_dict(ClassifyConfig, full))
    straight = LocalSession(epochs=3, checkpoint_every=1)
    train_classifier(full, data, straight)
    state = LocalSession(epochs=3, checkpoint_every=1)

    class StopAfterTwo:
        def restore(self):
            return None

        def report(self, metrics, epoch, state_fn=None, artifacts=None):
            state.report(metrics, epoch, state_fn, artifacts)
            return epoch < 2

    train_classifier(full, data, StopAfterTwo())
    resumed = LocalSession(epochs=3, state=state.state)
    train_classifier(full, data, resumed)
    assert [h["epoch"] for h in resumed.history] == [3]
    for key in ("train/lr", "train/iterations", "train/samples_seen", "train/batch_size"):
        assert resumed.history[0][key] == pytest.approx(straight.history[-1][key]), key
    assert resumed.history[0]["train/loss"] == pytest.approx(straight.history[-1]["train/loss"], rel=1e-4)


def test_lr_zero_takes_a_range_test_bound_or_is_refused(fashion_dir):
    _, history = _run(fashion_dir, lr=0.0, lr_min=0.001, lr_max=0.06, epochs=1)
    assert history[0]["train/lr"] == pytest.approx(0.06)
    _, history = _run(fashion_dir, lr=0.0, lr_min=0.001, lr_max=0.06, fixed_lr="min", epochs=1)
    assert history[0]["train/lr"] == pytest.approx(0.001)
    with pytest.raises(ConfigError, match="lr_policy=constant needs lr"):
        _run(fashion_dir, lr=0.0, epochs=1)
    with pytest.raises(ConfigError, match="lr_policy=triangular needs lr_min and lr_max"):
        _run(fashion_dir, lr_policy="triangular", epochs=1)


def test_a_blown_up_loss_is_recorded_as_diverged(fashion_dir):
    _, history = _run(fashion_dir, lr=1e4, epochs=3)
    assert len(history) == 1 and history[0]["diverged"] == 1 and not math.isfinite(history[0]["train/loss"])
    assert math.isnan(history[0]["test/accuracy"])  # nothing evaluated after a blow-up (NaN: Tune needs the metric)


@pytest.mark.parametrize("optimizer", ["sgd", "nesterov", "adagrad", "rmsprop", "rmsprop_nesterov", "adadelta",
                                       "adam", "adamw"])
def test_every_optimizer_trains(fashion_dir, optimizer):
    lr = {"adadelta": 1.0, "adagrad": 0.05, "sgd": 0.05, "nesterov": 0.05}.get(optimizer, 0.002)
    _, history = _run(fashion_dir, optimizer=optimizer, lr=lr, epochs=2, weight_decay=1e-4, train_subset=300)
    assert history[-1]["train/loss"] < history[0]["train/loss"], optimizer


def test_model_options_reach_the_small_models(fashion_dir):
    config = {"model": "mlp", "widths": "64-32", "activation": "tanh", "weight_init": "glorot", "batch_norm": True,
              "dropout_input": 0.2, "dropout_hidden": 0.5, "input_batch_norm": True}
    cfg = from_dict(ClassifyConfig, config)
    model = build_classifier(cfg)
    kinds = [type(m).__name__ for m in model.modules()]
    assert kinds.count("Tanh") == 2 and kinds.count("BatchNorm1d") == 3 and kinds.count("Dropout") == 3
    assert [m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)] == [64, 32, 10]
    assert derived_params(config)["n_params"] == sum(p.numel() for p in model.parameters())
    _, history = _run(fashion_dir, epochs=1, lr=0.05, **config)
    assert math.isfinite(history[0]["test/accuracy"])


@pytest.mark.parametrize("values, message", [
    ({"model": "resnet44", "dropout_hidden": 0.5}, "dropout_hidden: option of model lenet5 and mlp only, not of model='resnet44'"),
    ({"model": "lenet5", "widths": "64-32"}, "widths: option of model mlp only, not of model='lenet5'"),
    ({"model": "mini_googlenet", "activation": "tanh", "batch_norm": True}, "activation, batch_norm: options of model"),
    ({"optimizer": "rmsprop_nesterov", "momentum": 0.0}, "optimizer=rmsprop_nesterov needs momentum > 0"),
    ({"optimizer": "lion"}, "optimizer='lion' is not one of"),
    ({"activation": "swish"}, "activation='swish' is not one of"),
    ({"adam_beta2": 1.0}, r"adam_beta2=1.0 must be in \[0, 1\)"),
    ({"lr_policy": "triangular", "warmup_epochs": 1}, "warmup_epochs applies to"),
])
def test_bad_options_are_one_line_config_errors(values, message):
    with pytest.raises(ConfigError, match=message) as error:
        from_dict(ClassifyConfig, values)
    assert "\n" not in str(error.value)
