"""The dying-ReLU study's config (Lu et al. 2019): deep, narrow nets fitted to a 1-D function, and the data's range.

This module imports no torch (a study's `--help` reads it in milliseconds); the trial, which trains a population of
`simulations` networks on the trial's device, is trainables/studies/dying_relu/trial.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trainables.config import ConfigError

HALF_WIDTH = math.sqrt(7.0)  # the inputs lie in [-sqrt(7), sqrt(7)] (Lu et al.)
GRID_POINTS = 1001  # dense evaluation grid over the same interval
TARGETS = {"abs": np.abs, "xsin5x": lambda x: x * np.sin(5 * x)}


@dataclass(frozen=True)
class DyingReluConfig:
    target: str = "abs"  # the 1-D function: "abs" (|x|) or "xsin5x" (x sin(5x))
    depth: int = 10  # hidden layers
    width: int = 2  # units per hidden layer
    activation: str = "relu"  # "relu" or "leaky_relu"
    leaky_slope: float = 0.01  # Leaky ReLU's slope for negative inputs
    simulations: int = 1000  # independent trainings = the population size; seeds seed .. seed+simulations-1
    optimizer: str = "adam"  # "adam" or "sgd" (plain, no momentum)
    lr: float = 1e-2  # learning rate per step (per minibatch); 1e-3 leaves the live nets far from |x| after 30
    # epochs (median MSE 0.1); 1e-2 fits them (median MSE 3e-4 after 20) and the collapsed ones reach the variance
    epochs: int = 30  # passes over the n_points training points (47 steps each at batch 64)
    batch_size: int = 64
    collapse_tol: float = 1e-3  # collapsed: std of the output on the grid < collapse_tol x the target's std
    seed: int = 0
    capture: str = "auto"  # CUDA graphs: auto (on a GPU) | on | off: replay each captured training step
    # Data (built once on the driver, for every target; a trial checks it got what it asked for)
    n_points: int = 3000  # training points, uniform on [-sqrt(7), sqrt(7)]
    data_seed: int = 0

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ConfigError(f"target={self.target!r} must be one of {', '.join(map(repr, TARGETS))}")
        if self.activation not in ("relu", "leaky_relu"):
            raise ConfigError(f"activation={self.activation!r} must be 'relu' or 'leaky_relu'")
        if self.optimizer not in ("adam", "sgd"):
            raise ConfigError(f"optimizer={self.optimizer!r} must be 'adam' or 'sgd'")
        for key in ("depth", "width", "simulations", "epochs", "batch_size", "n_points"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}={getattr(self, key)} must be a positive integer")
        if not 0 < self.lr < 10:
            raise ConfigError(f"lr={self.lr} must be positive (and below 10)")
        if not 0 <= self.leaky_slope < 1:
            raise ConfigError(f"leaky_slope={self.leaky_slope} must be in [0, 1)")
        if not 0 < self.collapse_tol < 1:
            raise ConfigError(f"collapse_tol={self.collapse_tol} must be in (0, 1), e.g. 1e-3")
        if self.capture not in ("auto", "on", "off"):
            raise ConfigError(f"capture={self.capture!r} must be 'auto', 'on' or 'off'")
