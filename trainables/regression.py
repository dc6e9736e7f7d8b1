"""MLP regression trial (the depth-vs-width study), runnable with or without Ray.

    >>> from trainables.eggholder import make_dataset
    >>> from trainables.regression import train_regression
    >>> from trainables.session import LocalSession
    >>> data = make_dataset(2000)
    >>> s = LocalSession(epochs=3); train_regression({"widths": "32-32", "epochs": 3}, data, s)
    >>> s.history[-1]["test/rmse"]   # in the units of the Eggholder function

The whole data set is a pair of in-memory tensors; a batch is an index slice of
a per-epoch random permutation, and the loss is summed on the device so the
host reads it once per epoch.
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
from trainables.models import build_model, count_parameters
from trainables.session import load_training_state, training_state

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
        for key in ("epochs", "batch_size", "n_points"):
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


def train_one_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                    batch_size: int, generator: torch.Generator) -> float:
    """One pass over (x, y) in random order; returns the mean training MSE (scaled units)."""
    model.train()
    order = torch.randperm(len(x), generator=generator, device=x.device)
    loss_sum = torch.zeros((), device=x.device)
    for start in range(0, len(x), batch_size):
        idx = order[start:start + batch_size]
        loss = nn.functional.mse_loss(model(x[idx]), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(idx)
    return loss_sum.item() / len(x)  # the one host sync of the epoch


@torch.no_grad()
def evaluate_rmse(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 8192) -> float:
    """Root mean squared error in the scaled units of y."""
    model.eval()
    squared = sum(((model(x[i:i + batch_size]) - y[i:i + batch_size]) ** 2).sum() for i in range(0, len(x), batch_size))
    return math.sqrt(float(squared) / len(x))


def train_regression(config: dict[str, Any], data: dict[str, np.ndarray], session) -> None:
    cfg = from_dict(RegressionConfig, config)
    torch.manual_seed(cfg.seed)
    x_train, y_train = torch.tensor(data["x_train"]), torch.tensor(data["y_train"])
    x_test, y_test = torch.tensor(data["x_test"]), torch.tensor(data["y_test"])
    y_std = float(data["y_std"])

    model = build_regressor(cfg)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                                weight_decay=cfg.weight_decay)
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs) if cfg.lr_schedule == "cosine"
                 else torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0))
    generator = torch.Generator().manual_seed(cfg.seed)
    start_epoch, train_s = load_training_state(session.restore(), model, optimizer, scheduler, generator)

    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        train_mse = train_one_epoch(model, optimizer, x_train, y_train, cfg.batch_size, generator)
        scheduler.step()
        epoch_s = time.perf_counter() - t0  # training only; evaluation is not timed
        train_s += epoch_s
        test_rmse = evaluate_rmse(model, x_test, y_test) * y_std if math.isfinite(train_mse) else math.nan
        metrics = {
            "train/loss": train_mse,
            "train/rmse": math.sqrt(train_mse) * y_std if train_mse >= 0 else math.nan,
            "test/rmse": test_rmse,
            "time/epoch_s": epoch_s,
            "time/train_s": train_s,
        }
        state_fn = lambda: training_state(model, optimizer, scheduler, generator, epoch, train_s)  # noqa: E731
        if not session.report(metrics, epoch, state_fn):
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
