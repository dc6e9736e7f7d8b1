"""The depth-vs-width trial: MLP regression of the Eggholder function, runnable with or without Ray.

    >>> from trainables.studies.depth_width.config import RegressionConfig
    >>> from trainables.studies.depth_width.trial import make_data, train_regression
    >>> from trainables.runtime.session import LocalSession
    >>> cfg = RegressionConfig(widths=(32, 32), epochs=3, n_points=2000)
    >>> s = LocalSession(epochs=3); train_regression(cfg, make_data(cfg), s)   # device: the CPU
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

On a GPU (`capture=auto`, the default) every step is replayed from a CUDA graph, the whole epoch's
80 steps as one replay (trainables/training/capture.py; the cosine schedule's lr held in a device
tensor): the same batches and, to float rounding, the same losses. A per-step capture of this step ran
12-23x faster than the eager epoch on an H200 (measured 2026-12-04); bench/gpu.py times this one.
`capture=off` trains eagerly; on the CPU the loop is eager.
A GPU trial also reports `perf/tflops` (achieved, 6 x MACs per sample x samples per second) and, where
the GPU's peak is known (trainables.models.paleo.gpu_peak), `perf/ppp`.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from trainables.data.eggholder import make_dataset
from trainables.models.paleo import gpu_peak, perf_metrics
from trainables.models.registry import build_model, count_parameters
from trainables.training.capture import population_mse_epoch, population_mse_graph, set_capturable, use_capture
from trainables.training.population import (FusedLinear, Population, build_population, data_generators, per_replica_mse,
                                            replica_batch, replica_mean, replica_permutations, replica_report)
from trainables.runtime.devices import CPU, describe
from trainables.runtime.session import load_training_state, training_state
from trainables.studies.depth_width.config import RegressionConfig

def build_regressor(cfg: RegressionConfig) -> nn.Module:
    return build_model("mlp", num_classes=1, in_features=2, widths=cfg.widths, batch_norm=cfg.use_batch_norm)


def make_data(cfg: RegressionConfig) -> dict[str, np.ndarray]:
    """The Eggholder data set of the config (built once on the driver, shared through the object store)."""
    return make_dataset(cfg.n_points, cfg.noise, seed=cfg.data_seed)


def network_params(cfg: RegressionConfig) -> dict[str, Any]:
    """What MLflow records about a network beside its config."""
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


def train_regression(cfg: RegressionConfig, data: dict[str, np.ndarray], session, device: torch.device = CPU) -> None:
    """Train the config's network (`seeds` replicas of it, fused) on `device`, reporting once per epoch."""
    captured = use_capture(cfg.capture, device)  # capture=on without a GPU: a ConfigError, before any work
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    x_train, y_train = torch.tensor(data["x_train"], device=device), torch.tensor(data["y_train"], device=device)
    x_test, y_test = torch.tensor(data["x_test"], device=device), torch.tensor(data["y_test"], device=device)
    y_std = float(data["y_std"])

    # replica p: torch.manual_seed(seeds[p]); build (on the CPU, so a GPU trial starts from the same weights)
    model = build_population(lambda: build_regressor(cfg), seeds, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=True,
                                weight_decay=cfg.weight_decay)  # element-wise: the replicas stay independent
    scheduler = (torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs) if cfg.lr_schedule == "cosine"
                 else torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0))
    generators = data_generators(seeds)
    start_epoch, train_s = load_training_state(session.restore(), model, optimizer, scheduler, generators)
    set_capturable(optimizer, False)  # eager SGD; the captured step sets what it needs
    graph = None
    # GPU trials: achieved FLOP/s of training (forward + backward = 3 x the forward's 2 x MACs per sample)
    peak = gpu_peak(describe(device), "fp32") if device.type == "cuda" else None
    flops_per_epoch = 6 * len(x_train) * sum(layer.weight[0].numel() for layer in model.layers
                                             if isinstance(layer, FusedLinear)) * model.size

    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        lr = optimizer.param_groups[0]["lr"]  # this epoch's (the schedule steps after it)
        t0 = time.perf_counter()
        if captured:  # the first epoch also captures the step (warm-up included in its time)
            graph = graph or population_mse_graph(model, optimizer, x_train, y_train, cfg.batch_size, device,
                                                  constant_lr=cfg.lr_schedule == "constant")
            train_mse = population_mse_epoch(graph, len(x_train), generators)
        else:
            train_mse = train_one_epoch(model, optimizer, x_train, y_train, cfg.batch_size, generators)
        scheduler.step()
        train_mse = train_mse.tolist()  # training's one host sync (evaluation reads once more)
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
        if device.type == "cuda":
            metrics.update(perf_metrics(flops_per_epoch / epoch_s, peak))
        artifacts = None
        if len(seeds) > 1:
            spread, artifacts = replica_report({"train/loss": train_mse, "train/rmse": train_rmse,
                                                "test/rmse": test_rmse}, seeds, epoch, cfg.epochs)
            metrics.update(spread)
        state_fn = lambda: training_state(model, optimizer, scheduler, generators, epoch, train_s)  # noqa: E731
        if not session.report(metrics, epoch, state_fn, artifacts=artifacts):
            return
