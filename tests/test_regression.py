import math

import numpy as np
import pytest
import torch
from torch import nn

from trainables.config import ConfigError, from_dict, parse_value
from trainables.data.eggholder import make_dataset
from trainables.studies.depth_width.config import RegressionConfig, enumerate_networks, representative_networks
from trainables.studies.depth_width.trial import build_regressor, network_params, train_regression
from trainables.runtime.session import LocalSession, is_diverged


def test_enumerates_143_networks_within_budget():
    nets = enumerate_networks()
    assert len(nets) == 143 and len(set(nets)) == 143
    assert [sum(1 for n in nets if len(n) == d) for d in (1, 2, 3)] == [6, 25, 112]
    assert all(sum(n) <= 512 for n in nets)
    assert (256, 256) in nets and (512,) in nets and (256, 256, 16) not in nets
    assert set(representative_networks()) <= set(nets)


@pytest.mark.parametrize("widths", [(16,), (512,), (32, 16), (256, 256), (16, 16, 16), (256, 128, 128)])
def test_parameter_count_and_batch_norm_placement(widths):
    cfg = RegressionConfig(widths=widths)
    model = build_regressor(cfg)
    params = network_params(from_dict(RegressionConfig, {"widths": "-".join(map(str, widths))}))
    assert params["n_params"] == sum(p.numel() for p in model.parameters())
    assert params["n_layers"] == len(widths) and params["total_units"] == sum(widths)
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    assert len(norms) == (0 if len(widths) == 1 else len(widths))  # BN in the 2- and 3-layer nets only
    # by hand: 1 layer = 2w + w + w + 1; with BN, linear layers lose their bias and BN adds 2w
    if len(widths) == 1:
        assert params["n_params"] == 4 * widths[0] + 1


def test_budget_and_bad_values_are_rejected():
    with pytest.raises(ConfigError, match="budget of 512"):
        from_dict(RegressionConfig, {"widths": "512-64"})
    with pytest.raises(ConfigError, match="epochs=0 must be a positive"):
        from_dict(RegressionConfig, {"epochs": 0})
    with pytest.raises(ConfigError, match="unknown config key"):
        from_dict(RegressionConfig, {"epoch": 3})
    with pytest.raises(ConfigError, match="should be an integer"):
        parse_value(RegressionConfig, "epochs", "ten")
    assert parse_value(RegressionConfig, "widths", "[64, 32]") == (64, 32)
    assert parse_value(RegressionConfig, "lr", "1e-3") == 1e-3


def test_training_reduces_error_and_reports_flat_metrics():
    data = make_dataset(3000, seed=1)
    session = LocalSession(epochs=30)
    train_regression(RegressionConfig(widths=(64, 64), epochs=30, batch_size=100), data, session)
    first, last = session.history[0], session.history[-1]
    assert set(last) >= {"train/loss", "test/rmse", "time/epoch_s", "time/train_s", "epoch", "diverged"}
    assert last["epoch"] == 30 and last["diverged"] == 0
    assert last["train/loss"] < 0.9 * first["train/loss"] and last["test/rmse"] < first["test/rmse"]
    train_s = [h["time/train_s"] for h in session.history]
    assert train_s == sorted(train_s) and train_s[-1] == pytest.approx(sum(h["time/epoch_s"] for h in session.history))


def test_divergence_stops_the_trial_and_is_flagged():
    data = make_dataset(2000, seed=1)
    session = LocalSession(epochs=20)
    train_regression(RegressionConfig(widths=(256, 128, 128), epochs=20, lr=1e4), data, session)
    assert session.history[-1]["diverged"] == 1
    assert len(session.history) < 20  # it stopped instead of training on NaNs
    assert not math.isfinite(session.history[-1]["train/loss"])
    assert is_diverged({"train/loss": float("inf")}) and not is_diverged({"train/loss": 1.0, "test/rmse": 2.0})


def test_resume_from_checkpoint_gives_the_same_model():
    data = make_dataset(2000, seed=1)
    config = RegressionConfig(widths=(32, 16), epochs=6)
    straight = LocalSession(epochs=6)
    train_regression(config, data, straight)
    first_half = LocalSession(epochs=6, checkpoint_every=3)
    train_regression(config, data, _Stopper(first_half, stop_after=3))
    resumed = LocalSession(epochs=6, state=first_half.state)
    train_regression(config, data, resumed)
    assert [h["epoch"] for h in resumed.history] == [4, 5, 6]
    np.testing.assert_allclose(resumed.history[-1]["test/rmse"], straight.history[-1]["test/rmse"], rtol=1e-5)


class _Stopper:
    """Acts like a session whose trial is killed after `stop_after` epochs."""

    def __init__(self, session, stop_after):
        self.session, self.stop_after = session, stop_after

    def restore(self):
        return self.session.restore()

    def report(self, metrics, epoch, state_fn=None, artifacts=None):
        self.session.report(metrics, epoch, state_fn, artifacts)
        return epoch < self.stop_after


def test_thread_count_is_not_changed_by_training():
    threads = torch.get_num_threads()
    train_regression(RegressionConfig(widths=(16,), epochs=1, n_points=100), make_dataset(100), LocalSession(epochs=1))
    assert torch.get_num_threads() == threads
