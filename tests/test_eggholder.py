import numpy as np
import pytest

from trainables.data.eggholder import BOUND, GLOBAL_MIN_X, GLOBAL_MIN_Y, eggholder, make_dataset


def test_known_values():
    assert eggholder(np.array(0.0), np.array(0.0)) == pytest.approx(-47 * np.sin(np.sqrt(47.0)), rel=1e-12)
    # f(512, 404.2319) is the global minimum, about -959.6407
    assert eggholder(np.array(GLOBAL_MIN_X[0]), np.array(GLOBAL_MIN_X[1])) == pytest.approx(GLOBAL_MIN_Y, abs=1e-3)


def test_global_minimum_on_a_grid():
    g = np.linspace(-BOUND, BOUND, 1025)
    x1, x2 = np.meshgrid(g, g)
    assert eggholder(x1, x2).min() >= GLOBAL_MIN_Y - 1e-3


def test_dataset_split_scaling_and_seed():
    data = make_dataset(1000, seed=3)
    assert data["x_train"].shape == (800, 2) and data["x_test"].shape == (200, 2)
    assert data["y_train"].shape == (800, 1) and data["x_train"].dtype == np.float32
    assert np.abs(data["x_train"]).max() <= 1.0
    assert data["y_train"].mean() == pytest.approx(0, abs=1e-5) and data["y_train"].std() == pytest.approx(1, abs=1e-4)
    # targets map back to the Eggholder function plus N(0, 0.3) noise
    x = data["x_test"].astype(np.float64) * BOUND
    y = data["y_test"][:, 0] * data["y_std"] + data["y_mean"]
    residual = y - eggholder(x[:, 0], x[:, 1])
    assert abs(residual.std() - 0.3) < 0.06
    again = make_dataset(1000, seed=3)
    assert np.array_equal(again["x_train"], data["x_train"])
    assert not np.array_equal(make_dataset(1000, seed=4)["x_train"], data["x_train"])
