"""Bias-variance of polynomial regression (classic exercise): y = x + sin(1.5x) + noise, degrees 1 to 15.

    >>> from trainables.studies.bias_variance import BiasVarianceConfig, make_data, train_bias_variance
    >>> from trainables.runtime.session import LocalSession
    >>> s = LocalSession(epochs=1); train_bias_variance({"degree": 10}, None, s)
    >>> s.history[-1]["bv/bias2"], s.history[-1]["ridge/mse"], s.artifacts["fits.csv"].head()

One trial is one polynomial degree, fitted (least squares, closed form) to every data set at once: one
batched solve over the `n_sets` data sets, no Python loop over them. It reports once (a one-shot trial).

Data (all drawn from `seed`, so every trial of a sweep sees the same points; `make_data`):
- f(x) = x + sin(1.5x), y = f(x) + N(0, noise_var) with noise_var 0.3 (std 0.548), x uniform on [0, 10];
- the illustration: one data set of 20 points, fitted by this trial's degree (the figure puts degrees 1, 3
  and 10 side by side);
- the bias-variance experiment: `n_sets` = 100 data sets of 50 points split 80/20. Our reading of "one
  fixed test set (80/20)": the 20% (10 points, x and noisy y) is drawn ONCE and shared by every data set,
  the 80% (40 training points) is drawn afresh for each of the 100 data sets; so each data set is 40 new
  training points + the same 10 test points. `n_test` may be raised (e.g. 1000) for a smoother estimate.

Measured on the fixed test set T (x_t, y_t = f(x_t) + e_t), with yhat_d the fit to data set d:
- bias^2   = mean over t of (mean over d of yhat_d(x_t) - f(x_t))^2
- variance = mean over t of the variance over d of yhat_d(x_t)          (population variance, ddof 0)
- test MSE = mean over t and d of (yhat_d(x_t) - y_t)^2                  (against the noisy test labels)
Also the population values over x ~ U[0, 10] (`grid/...`, on GRID_POINTS evenly spaced x, noise-free f):
grid/bias2, grid/variance and grid/mse = grid/bias2 + grid/variance + noise_var, the expected test MSE of a
fresh point; ten test points give a noisy picture (their noise and where they fall), the grid does not.
On the test set, test MSE = bias^2 + variance + mean_t e_t^2 - 2 mean_t e_t b_t exactly (b_t the bias at x_t): the
last two terms are the noise of the ten test labels drawn once (`test/noise`, `test/cross`); they average
to noise_var and 0 over test sets, so bias^2 + variance + noise_var ~ the expected test MSE (`bv/sum`).

Numerics: x is mapped to u = x/5 - 1 in [-1, 1] and the unregularized fit uses the Legendre basis in u
(numpy.polynomial.legendre.legvander): the same polynomials as the monomials in x (same least-squares
fit), but a Vandermonde matrix of condition ~2e2 (median over the 100 sets; max 3e4) at degree 15
instead of ~4e18 for x^k on [0, 10].
Solved by the pseudo-inverse (SVD), batched over data sets.
Ridge (`ridge_alpha`): sklearn's recipe PolynomialFeatures(degree, no bias) -> StandardScaler -> Ridge on
u = x/5 - 1, i.e. features u^1 .. u^degree, each data set standardized by its own training points' mean
and std, the intercept not penalized (fitted as the mean of y): w = (Z'Z + alpha I)^-1 Z'(y - mean y),
batched with numpy.linalg.solve (tests check it against the sklearn pipeline). alpha is sklearn's: the
penalty alpha |w|^2 is added to the SUM of squared residuals over the 40 points. Standardized powers of
x in [0, 10] instead (all positive, correlations ~0.99) gave a variance that is not monotone in alpha
(measured at degree 10: 0.15 at 1e-4, 0.40 at 1e-2); on u bias^2 rises and variance falls with alpha as
expected. Default alpha 1e-2 (measured at degree 10, 5000 test points: bias^2 0.07, variance 0.35, MSE
0.72, against 10.3 unregularized; the paper preset sweeps alpha 1e-4 .. 1).

Reported (one flat dict): bv/bias2, bv/variance, bv/sum, test/mse, test/noise, test/cross, train/mse
(mean over data sets of the training MSE), the same for ridge (ridge/...), illustration/train_mse (on the
20 points) and illustration/test_mse (expected test MSE of that one fit: mean over a dense grid of
(fit - f)^2 + noise_var). Artifact FITS_TABLE: on a grid of GRID_POINTS x values, f, the illustration fit,
the mean and std over data sets of the fits (unregularized and ridge) and the first FITS_SHOWN fits;
ILLUSTRATION_TABLE: the 20 points; TEST_TABLE: the fixed test set.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.polynomial import legendre

from trainables.config import ConfigError

X_LOW, X_HIGH = 0.0, 10.0  # the input interval
GRID_POINTS = 401  # dense grid over [0, 10] for the figures and the illustration's expected test MSE
FITS_SHOWN = 20  # individual fits (of the first data sets) kept in the fits table
FITS_TABLE = "fits.csv"
ILLUSTRATION_TABLE = "illustration.csv"
TEST_TABLE = "test_set.csv"


def target(x: np.ndarray) -> np.ndarray:
    """The true function f(x) = x + sin(1.5x)."""
    return x + np.sin(1.5 * x)


@dataclass(frozen=True)
class BiasVarianceConfig:
    degree: int = 10  # polynomial degree of this trial (1 .. 25)
    ridge_alpha: float = 1e-2  # L2 strength of the ridge fit: sklearn's alpha on standardized u^1..u^degree
    # (u = x/5 - 1; penalty alpha |w|^2 added to the SUM of squared residuals over the n_train points); > 0
    noise_var: float = 0.3  # variance of the Gaussian noise on y (std sqrt(0.3) = 0.548)
    n_sets: int = 100  # independent training sets (the "100 data sets")
    n_train: int = 40  # training points per data set (80% of 50)
    n_test: int = 10  # points of the ONE fixed test set shared by all data sets (20% of 50)
    n_illustration: int = 20  # points of the single illustration data set
    seed: int = 0  # every draw (illustration, training sets, test set) derives from it

    def __post_init__(self) -> None:
        if not 1 <= self.degree <= 25:
            raise ConfigError(f"degree={self.degree} must be an integer in 1 .. 25")
        if not (self.ridge_alpha > 0 and math.isfinite(self.ridge_alpha)):
            raise ConfigError(f"ridge_alpha={self.ridge_alpha} must be a positive number (e.g. 1e-3)")
        if not (self.noise_var >= 0 and math.isfinite(self.noise_var)):
            raise ConfigError(f"noise_var={self.noise_var} must be a non-negative number (variance of the noise)")
        if self.n_sets < 2:
            raise ConfigError(f"n_sets={self.n_sets} must be at least 2 (a variance across data sets)")
        for key in ("n_train", "n_test", "n_illustration"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}={getattr(self, key)} must be a positive integer")
        if self.n_train <= self.degree:
            raise ConfigError(f"n_train={self.n_train} must exceed degree={self.degree} (an interpolating fit)")


def make_data(cfg: BiasVarianceConfig) -> dict[str, np.ndarray]:
    """Every draw of the experiment, from cfg.seed (one independent stream each): the illustration set
    (x_ill, y_ill) [n_illustration], the training sets (x_train, y_train) [n_sets, n_train], the fixed test
    set (x_test, y_test) [n_test] with its noise e_test, and the grid [GRID_POINTS]."""
    std = math.sqrt(cfg.noise_var)

    def draw(stream: int, shape) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([cfg.seed, stream])
        x = rng.uniform(X_LOW, X_HIGH, size=shape)
        return x, rng.normal(0.0, std, size=shape)

    x_ill, e_ill = draw(0, cfg.n_illustration)
    x_train, e_train = draw(1, (cfg.n_sets, cfg.n_train))
    x_test, e_test = draw(2, cfg.n_test)
    return {"x_ill": x_ill, "y_ill": target(x_ill) + e_ill, "x_train": x_train, "y_train": target(x_train) + e_train,
            "x_test": x_test, "y_test": target(x_test) + e_test, "e_test": e_test,
            "x_grid": np.linspace(X_LOW, X_HIGH, GRID_POINTS)}


def no_shared_data(cfg: BiasVarianceConfig) -> None:
    """The study's make_data: each trial draws its own (identical, seeded, microseconds) data."""
    return None


def scaled(x: np.ndarray) -> np.ndarray:
    """x in [0, 10] -> u in [-1, 1]."""
    return 2.0 * (x - X_LOW) / (X_HIGH - X_LOW) - 1.0


def fit_polynomial(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray:
    """Least-squares polynomial fits, batched: x, y [..., n] -> Legendre coefficients in u = scaled(x),
    [..., degree + 1] (minimum-norm solution via the SVD pseudo-inverse)."""
    V = legendre.legvander(scaled(x), degree)  # [..., n, degree + 1]
    return (np.linalg.pinv(V) @ y[..., None])[..., 0]


def predict_polynomial(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """coef [..., degree + 1] and x [m] (shared) or [..., m] (one row per fit) -> predictions [..., m]."""
    V = legendre.legvander(scaled(x), coef.shape[-1] - 1)  # [..., m, degree + 1]
    return (V @ coef[..., None])[..., 0]


def fit_ridge(x: np.ndarray, y: np.ndarray, degree: int, alpha: float) -> dict[str, np.ndarray]:
    """Ridge on standardized polynomial features, batched over the leading axes of x, y [..., n]: features
    x^1 .. x^degree, standardized with each set's own mean and (population) std, intercept unpenalized."""
    powers = np.arange(1, degree + 1)
    Z = x[..., None] ** powers  # [..., n, degree]
    mean, std = Z.mean(axis=-2, keepdims=True), Z.std(axis=-2, keepdims=True)
    Z = (Z - mean) / std
    y_mean = y.mean(axis=-1, keepdims=True)
    gram = np.swapaxes(Z, -1, -2) @ Z + alpha * np.eye(degree)
    w = np.linalg.solve(gram, (np.swapaxes(Z, -1, -2) @ (y - y_mean)[..., None]))[..., 0]
    return {"w": w, "mean": mean[..., 0, :], "std": std[..., 0, :], "intercept": y_mean[..., 0]}


def predict_ridge(model: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """A fit_ridge model [...] on x [m] (shared) or [..., m] (one row per fit) -> predictions [..., m]."""
    degree = model["w"].shape[-1]
    Z = (x[..., None] ** np.arange(1, degree + 1) - model["mean"][..., None, :]) / model["std"][..., None, :]
    return (Z @ model["w"][..., None])[..., 0] + model["intercept"][..., None]


def decomposition(pred: np.ndarray, f_test: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    """Bias-variance numbers of predictions pred [n_sets, n_test] on a fixed test set (see the docstring)."""
    bias = pred.mean(axis=0) - f_test  # [n_test]
    noise = y_test - f_test
    return {"bias2": float(np.mean(bias**2)), "variance": float(np.mean(pred.var(axis=0))),
            "mse": float(np.mean((pred - y_test) ** 2)), "noise": float(np.mean(noise**2)),
            "cross": float(-2.0 * np.mean(bias * noise))}


def train_bias_variance(cfg: BiasVarianceConfig, data: Any, session, device: Any = None) -> None:
    """One-shot trial: fit this degree to the illustration set and to all data sets; report once."""
    t0 = time.perf_counter()
    d = make_data(cfg)
    grid, f_grid = d["x_grid"], target(d["x_grid"])
    coef = fit_polynomial(d["x_train"], d["y_train"], cfg.degree)  # [n_sets, degree + 1]
    ridge = fit_ridge(scaled(d["x_train"]), d["y_train"], cfg.degree, cfg.ridge_alpha)
    ill = fit_polynomial(d["x_ill"], d["y_ill"], cfg.degree)
    fit_s = time.perf_counter() - t0

    plain_fit = lambda x: predict_polynomial(coef, x)  # noqa: E731  x [m] or [n_sets, m] -> [n_sets, m]
    ridge_fit = lambda x: predict_ridge(ridge, scaled(x))  # noqa: E731
    metrics: dict[str, float] = {}
    grids = {}
    for prefix, predict in (("", plain_fit), ("ridge/", ridge_fit)):
        test = decomposition(predict(d["x_test"]), target(d["x_test"]), d["y_test"])
        grids[prefix] = predict(grid)  # [n_sets, G]
        bias2_x, var_x = (grids[prefix].mean(axis=0) - f_grid) ** 2, grids[prefix].var(axis=0)
        metrics.update({
            f"{prefix or 'bv/'}bias2": test["bias2"],  # bv/bias2 and ridge/bias2: on the fixed test set
            f"{prefix or 'bv/'}variance": test["variance"],
            f"{prefix or 'bv/'}sum": test["bias2"] + test["variance"] + cfg.noise_var,
            f"{prefix or 'test/'}mse": test["mse"],
            f"{prefix or 'test/'}cross": test["cross"],
            f"{prefix or 'train/'}{'train_' if prefix else ''}mse": float(np.mean((predict(d["x_train"]) -
                                                                                   d["y_train"]) ** 2)),
            f"{prefix}grid/bias2": float(bias2_x.mean()),  # grid/...: x ~ U[0, 10], the population values
            f"{prefix}grid/variance": float(var_x.mean()),
            f"{prefix}grid/mse": float(bias2_x.mean() + var_x.mean() + cfg.noise_var),
        })
        if not prefix:
            metrics["test/noise"] = test["noise"]
    ill_grid = predict_polynomial(ill, grid)
    metrics.update({
        "illustration/train_mse": float(np.mean((predict_polynomial(ill, d["x_ill"]) - d["y_ill"]) ** 2)),
        "illustration/test_mse": float(np.mean((ill_grid - f_grid) ** 2) + cfg.noise_var),
        "time/fit_s": fit_s,
    })
    plain, ridged = grids[""], grids["ridge/"]
    fits = {"x": grid, "f": f_grid, "illustration": ill_grid, "mean": plain.mean(axis=0), "std": plain.std(axis=0),
            "ridge_mean": ridged.mean(axis=0), "ridge_std": ridged.std(axis=0)}
    shown = range(min(FITS_SHOWN, cfg.n_sets))
    fits.update({f"fit_{i}": plain[i] for i in shown})
    fits.update({f"ridge_fit_{i}": ridged[i] for i in shown})
    artifacts = {FITS_TABLE: pd.DataFrame(fits),
                 ILLUSTRATION_TABLE: pd.DataFrame({"x": d["x_ill"], "y": d["y_ill"]}),
                 TEST_TABLE: pd.DataFrame({"x": d["x_test"], "y": d["y_test"]})}
    session.report(metrics, 1, artifacts=artifacts)

