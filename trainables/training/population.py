"""Population trials: P independent replicas of one architecture trained at once, in one process.

    >>> import torch
    >>> from trainables.models.registry import build_model
    >>> from trainables.training.population import (PopulationOptimizer, build_population, data_generators,
    ...                                    per_replica_cross_entropy, replica_batch, replica_permutations)
    >>> build = lambda: build_model("mlp", num_classes=3, in_features=5, widths=(8, 8), batch_norm=True)
    >>> pop = build_population(build, seeds=range(4))              # replica p is the run with seed p
    >>> opt = PopulationOptimizer(pop.parameters(), torch.optim.SGD, lr=[0.1, 0.1, 0.01, 0.01], momentum=0.9)
    >>> x, y = torch.randn(256, 5), torch.randint(0, 3, (256,))
    >>> order = data_generators(range(4))                           # each replica its own data order
    >>> perms = replica_permutations(len(x), order)                 # [4, 256], once per epoch
    >>> losses = per_replica_cross_entropy(pop(replica_batch(x, perms, 0, 32)), replica_batch(y, perms, 0, 32))
    >>> opt.zero_grad(); losses.sum().backward(); opt.step()        # losses: [4], still on the device

Horizontally fused operators (HFTA, Wang et al., MLSys 2021), written out layer by layer rather than with
torch.func.vmap, which cannot keep per-replica BatchNorm running statistics:

| layer | fused as | activations |
| --- | --- | --- |
| Linear | one `torch.baddbmm` (weights [P, out, in]) | stacked [P, B, F] |
| Conv2d | one grouped convolution, groups = P x groups | grouped [B, P*C, H, W] |
| BatchNorm1d / 2d | one `F.batch_norm` over P*C channels, running stats [P, C] | (1d: stacked, 2d: grouped) |
| Dropout | P masks, each from its replica's own torch.Generator | either |
| element-wise activations (ELEMENTWISE), Identity | the layer itself | either |
| MaxPool2d, AvgPool2d, AdaptiveAvg/MaxPool2d | the layer itself | grouped |
| Flatten (start_dim=1) | per replica, to stacked [P, B, C*H*W] | stacked |

The input is [P, B, *sample_shape] (each replica its own batch) and the output [P, B, *out_shape].
`fuse` walks a model's tree through CHAINS (nn.Sequential and this project's MLP and LeNet5, whose
forward applies their children in registration order) and refuses anything else by its type.

Exactness (tested in tests/test_population.py, CPU): a replica built by `build_population` under seed s
and trained with `replica_permutations(n, data_generators(seeds))`, `per_replica_loss(...).sum()` and a
`PopulationOptimizer` follows, step for step, the separate run that did `torch.manual_seed(s); model =
build()`, drew its data order from `torch.Generator().manual_seed(s)` and its dropout masks from the
global RNG: the same losses, parameters and BatchNorm statistics up to float rounding (fused kernels
add in a different order), and the same dropout masks bit for bit (on CPU; on CUDA a separate run's
dropout is a fused kernel with another draw order, so masks are independent and reproducible but not
the separate run's). Replicas never mix: a NaN in one stays in that one.

Checkpoints: `Population.state_dict()` holds the stacked parameters and buffers and, as the module's extra
state, every replica's dropout-generator state; `PopulationOptimizer.state_dict()` the inner optimizer's.
Limits: only the layers above, in chains (no residual blocks, no Conv1d/3d, no BatchNorm with
momentum=None); dropout costs P small `bernoulli_` calls per dropout layer per step (one generator per
replica, for exactness); no global gradient-norm clipping across a population (it would mix replicas).
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainables.models.registry import MLP, LeNet5

# Modules whose forward applies their children in registration order: fuse walks into them.
CHAINS: tuple[type[nn.Module], ...] = (nn.Sequential, MLP, LeNet5)
# Parameter-free element-wise layers: each acts on the fused activations as they are.
ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.ELU, nn.SELU, nn.CELU,
    nn.SiLU, nn.Mish, nn.Softplus, nn.Softsign, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Tanhshrink,
    nn.LogSigmoid, nn.Hardshrink, nn.Softshrink, nn.Threshold,
)
# Per-channel 2-d pooling: acts on the grouped layout as it is.
POOLS: tuple[type[nn.Module], ...] = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
# Optimizers whose update is not lr x (a direction independent of lr): no per-replica lr for them.
NOT_LR_LINEAR: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.Rprop, torch.optim.ASGD, torch.optim.LBFGS, torch.optim.SparseAdam)

STACKED, GROUPED = "stacked", "grouped"  # [P, B, *features] and [B, P*C, *spatial]


# --- layouts -----------------------------------------------------------------------------------

def to_grouped(x: torch.Tensor) -> torch.Tensor:
    """[P, B, C, *rest] -> [B, P*C, *rest] (a copy): replica p owns channels p*C .. p*C + C - 1."""
    return x.transpose(0, 1).flatten(1, 2)


def to_stacked(x: torch.Tensor, size: int) -> torch.Tensor:
    """[B, P*C, *rest] -> [P, B, C, *rest] (a view)."""
    return x.unflatten(1, (size, -1)).transpose(0, 1)


class ToGrouped(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return to_grouped(x)


class ToStacked(nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return to_stacked(x, self.size)


# --- fused layers --------------------------------------------------------------------------------

def _stack(tensors: Iterable[torch.Tensor | None]) -> torch.Tensor | None:
    tensors = list(tensors)
    return None if tensors[0] is None else torch.stack([t.detach() for t in tensors])


def _parameter(tensors: Iterable[torch.Tensor | None]) -> nn.Parameter | None:
    tensors = list(tensors)
    stacked = _stack(tensors)
    return None if stacked is None else nn.Parameter(stacked, requires_grad=tensors[0].requires_grad)


class FusedLinear(nn.Module):
    """P Linear layers as one batched matmul: stacked [P, B, *, in] -> [P, B, *, out]."""

    def __init__(self, linears: Sequence[nn.Linear]):
        super().__init__()
        self.weight = _parameter(m.weight for m in linears)  # [P, out, in]
        self.bias = _parameter(m.bias for m in linears)  # [P, out] or None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(x.shape[0], -1, x.shape[-1])  # [P, B*, in]
        weight_t = self.weight.transpose(1, 2)
        out = torch.bmm(flat, weight_t) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(1), flat, weight_t)
        return out.reshape(*x.shape[:-1], out.shape[-1])

    def replica_state(self, p: int) -> dict[str, torch.Tensor]:
        return {"weight": self.weight[p]} | ({} if self.bias is None else {"bias": self.bias[p]})


class FusedConv2d(nn.Module):
    """P Conv2d layers as one grouped convolution: grouped [B, P*C_in, H, W] -> [B, P*C_out, H', W']."""

    def __init__(self, convs: Sequence[nn.Conv2d]):
        super().__init__()
        first = convs[0]
        if first.padding_mode != "zeros":
            raise ValueError(f"cannot fuse Conv2d with padding_mode={first.padding_mode!r}; only 'zeros'")
        self.stride, self.padding, self.dilation = first.stride, first.padding, first.dilation
        self.groups = len(convs) * first.groups  # replica p's group j is group p * groups + j
        self.weight = _parameter(m.weight for m in convs)  # [P, out, in / groups, kh, kw]
        self.bias = _parameter(m.bias for m in convs)  # [P, out] or None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.view(-1)
        return F.conv2d(x, self.weight.flatten(0, 1), bias, self.stride, self.padding, self.dilation, self.groups)

    def replica_state(self, p: int) -> dict[str, torch.Tensor]:
        return {"weight": self.weight[p]} | ({} if self.bias is None else {"bias": self.bias[p]})


class FusedBatchNorm(nn.Module):
    """P BatchNorm1d/2d layers as one `F.batch_norm` over P*C channels, on the grouped layout [B, P*C, *].

    Per-replica running mean/var [P, C] and num_batches_tracked [P]; batch statistics in train mode
    (and without running stats), running ones in eval mode, exactly as nn.BatchNorm does per replica.
    """

    def __init__(self, norms: Sequence[nn.modules.batchnorm._BatchNorm]):
        super().__init__()
        first = norms[0]
        if first.momentum is None:
            raise ValueError("cannot fuse BatchNorm with momentum=None (a cumulative average needs the step "
                             "count on the host every step); give it a momentum")
        self.eps, self.momentum, self.track_running_stats = first.eps, first.momentum, first.track_running_stats
        self.weight = _parameter(m.weight for m in norms)  # [P, C] or None (affine=False)
        self.bias = _parameter(m.bias for m in norms)
        for name in ("running_mean", "running_var", "num_batches_tracked"):  # None without running stats
            self.register_buffer(name, _stack(getattr(m, name) for m in norms))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)

        def flat(t: torch.Tensor | None) -> torch.Tensor | None:
            # view, not reshape: F.batch_norm updates the running statistics in place through it
            return None if t is None else t.view(-1)

        use_batch_stats = self.training or not self.track_running_stats
        return F.batch_norm(x, flat(self.running_mean), flat(self.running_var), flat(self.weight), flat(self.bias),
                            use_batch_stats, self.momentum, self.eps)

    def replica_state(self, p: int) -> dict[str, torch.Tensor]:
        names = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        return {name: getattr(self, name)[p] for name in names if getattr(self, name) is not None}


class FusedBatchNorm1d(FusedBatchNorm):
    """P BatchNorm1d layers on the stacked layout [P, B, C(, L)]: regrouped to [B, P*C(, L)] and back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return to_stacked(super().forward(to_grouped(x)), x.shape[0])


def dropout_mask(shape: Sequence[int], p: float, generator: torch.Generator, dtype: torch.dtype,
                 device: torch.device) -> torch.Tensor:
    """The mask (0 or 1/(1-p)) that CPU `F.dropout` multiplies an input of `shape` by, drawn from `generator`
    in the same call and order as torch does (`empty_like(input).bernoulli_(1 - p)`, then `div_(1 - p)`)."""
    return torch.empty(shape, dtype=dtype, device=device).bernoulli_(1 - p, generator=generator).div_(1 - p)


class FusedDropout(nn.Module):
    """P Dropout layers: replica p's mask drawn from `generators[p]` in the replica's own shape.

    The generators are the population's (shared by all its dropout layers, as a separate run's
    dropout layers share the global RNG). Costs P small `bernoulli_` calls per layer per step.
    """

    def __init__(self, p: float, generators: list[torch.Generator], layout: str):
        super().__init__()
        self.p, self.generators, self.layout = p, generators, layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.numel() == 0:
            return x
        if self.p == 1:
            return x * torch.zeros((), dtype=x.dtype, device=x.device)  # torch draws no mask for p = 1
        if self.generators[0].device != x.device:
            raise ValueError(f"the population's dropout generators are on {self.generators[0].device} but its "
                             f"activations on {x.device}: build it with build_population(..., device=...)")
        size = len(self.generators)
        if self.layout == STACKED:  # x: [P, B, *f]
            return x * torch.stack([dropout_mask(x.shape[1:], self.p, g, x.dtype, x.device) for g in self.generators])
        shape = (x.shape[0], x.shape[1] // size, *x.shape[2:])  # x: [B, P*C, *spatial]
        return x * torch.cat([dropout_mask(shape, self.p, g, x.dtype, x.device) for g in self.generators], dim=1)

    def extra_repr(self) -> str:
        return f"p={self.p}, replicas={len(self.generators)}, layout={self.layout}"


class FlattenStacked(nn.Module):
    """nn.Flatten() per replica: stacked [P, B, *f] -> [P, B, prod(f)]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(2)


# --- the population ----------------------------------------------------------------------------

class Population(nn.Module):
    """P replicas of one model as fused layers: forward([P, B, *sample]) -> [P, B, *out].

    `replica(p)` gives replica p as an ordinary model. `state_dict()` holds the stacked parameters and
    buffers plus, as the module's extra state, the dropout generators' states, so `load_state_dict`
    resumes the masks where they left off.
    """

    def __init__(self, layers: list[nn.Module], sources: list[tuple[int, str]], template: nn.Module,
                 generators: list[torch.Generator]):
        super().__init__()
        self.size = len(generators)
        self.layers = nn.Sequential(*layers)
        self.generators = generators  # one per replica, shared with every FusedDropout
        self._sources = sources  # (index in self.layers, name of the layer it fuses in the template)
        self._template = (template,)  # in a tuple so that it is not registered as a submodule

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.size:
            raise ValueError(f"input of shape {tuple(x.shape)}: a population of {self.size} "
                             f"takes [{self.size}, B, ...]")
        return self.layers(x)

    @torch.no_grad()
    def replica(self, p: int) -> nn.Module:
        """A fresh ordinary model (a copy of the template) holding replica p's parameters and buffers."""
        if not 0 <= p < self.size:
            raise IndexError(f"replica {p} of a population of {self.size}")
        model = copy.deepcopy(self._template[0])
        for index, name in self._sources:
            model.get_submodule(name).load_state_dict(self.layers[index].replica_state(p))
        device = next(self.parameters(), torch.empty(0)).device
        return model.to(device).train(self.training)

    def get_extra_state(self) -> dict:
        return {"dropout_generator_states": [g.get_state() for g in self.generators]}

    def set_extra_state(self, state: dict) -> None:
        states = state["dropout_generator_states"]
        if len(states) != self.size:
            raise ValueError(f"a checkpoint of {len(states)} replicas cannot load into a population of {self.size}")
        for g, s in zip(self.generators, states):
            g.set_state(s)  # in place: the FusedDropout layers hold the same generators

    def extra_repr(self) -> str:
        return f"size={self.size}"


def _leaves(module: nn.Module, prefix: str = "") -> Iterable[tuple[str, nn.Module]]:
    """(qualified name, layer) of every layer `module` applies, in forward order, walking CHAINS."""
    if type(module) not in CHAINS:
        yield prefix, module
        return
    for name, child in module.named_children():
        yield from _leaves(child, f"{prefix}.{name}" if prefix else name)


def _convert(layout: str, wanted: str, size: int) -> list[nn.Module]:
    if layout == wanted:
        return []
    return [ToGrouped()] if wanted == GROUPED else [ToStacked(size)]


def _fuse_layer(name: str, group: list[nn.Module], layout: str,
                generators: list[torch.Generator]) -> tuple[list[nn.Module], str]:
    """The modules that apply `group` (layer `name` of every replica) to activations in `layout`,
    layout conversion first where needed, and the layout they leave."""
    first, size, kind = group[0], len(group), type(group[0])
    if kind is nn.Linear:
        return _convert(layout, STACKED, size) + [FusedLinear(group)], STACKED
    if kind is nn.Conv2d:
        return _convert(layout, GROUPED, size) + [FusedConv2d(group)], GROUPED
    if kind is nn.BatchNorm2d:
        return _convert(layout, GROUPED, size) + [FusedBatchNorm(group)], GROUPED
    if kind is nn.BatchNorm1d:
        return _convert(layout, STACKED, size) + [FusedBatchNorm1d(group)], STACKED
    if kind is nn.Dropout:
        return [FusedDropout(first.p, generators, layout)], layout
    if kind in ELEMENTWISE:
        return [copy.deepcopy(first)], layout
    if kind in POOLS:
        if getattr(first, "return_indices", False):
            raise ValueError(f"cannot fuse layer {name!r} ({kind.__name__} with return_indices=True)")
        return _convert(layout, GROUPED, size) + [copy.deepcopy(first)], GROUPED
    if kind is nn.Flatten:
        if (first.start_dim, first.end_dim) != (1, -1):
            raise ValueError(f"cannot fuse layer {name!r} (Flatten({first.start_dim}, {first.end_dim})); "
                             "only Flatten(1, -1)")
        return _convert(layout, STACKED, size) + [FlattenStacked()], STACKED
    supported = [t.__name__ for t in (nn.Linear, nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Flatten,
                                      *POOLS, *ELEMENTWISE)]
    raise ValueError(f"cannot fuse layer {name or '<model>'!r} of type {kind.__name__}: population layers are "
                     f"{', '.join(supported)}, inside {', '.join(t.__name__ for t in CHAINS)}")


def _check_same_structure(name: str, group: list[nn.Module]) -> None:
    first = group[0]
    shapes = [tuple(t.shape) for t in first.state_dict().values()]
    for p, layer in enumerate(group[1:], start=1):
        same = (type(layer) is type(first) and layer.extra_repr() == first.extra_repr()
                and [tuple(t.shape) for t in layer.state_dict().values()] == shapes)
        if not same:
            raise ValueError(f"layer {name!r} differs between replica 0 ({first!r}) and replica {p} ({layer!r})")


def fuse(models: Sequence[nn.Module], generators: Sequence[torch.Generator] | None = None) -> Population:
    """One Population of `models` (ordinary modules of identical structure), their weights copied.

    `generators[p]` is replica p's dropout generator; without them each gets a CPU generator seeded
    from the global RNG (reproducible under torch.manual_seed). Raises ValueError naming the layer type
    of a layer it cannot fuse, or a layer that differs between replicas.
    """
    models = list(models)
    if not models:
        raise ValueError("fuse needs at least one model")
    if generators is None:
        seeds = torch.randint(0, 2**62, (len(models),)).tolist()
        generators = [torch.Generator().manual_seed(s) for s in seeds]
    generators = list(generators)
    if len(generators) != len(models):
        raise ValueError(f"{len(models)} models but {len(generators)} dropout generators")
    layers: list[nn.Module] = []
    sources: list[tuple[int, str]] = []
    layout = STACKED  # the input is [P, B, *sample]
    for name, first in _leaves(models[0]):
        try:
            group = [model.get_submodule(name) for model in models]
        except AttributeError as e:
            raise ValueError(f"layer {name!r} of replica 0 is missing from another replica ({e})") from None
        _check_same_structure(name, group)
        fused, layout = _fuse_layer(name, group, layout, generators)
        layers += fused
        if hasattr(fused[-1], "replica_state"):
            sources.append((len(layers) - 1, name))
    layers += _convert(layout, STACKED, len(models))  # the output is [P, B, *out]
    population = Population(layers, sources, copy.deepcopy(models[0]), generators)
    return population.train(models[0].training)


def _default_rng_state(device: torch.device) -> torch.Tensor:
    """The state of the generator a separate run's dropout on `device` draws from."""
    if device.type == "cpu":
        return torch.get_rng_state()
    if device.type == "cuda":
        return torch.cuda.get_rng_state(device)  # initializes CUDA, applying a pending manual_seed first
    raise ValueError(f"population dropout generators on {device.type} are not supported (cpu, cuda)")


def build_population(build: Callable[[], nn.Module], seeds: Iterable[int],
                     device: torch.device | str | None = None) -> Population:
    """Replica p = `torch.manual_seed(seeds[p]); build()`, fused and moved to `device` (default CPU).

    Replica p's dropout generator starts where a separate run's dropout would: the state of `device`'s
    default generator right after that build. The global RNG is left as it was found.
    """
    device = torch.device(device or "cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    models, states = [], []
    with torch.random.fork_rng(devices=[device.index] if device.type == "cuda" else []):
        for seed in seeds:
            torch.manual_seed(seed)
            models.append(build())
            states.append(_default_rng_state(device))
    generators = [torch.Generator(device) for _ in states]
    for g, state in zip(generators, states):
        g.set_state(state)
    return fuse(models, generators).to(device)


# --- data order ---------------------------------------------------------------------------------

def data_generators(seeds: Iterable[int]) -> list[torch.Generator]:
    """One CPU generator per replica, `torch.Generator().manual_seed(seed)`: a separate run's data-order generator."""
    return [torch.Generator().manual_seed(seed) for seed in seeds]


def replica_permutations(n: int, generators: Sequence[torch.Generator],
                         device: torch.device | str | None = None) -> torch.Tensor:
    """[P, n] LongTensor: row p is `torch.randperm(n, generator=generators[p])` (an epoch's order), on `device`."""
    return torch.stack([torch.randperm(n, generator=g, device=g.device) for g in generators]).to(device)


def replica_batch(data: torch.Tensor, perms: torch.Tensor, start: int, batch_size: int) -> torch.Tensor:
    """Every replica's next minibatch of the shared `data` [n, *sample]: [P, B, *sample] (B is short at the end),
    i.e. data[perms[:, start:start + batch_size]], as one index_select (faster than advanced indexing)."""
    idx = perms[:, start:start + batch_size]
    return data.index_select(0, idx.reshape(-1)).view(*idx.shape, *data.shape[1:])


# --- losses -------------------------------------------------------------------------------------

def per_replica_loss(loss_fn: Callable[..., torch.Tensor], output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[P]: each replica's mean loss over its batch, with `loss_fn` a torch.nn.functional loss taking
    `reduction="none"` (F.cross_entropy, F.mse_loss, F.l1_loss, ...; unweighted, so the mean is over
    elements as torch's is). Train on the SUM over replicas: each replica then gets its separate run's
    gradient (a mean over replicas would divide them all by P)."""
    losses = loss_fn(output.flatten(0, 1), target.flatten(0, 1), reduction="none")
    return losses.reshape(output.shape[0], -1).mean(1)


def per_replica_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[P] mean cross-entropy of logits [P, B, classes] against labels [P, B]."""
    return per_replica_loss(F.cross_entropy, logits, labels)


def per_replica_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[P] mean squared error of output [P, B, *] against target [P, B, *]."""
    return per_replica_loss(F.mse_loss, output, target)


# --- optimizer ----------------------------------------------------------------------------------

class PopulationOptimizer:
    """A torch optimizer over stacked parameters (leading dimension P), with a per-replica lr and weight decay.

    An element-wise optimizer (SGD with momentum or Nesterov, Adam, AdamW, Adagrad, RMSprop, Adadelta,
    Adamax, NAdam, RAdam) never mixes replicas. With one shared lr and weight decay the inner optimizer
    gets them directly. Otherwise it runs with lr = 1 (the factor a torch LR scheduler on `.inner`
    scales) and no weight decay, and each step
      1. adds the L2 term wd[p] * w to replica p's gradient (what torch's `weight_decay` does),
      2. takes the inner step w -> w',
      3. sets w = w + lr[p] * (w' - w)  (AdamW, decoupled: also w -= lr[p] * wd[p] * w_old, times
         the scheduler's factor).
    This equals the separate runs whenever the update is lr times a direction that does not depend on lr,
    true of the optimizers above in PyTorch's formulation (not of Rprop, ASGD, LBFGS: refused), up to
    float rounding of order lr[p] x ulp(w). Schedulers on `.inner` must scale the lr (LambdaLR,
    StepLR, cosine to 0, ...), not set absolute values. Costs one copy of the parameters per step.
    Global gradient-norm clipping across the population would mix replicas: clip per replica if at all.
    """

    def __init__(self, params: Iterable[torch.Tensor], optimizer: type[torch.optim.Optimizer],
                 lr: float | Sequence[float], weight_decay: float | Sequence[float] = 0.0, **kwargs):
        self.params = list(params)
        lrs = [float(lr)] if isinstance(lr, (int, float)) else [float(v) for v in lr]
        wds = [float(weight_decay)] if isinstance(weight_decay, (int, float)) else [float(v) for v in weight_decay]
        self.lrs, self.weight_decays = lrs, wds
        self.shared = len(set(lrs)) == 1 and len(set(wds)) == 1
        if self.shared:
            self.inner = optimizer(self.params, lr=lrs[0], weight_decay=wds[0], **kwargs)
            return
        size = max(len(lrs), len(wds))
        if {len(lrs), len(wds)} - {1, size}:
            raise ValueError(f"{len(lrs)} learning rates and {len(wds)} weight decays: give one or P of each")
        bad = [tuple(p.shape) for p in self.params if p.dim() == 0 or p.shape[0] != size]
        if bad:
            raise ValueError(f"per-replica lr/weight decay for {size} replicas, but parameters of shapes {bad[:3]}")
        if issubclass(optimizer, NOT_LR_LINEAR):
            raise ValueError(f"{optimizer.__name__}'s update is not lr x (a direction independent of lr): "
                             "per-replica learning rates would not equal separate runs; give one lr")
        self.decoupled = issubclass(optimizer, torch.optim.AdamW) or bool(kwargs.get("decoupled_weight_decay"))
        self.inner = optimizer(self.params, lr=1.0, weight_decay=0.0, **kwargs)
        like = self.params[0]
        self.lr = torch.tensor(lrs * (size // len(lrs)), dtype=like.dtype, device=like.device)  # [P]
        self.weight_decay = torch.tensor(wds * (size // len(wds)), dtype=like.dtype, device=like.device)  # [P]
        self.has_weight_decay = any(wds)

    @property
    def param_groups(self) -> list[dict]:
        return self.inner.param_groups

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    @staticmethod
    def _per_replica(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return values.view(-1, *[1] * (like.dim() - 1))  # [P] -> [P, 1, ...] to broadcast over a parameter

    @torch.no_grad()
    def step(self) -> None:
        if self.shared:
            self.inner.step()
            return
        params = [p for p in self.params if p.grad is not None]
        if self.has_weight_decay and not self.decoupled:
            for p in params:
                p.grad.add_(p * self._per_replica(self.weight_decay, p))
        before = [p.clone() for p in params]
        self.inner.step()
        factor = self.inner.param_groups[0]["lr"]  # 1, or what a scheduler made of it
        for p, old in zip(params, before):
            lr = self._per_replica(self.lr, p)
            p.sub_(old).mul_(lr).add_(old)  # old + lr[p] * (new - old)
            if self.has_weight_decay and self.decoupled:  # AdamW: w * (1 - lr * wd) before the step
                p.sub_(old * (lr * self._per_replica(self.weight_decay, p) * factor))

    def state_dict(self) -> dict:
        return {"inner": self.inner.state_dict(), "lr": self.lrs, "weight_decay": self.weight_decays}

    def load_state_dict(self, state: dict) -> None:
        if (state["lr"], state["weight_decay"]) != (self.lrs, self.weight_decays):
            raise ValueError(f"checkpoint of lr={state['lr']}, weight_decay={state['weight_decay']} loaded into an "
                             f"optimizer of lr={self.lrs}, weight_decay={self.weight_decays}")
        self.inner.load_state_dict(state["inner"])


class ReplicaGroupOptimizer(torch.optim.Optimizer):
    """Replicas in consecutive groups, each group trained by its own torch optimizer (its own method, learning
    rate and hyperparameters) over its slice of the stacked parameters: a population of different optimizers.

        opt = ReplicaGroupOptimizer(pop.parameters(), [(0, 3, lambda ps: torch.optim.Adam(ps, lr=1e-3)),
                                                       (3, 6, lambda ps: torch.optim.Adagrad(ps, lr=1e-2))])

    Each inner optimizer holds views `p.detach()[start:stop]` of the stacked parameters; before its step it gets
    the matching slice of each gradient. Its state and update are then exactly those of separate runs of its
    replicas when the optimizer treats elements independently (SGD, Adam(W), Adagrad, RMSprop, Adadelta,
    RMSPropNesterov, ...); one that reduces over a whole tensor (LBFGS, a norm-based LARS/LAMB) would mix the
    replicas of its group: give each such replica a group of its own.
    `param_groups` is every inner optimizer's groups in order, so a torch LR scheduler on this optimizer scales
    each group's own learning rate (multi-step, cosine, warm-up); absolute schedules (cyclical) do not fit.
    """

    def __init__(self, params: Iterable[torch.Tensor],
                 groups: Sequence[tuple[int, int, Callable[[list[torch.Tensor]], torch.optim.Optimizer]]]):
        self.stacked = list(params)
        self.slices = [(start, stop) for start, stop, _ in groups]
        covered = [i for start, stop in self.slices for i in range(start, stop)]
        size = self.stacked[0].shape[0]
        if covered != list(range(size)) or any(p.shape[0] != size for p in self.stacked):
            raise ValueError(f"replica groups {self.slices} must cover replicas 0..{size - 1} in order, once each")
        self.views = [[p.detach()[start:stop] for p in self.stacked] for start, stop in self.slices]
        self.inner = [make(views) for views, (_, _, make) in zip(self.views, groups)]
        super().__init__([{"params": []}], {})  # torch's bookkeeping (hooks); the real groups are the inner ones
        self.param_groups = [group for optimizer in self.inner for group in optimizer.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.stacked:
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self, closure=None):
        for (start, stop), views, optimizer in zip(self.slices, self.views, self.inner):
            for p, view in zip(self.stacked, views):
                view.grad = None if p.grad is None else p.grad[start:stop]
            optimizer.step()
        return None

    def state_dict(self) -> dict:
        return {"inner": [optimizer.state_dict() for optimizer in self.inner], "slices": self.slices}

    def load_state_dict(self, state: dict) -> None:
        if [tuple(s) for s in state["slices"]] != self.slices:
            raise ValueError(f"checkpoint of replica groups {state['slices']} loaded into groups {self.slices}")
        for optimizer, inner in zip(self.inner, state["inner"]):
            optimizer.load_state_dict(inner)
        self.param_groups = [group for optimizer in self.inner for group in optimizer.param_groups]


# --- reporting ----------------------------------------------------------------------------------

REPLICAS_TABLE = "replicas.csv"  # a population trial's per-replica values: an artifact of its MLflow run
REPLICA_HISTORY = "replica_history.csv"  # ... and, where kept, every replica's values at every step so far


def replica_mean(values: Sequence[float]) -> float:
    """The mean over the replicas that have not diverged (nan when all have): a population's metric."""
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def replica_report(replicas: dict[str, list[float]], columns: Sequence[int] | dict[str, Sequence], step: int,
                   steps: int, history: list[dict] | None = None) -> tuple[dict[str, float], dict | None]:
    """What a population trial reports beside the means of `replicas` (metric -> each replica's value, with
    "train/loss"): the std of each over the replicas, how many diverged, and, about 20 times per trial and at
    its last step, every replica's values as the artifact REPLICAS_TABLE (None at the other steps).
    `columns` says who each replica is: its seeds, or columns such as {"seed": [...], "optimizer": [...]}.
    With a `history` list (kept by the trial, checkpointed with it), this step's rows are appended to it and
    the table of all steps so far is attached as REPLICA_HISTORY too (for per-replica curves)."""
    import pandas as pd

    columns = {k: list(v) for k, v in columns.items()} if isinstance(columns, dict) else {"seed": list(columns)}
    metrics = {f"{key}_std": replica_std(values) for key, values in replicas.items()}
    metrics["population/diverged"] = sum(not math.isfinite(v) for v in replicas["train/loss"])
    table = pd.DataFrame({**columns, **replicas})
    if history is not None:
        history.extend({"step": step, **row} for row in table.to_dict("records"))
    due = step % max(1, steps // 20) == 0 or step == steps
    if not due:
        return metrics, None
    return metrics, {REPLICAS_TABLE: table, **({REPLICA_HISTORY: pd.DataFrame(history)} if history is not None else {})}


def replica_std(values: Sequence[float]) -> float:
    """The sample standard deviation over the replicas that have not diverged (0 for fewer than two)."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < 2:
        return 0.0
    mean = sum(finite) / len(finite)
    return math.sqrt(sum((v - mean) ** 2 for v in finite) / (len(finite) - 1))
