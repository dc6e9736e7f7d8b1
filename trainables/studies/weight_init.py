"""The weight-initialization trial: the shared image-classification trial, plus per-layer statistics of the
activations and gradients at initialization and after training.

    >>> from trainables.studies.weight_init import INITS, classify_config
    >>> {k: classify_config({"init": "normal_large"})[k] for k in ("weight_init", "init_sigma")}
    {'weight_init': 'normal', 'init_sigma': 1.0}

An MLP of 5 hidden layers of 100 units (A. Perunicic, "Understand neural network weight initialization")
on standardized MNIST, with one of four initializations of every Linear layer (`INITS`; biases 0):

- `normal_small`: N(0, 0.01^2): activations shrink layer by layer (tanh, ReLU) toward 0, gradients vanish;
- `normal_large`: N(0, 1): tanh and sigmoid saturate (|a| near 1, a near 0 or 1), ReLU's activations explode;
- `glorot`: N(0, 2 / (n_in + n_out)) (Glorot & Bengio 2010): keeps tanh's variance about constant;
- `he`: N(0, 2 / n_in) (He et al. 2015): the factor 2 makes up for ReLU zeroing half of its inputs.

The field `init` owns `weight_init` and `init_sigma` (giving either directly is a ConfigError). Recipe, the
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

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from trainables.image import trial as ic
from trainables.training.augment import eval_transform
from trainables.config import ConfigError, from_dict
from trainables.training.population import FusedLinear, Population, build_population, per_replica_cross_entropy
from trainables.runtime.session import is_diverged

# init -> the model options it sets; dict order is the order figures use.
INITS: dict[str, dict[str, Any]] = {
    "normal_small": {"weight_init": "normal", "init_sigma": 0.01},
    "normal_large": {"weight_init": "normal", "init_sigma": 1.0},
    "glorot": {"weight_init": "glorot"},
    "he": {"weight_init": "he"},
}
LABELS = {"normal_small": "N(0, 0.01²)", "normal_large": "N(0, 1)", "glorot": "Glorot normal", "he": "He normal"}
STUDY_ACTIVATIONS = ("tanh", "sigmoid", "relu")  # the study's axis (any activation of ClassifyConfig runs)
OWNED = ("weight_init", "init_sigma")  # what `init` sets
LAYER_STATS = "layer_stats.csv"
HISTOGRAMS = "histograms.csv"
BOUNDED = {nn.Tanh: (-1.0, 1.0), nn.Sigmoid: (0.0, 1.0)}  # histogram ranges of the bounded activations
ACTIVATION_TYPES = (nn.ReLU, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.ELU, nn.GELU)
_DEFAULTS = {f.name: f.default for f in fields(ic.ClassifyConfig)}


@dataclass(frozen=True)
class WeightInitConfig(ic.ClassifyConfig):
    # Defaults: the paper-scale recipe (all of MNIST); presets shrink it.
    dataset: str = "mnist"
    model: str = "mlp"
    widths: tuple[int, ...] = (100, 100, 100, 100, 100)  # 5 hidden layers of 100 units
    activation: str = "tanh"  # the study sweeps tanh | sigmoid | relu
    optimizer: str = "sgd"
    lr: float = 0.01  # per step, constant
    momentum: float = 0.9
    batch_size: int = 64
    epochs: int = 10
    init: str = "glorot"  # normal_small | normal_large | glorot | he (INITS): sets weight_init and init_sigma
    stats_samples: int = 1000  # test images of the fixed batch the layer statistics are measured on
    bins: int = 50  # histogram bins per layer

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init not in INITS:
            raise ConfigError(f"init={self.init!r} is not one of {', '.join(INITS)}")
        given = [key for key in OWNED if getattr(self, key) != _DEFAULTS[key]]
        if given:
            raise ConfigError(f"{', '.join(given)}: set by init in this study; choose one of "
                              f"init={'|'.join(INITS)} instead")
        if self.stats_samples <= 0 or self.bins <= 0:
            raise ConfigError(f"stats_samples={self.stats_samples} and bins={self.bins} must be positive")

    def init_options(self) -> dict[str, Any]:
        return {key: INITS[self.init].get(key, _DEFAULTS[key]) for key in OWNED}


def classify_config(config: dict[str, Any]) -> dict[str, Any]:
    """The shared trial's config: the init's weight_init/init_sigma filled in, the study-only keys dropped."""
    cfg = from_dict(WeightInitConfig, config)
    values = ic.classify_values(cfg)
    values.update(cfg.init_options())
    return values


def derived_params(config: dict[str, Any]) -> dict[str, Any]:
    """n_params, flops_per_sample, and the weight_init/init_sigma the init gave."""
    values = classify_config(config)
    return {**ic.derived_params(values), **{key: values[key] for key in OWNED}}


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


def statistics_batch(cfg: WeightInitConfig, data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed batch: the first `stats_samples` test images, standardized as in training, and their labels."""
    images = torch.as_tensor(np.asarray(data.test.images[: cfg.stats_samples]))
    labels = torch.as_tensor(np.asarray(data.test.labels[: cfg.stats_samples])).long()
    return eval_transform(images, mean=data.mean, std=data.std), labels


def build_like_trial(cfg: ic.ClassifyConfig) -> nn.Module:
    """The model train_classifier starts from (on the CPU): the same seeds give the same initial weights. The
    global RNG is left as it was found."""
    seeds = [cfg.seed + i for i in range(cfg.seeds)]
    if len(seeds) > 1:
        return build_population(lambda: ic.build_classifier(cfg), seeds)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return ic.build_classifier(cfg)


def _tables(model: nn.Module, phase: str, batch, seeds: list[int], bins: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    stats, hist = layer_statistics(model, *batch, bins=bins, seeds=seeds)
    return stats.assign(phase=phase), hist.assign(phase=phase)


class LayerStatsSession:
    """Wraps a session: the first report carries the statistics at initialization, the last one (the final
    epoch, or a diverged one) those after training too, computed from the checkpoint the loop hands over."""

    def __init__(self, session, cfg: WeightInitConfig, classify: ic.ClassifyConfig, data: Any):
        self.session, self.cfg, self.classify = session, cfg, classify
        self.batch = statistics_batch(cfg, data)
        self.seeds = [classify.seed + i for i in range(classify.seeds)]
        self.init = _tables(build_like_trial(classify), "init", self.batch, self.seeds, cfg.bins)

    def __getattr__(self, name: str):  # anything else is the inner session's
        return getattr(self.session, name)

    def report(self, metrics: dict[str, float], epoch: int, state_fn=None, artifacts=None) -> bool:
        tables = None
        if epoch >= self.classify.stages or is_diverged(metrics):
            if state_fn is not None:
                model = build_like_trial(self.classify)
                model.load_state_dict(state_fn()["model"])
                trained = _tables(model, "trained", self.batch, self.seeds, self.cfg.bins)
                tables = [pd.concat([a, b], ignore_index=True) for a, b in zip(self.init, trained)]
        elif epoch == 1:
            tables = list(self.init)
        if tables is not None:
            stats, hist = tables
            artifacts = {**(artifacts or {}),
                         LAYER_STATS: stats[["phase", "replica", "seed", "layer", "act_mean", "act_std", "zero_frac",
                                             "sat_frac", "grad_norm"]],
                         HISTOGRAMS: hist[["phase", "layer", "bin", "lo", "hi", "count"]]}
        return self.session.report(metrics, epoch, state_fn, artifacts)


def train_weight_init(config: dict[str, Any], data: Any, session) -> None:
    cfg = from_dict(WeightInitConfig, config)
    classify = from_dict(ic.ClassifyConfig, classify_config(config))
    ic.train_classifier(classify_config(config), data, LayerStatsSession(session, cfg, classify, data))
