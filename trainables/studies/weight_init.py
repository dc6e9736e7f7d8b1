"""The weight-initialization study's part of its trial: per-layer statistics of the activations and gradients at
initialization and after training, recorded by a probe of the shared image trial (trainables/image/probes.py).

    >>> trial = ImageTrial(loop=cfg, probes=(LayerStatistics(samples=1000, bins=50),))   # sweeps/weight_init.py

An MLP of 5 hidden layers of 100 units (A. Perunicic, "Understand neural network weight initialization")
on standardized MNIST, with one of four initializations of every Linear layer (sweeps/weight_init.py; biases 0):

- `normal_small`: N(0, 0.01^2): activations shrink layer by layer (tanh, ReLU) toward 0, gradients vanish;
- `normal_large`: N(0, 1): tanh and sigmoid saturate (|a| near 1, a near 0 or 1), ReLU's activations explode;
- `glorot`: N(0, 2 / (n_in + n_out)) (Glorot & Bengio 2010): keeps tanh's variance about constant;
- `he`: N(0, 2 / n_in) (He et al. 2015): the factor 2 makes up for ReLU zeroing half of its inputs.

The study's key `init` sets `weight_init` and `init_sigma` (sweeps/weight_init.py). Recipe, the
same for every configuration: plain SGD with momentum 0.9 at lr 0.01, batch 64, constant LR, no weight
decay: an optimizer that does not rescale each weight's step, so an initialization that kills the signal or
the gradient shows in the test accuracy (Adam's per-weight normalization rescues much of it).

`layer_statistics` runs one forward/backward pass on a fixed batch (the first `stats_samples` test images)
and records, per replica and hidden layer, the activation mean, std, fraction of exact zeros and (tanh,
sigmoid) fraction of saturated units, and the
gradient norm of the weight of the Linear layer feeding it, plus histograms of the activations summed
over the replicas. The trial records them at initialization (on the model built exactly as the training
loop builds it: same seeds, same draws) and after its last epoch, as the artifacts `LAYER_STATS`
(phase init|trained, replica, seed, layer, act_mean, act_std, zero_frac, sat_frac, grad_norm) and `HISTOGRAMS`
(phase, layer, bin, lo, hi, count). Histogram ranges (shared by the layers of one phase, so they overlay):
tanh [-1, 1], sigmoid [0, 1], any other activation [min, max] of the batch over all layers and replicas;
exact zeros (ReLU's inactive units) are left out of the histogram and counted in `zero_frac` instead.

A trial whose first epochs blow up (N(0, 1) with tanh or ReLU under SGD) is stopped as diverged by the shared
loop; an epoch whose loss was NaN in every replica is not evaluated (its report carries test/accuracy = NaN).
Its statistics at init, and those of the weights it diverged with, are still recorded.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from trainables.image.config import ClassifyConfig
from trainables.image.trial import build_classifier
from trainables.training.augment import eval_transform
from trainables.training.population import FusedLinear, Population, build_population, per_replica_cross_entropy

LAYER_STATS = "layer_stats.csv"
HISTOGRAMS = "histograms.csv"
BOUNDED = {nn.Tanh: (-1.0, 1.0), nn.Sigmoid: (0.0, 1.0)}  # histogram ranges of the bounded activations
ACTIVATION_TYPES = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.GELU)


# ---------------------------------------------------------------- statistics

def _hidden_layers(model: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """(Linear or FusedLinear, the activation after it) of every hidden layer, in forward order."""
    leaves = [m for m in model.modules() if not list(m.children())]
    linears = [m for m in leaves if isinstance(m, (nn.Linear, FusedLinear))]
    acts = [m for m in leaves if isinstance(m, ACTIVATION_TYPES)]
    if len(acts) != len(linears) - 1:
        raise ValueError(f"expected one activation after each hidden Linear layer: {len(linears)} Linear, "
                         f"{len(acts)} activations")
    return list(zip(linears[:-1], acts))


def layer_statistics(model: nn.Module, x: torch.Tensor, y: torch.Tensor, bins: int = 50,
                     seeds: list[int] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One forward/backward pass of `model` (a plain MLP, or a Population, each replica seeing the same batch)
    on the standardized batch `x` with labels `y`, in eval mode; the gradients are left in the model's .grad.

    Returns (stats, histograms): stats has one row per replica and hidden layer (1..L): replica, seed, layer,
    act_mean, act_std, zero_frac (fraction of exact zeros), sat_frac (tanh, sigmoid: fraction within 1% of the range
    from a bound, i.e. saturated; 0 for unbounded activations), grad_norm (Frobenius norm of dL/dW of the Linear
    feeding the layer, L = the replica's mean cross-entropy); histograms one row per layer and bin: layer,
    bin, lo, hi, count (summed over the replicas; edges shared by all layers, see the module docstring)."""
    layers = _hidden_layers(model)
    population = isinstance(model, Population)
    size = model.size if population else 1
    seeds = list(seeds) if seeds is not None else list(range(size))
    outputs: list[torch.Tensor] = []
    hooks = [act.register_forward_hook(lambda _m, _i, out: outputs.append(out.detach()))
             for _, act in layers]
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    try:
        if population:
            logits = model(x.expand(size, *x.shape))
            loss = per_replica_cross_entropy(logits, y.expand(size, *y.shape)).sum()  # each replica its own grad
        else:
            loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    acts = [(out if population else out.unsqueeze(0)).reshape(size, len(x), -1).float().cpu() for out in outputs]
    grads = [(lin.weight.grad if population else lin.weight.grad.unsqueeze(0)).float().cpu() for lin, _ in layers]
    bounds = BOUNDED.get(type(layers[0][1]))
    rows = []
    for layer, (a, g) in enumerate(zip(acts, grads), start=1):
        flat = a.reshape(size, -1)
        means, stds = flat.mean(1), flat.std(1)
        zeros = (flat == 0).float().mean(1)
        if bounds:  # within 1% of the range from either bound: a saturated unit (its derivative near 0)
            margin = 0.01 * (bounds[1] - bounds[0])
            saturated = ((flat < bounds[0] + margin) | (flat > bounds[1] - margin)).float().mean(1)
        else:
            saturated = torch.zeros(size)
        norms = g.reshape(size, -1).norm(dim=1)
        rows += [{"replica": p, "seed": seeds[p], "layer": layer, "act_mean": float(means[p]),
                  "act_std": float(stds[p]), "zero_frac": float(zeros[p]), "sat_frac": float(saturated[p]), "grad_norm": float(norms[p])}
                 for p in range(size)]
    lo, hi = bounds or (None, None)
    values = [a.numpy().ravel() for a in acts]
    values = [v[np.isfinite(v) & (v != 0)] for v in values]
    if lo is None:
        pooled = np.concatenate(values)
        lo, hi = (float(pooled.min()), float(pooled.max())) if pooled.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    histograms = pd.DataFrame([{"layer": layer, "bin": b, "lo": edges[b], "hi": edges[b + 1], "count": int(c)}
                               for layer, v in enumerate(values, start=1)
                               for b, c in enumerate(np.histogram(v, bins=edges)[0])])
    return pd.DataFrame(rows), histograms


def statistics_batch(data: Any, samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed batch: the first `samples` test images of `data` (the trial's data, on its device), standardized
    as in training, and their labels."""
    images, labels = data.test.images[:samples], data.test.labels[:samples]
    return eval_transform(images, mean=data.mean, std=data.std), labels.long()


def build_like_trial(cfg: ClassifyConfig, device: torch.device) -> nn.Module:
    """The model train_classifier starts from: the same seeds give the same initial weights (built on the CPU, then
    moved, as the loop does). The global RNG is left as it was found."""
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    if len(seeds) > 1:
        return build_population(lambda: build_classifier(cfg), seeds, device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return build_classifier(cfg).to(device)


def _tables(model: nn.Module, phase: str, batch, seeds: list[int], bins: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    stats, hist = layer_statistics(model, *batch, bins=bins, seeds=seeds)
    return stats.assign(phase=phase), hist.assign(phase=phase)


class LayerStatistics:
    """A probe of the image trial: its first report carries the statistics at initialization, its last one (the
    final epoch, or a diverged one) those after training too, all measured on the trial's device on the first
    `samples` test images. The model is measured on a copy, so training's gradients are left alone."""

    name = "layer_statistics"

    def __init__(self, samples: int = 1000, bins: int = 50):
        self.samples, self.bins = samples, bins

    def start(self, cfg: ClassifyConfig, model: nn.Module, data: Any, state: dict | None) -> None:
        self.batch = statistics_batch(data, self.samples)
        self.seeds = [cfg.seed + i for i in range(cfg.seeds)]
        device = self.batch[0].device
        self.init = _tables(build_like_trial(cfg, device), "init", self.batch, self.seeds, self.bins)

    def observe(self, epoch: int, metrics: dict[str, float], model: nn.Module,
                last: bool) -> tuple[dict[str, float], dict[str, Any]]:
        if last:
            trained = _tables(copy.deepcopy(model), "trained", self.batch, self.seeds, self.bins)
            tables = [pd.concat([a, b], ignore_index=True) for a, b in zip(self.init, trained)]
        elif epoch == 1:
            tables = list(self.init)
        else:
            return {}, {}
        stats, hist = tables
        return {}, {LAYER_STATS: stats[["phase", "replica", "seed", "layer", "act_mean", "act_std", "zero_frac",
                                        "sat_frac", "grad_norm"]],
                    HISTOGRAMS: hist[["phase", "layer", "bin", "lo", "hi", "count"]]}

    def state(self) -> dict:
        return {}
