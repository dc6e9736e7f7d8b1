"""Image-classification core in plain PyTorch (no Ray): one training epoch and evaluation over
in-memory uint8 tensors already on the device (see trainables.vision_data.to_device).

Batches are index slices of a per-epoch `randperm`; loss and accuracy accumulate on the device
and reach the host once per epoch (one sync), so the loop never waits on `.item()`.

    aug = functools.partial(batch_augment, m=1, mean=d.mean, std=d.std, padding=4, cutout=16)
    stats = train_one_epoch(model, opt, d.train, 128, gen, augment=aug)   # {"loss", "accuracy", ...}
    test = evaluate(model, d.test.images, d.test.labels, 1000,
                    transform=functools.partial(eval_transform, mean=d.mean, std=d.std))
"""

from __future__ import annotations

import math
import time
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from trainables.vision_data import TensorSplit

Augment = Callable[..., tuple[torch.Tensor, torch.Tensor]]  # (uint8 x, y, generator=) -> (float x, y)


def _default_transform(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0


def _autocast(device: torch.device, amp: bool):
    # bfloat16 needs no loss scaling (unlike float16) and runs on CPUs and Ampere+ GPUs.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)


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
    """One pass over `data` in random order. `batch_size` is the batch per optimizer step; with
    `chunks` > 1 each step accumulates gradients over that many micro-batches (an effective batch
    larger than memory allows). `scheduler` (if any) steps after every optimizer step.
    `shard=(rank, world)` (data-parallel training) keeps this worker's share of the permutation:
    every rank draws the same permutation from an identically seeded `generator`, so the shards are
    distinct, cover the epoch (less a remainder of < world samples) and are equally long, so
    every rank takes the same number of steps (DDP needs that).
    Returns mean loss and accuracy over the samples the model saw (batch-augmented copies
    included), sample and step counts, and wall seconds. A non-finite loss is returned as nan."""
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    device = data.images.device
    n = len(data.labels)
    perm = torch.randperm(n, device=device, generator=generator)
    rank, world = shard
    if world > 1:
        perm = perm[: n - n % world][rank::world]
        n = len(perm)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen, steps, start = 0, 0, time.perf_counter()
    for i in range(0, n, batch_size):
        idx = perm[i : i + batch_size]
        if len(idx) < 2:  # a last batch of one sample breaks batch norm; skip it
            break
        optimizer.zero_grad(set_to_none=True)
        for part in idx.chunk(chunks):
            x, y = data.images[part], data.labels[part]
            x, y = augment(x, y, generator=generator) if augment else (_default_transform(x), y)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(device, amp):
                logits = model(x)
                loss = F.cross_entropy(logits.float(), y)
            # Weight each micro-batch by its share of the step's batch, so chunks=k equals chunks=1.
            (loss * (len(part) / len(idx))).backward()
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        steps += 1
    loss, acc = (loss_sum / max(seen, 1)).item(), correct.item() / max(seen, 1)  # the one sync per epoch
    return {"loss": loss if math.isfinite(loss) else math.nan, "accuracy": acc, "samples": seen,
            "steps": steps, "seconds": time.perf_counter() - start}


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
    """Mean cross-entropy and accuracy of `model` (eval mode) on uint8 `images`."""
    model.eval()
    transform = transform or _default_transform
    loss_sum = torch.zeros((), device=images.device)
    correct = torch.zeros((), device=images.device, dtype=torch.long)
    for i in range(0, len(labels), batch_size):
        x, y = transform(images[i : i + batch_size]), labels[i : i + batch_size]
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with _autocast(images.device, amp):
            logits = model(x).float()
        loss_sum += F.cross_entropy(logits, y, reduction="sum")
        correct += (logits.argmax(1) == y).sum()
    n = max(len(labels), 1)
    loss = (loss_sum / n).item()
    return {"loss": loss if math.isfinite(loss) else math.nan, "accuracy": correct.item() / n}
