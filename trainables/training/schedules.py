"""Learning-rate and batch-size schedules of the image trial, as pure functions of its config.

    >>> from trainables.training.schedules import batch_range, cyclic_batch_size, lr_schedule
    >>> batch_range(32, 256)
    [32, 64, 128, 256]
    >>> lr_schedule(cfg, iterations=100, steps_per_epoch=10)   # the LR of each of the first 100 steps

`cfg` is any object with the image trial's schedule fields (trainables.image.trial.ClassifyConfig).
The learning rate is stepped once per optimizer step (`lr_policy`):

- `constant`, `multistep` (x `lr_gamma` at each of `lr_milestones`, in epochs), `cosine` (to 0 over
  the training steps), each optionally after `warmup_epochs` of linear warm-up from lr/10 (Goyal et al.);
- Smith's cyclical policies `triangular`, `triangular2`, `exp_range` (arXiv 1506.01186, Sec. 3.1)
  between `lr_min` and `lr_max`, half cycle `stepsize` epochs or iterations; exp_range multiplies the
  amplitude by `gamma ** iteration`; momentum is not cycled (as in Smith);
- `range`: the continuous LR range test, the LR multiplied every step so that it grows
  exponentially from `lr_min` to `lr_max` over `lr_stages * interval` steps.

The batch size (`batch_policy`) is `fixed`, the batch-size range test's doubling sequence (`batch_range`),
or the cyclical batch size with an increasing trend (`cyclic_batch_size`, one value per epoch).
"""

from __future__ import annotations

import math

import torch

LR_POLICIES = ("constant", "multistep", "cosine", "triangular", "triangular2", "exp_range", "range")
CYCLIC = ("triangular", "triangular2", "exp_range")
BATCH_POLICIES = ("fixed", "range", "cyclic")


def is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def base_lr(cfg) -> float:
    """The LR of the non-cyclical policies: `lr`, or with lr=0 the range test's bound named by `fixed_lr`."""
    return cfg.lr or (cfg.lr_max if cfg.fixed_lr == "max" else cfg.lr_min)


def initial_lr(cfg) -> float:
    """The LR of the first step: lr_min for the cyclical policies and the range test, else `base_lr`."""
    return cfg.lr_min if cfg.lr_policy in (*CYCLIC, "range") else base_lr(cfg)


def range_factor(cfg) -> float:
    """Per-step LR multiplier of the continuous range test: lr_min -> lr_max over all its steps."""
    steps = cfg.lr_stages * cfg.interval
    return (cfg.lr_max / cfg.lr_min) ** (1.0 / max(steps - 1, 1))


def build_schedule(cfg, optimizer: torch.optim.Optimizer, steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-step scheduler of `cfg.lr_policy` on `optimizer` (whose LR must be `initial_lr(cfg)`);
    epoch-based settings (milestones, warm-up, a stepsize in epochs) are converted to steps."""
    sched = torch.optim.lr_scheduler
    if cfg.lr_policy in CYCLIC:
        step_up = cfg.stepsize * steps_per_epoch if cfg.stepsize_unit == "epochs" else cfg.stepsize
        # Smith's CLR keeps momentum fixed; torch cycles it by default.
        return sched.CyclicLR(optimizer, base_lr=cfg.lr_min, max_lr=cfg.lr_max, step_size_up=max(1, round(step_up)),
                              mode=cfg.lr_policy, gamma=cfg.gamma, cycle_momentum=False)
    if cfg.lr_policy == "range":
        return sched.ExponentialLR(optimizer, gamma=range_factor(cfg))
    if cfg.lr_policy == "multistep":
        main = sched.MultiStepLR(optimizer, [m * steps_per_epoch for m in cfg.lr_milestones], gamma=cfg.lr_gamma)
    elif cfg.lr_policy == "cosine":
        main = sched.CosineAnnealingLR(optimizer, T_max=max(cfg.epochs * steps_per_epoch, 1))
    else:
        main = sched.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if cfg.warmup_epochs <= 0:
        return main
    warm = cfg.warmup_epochs * steps_per_epoch
    warmup = sched.LinearLR(optimizer, start_factor=0.1, total_iters=warm)
    return sched.SequentialLR(optimizer, [warmup, main], milestones=[warm])


def lr_schedule(cfg, iterations: int, steps_per_epoch: int) -> list[float]:
    """The learning rate of each of the first `iterations` steps (figures, tests): `build_schedule`
    replayed on a one-parameter optimizer, so it is the trial's schedule by construction."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=initial_lr(cfg) or 1.0)
    scheduler = build_schedule(cfg, optimizer, steps_per_epoch)
    lrs = []
    for _ in range(iterations):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def batch_range(batch_min: int, batch_max: int) -> list[int]:
    """Batch sizes of the batch-size range test: batch_min doubling up to batch_max."""
    sizes = [batch_min]
    while sizes[-1] * 2 <= batch_max:
        sizes.append(sizes[-1] * 2)
    return sizes


def cyclic_batch_size(epoch: int, epochs: int, batch_min: int, batch_max: int, stepsize: int) -> int:
    """Batch size of epoch `epoch` (0-based) of the cyclical batch-size policy.

    In log2 space, a triangular wave (Smith's CLR formula with the epoch as iteration) between a lower
    bound and log2(batch_max); the lower bound rises linearly from log2(batch_min) to log2(batch_max)
    over training, so the batch cycles with an increasing trend and ends at batch_max: the analogue of
    exp_range's decaying LR (a larger batch, like a smaller LR, lowers the gradient noise).
    Rounded to a power of two."""
    lo, hi = math.log2(batch_min), math.log2(batch_max)
    cycle = math.floor(1 + epoch / (2 * stepsize))
    x = abs(epoch / stepsize - 2 * cycle + 1)  # 1 at the cycle's ends, 0 at its middle
    wave = max(0.0, 1 - x)  # 0 -> 1 -> 0 over a cycle
    floor = lo + (hi - lo) * epoch / max(epochs - 1, 1)
    return 2 ** round(floor + (hi - floor) * wave)


class IndexStream:
    """Endless random order over n samples (a fresh permutation each pass), served in batches of any size:
    the range tests' steps, which do not follow epochs."""

    def __init__(self, n: int, generator: torch.Generator, device: torch.device):
        self.n, self.generator, self.device = n, generator, device
        self.perm = torch.empty(0, dtype=torch.long, device=device)

    def next(self, batch: int) -> torch.Tensor:
        while len(self.perm) < batch:
            self.perm = torch.cat([self.perm, torch.randperm(self.n, device=self.device, generator=self.generator)])
        idx, self.perm = self.perm[:batch], self.perm[batch:]
        return idx
