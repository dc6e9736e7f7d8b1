"""Population trials through the studies' own loops: `seeds=N` trains N replicas in one trial that match N
separate runs, and the runner turns `--set seeds=N` into one population trial only where the model fuses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import sweep_plan
from sweeps.cli import UsageError
from sweeps.registry import load_study
from trainables.config import ConfigError, from_dict
from trainables.data.eggholder import make_dataset
from trainables.data.vision import Split, VisionData
from trainables.image.config import ClassifyConfig
from trainables.image.trial import BATCHNORM_TABLE, train_classifier
from trainables.runtime.session import LocalSession
from trainables.studies.depth_width.config import RegressionConfig
from trainables.studies.depth_width.trial import train_regression
from trainables.training.population import REPLICA_HISTORY, REPLICAS_TABLE

CONFIGS = {train_classifier: ClassifyConfig, train_regression: RegressionConfig}


def _tiny_images(n_train=96, n_test=40) -> VisionData:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n_train + n_test)
    images = rng.integers(0, 60, (n_train + n_test, 1, 28, 28)).astype(np.uint8)
    for c in range(10):  # a learnable signal: a bright row per class
        images[labels == c, 0, 2 * c + 3, :] = 250
    split = lambda a, b: Split(images[a:b], labels[a:b].astype(np.int64))  # noqa: E731
    return VisionData("fake", 10, (0.2,), (0.3,), split(0, n_train), split(0, 0), split(n_train, n_train + n_test))


def _run(trial, config: dict, data, epochs):
    session = LocalSession(epochs=epochs)
    trial(from_dict(CONFIGS[trial], config), data, session)
    return session


def test_lenet_population_matches_separate_runs():
    """LeNet-5 with batch norm and dropout: each replica of a 2-seed population trial trains exactly as the
    single-seed trial of its seed (same losses, accuracies), and the means are what the run records."""
    data = _tiny_images()
    config = {"dataset": "mnist", "model": "lenet5", "epochs": 2, "batch_size": 16, "lr": 0.05,
              "batch_norm": True, "dropout_hidden": 0.5, "optimizer": "nesterov"}
    fused = _run(train_classifier, {**config, "seeds": 2}, data, 2)
    separate = [_run(train_classifier, {**config, "seed": s}, data, 2) for s in (0, 1)]
    table = fused.artifacts[REPLICAS_TABLE]
    assert list(table["seed"]) == [0, 1]
    for i, run in enumerate(separate):
        for key in ("train/loss", "train/accuracy", "test/loss", "test/accuracy"):
            assert table[key].iloc[i] == pytest.approx(run.history[-1][key], rel=1e-4, abs=1e-5), key
    for epoch in range(2):
        losses = [run.history[epoch]["train/loss"] for run in separate]
        assert fused.history[epoch]["train/loss"] == pytest.approx(np.mean(losses), rel=1e-4)
        assert fused.history[epoch]["train/loss_std"] == pytest.approx(np.std(losses, ddof=1), rel=1e-3, abs=1e-6)
    assert fused.history[-1]["population/diverged"] == 0
    assert separate[0].history[-1]["train/loss"] != pytest.approx(separate[1].history[-1]["train/loss"], rel=1e-6)


def test_a_population_of_optimizers_matches_separate_runs():
    """optimizers=(a, b) with seeds=2: four replicas in one trial, each the separate run of its method, lr and
    seed (RMSProp-Nesterov is this project's own optimizer; weight decay and dropout on), epoch by epoch; the
    replica tables name each replica, and its batch-norm gamma/beta are those of the separate run."""
    data = _tiny_images()
    config = {"dataset": "mnist", "model": "mlp", "widths": "32-32", "epochs": 3, "batch_size": 16,
              "weight_decay": 1e-3, "dropout_hidden": 0.3, "batch_norm": True, "lr_policy": "cosine"}
    groups = [("adagrad", 0.02), ("rmsprop_nesterov", 0.002)]
    fused = _run(train_classifier, {**config, "seeds": 2, "optimizers": "adagrad,rmsprop_nesterov",
                                    "lrs": "0.02,0.002"}, data, 3)
    history = fused.artifacts[REPLICA_HISTORY]
    bn = fused.artifacts[BATCHNORM_TABLE]
    assert list(fused.artifacts[REPLICAS_TABLE]["optimizer"]) == ["adagrad"] * 2 + ["rmsprop_nesterov"] * 2
    assert fused.history[-1]["population/size"] == 4
    for p, ((name, lr), seed) in enumerate((g, s) for g in groups for s in (0, 1)):
        run = _run(train_classifier, {**config, "optimizer": name, "lr": lr, "seed": seed}, data, 3)
        mine = history[(history["optimizer"] == name) & (history["seed"] == seed)].sort_values("step")
        assert list(mine["step"]) == [1, 2, 3]
        for key in ("train/loss", "test/loss", "test/accuracy"):
            np.testing.assert_allclose(mine[key], [h[key] for h in run.history], rtol=1e-4, atol=1e-5, err_msg=key)
        alone = run.artifacts[BATCHNORM_TABLE]
        np.testing.assert_allclose(bn[bn["replica"] == p]["gamma"], alone["gamma"], rtol=1e-4, atol=1e-5)
    assert history.groupby("optimizer")["train/loss"].last().nunique() == 2  # the methods did differ


def test_regression_population_matches_separate_runs():
    data = make_dataset(1500, seed=2)
    config = {"widths": "32-16", "epochs": 3, "batch_size": 100}
    fused = _run(train_regression, {**config, "seeds": 3}, data, 3)
    separate = [_run(train_regression, {**config, "seed": s}, data, 3) for s in (0, 1, 2)]
    table = fused.artifacts[REPLICAS_TABLE]
    np.testing.assert_allclose(table["test/rmse"], [r.history[-1]["test/rmse"] for r in separate], rtol=1e-4)
    assert fused.history[-1]["test/rmse"] == pytest.approx(np.mean(table["test/rmse"]))


def test_a_population_whose_replicas_all_diverge_is_recorded_as_diverged():
    """(Replicas are independent, so one diverging leaves the others training: tests/test_population.py.)"""
    data = make_dataset(1000, seed=1)
    session = _run(train_regression, {"widths": "256-128-128", "epochs": 10, "lr": 1e4, "seeds": 2}, data, 10)
    assert session.history[-1]["diverged"] == 1 and len(session.history) < 10


def test_seeds_become_one_population_trial_only_where_the_model_fuses():
    def plan(study, *args):
        return sweep_plan(load_study(study), ["--preset", "smoke", *args])

    fused = plan("depth_width", "--set", "seeds=3")
    assert fused.base.seeds == 3 and "seed" not in fused.space
    assert len(fused.grid_configs()) == 3  # the 3 networks, each one trial of 3 replicas
    big = plan("cyclic_lr", "--set", "seeds=2", "--set", "lr_min=0.001", "--set", "lr_max=0.1")  # MiniGoogLeNet
    assert big.base.seeds == 1 and big.space["seed"] == (0, 1)  # one trial per seed
    small = plan("cyclic_lr", "--set", "seeds=2", "--set", "model=lenet5", "--set", "lr_min=0.001",
                 "--set", "lr_max=0.1")  # LeNet-5 fuses, but on a CPU
    assert small.space["seed"] == (0, 1)  # separate trials are faster there (--population auto)
    for flags in (["--gpus-per-trial", "0.5"], ["--population", "on"]):
        small = plan("cyclic_lr", "--set", "seeds=2", "--set", "model=lenet5", "--set", "lr_min=0.001",
                     "--set", "lr_max=0.1", *flags)
        assert small.base.seeds == 2 and "seed" not in small.space
    assert plan("depth_width", "--set", "seeds=3", "--population", "off").space["seed"] == (0, 1, 2)
    with pytest.raises(UsageError, match="--population on"):  # MiniGoogLeNet does not fuse
        plan("cyclic_lr", "--set", "seeds=2", "--population", "on", "--set", "lr_min=0.001", "--set", "lr_max=0.1")
    ddp = plan("cyclic_lr", "--set", "seeds=2", "--set", "model=lenet5", "--gpus-per-trial", "0.5", "--workers", "1",
               "--set", "lr_min=0.001", "--set", "lr_max=0.1")
    assert ddp.space["seed"] == (0, 1)  # a DDP job keeps one trial per seed
    with pytest.raises(ConfigError, match="population"):
        from_dict(ClassifyConfig, {"model": "resnet20", "dataset": "cifar10", "seeds": 2})


def test_an_epoch_that_is_nan_still_reports_the_metric_tune_ranks_by():
    """A NaN epoch is not evaluated, but its report carries test/accuracy = NaN (Tune refuses a result without
    the study's metric, which would end the whole sweep) and the trial is recorded as diverged."""
    data = _tiny_images()
    for extra in ({}, {"seeds": 2}):
        session = _run(train_classifier, {"dataset": "mnist", "model": "mlp", "widths": "16", "epochs": 3,
                                          "batch_size": 16, "lr": 1e30, "optimizer": "sgd", **extra}, data, 3)
        last = session.history[-1]
        assert last["diverged"] == 1 and math.isnan(last["test/accuracy"]) and len(session.history) < 3
