"""Image-classification core in plain PyTorch (no Ray): training steps, one training epoch and
evaluation over in-memory uint8 tensors already on the device (see trainables.data.vision.to_device).

An epoch's batches are index slices of a per-epoch `randperm` (`train_one_epoch`); any other sequence
of index batches (the range tests' stream, trainables.training.schedules.IndexStream) goes through `train_steps`.
Loss and accuracy accumulate on the device and reach the host once per call (one sync), so the loop
never waits on `.item()`.

A `trainables.training.population.Population` (P replicas of a small model, fused) trains through the same
functions: its index batches are [P, B] (each replica its own order, `generator` a list of one data
generator per replica), the loss is the sum over replicas of each one's mean, and losses and accuracies
come back as lists of P values.

    aug = functools.partial(batch_augment, m=1, mean=d.mean, std=d.std, padding=4, cutout=16)
    stats = train_one_epoch(model, opt, d.train, 128, gen, augment=aug)   # {"loss", "accuracy", ...}
    test = evaluate(model, d.test.images, d.test.labels, 1000,
                    transform=functools.partial(eval_transform, mean=d.mean, std=d.std))

On a GPU, `CapturedEpochs` trains the same epochs with every full batch's step (gather, augmentation, forward,
loss, backward, optimizer step) replayed from a CUDA graph (trainables/training/capture.py): the same batches in
the same order, the same random draws, the lr schedule stepped on the host and applied through a device tensor;
the last partial batch runs eagerly. ResNet-44 at batch 64 on an H200: 3.6 ms per captured step against 22.8 ms
eager (measured 2026-12-04; bench/gpu.py times it through this class).
"""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from trainables.training.capture import StepGraph
from trainables.training.population import (FusedDropout, Population, per_replica_cross_entropy,
                                            replica_permutations)
from trainables.data.vision import TensorSplit

Augment = Callable[..., tuple[torch.Tensor, torch.Tensor]]  # (uint8 x, y, generator=) -> (float x, y)


def _default_transform(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> floats in [0, 1]; float inputs pass unchanged."""
    return x.float() / 255.0 if x.dtype == torch.uint8 else x


def _autocast(device: torch.device, amp: bool, cache: bool = True):
    # bfloat16 needs no loss scaling (unlike float16) and runs on CPUs and Ampere+ GPUs. Inside a CUDA graph
    # capture the cast-weight cache is off (cache=False): the captured step casts the weights it reads itself.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp, **({} if cache else {"cache_enabled": False}))


def accumulate_gradients(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    chunks: int = 1,
    augment: Augment | None = None,
    generator: torch.Generator | None = None,
    amp: bool = False,
    channels_last: bool = False,
    autocast_cache: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Backward of the mean cross-entropy of one step's batch in `chunks` micro-batches (gradient
    accumulation), each micro-batch's loss weighted by its share of the batch, so the summed gradient is
    the full batch's (exactly so without batch norm; with it each micro-batch normalizes itself).
    `augment(x, y, generator=)` runs per micro-batch (batch augmentation may return more samples than it
    got). Returns the summed per-sample loss and the correct count (device tensors, detached) and the
    number of samples the model saw."""
    device = images.device
    replicas = _replicas(model)
    loss_sum = torch.zeros(replicas or (), device=device)
    correct = torch.zeros(replicas or (), device=device, dtype=torch.long)
    seen = 0
    dim = 1 if replicas else 0  # a population's batches are [P, B, ...]
    if isinstance(generator, list):
        generator = generator[0]  # a population's augmentation draws from the first replica's generator
    for xs, ys in zip(images.chunk(chunks, dim), labels.chunk(chunks, dim)):
        x, y = _prepare(xs, ys, augment, generator)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp, autocast_cache):
            logits = model(x)
            logits = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
            loss = per_replica_cross_entropy(logits, y) if replicas else F.cross_entropy(logits, y)
        # the sum over replicas: each replica gets its own run's gradient
        (loss.sum() * (ys.shape[dim] / labels.shape[dim])).backward()
        loss_sum += loss.detach() * y.shape[dim]
        correct += (logits.argmax(-1) == y).sum(dim)
        seen += y.shape[dim]
    return loss_sum, correct, seen


def _replicas(model: nn.Module) -> int | None:
    """P for a population (or a DDP-wrapped one), None for an ordinary model."""
    inner = getattr(model, "module", model)
    return inner.size if isinstance(inner, Population) else None


def _prepare(x: torch.Tensor, y: torch.Tensor, augment: Augment | None, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 batch -> model input; a population's [P, B, ...] batch is augmented as one batch of P*B."""
    if x.dim() == y.dim() + 3 and y.dim() == 2:  # [P, B, C, H, W] images with [P, B] labels
        replicas = x.shape[0]
        fx, fy = augment(x.flatten(0, 1), y.flatten(), generator=generator) if augment else (
            _default_transform(x.flatten(0, 1)), y.flatten())
        return fx.reshape(replicas, -1, *fx.shape[1:]), fy.reshape(replicas, -1)
    return augment(x, y, generator=generator) if augment else (_default_transform(x), y)


def train_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: TensorSplit,
    batches: Iterable[torch.Tensor],
    generator: torch.Generator,
    augment: Augment | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    amp: bool = False,
    channels_last: bool = False,
    chunks: int = 1,
) -> dict[str, float]:
    """One optimizer step per index batch of `batches` (indices into `data`), each accumulated over
    `chunks` micro-batches (`accumulate_gradients`); `scheduler` (if any) steps after every optimizer
    step. A batch of fewer than 2 samples ends the steps (it breaks batch norm).
    Returns mean loss and accuracy over the samples the model saw (batch-augmented copies
    included), sample and step counts, and wall seconds. A non-finite loss is returned as nan."""
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    device = data.images.device
    replicas = _replicas(model)
    loss_sum = torch.zeros(replicas or (), device=device)
    correct = torch.zeros(replicas or (), device=device, dtype=torch.long)
    seen, steps, start = 0, 0, time.perf_counter()
    for idx in batches:
        if idx.shape[-1] < 2:
            break
        optimizer.zero_grad(set_to_none=True)
        step_loss, step_correct, step_seen = accumulate_gradients(model, data.images[idx], data.labels[idx], chunks,
                                                                  augment, generator, amp, channels_last)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_sum += step_loss
        correct += step_correct
        seen += step_seen
        steps += 1
    loss, acc = (loss_sum / max(seen, 1)).tolist(), (correct / max(seen, 1)).tolist()  # this call's one host sync
    return {"loss": _finite_or_nan(loss), "accuracy": acc, "samples": seen, "steps": steps,
            "seconds": time.perf_counter() - start}


def _finite_or_nan(loss: float | list[float]) -> float | list[float]:
    """A non-finite loss as nan (one, or each replica's)."""
    if isinstance(loss, list):
        return [v if math.isfinite(v) else math.nan for v in loss]
    return loss if math.isfinite(loss) else math.nan


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: TensorSplit,
    batch_size: int,
    generator: torch.Generator,
    augment: Augment | None = None,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    amp: bool = False,
    channels_last: bool = False,
    chunks: int = 1,
    shard: tuple[int, int] = (0, 1),
) -> dict[str, float]:
    """One pass over `data` in random order (`train_steps` over the slices of a `randperm`).
    `batch_size` is the batch per optimizer step; with `chunks` > 1 each step accumulates gradients
    over that many micro-batches (an effective batch larger than memory allows).
    `shard=(rank, world)` (data-parallel training) keeps this worker's share of the permutation:
    every rank draws the same permutation from an identically seeded `generator`, so the shards are
    distinct, cover the epoch (less a remainder of < world samples) and are equally long, so
    every rank takes the same number of steps (DDP needs that)."""
    n = len(data.labels)
    if isinstance(generator, list):  # a population: each replica's own order, [P, n]
        perm = replica_permutations(n, generator, data.images.device)
        batches = (perm[:, i : i + batch_size] for i in range(0, n, batch_size))
    else:
        perm = torch.randperm(n, device=data.images.device, generator=generator)
        rank, world = shard
        if world > 1:
            perm = perm[: n - n % world][rank::world]
            n = len(perm)
        batches = (perm[i : i + batch_size] for i in range(0, n, batch_size))
    return train_steps(model, optimizer, data, batches, generator, augment=augment, scheduler=scheduler, amp=amp,
                       channels_last=channels_last, chunks=chunks)


class CapturedEpochs:
    """`train_one_epoch` with the step of every full batch replayed from a CUDA graph (the last partial batch, if it
    has 2 samples or more, eager): the same permutation, batches, augmentation draws and schedule, so the same
    losses to float rounding. Build it once per trial, after any checkpoint is restored; `epoch(generator)` returns
    what `train_one_epoch` does.

    augment_generator: the generator the augmentation draws from (a CUDA generator; a population's own one, see
    trainables.image.trial); constant_lr: the schedule never changes the lr (then it is baked into the graph,
    else held in a device tensor); steps_per_graph: full steps per replay (None: as many as divide an epoch's,
    for the small models; a large model's step is long enough for one replay each)."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, data: TensorSplit, batch_size: int,
                 augment_generator: torch.Generator | None = None, augment: Augment | None = None,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None = None, amp: bool = False,
                 channels_last: bool = False, chunks: int = 1, constant_lr: bool = False,
                 steps_per_graph: int | None = 1):
        self.model, self.optimizer, self.data, self.scheduler = model, optimizer, data, scheduler
        self.device = data.images.device
        replicas = _replicas(model)
        n = len(data.labels)
        self.seen: dict[int, int] = {}  # samples the model sees in a step of b indices (batch augmentation: m x b)
        self.start_s = 0.0

        def forward_backward(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            optimizer.zero_grad(set_to_none=True)
            loss_sum, correct, seen = accumulate_gradients(model, data.images[idx], data.labels[idx], chunks, augment,
                                                           augment_generator, amp, channels_last, autocast_cache=False)
            self.seen[idx.shape[-1]] = seen
            return loss_sum, correct

        generators = [augment_generator] if augment is not None and augment_generator is not None else []
        if isinstance(model, Population) and any(isinstance(m, FusedDropout) and m.p > 0 for m in model.modules()):
            generators += model.generators
        self.graph = StepGraph(forward_backward, optimizer, model, order_shape=(replicas, n) if replicas else (n,),
                               batch_size=batch_size, device=self.device, generators=generators,
                               lr="recapture" if constant_lr else "tensor", steps_per_graph=steps_per_graph,
                               min_tail=2)

    def epoch(self, generator: torch.Generator | list[torch.Generator]) -> dict[str, float]:
        """One pass over the data in the order `train_one_epoch` draws from `generator`."""
        self.model.train()
        start = time.perf_counter()
        n, device = len(self.data.labels), self.device
        if isinstance(generator, list):
            perm = replica_permutations(n, generator, device)
        else:
            perm = torch.randperm(n, device=device, generator=generator)
        lrs = []  # each captured step's learning rates: the schedule stepped on the host, as the eager loop does
        for _ in range(self.graph.full):
            lrs.append([group["lr"] for group in self.optimizer.param_groups])
            if self.scheduler is not None:
                self.scheduler.step()

        def tail(idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            outputs = self.graph.forward_backward(idx)
            self.optimizer.step()
            if self.scheduler is not None:
                self.scheduler.step()
            return outputs

        (loss_sum, correct), steps = self.graph.epoch(perm, lrs, tail=tail)
        b = self.graph.batch_size
        rest = n - self.graph.full * b
        seen = self.graph.full * self.seen.get(b, 0) + (self.seen.get(rest, 0) if steps > self.graph.full else 0)
        loss, acc = (loss_sum / max(seen, 1)).tolist(), (correct / max(seen, 1)).tolist()  # this call's one host sync
        return {"loss": _finite_or_nan(loss), "accuracy": acc, "samples": seen, "steps": steps,
                "seconds": time.perf_counter() - start}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 1000,
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    amp: bool = False,
    channels_last: bool = False,
) -> dict[str, float]:
    """Mean cross-entropy and accuracy of `model` (eval mode) on uint8 `images` (a population: lists of
    each replica's, every replica seeing the same images)."""
    model.eval()
    transform = transform or _default_transform
    replicas = _replicas(model)
    loss_sum = torch.zeros(replicas or (), device=images.device)
    correct = torch.zeros(replicas or (), device=images.device, dtype=torch.long)
    for i in range(0, len(labels), batch_size):
        x, y = transform(images[i : i + batch_size]), labels[i : i + batch_size]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if replicas:
            x, y = x.expand(replicas, *x.shape), y.expand(replicas, *y.shape)
        with _autocast(images.device, amp):
            logits = model(x).float()
        losses = F.cross_entropy(logits.flatten(0, -2), y.flatten(), reduction="none").reshape(y.shape)
        loss_sum += losses.sum(-1)
        correct += (logits.argmax(-1) == y).sum(-1)
    n = max(len(labels), 1)
    return {"loss": _finite_or_nan((loss_sum / n).tolist()), "accuracy": (correct / n).tolist()}
