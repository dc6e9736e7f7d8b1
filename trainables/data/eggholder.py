"""The Eggholder function and the regression data set of the depth-vs-width study.

Data: y = f(x1, x2) + N(0, noise) with (x1, x2) uniform on [-512, 512]^2, split
80/20 into train and test with a fixed seed. For training, inputs are scaled to
[-1, 1] (x / 512) and targets standardized with the training set's mean and std;
RMSE is always reported in the original units of y (scaled RMSE * y_std).
"""

from __future__ import annotations

import numpy as np

BOUND = 512.0
GLOBAL_MIN_X = (512.0, 404.2319)
GLOBAL_MIN_Y = -959.6407


def eggholder(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    a = x2 + 47.0
    return -a * np.sin(np.sqrt(np.abs(x1 / 2.0 + a))) - x1 * np.sin(np.sqrt(np.abs(x1 - a)))


def make_dataset(n_points: int, noise: float = 0.3, test_fraction: float = 0.2, seed: int = 0) -> dict[str, np.ndarray]:
    """Scaled float32 arrays ready for training, plus the target scale (y_mean, y_std)."""
    if n_points < 10:
        raise ValueError(f"n_points={n_points} is too small; use at least 10")
    rng = np.random.default_rng(seed)
    x = rng.uniform(-BOUND, BOUND, size=(n_points, 2))
    y = eggholder(x[:, 0], x[:, 1]) + rng.normal(0.0, noise, size=n_points)
    n_test = int(round(n_points * test_fraction))
    order = rng.permutation(n_points)
    test_idx, train_idx = order[:n_test], order[n_test:]
    y_mean, y_std = float(y[train_idx].mean()), float(y[train_idx].std())

    def scaled(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (x[idx] / BOUND).astype(np.float32), ((y[idx] - y_mean) / y_std).astype(np.float32)[:, None]

    x_train, y_train = scaled(train_idx)
    x_test, y_test = scaled(test_idx)
    return {
        "x_train": x_train,
        "y_train": y_train,
        "x_test": x_test,
        "y_test": y_test,
        "y_mean": np.float64(y_mean),
        "y_std": np.float64(y_std),
    }
