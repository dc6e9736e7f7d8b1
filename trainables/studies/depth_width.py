"""MLP regression trial (the depth-vs-width study), runnable with or without Ray.

    >>> from trainables.data.eggholder import make_dataset
    >>> from trainables.studies.depth_width import train_regression
    >>> from trainables.runtime.session import LocalSession
    >>> data = make_dataset(2000)
    >>> s = LocalSession(epochs=3); train_regression({"widths": "32-32", "epochs": 3}, data, s)
    >>> s.history[-1]["test/rmse"]   # in the units of the Eggholder function

The whole data set is a pair of in-memory tensors; a batch is an index slice of
a per-epoch random permutation, and the loss is summed on the device so the
host reads it once per epoch.

A trial trains `seeds` replicas of its network together, as one population
(trainables/training/population.py: fused layers, each replica with its own seed,
initialization, data order and batch-norm statistics; `--set seeds=N`). It
reports the mean over the replicas (and `*_std`, `population/diverged`) per
epoch, and each replica's final metrics as the artifact `replicas.csv`. With
one seed (the default) it is exactly the single network's run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from trainables.config import ConfigError, from_dict
from trainables.models.registry import build_model, count_parameters
from trainables.training.population import (Population, build_population, data_generators, per_replica_mse, replica_batch,
                                   replica_mean, replica_permutations, replica_report)
from trainables.runtime.session import load_training_state, training_state

HIDDEN_UNIT_BUDGET = 512


@dataclass(frozen=True)
class RegressionConfig:
    widths: tuple[int, ...] = (64,)  # hidden units per layer, e.g. 64-32-16
    epochs: int = 100
    batch_size: int = 1000
    lr: float = 0.01  # peak SGD learning rate (targets are standardized; 0.05 diverges for wide 3-layer nets)
    momentum: float = 0.9  # Nesterov momentum
    weight_decay: float = 0.0
    lr_schedule: str = "cosine"  # "cosine" (to 0 over the epochs) or "constant"
    batch_norm: str = "auto"  # "auto": BN in nets of 2+ hidden layers; "on"; "off"
    seed: int = 0
    seeds: int = 1  # replicas trained together as one population trial, seeds seed, seed+1, ... (--set seeds=N)
    # Data (built once on the driver; a trial only checks it got what it asked for)
    n_points: int = 100_000
    noise: float = 0.3
    data_seed: int = 0

    def __post_init__(self) -> None:
        if not self.widths or any(w <= 0 for w in self.widths):
            raise ConfigError(f"widths={self.widths} must be positive layer widths, e.g. widths=64-32")
        if sum(self.widths) > HIDDEN_UNIT_BUDGET:
            raise ConfigError(
                f"widths={'-'.join(map(str, self.widths))} has {sum(self.widths)} hidden units, over the budget of "
                f"{HIDDEN_UNIT_BUDGET}; choose widths summing to at most {HIDDEN_UNIT_BUDGET}"
            )
        for key in ("epochs", "batch_size", "n_points", "seeds"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}={getattr(self, key)} must be a positive integer")
        if self.lr <= 0:
            raise ConfigError(f"lr={self.lr} must be positive")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(f"lr_schedule={self.lr_schedule!r} must be 'cosine' or 'constant'")
        if self.batch_norm not in ("auto", "on", "off"):
            raise ConfigError(f"batch_norm={self.batch_norm!r} must be 'auto', 'on' or 'off'")

    @property
    def use_batch_norm(self) -> bool:
        return self.batch_norm == "on" or (self.batch_norm == "auto" and len(self.widths) >= 2)


def build_regressor(cfg: RegressionConfig) -> nn.Module:
    return build_model("mlp", num_classes=1, in_features=2, widths=cfg.widths, batch_norm=cfg.use_batch_norm)


def derived_params(config: dict[str, Any]) -> dict[str, Any]:
    """What MLflow records about a network beside its config."""
    cfg = from_dict(RegressionConfig, config)
    return {
        "n_layers": len(cfg.widths),
        "widths": "-".join(map(str, cfg.widths)),
        "total_units": sum(cfg.widths),
        "n_params": count_parameters(build_regressor(cfg)),
    }


def train_one_epoch(model: Population, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                    batch_size: int, generators: list[torch.Generator]) -> torch.Tensor:
    """One pass over (x, y) for every replica, each in its own random order (replica p's from
    `generators[p]`); returns each replica's mean training MSE in scaled units, [P], on the device."""
    model.train()
    perms = replica_permutations(len(x), generators, x.device)
    loss_sum = torch.zeros(model.size, device=x.device)
    for start in range(0, len(x), batch_size):
        losses = per_replica_mse(model(replica_batch(x, perms, start, batch_size)), replica_batch(y, perms, start, batch_size))
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # the sum: each replica gets its own run's gradient
        optimizer.step()
        loss_sum += losses.detach() * min(batch_size, len(x) - start)
    return loss_sum / len(x)


@torch.no_grad()
def evaluate_rmse(model: Population, x: torch.Tensor, y: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    """Each replica's root mean squared error in the scaled units of y, [P], on the device."""
    model.eval()
    squared = torch.zeros(model.size, device=x.device)
    for i in range(0, len(x), batch_size):
        out = model(x[i:i + batch_size].expand(model.size, -1, -1))
        squared += ((out - y[i:i + batch_size]) ** 2).sum(dim=(1, 2))
    return (squared / len(x)).sqrt()


def train_regression(config: dict[str, Any], data: dict[str, np.ndarray], session) -> None:
    cfg = from_dict(RegressionConfig, config)
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    x_train, y_train = torch.tensor(data["x_train"]), torch.tensor(data["y_train"])
    x_test, y_test = torch.tensor(data["x_test"]), torch.tensor(data["y_test"])
    y_std = float(data["y_std"])

    model = build_population(lambda: build_regressor(cfg), seeds)  # replica p: torch.manual_seed(seeds[p]); build
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                                weight_decay=cfg.weight_decay)  # element-wise: the replicas stay independent
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs) if cfg.lr_schedule == "cosine"
                 else torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0))
    generators = data_generators(seeds)
    start_epoch, train_s = load_training_state(session.restore(), model, optimizer, scheduler, generators)

    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]  # this epoch's (the schedule steps after it)
        t0 = time.perf_counter()
        train_mse = train_one_epoch(model, optimizer, x_train, y_train, cfg.batch_size, generators)
        scheduler.step()
        train_mse = train_mse.tolist()  # the one host sync of the epoch
        epoch_s = time.perf_counter() - t0  # training only; evaluation is not timed
        train_s += epoch_s
        test_rmse = [v * y_std if math.isfinite(m) else math.nan
                     for v, m in zip(evaluate_rmse(model, x_test, y_test).tolist(), train_mse)]
        train_rmse = [math.sqrt(v) * y_std if v >= 0 else math.nan for v in train_mse]  # NaN >= 0 is False
        metrics = {  # the mean over the replicas that have not diverged (a single network: its values)
            "train/loss": replica_mean(train_mse),
            "train/lr": lr,
            "train/rmse": replica_mean(train_rmse),
            "test/rmse": replica_mean(test_rmse),
            "time/epoch_s": epoch_s,
            "time/train_s": train_s,
        }
        artifacts = None
        if len(seeds) > 1:
            spread, artifacts = replica_report({"train/loss": train_mse, "train/rmse": train_rmse,
                                                "test/rmse": test_rmse}, seeds, epoch, cfg.epochs)
            metrics.update(spread)
        state_fn = lambda: training_state(model, optimizer, scheduler, generators, epoch, train_s)  # noqa: E731
        if not session.report(metrics, epoch, state_fn, artifacts=artifacts):
            return


def enumerate_networks(widths: tuple[int, ...] = (16, 32, 64, 128, 256, 512), max_depth: int = 3,
                       budget: int = HIDDEN_UNIT_BUDGET) -> list[tuple[int, ...]]:
    """Every net of 1..max_depth hidden layers with per-layer widths from `widths` and at most `budget` units."""
    nets: list[tuple[int, ...]] = []
    frontier: list[tuple[int, ...]] = [()]
    for _ in range(max_depth):
        frontier = [net + (w,) for net in frontier for w in widths if sum(net) + w <= budget]
        nets.extend(frontier)
    return nets


def representative_networks(nets: list[tuple[int, ...]] | None = None) -> list[tuple[int, ...]]:
    """The quick preset's subset: uniform-width nets (w, w, ..) and halving ones (w, w/2, w/4)."""
    nets = enumerate_networks() if nets is None else nets
    return [n for n in nets if len(set(n)) == 1 or all(b * 2 == a for a, b in zip(n, n[1:]))]
