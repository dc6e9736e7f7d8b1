"""Dying ReLU (Lu et al. 2019): 1000 deep, narrow nets trained on a 1-D function; how many collapse?

    >>> from trainables.studies.dying_relu.config import DyingReluConfig
    >>> from trainables.studies.dying_relu.trial import make_data, train_dying_relu
    >>> from trainables.runtime.session import LocalSession
    >>> cfg = DyingReluConfig(simulations=50, epochs=2)
    >>> s = LocalSession(epochs=2); train_dying_relu(cfg, make_data(cfg), s)     # device: the CPU
    >>> s.history[-1]["collapse/fraction"], s.artifacts["simulations.csv"].head()

One trial is one population of `simulations` networks (seeds seed .. seed+simulations-1) trained
together (trainables/training/population.py: fused layers, each network its own He initialization under
torch.manual_seed(seed_p) and its own data order), i.e. `simulations` independent trainings in one
process and one MLflow run, not one Tune trial each.

Setup (Lu, Shin, Su, Karniadakis 2019, "Dying ReLU and Initialization", numerical examples):
x uniform on [-sqrt(7), sqrt(7)] (n_points = 3000, fixed by data_seed), y = |x| (or x sin(5x));
MLP 1 -> depth hidden layers of `width` units -> 1, He-normal weights N(0, 2/fan_in) and zero biases
(trainables.models.registry.init_weights "he"), minibatches of 64, Adam (lr 1e-2, betas 0.9/0.999; Adam's
update is element-wise, so one Adam over the stacked parameters is each network's own Adam).

Rules (measured on a dense grid of GRID_POINTS points over the same interval):
- collapsed: the trained network's output is (nearly) constant: std over the grid of its output
  < collapse_tol x std over the grid of the target (collapse_tol 1e-3). Measured (quick preset, |x|,
  1000 nets per configuration, std relative to the target's): ReLU at width 2 separates cleanly (957
  nets below 1e-9, i.e. float rounding; the other 43 above 0.49); at width 3 one net lies in 1e-9..1e-3
  and one in 1e-3..0.1. Leaky ReLU nets that lose x keep only the leak (0.01 per dead layer): 177 at
  ~0 and 118 spread over 1e-9..1e-3 at width 2, and 10 "alive" ones between 1e-3 and 0.1 (near-constant
  too): the threshold there is a choice, see analysis/studies/dying_relu.py's output_std.png.
- born dead: at initialization some hidden layer is inactive for every grid input, i.e. every unit of
  that layer has pre-activation <= 0 at every grid point (for ReLU its output is exactly 0; for Leaky
  ReLU the same condition: the layer passes only the leak, slope 0.01).

Per epoch: the mean training MSE (train/loss), that of the non-collapsed nets (train/mse_alive), the
collapse fraction so far (collapse/fraction, collapse/count), born_dead/fraction (fixed), times. At the
last epoch the artifacts SIMULATIONS_TABLE (one row per network: seed, born_dead, collapsed, final
train loss, output std on the grid) and FITS_TABLE (x, target and the grid outputs of a few collapsed
and a few non-collapsed networks, for the figure of fits).

On a GPU (`capture=auto`, the default) the population's step is replayed from a CUDA graph, an epoch's
46 full batches as one replay and the last partial batch (56 points) eagerly
(trainables/training/capture.py): the same batches and, to float rounding, the same losses as eager
training (`capture=off`); the CPU trains eagerly. A GPU trial also reports `perf/tflops` and, where the
GPU's peak is known, `perf/ppp` (training FLOPs: 6 x MACs per point x points per epoch x networks).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from trainables.config import ConfigError
from trainables.models.paleo import gpu_peak, perf_metrics
from trainables.models.registry import build_model, count_parameters
from trainables.training.capture import population_mse_epoch, population_mse_graph, set_capturable, use_capture
from trainables.training.population import (FusedLinear, Population, build_population, data_generators, per_replica_mse,
                                   replica_batch, replica_permutations)
from trainables.runtime.devices import CPU, describe
from trainables.runtime.session import load_training_state, training_state
from trainables.studies.dying_relu.config import GRID_POINTS, HALF_WIDTH, TARGETS, DyingReluConfig

SIMULATIONS_TABLE = "simulations.csv"
FITS_TABLE = "fits.csv"
FITS_PER_KIND = 3  # collapsed and non-collapsed networks drawn in fits.csv, each


def build_network(cfg: DyingReluConfig) -> nn.Module:
    return build_model("mlp", num_classes=1, in_features=1, widths=(cfg.width,) * cfg.depth,
                       activation=cfg.activation, leaky_slope=cfg.leaky_slope, weight_init="he")


def network_params(cfg: DyingReluConfig) -> dict[str, Any]:
    return {"n_params": count_parameters(build_network(cfg))}


def make_data(cfg: DyingReluConfig) -> dict[str, np.ndarray]:
    """The training points and the dense grid, [n, 1] float32, with every target's values ("y_abs", ...)."""
    rng = np.random.default_rng(cfg.data_seed)
    x = rng.uniform(-HALF_WIDTH, HALF_WIDTH, size=(cfg.n_points, 1)).astype(np.float32)
    grid = np.linspace(-HALF_WIDTH, HALF_WIDTH, GRID_POINTS, dtype=np.float32)[:, None]
    data = {"x_train": x, "x_grid": grid, "n_points": np.array(cfg.n_points), "data_seed": np.array(cfg.data_seed)}
    for name, f in TARGETS.items():
        data[f"y_train_{name}"] = f(x).astype(np.float32)
        data[f"y_grid_{name}"] = f(grid).astype(np.float32)
    return data


@torch.no_grad()
def grid_outputs(pop: Population, grid: torch.Tensor) -> torch.Tensor:
    """Every network's output on the grid, [P, G]."""
    return pop(grid.expand(pop.size, *grid.shape)).squeeze(-1)


def collapsed(outputs: torch.Tensor, target: torch.Tensor, tol: float) -> torch.Tensor:
    """The collapse rule, [P] bool: std over the grid of a network's output < tol x std of the target."""
    return outputs.std(dim=1) < tol * target.std()


@torch.no_grad()
def born_dead(pop: Population, grid: torch.Tensor) -> torch.Tensor:
    """[P] bool: some hidden layer has every unit's pre-activation <= 0 at every grid point."""
    linears = [i for i, layer in enumerate(pop.layers) if isinstance(layer, FusedLinear)]
    dead = torch.zeros(pop.size, dtype=torch.bool, device=grid.device)
    h = grid.expand(pop.size, *grid.shape)
    for i, layer in enumerate(pop.layers):
        h = layer(h)
        if isinstance(layer, FusedLinear) and i != linears[-1]:  # a hidden layer's pre-activation [P, G, width]
            dead |= (h <= 0).flatten(1).all(dim=1)
    return dead


def train_one_epoch(pop: Population, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                    batch_size: int, generators: list[torch.Generator]) -> torch.Tensor:
    """One pass over (x, y) for every network in its own order; each one's mean training MSE, [P]."""
    pop.train()
    perms = replica_permutations(len(x), generators, x.device)
    loss_sum = torch.zeros(pop.size, device=x.device)
    for start in range(0, len(x), batch_size):
        losses = per_replica_mse(pop(replica_batch(x, perms, start, batch_size)),
                                 replica_batch(y, perms, start, batch_size))
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # the sum: each network gets its own run's gradient
        optimizer.step()
        loss_sum += losses.detach() * min(batch_size, len(x) - start)
    return loss_sum / len(x)


def fits_table(grid: np.ndarray, target: np.ndarray, outputs: np.ndarray, seeds: list[int],
               dead: np.ndarray) -> pd.DataFrame:
    """x, target, and the grid outputs of the first FITS_PER_KIND collapsed and non-collapsed networks
    (columns "collapsed_seed<s>" and "alive_seed<s>")."""
    table = {"x": grid[:, 0], "target": target[:, 0]}
    for kind, mask in (("collapsed", dead), ("alive", ~dead)):
        for p in np.flatnonzero(mask)[:FITS_PER_KIND]:
            table[f"{kind}_seed{seeds[p]}"] = outputs[p]
    return pd.DataFrame(table)


def train_dying_relu(cfg: DyingReluConfig, data: dict[str, np.ndarray], session, device: torch.device = CPU) -> None:
    """Train `simulations` networks fused on `device`, reporting once per epoch."""
    captured = use_capture(cfg.capture, device)  # capture=on without a GPU: a ConfigError, before any work
    if int(data["n_points"]) != cfg.n_points or int(data["data_seed"]) != cfg.data_seed:
        raise ConfigError("n_points and data_seed cannot be swept: the data is built once, from the base config")
    seeds = [cfg.seed + i for i in range(cfg.simulations)]
    x, y = (torch.tensor(data[key], device=device) for key in ("x_train", f"y_train_{cfg.target}"))
    grid, y_grid = (torch.tensor(data[key], device=device) for key in ("x_grid", f"y_grid_{cfg.target}"))

    pop = build_population(lambda: build_network(cfg), seeds, device)  # network p: manual_seed(seeds[p]); build
    dead_at_init = born_dead(pop, grid)
    opt_cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.SGD
    optimizer = opt_cls(pop.parameters(), lr=cfg.lr)  # element-wise updates: the networks stay independent
    scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)  # no schedule (kept for checkpoints)
    generators = data_generators(seeds)
    start_epoch, train_s = load_training_state(session.restore(), pop, optimizer, scheduler, generators)
    set_capturable(optimizer, False)  # eager Adam keeps its step count on the host; the captured step moves it
    graph = None
    peak = gpu_peak(describe(device), "fp32") if device.type == "cuda" else None
    flops_per_epoch = 6 * len(x) * sum(layer.weight[0].numel() for layer in pop.layers
                                       if isinstance(layer, FusedLinear)) * pop.size

    for epoch in range(start_epoch + 1, cfg.epochs + 1):
        t0 = time.perf_counter()
        if captured:  # the first epoch also captures the step (warm-up included in its time)
            graph = graph or population_mse_graph(pop, optimizer, x, y, cfg.batch_size, device, constant_lr=True)
            train_mse = population_mse_epoch(graph, len(x), generators)
        else:
            train_mse = train_one_epoch(pop, optimizer, x, y, cfg.batch_size, generators)
        scheduler.step()
        pop.eval()
        outputs = grid_outputs(pop, grid)
        dead = collapsed(outputs, y_grid[:, 0], cfg.collapse_tol)
        epoch_s = time.perf_counter() - t0  # training and the grid evaluation (one forward pass)
        train_s += epoch_s
        n_dead = int(dead.sum())  # the host sync of the epoch
        finite = torch.isfinite(train_mse)
        alive = ~dead & finite
        metrics = {
            "train/loss": float(train_mse[finite].mean()) if finite.any() else math.nan,
            "train/mse_alive": float(train_mse[alive].mean()) if alive.any() else math.nan,
            "collapse/fraction": n_dead / cfg.simulations,
            "collapse/count": n_dead,
            "born_dead/fraction": float(dead_at_init.float().mean()),
            "born_dead/count": int(dead_at_init.sum()),
            "population/nonfinite": int((~finite).sum()),
            "time/epoch_s": epoch_s,
            "time/train_s": train_s,
        }
        if device.type == "cuda":
            metrics.update(perf_metrics(flops_per_epoch / epoch_s, peak))
        artifacts = None
        if epoch == cfg.epochs:
            out_std = outputs.std(dim=1)
            artifacts = {
                SIMULATIONS_TABLE: pd.DataFrame({
                    "seed": seeds, "born_dead": dead_at_init.tolist(), "collapsed": dead.tolist(),
                    "train_loss": train_mse.tolist(), "output_std": out_std.tolist()}),
                FITS_TABLE: fits_table(data["x_grid"], data[f"y_grid_{cfg.target}"], outputs.cpu().numpy(), seeds,
                                       dead.cpu().numpy()),
            }
        state_fn = lambda: training_state(pop, optimizer, scheduler, generators, epoch, train_s)  # noqa: E731
        if not session.report(metrics, epoch, state_fn, artifacts=artifacts):
            return
