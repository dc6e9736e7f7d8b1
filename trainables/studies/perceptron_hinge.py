"""Perceptron criterion vs hinge loss (classic exercise): a linear classifier without bias, SGD on 20 points.

    >>> from trainables.studies.perceptron_hinge import PerceptronHingeConfig, train_perceptron_hinge
    >>> from trainables.runtime.session import LocalSession
    >>> s = LocalSession(epochs=1); train_perceptron_hinge({"margin": 1.0, "repetitions": 100}, None, s)
    >>> s.history[-1]["test/acc_mean"], s.artifacts["repetitions.csv"].head()

Data (all from `seed`; both losses see the same draws, so their comparison is paired): `repetitions`
independent training sets of n_train = 20 points uniform in the unit square, label y = +1 where x1 > x2
else -1; ONE test set of n_test = 1000 points drawn the same way, shared by every repetition and both losses.

Model and loss: score w . x with w in R^2 and no bias (the true boundary x1 = x2 passes through the
origin), loss max(0, a - y w.x), a = `margin`: 0 is the perceptron criterion, 1 the hinge; no
regularization. SGD: w = 0 at the start (init "zero"; "random": N(0, 0.01^2) per weight), `lr` per sample,
each epoch visits a repetition's 20 points in a fresh random order of its own. Subgradient convention:
a sample updates w <- w + lr y x when y w.x < a or y w.x <= 0, i.e. for a = 0 when y w.x <= 0 (the classic
perceptron rule, which also moves w off w = 0 where max(0, -y w.x) has the kink), for a = 1 when
y w.x < 1 (at exactly 1 the subgradient 0 is taken). A repetition has converged at the end of the first
epoch after which every training point satisfies that (y w.x >= a and > 0): zero training loss, no
training error; no update can happen after it, so its w is final. Training stops when all have converged
or after `max_epochs`; w of an unconverged repetition is its w at max_epochs (fraction reported).
With w = 0 at the start, the perceptron's w is lr times a sum of y x, so lr only scales w and changes
nothing else; for the hinge, lr sets the margin in units of the update: lr 0.1 with a = 1 asks for
y w.x >= 1 where w grows by at most 0.1 sqrt(2) per update (the "perceptron with margin" a / lr = 10).

Measured (quick preset, lr 1, 10000 epochs at most): every perceptron run converged (mean 6.2 epochs, max
1265); 93% of hinge runs did (mean 1165 epochs), the others have sets with a tiny margin (y w.x >= 1 needs
|w| >= 1 / margin). With max_epochs 1000, 66% of hinge runs converged and the accuracy was 0.9691 ± 0.0306.

All repetitions train at once as a [repetitions, 2] batch of weight vectors (numpy; one vectorized step
per position in the epoch, 20 steps an epoch, no loop over repetitions).

Reported: test/acc_mean, test/acc_std (over repetitions), test/disagreement (mean over test points of the
fraction of repetitions whose prediction differs from the majority at that point), test/unstable_points
(fraction of test points where that exceeds 5%), train/converged_fraction, train/epochs_mean and
train/epochs_max (of the converged), angle/true_deg_mean, angle/true_deg_std (angle between w and the true
normal (1, -1)), angle/maxmargin_deg_mean (angle between w and the max-margin direction through the origin
of that training set, found by a grid search to 0.001 degree), margin/geometric_mean (min over the
training points of y w.x / |w|, i.e. the distance of the closest point to the line), margin/functional_min
(min over converged repetitions of min y w.x: >= a for the hinge). Artifacts: PREDICTIONS (the
[repetitions, n_test] bool matrix of predictions y = +1 on the shared test set), REPETITIONS_TABLE (per
repetition: test accuracy, converged, epochs, w, angles, margins), TEST_TABLE (the test set),
EXAMPLE_TABLE (the training set of repetition 0).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trainables.config import ConfigError

PREDICTIONS = "predictions.npy"
REPETITIONS_TABLE = "repetitions.csv"
TEST_TABLE = "test_set.csv"
EXAMPLE_TABLE = "example_train.csv"
UNSTABLE = 0.05  # a test point is "unstable" where more than 5% of repetitions disagree with the majority


@dataclass(frozen=True)
class PerceptronHingeConfig:
    margin: float = 0.0  # a in max(0, a - y w.x): 0 = perceptron criterion, 1 = hinge
    lr: float = 1.0  # SGD step per sample: w += lr * y * x on an update
    max_epochs: int = 10000  # passes over the 20 points before giving up on a repetition
    init: str = "zero"  # "zero": w = 0; "random": w ~ N(0, 0.01^2) per weight
    repetitions: int = 1000  # independent training sets, trained together
    n_train: int = 20  # training points per set
    n_test: int = 1000  # points of the one shared test set
    seed: int = 0  # all draws (training sets, test set, sample orders, init) derive from it

    def __post_init__(self) -> None:
        if not (self.margin >= 0 and math.isfinite(self.margin)):
            raise ConfigError(f"margin={self.margin} must be >= 0 (0: perceptron criterion, 1: hinge)")
        if not (0 < self.lr < 1e3):
            raise ConfigError(f"lr={self.lr} must be positive (SGD step per sample)")
        if self.init not in ("zero", "random"):
            raise ConfigError(f"init={self.init!r} must be 'zero' or 'random'")
        for key in ("max_epochs", "repetitions", "n_train", "n_test"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}={getattr(self, key)} must be a positive integer")


def label(x: np.ndarray) -> np.ndarray:
    """+1 where x1 > x2, else -1; x [..., 2]."""
    return np.where(x[..., 0] > x[..., 1], 1.0, -1.0)


def make_data(cfg: PerceptronHingeConfig) -> dict[str, np.ndarray]:
    """Training sets x_train [R, n, 2], y_train [R, n]; the shared test set x_test [m, 2], y_test [m]."""
    x_train = np.random.default_rng([cfg.seed, 0]).uniform(0, 1, size=(cfg.repetitions, cfg.n_train, 2))
    x_test = np.random.default_rng([cfg.seed, 1]).uniform(0, 1, size=(cfg.n_test, 2))
    return {"x_train": x_train, "y_train": label(x_train), "x_test": x_test, "y_test": label(x_test)}


def no_shared_data(cfg: PerceptronHingeConfig) -> None:
    """The study's make_data: each trial draws its (identical, seeded) data itself."""
    return None


def needs_update(m: np.ndarray, a: float) -> np.ndarray:
    """The subgradient convention: update where y w.x < a, or y w.x <= 0 (so a = 0 updates on y w.x = 0)."""
    return (m < a) | (m <= 0)


def train_sgd(x: np.ndarray, y: np.ndarray, a: float, lr: float, max_epochs: int, rng: np.random.Generator,
              w0: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """SGD on max(0, a - y w.x) for a batch of training sets x [R, n, 2], y [R, n] (see the module docstring).
    Returns w [R, 2], converged [R] bool, epochs [R] (the epoch after which it converged; max_epochs if not)."""
    R, n, _ = x.shape
    w = np.zeros((R, 2)) if w0 is None else np.array(w0, dtype=float)
    yx = y[..., None] * x  # [R, n, 2]: an update adds lr * yx
    converged = np.zeros(R, dtype=bool)
    epochs = np.full(R, max_epochs)
    active = np.arange(R)  # the repetitions still training (a converged one never updates again)
    for epoch in range(1, max_epochs + 1):
        order = rng.permuted(np.tile(np.arange(n), (len(active), 1)), axis=1)  # each repetition its own order
        w_a, yx_a = w[active], yx[active]
        rows = np.arange(len(active))
        for j in range(n):
            step = yx_a[rows, order[:, j]]  # [A, 2]
            update = needs_update(np.einsum("rd,rd->r", w_a, step), a)
            w_a += (lr * update)[:, None] * step
        w[active] = w_a
        done = ~needs_update(np.einsum("rnd,rd->rn", yx_a, w_a), a).any(axis=1)
        epochs[active[done]] = epoch
        converged[active[done]] = True
        active = active[~done]
        if not len(active):
            break
    return {"w": w, "converged": converged, "epochs": epochs}


def max_margin_angles(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The direction (angle in degrees of the unit normal) of the max-margin line through the origin of each
    training set [R, n, 2]: a grid search over (-90, 0) degrees (every separating normal of data labelled by
    x1 > x2 in the unit square lies there), 0.1 degree apart, then 0.001 degree apart around the best."""
    def best_on(theta: np.ndarray) -> np.ndarray:  # theta [B, S] (radians) -> the best per set, [B]
        normals = np.stack([np.cos(theta), np.sin(theta)], axis=1)  # [B, 2, S]
        margins = (y[..., None] * (x @ normals)).min(axis=1)  # [B, S]
        return theta[np.arange(len(theta)), margins.argmax(axis=1)]

    coarse = np.deg2rad(np.linspace(-90, 0, 901)[1:-1])  # 0.1 degree apart
    theta = best_on(np.tile(coarse, (len(x), 1)))
    # the margin is a minimum of sinusoids in theta, maximal within 0.1 degree of the coarse best: refine
    theta = best_on(theta[:, None] + np.deg2rad(np.linspace(-0.1, 0.1, 201))[None, :])  # 0.001 degree apart
    return np.rad2deg(theta)


def angle_deg(w: np.ndarray) -> np.ndarray:
    """The angle of w [R, 2] in degrees (the true normal (1, -1) is at -45)."""
    return np.rad2deg(np.arctan2(w[:, 1], w[:, 0]))


def disagreement(pred: np.ndarray) -> np.ndarray:
    """Per test point, the fraction of repetitions whose prediction differs from the majority: min(p, 1 - p)
    with p the fraction predicting +1; pred [R, m] bool -> [m]."""
    p = pred.mean(axis=0)
    return np.minimum(p, 1 - p)


def train_perceptron_hinge(cfg: PerceptronHingeConfig, data: Any, session, device: Any = None) -> None:
    """One-shot trial: train every repetition for this loss, evaluate on the shared test set, report once."""
    d = make_data(cfg)
    t0 = time.perf_counter()
    rng = np.random.default_rng([cfg.seed, 2])  # sample orders (and init): the same stream for both losses
    w0 = rng.normal(0, 0.01, size=(cfg.repetitions, 2)) if cfg.init == "random" else None
    fit = train_sgd(d["x_train"], d["y_train"], cfg.margin, cfg.lr, cfg.max_epochs, rng, w0)
    train_s = time.perf_counter() - t0
    w, converged, epochs = fit["w"], fit["converged"], fit["epochs"]

    pred = d["x_test"] @ w.T > 0  # [m, R]: predicted +1 (a score of exactly 0 predicts -1)
    pred = pred.T  # [R, m]
    acc = (pred == (d["y_test"] > 0)).mean(axis=1)
    dis = disagreement(pred)
    scores = np.einsum("rnd,rd->rn", d["y_train"][..., None] * d["x_train"], w)  # y w.x, [R, n]
    norm = np.linalg.norm(w, axis=1)
    geometric = scores.min(axis=1) / np.where(norm > 0, norm, np.nan)
    angle = angle_deg(w)
    mm_angle = max_margin_angles(d["x_train"], d["y_train"])
    metrics = {
        "test/acc_mean": float(acc.mean()), "test/acc_std": float(acc.std()),
        "test/disagreement": float(dis.mean()), "test/unstable_points": float((dis > UNSTABLE).mean()),
        "train/converged_fraction": float(converged.mean()),
        "train/epochs_mean": float(epochs[converged].mean()) if converged.any() else math.nan,
        "train/epochs_max": int(epochs[converged].max()) if converged.any() else cfg.max_epochs,
        "angle/true_deg_mean": float(np.abs(angle + 45).mean()), "angle/true_deg_std": float(angle.std()),
        "angle/maxmargin_deg_mean": float(np.abs(angle - mm_angle).mean()),
        "margin/geometric_mean": float(np.nanmean(geometric)),
        "margin/functional_min": float(scores[converged].min()) if converged.any() else math.nan,
        "time/train_s": train_s,
    }
    table = pd.DataFrame({"repetition": np.arange(cfg.repetitions), "test_acc": acc, "converged": converged,
                          "epochs": epochs, "w1": w[:, 0], "w2": w[:, 1], "angle_deg": angle,
                          "maxmargin_angle_deg": mm_angle, "geometric_margin": geometric,
                          "functional_margin": scores.min(axis=1)})
    artifacts = {PREDICTIONS: pred, REPETITIONS_TABLE: table,
                 TEST_TABLE: pd.DataFrame({"x1": d["x_test"][:, 0], "x2": d["x_test"][:, 1], "y": d["y_test"]}),
                 EXAMPLE_TABLE: pd.DataFrame({"x1": d["x_train"][0, :, 0], "x2": d["x_train"][0, :, 1],
                                              "y": d["y_train"][0]})}
    session.report(metrics, 1, artifacts=artifacts)
