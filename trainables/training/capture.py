"""CUDA-graph capture of training steps: one optimizer step recorded once as a CUDA graph and replayed.

    from trainables.training.capture import StepGraph, use_capture
    if use_capture(cfg.capture, device, not_static=None):            # the config switch: auto | on | off
        graph = StepGraph(forward_backward, optimizer, model, order_shape=(P, n), batch_size=B, device=device)
        sums, steps = graph.epoch(perm)   # every batch of the epoch's permutation; the step's outputs, summed

A small model's step is a few hundred tiny kernels, each launched from Python: on an H200 the GPU then
waits on the host (a depth_width step of 0.1 ms of GPU work took 1.2-2.5 ms eagerly, measured 2026-12-04).
Captured, the whole step (batch gather from a static index buffer, forward, loss, backward, optimizer
step, loss accumulation) is one `graph.replay()`; a small model's epoch is one replay.

What a captured epoch does (`StepGraph.epoch`):
- the epoch's permutation is copied into a static index buffer, once per epoch; step j of the graph
  reads batch j from it (a static slice, or an offset counter on the device when one replay covers
  fewer steps than the epoch has), so captured and eager training see the same batches in the same order;
- the graph's outputs (the step's loss sums, correct counts) accumulate into static device tensors, and
  the host reads them once per epoch;
- the last partial batch (and anything whose shape is not the graph's) runs eagerly, with the same
  model and optimizer: `forward_backward` plus the optimizer's own `step()`.

Warm-up: capture needs a few eager steps first (cuBLAS/cuDNN handles, the optimizer's lazily created state).
They run on a side stream and are then undone: parameters, buffers, optimizer state and the generators'
states are put back as they were (state the warm-up created is zeroed, which is a fresh state for every
optimizer captured here), so the captured run starts exactly where the eager one would.

Learning rate. A Python float read inside a captured step is baked into the graph. Two modes:
- "tensor": the step is captured at lr = 1 and rescaled by a factor table on the device:
  p = p_old + lr * (p_after_step_at_lr_1 - p_old), one factor per step and parameter group, filled once
  per epoch (the schedule is stepped on the host as usual). Exact for optimizers whose update is
  lr x (a direction independent of lr): SGD (momentum, Nesterov), Adam, AdamW, RMSprop, Adadelta,
  this project's RMSPropNesterov and population optimizers, up to float rounding of order lr x ulp(w).
  Costs one copy of the parameters and three multi-tensor kernels per step.
- "recapture": the lr is baked; when the schedule changes it the graph is captured again (a few ms
  each time: cheaper only when the lr rarely changes, so the trials use it for constant learning rates,
  where it never recaptures and the step is exactly the eager one).
bench/gpu.py measures both for depth_width's per-epoch cosine schedule.

Random draws inside the step (dropout masks, augmentation) come from the generators the step uses; each
CUDA generator other than the default one is registered with the graph (`register_generator_state`), so
every replay draws fresh numbers and advances the generator exactly as the eager step's calls would
(the same Philox offsets in the same order): a captured run draws the same masks as the eager run of the
same seed on the same GPU (checked in bench/gpu.py, which compares the losses of a population with dropout).

Optimizers: torch's Adam, AdamW, RMSprop and Adadelta keep their step count on the device with
`capturable=True` (set here on CUDA); SGD and RMSPropNesterov need nothing; torch's Adagrad keeps its
step count on the host and cannot be captured (`uncapturable_reason`).

On the CPU there are no graphs; `emulate_on_cpu()` (tests) replays the captured step by calling it again,
so the tests check everything here but the capture itself: the static index buffer, the warm-up that is
undone, the lr factors, the tail step, the accumulation.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Callable, Iterator, Sequence

import torch

from trainables.config import ConfigError

SWITCH = ("auto", "on", "off")
WARMUP_STEPS = 3  # eager steps (undone) before a capture
MAX_STEPS_PER_GRAPH = 128  # steps one graph may hold (a small model's epoch: one replay)
LR_MODES = ("tensor", "recapture")

_EMULATE = [False]  # set by emulate_on_cpu(): capture on the CPU by replaying the step eagerly (tests)


@contextlib.contextmanager
def emulate_on_cpu() -> Iterator[None]:
    """Inside this block a CPU trial with capture=on|auto runs the captured-step machinery, each replay calling
    the captured function again instead of a CUDA graph: a CPU test of everything but the graph itself."""
    _EMULATE[0], before = True, _EMULATE[0]
    try:
        yield
    finally:
        _EMULATE[0] = before


def use_capture(switch: str, device: torch.device, not_static: str | None = None, key: str = "capture") -> bool:
    """Whether a trial captures its training step: `switch` is the config's auto | on | off; `not_static` says why
    this config's step has no static shapes (None: it has). auto = on with CUDA where the shapes are static.
    capture=on where it cannot apply is a ConfigError naming the fix."""
    if switch not in SWITCH:
        raise ConfigError(f"{key}={switch!r} is not one of {', '.join(SWITCH)}")
    if switch == "off":
        return False
    if device.type != "cuda" and not _EMULATE[0]:
        if switch == "on":
            raise ConfigError(f"{key}=on: CUDA graphs need a GPU, and this trial trains on the {device.type} (it holds "
                              f"no GPU: give the sweep --gpus-per-trial); use {key}=auto or {key}=off")
        return False
    if not_static:
        if switch == "on":
            raise ConfigError(f"{key}=on: {not_static}, so its training step has no static shapes to capture; use "
                              f"{key}=auto (captures where the shapes are static, eager elsewhere) or {key}=off")
        return False
    return True


# --- optimizers -----------------------------------------------------------------------------------

def torch_optimizers(optimizer) -> list[torch.optim.Optimizer]:
    """The torch optimizers inside `optimizer`: itself, a PopulationOptimizer's inner one, a ReplicaGroupOptimizer's."""
    inner = getattr(optimizer, "inner", None)
    if isinstance(inner, (list, tuple)):
        return [o for opt in inner for o in torch_optimizers(opt)]
    if inner is not None:
        return torch_optimizers(inner)
    return [optimizer]


def uncapturable_reason(optimizer) -> str | None:
    """Why this optimizer's step cannot be captured (None: it can)."""
    for opt in torch_optimizers(optimizer):
        if isinstance(opt, torch.optim.Adagrad):
            return "torch's Adagrad keeps its step count on the host (optimizer=adagrad)"
    return None


def set_capturable(optimizer, capturable: bool) -> None:
    """Set `capturable` on every parameter group that has the flag (torch's Adam, AdamW, RMSprop, Adadelta, ...):
    their step counts then live on the device. A checkpoint of a captured run loads into an eager one, too."""
    for opt in torch_optimizers(optimizer):
        for group in opt.param_groups:
            if "capturable" not in group or group["capturable"] == capturable:
                continue
            group["capturable"] = capturable
            for p in group["params"]:  # a step count restored from a checkpoint of the other kind moves with the flag
                step = opt.state.get(p, {}).get("step")
                if torch.is_tensor(step):
                    opt.state[p]["step"] = (step.to(p.device, torch.float32) if capturable
                                            else step.to("cpu", torch.float32))


# --- warm-up that leaves no trace ---------------------------------------------------------------------

class _Snapshot:
    """Parameters, buffers, optimizer state and generator states, to put back after the warm-up steps."""

    def __init__(self, modules: Sequence[torch.nn.Module], optimizer, generators: Sequence[torch.Generator],
                 device: torch.device):
        self.tensors = [t for m in modules for t in itertools.chain(m.parameters(), m.buffers())]
        self.saved = [t.detach().clone() for t in self.tensors]
        self.optimizers = torch_optimizers(optimizer)
        self.states = [{p: {k: (v.clone() if torch.is_tensor(v) else v) for k, v in s.items()}
                        for p, s in opt.state.items()} for opt in self.optimizers]
        self.generators = list(generators)
        self.generator_states = [g.get_state() for g in self.generators]
        self.device = device
        self.cpu_rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    @torch.no_grad()
    def restore(self) -> None:
        for t, saved in zip(self.tensors, self.saved):
            t.copy_(saved)
        for opt, before in zip(self.optimizers, self.states):
            for p, state in opt.state.items():
                old = before.get(p, {})
                for key, value in list(state.items()):
                    if key in old:
                        if torch.is_tensor(value):
                            value.copy_(old[key])
                        else:
                            state[key] = old[key]
                    elif torch.is_tensor(value):
                        value.zero_()  # created by the warm-up: zero is every captured optimizer's fresh state
                    elif isinstance(value, (int, float)) and not isinstance(value, bool):
                        state[key] = type(value)(0)
        for g, state in zip(self.generators, self.generator_states):
            g.set_state(state)
        torch.set_rng_state(self.cpu_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state(self.cuda_rng, self.device)


class _ReplayCall:
    """A stand-in for torch.cuda.CUDAGraph on the CPU (emulate_on_cpu): replay calls the captured function."""

    def __init__(self, fn: Callable[[], None]):
        self.fn = fn

    def replay(self) -> None:
        self.fn()


# --- the captured step --------------------------------------------------------------------------------

class StepGraph:
    """Training steps of static shape captured as a CUDA graph: `forward_backward(idx)` then the optimizer's step.

    forward_backward(idx): one step's forward and backward on the batch of indices `idx` ([B], or [P, B] for a
        population: a slice of the epoch's permutation); it zeroes the gradients itself (set_to_none=True) and
        returns the tensors to sum over the epoch (e.g. the loss times the batch size, the correct count).
        It must read only tensors that stay where they are (the data on the device, the model's parameters).
    order_shape: the epoch permutation's shape, (n,) or (P, n); batch_size: B, the batch of every captured step.
    modules: what the warm-up changes and must put back (the model); generators: the CUDA generators the step
        draws from besides the default one (dropout, augmentation), registered with the graph.
    lr: "tensor" (the lr in a device tensor) or "recapture" (baked; captured again when it changes).
    steps_per_graph: steps one replay runs (default: as many of an epoch's full batches as divide them evenly,
        at most MAX_STEPS_PER_GRAPH); must be 1 when the lr changes within an epoch under lr="recapture".
    min_tail: the smallest last partial batch trained (eagerly); a smaller one is skipped (batch norm needs 2).
    """

    def __init__(self, forward_backward: Callable[[torch.Tensor], Sequence[torch.Tensor]], optimizer,
                 modules: torch.nn.Module | Sequence[torch.nn.Module], *, order_shape: tuple[int, ...], batch_size: int,
                 device: torch.device, generators: Sequence[torch.Generator] = (), lr: str = "tensor",
                 steps_per_graph: int | None = None, min_tail: int = 1, warmup: int = WARMUP_STEPS):
        if lr not in LR_MODES:
            raise ValueError(f"lr={lr!r}: one of {', '.join(LR_MODES)}")
        reason = uncapturable_reason(optimizer)
        if reason:
            raise ValueError(f"cannot capture this optimizer's step: {reason}")
        self.forward_backward, self.optimizer, self.device = forward_backward, optimizer, device
        self.modules = [modules] if isinstance(modules, torch.nn.Module) else list(modules)
        self.n, self.batch_size, self.min_tail, self.lr_mode = order_shape[-1], batch_size, min_tail, lr
        self.full = self.n // batch_size  # full batches per epoch: the captured steps
        self.emulated = device.type != "cuda"
        if self.emulated and not _EMULATE[0]:
            raise ValueError("CUDA graphs need a CUDA device (tests: inside capture.emulate_on_cpu())")
        default = torch.cuda.default_generators[device.index or 0] if not self.emulated else None
        self.generators = list(dict.fromkeys(generators))  # put back after the warm-up
        self.registered = [g for g in self.generators if g.device.type == "cuda" and g is not default]
        if steps_per_graph is None:
            steps_per_graph = max([d for d in range(1, min(self.full, MAX_STEPS_PER_GRAPH) + 1) if self.full % d == 0],
                                  default=1)
        self.k = steps_per_graph
        if self.full % self.k:
            raise ValueError(f"steps_per_graph={self.k} does not divide the {self.full} full batches of an epoch")
        self.groups = [list(g["params"]) for g in optimizer.param_groups]
        self.recaptures = 0  # captures after the first (lr="recapture")
        self.graph = None  # none when an epoch has no full batch: then every step is eager
        self.sums: list[torch.Tensor] = []
        if device.type == "cuda":
            set_capturable(optimizer, True)
        if self.full:
            with self._on_device():
                self._allocate(order_shape, warmup)
                self._capture(self._lrs())

    # -- setup

    def _on_device(self):
        return torch.cuda.device(self.device) if self.device.type == "cuda" else contextlib.nullcontext()

    def _allocate(self, order_shape: tuple[int, ...], warmup: int) -> None:
        dev, B = self.device, self.batch_size
        self.order = torch.zeros(order_shape, dtype=torch.long, device=dev)  # valid indices for the warm-up
        self.static_slices = self.k == self.full  # one replay per epoch: step j reads order[..., jB:(j+1)B]
        self.offsets = [torch.arange(j * B, (j + 1) * B, device=dev) for j in range(self.k)]
        self.start = torch.zeros((), dtype=torch.long, device=dev)  # first index of the next replay's batches
        self.step_no = torch.zeros(1, dtype=torch.long, device=dev)  # the next captured step's row of the factors
        n_groups = len(self.groups)
        self.factors = torch.ones(max(self.full, 1), n_groups, dtype=torch.float32, device=dev)
        self._factor_rows: list[tuple[float, ...]] | None = None
        self.old = [[torch.empty_like(p) for p in ps] for ps in self.groups] if self.lr_mode == "tensor" else None
        # Warm-up: eager steps on a side stream (lazy initialization, optimizer state), then undone.
        snapshot = _Snapshot(self.modules, self.optimizer, self.generators, dev)
        stream = torch.cuda.Stream(dev) if dev.type == "cuda" else None
        if stream is not None:
            stream.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            outputs = None
            for _ in range(max(warmup, 1)):
                outputs = self.forward_backward(self.order[..., :B])
                self._optimizer_step(self._lrs(), row=None)
        if stream is not None:
            torch.cuda.current_stream(dev).wait_stream(stream)
        self.sums = [torch.zeros_like(o) for o in outputs]
        snapshot.restore()

    def _lrs(self) -> tuple[float, ...]:
        return tuple(float(g["lr"]) for g in self.optimizer.param_groups)

    # -- the captured function

    def _optimizer_step(self, baked: tuple[float, ...], row: torch.Tensor | None) -> None:
        """The optimizer's step at the baked learning rates; with lr="tensor" (and a factor row), rescaled on the
        device: p = old + factor * (p - old), the step having been taken at lr 1."""
        groups = self.optimizer.param_groups
        current = [g["lr"] for g in groups]
        use_factors = self.lr_mode == "tensor" and row is not None
        for g, lr in zip(groups, baked):
            g["lr"] = 1.0 if use_factors else lr
        if use_factors:
            for olds, params in zip(self.old, self.groups):
                torch._foreach_copy_(olds, [p.detach() for p in params])
        try:
            self.optimizer.step()
        finally:
            for g, lr in zip(groups, current):
                g["lr"] = lr
        if use_factors:
            with torch.no_grad():
                for i, (olds, params) in enumerate(zip(self.old, self.groups)):
                    ps = [p.detach() for p in params]
                    torch._foreach_sub_(ps, olds)
                    torch._foreach_mul_(ps, row[i])
                    torch._foreach_add_(ps, olds)

    def _body(self, baked: tuple[float, ...]) -> None:
        """What one replay runs: `k` steps, each reading its batch from the index buffer."""
        B = self.batch_size
        for j in range(self.k):
            if self.static_slices:
                idx, row = self.order[..., j * B:(j + 1) * B], self.factors[j]
            else:
                idx = self.order.index_select(-1, self.offsets[j] + self.start)
                row = self.factors.index_select(0, self.step_no)[0]
                self.step_no.add_(1)
            outputs = self.forward_backward(idx)
            self._optimizer_step(baked, row)
            with torch.no_grad():
                for total, value in zip(self.sums, outputs):
                    total.add_(value)
        if not self.static_slices:
            self.start.add_(self.k * B)

    def _capture(self, lrs: tuple[float, ...]) -> None:
        baked = lrs  # read when captured (an emulated replay must not see later values either)
        self.optimizer.zero_grad(set_to_none=True)  # the graph's backward allocates the gradients it then owns
        if self.emulated:
            self.graph = _ReplayCall(lambda: self._body(baked))
        else:
            self.graph = None  # its memory pool goes with it
            graph = torch.cuda.CUDAGraph()
            if self.registered and not hasattr(graph, "register_generator_state"):
                raise RuntimeError(f"torch {torch.__version__} cannot capture draws from a CUDA generator of its own "
                                   "(CUDAGraph.register_generator_state, torch >= 2.5): use capture=off")
            for g in self.registered:
                graph.register_generator_state(g)
            with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                self._body(baked)
            self.graph = graph
        self.baked = baked

    # -- an epoch

    def epoch(self, perm: torch.Tensor, lrs: Sequence[Sequence[float]] | None = None,
              tail: Callable[[torch.Tensor], Sequence[torch.Tensor]] | None = None) -> tuple[list[torch.Tensor], int]:
        """Train on every batch of `perm` (shape order_shape): the full batches by replaying the graph, then the last
        partial one (if at least min_tail) eagerly, through `tail(idx)` if given, else forward_backward and the
        optimizer's step. `lrs[i]`: the learning rate of each parameter group at full step i (default: the current
        ones for every step; the caller steps its schedule). Returns the summed outputs (device tensors, fresh
        each epoch) and the number of steps taken."""
        B = self.batch_size
        rows = [tuple(map(float, r)) for r in lrs] if lrs is not None else [self._lrs()] * self.full
        if len(rows) != self.full:
            raise ValueError(f"{len(rows)} learning-rate rows for {self.full} captured steps")
        if self.graph is None:  # not one full batch: the epoch is its one eager step
            return [o.clone() for o in (tail or self._eager_step)(perm)], 1
        with self._on_device():
            self.order.copy_(perm)
            for total in self.sums:
                total.zero_()
            if not self.static_slices:
                self.start.zero_()
                self.step_no.zero_()
            if self.lr_mode == "tensor":
                if rows != self._factor_rows:
                    self.factors[:self.full].copy_(torch.tensor(rows, dtype=torch.float32))
                    self._factor_rows = rows
                for r in range(0, self.full, self.k):
                    self.graph.replay()
            else:
                for r in range(0, self.full, self.k):
                    if any(row != self.baked for row in rows[r:r + self.k]):
                        if len(set(rows[r:r + self.k])) > 1:
                            raise ValueError("lr='recapture' needs one learning rate per replay: use steps_per_graph=1")
                        self._capture(rows[r])
                        self.recaptures += 1
                    self.graph.replay()
            sums = [total.clone() for total in self.sums]
            steps = self.full
            rest = self.n - self.full * B
            if rest >= self.min_tail and rest > 0:
                idx = perm[..., self.full * B:]
                outputs = tail(idx) if tail is not None else self._eager_step(idx)
                for total, value in zip(sums, outputs):
                    total += value
                steps += 1
        return sums, steps

    def _eager_step(self, idx: torch.Tensor) -> Sequence[torch.Tensor]:
        outputs = self.forward_backward(idx)
        self.optimizer.step()
        return [o.detach() for o in outputs]


# --- the fused-population regression step (depth_width, dying_relu) ------------------------------------

SCHEDULED_LR_MODE = "tensor"  # the lr mode of a trial whose schedule changes the lr (bench/gpu.py compares both)


def population_mse_graph(model, optimizer, x: torch.Tensor, y: torch.Tensor, batch_size: int, device: torch.device,
                         constant_lr: bool) -> StepGraph:
    """The captured step of a fused population regressing y on x by mean squared error: each replica's batch
    from its own row of the epoch's [P, n] permutation, the sum of the replicas' losses backward, the optimizer's
    step; it sums each replica's loss times its batch size. The same operations as the trials' eager
    `train_one_epoch`."""
    from trainables.training.population import FusedDropout, per_replica_mse, replica_batch

    def forward_backward(idx: torch.Tensor) -> tuple[torch.Tensor]:
        b = idx.shape[-1]
        losses = per_replica_mse(model(replica_batch(x, idx, 0, b)), replica_batch(y, idx, 0, b))
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()  # the sum: each replica gets its own run's gradient
        return (losses.detach() * b,)

    dropout = any(isinstance(m, FusedDropout) and m.p > 0 for m in model.modules())
    return StepGraph(forward_backward, optimizer, model, order_shape=(model.size, len(x)), batch_size=batch_size,
                     device=device, generators=model.generators if dropout else (),
                     lr="recapture" if constant_lr else SCHEDULED_LR_MODE)


def population_mse_epoch(graph: StepGraph, n: int, generators: Sequence[torch.Generator]) -> torch.Tensor:
    """One captured epoch of `population_mse_graph`'s step, each replica in its own order (replica p's from
    `generators[p]`, as the eager epoch draws it); each replica's mean training MSE, [P], on the device."""
    from trainables.training.population import replica_permutations

    graph.modules[0].train()
    (loss_sum,), _ = graph.epoch(replica_permutations(n, generators, graph.device))
    return loss_sum / n
