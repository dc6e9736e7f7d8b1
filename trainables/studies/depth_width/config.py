"""The depth-vs-width study's config: every MLP of 1-3 hidden layers within a budget of hidden units.

    >>> RegressionConfig(widths=(256, 128, 64), epochs=200).use_batch_norm
    True
    >>> len(enumerate_networks()), len(representative_networks())   # the paper and quick presets' networks
    (143, 22)

This module imports no torch, so a study's `--help` reads it in milliseconds; the trial is
trainables/studies/depth_width/trial.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from trainables.config import ConfigError

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
    seeds: int = 1  # replicas trained together as one population trial, seeds seed, seed+1, ... (--set seeds=N)
    capture: str = "auto"  # CUDA graphs: auto (on a GPU) | on | off: replay each captured training step
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
        for key in ("epochs", "batch_size", "n_points", "seeds"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}={getattr(self, key)} must be a positive integer")
        if self.lr <= 0:
            raise ConfigError(f"lr={self.lr} must be positive")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError(f"lr_schedule={self.lr_schedule!r} must be 'cosine' or 'constant'")
        if self.batch_norm not in ("auto", "on", "off"):
            raise ConfigError(f"batch_norm={self.batch_norm!r} must be 'auto', 'on' or 'off'")
        if self.capture not in ("auto", "on", "off"):
            raise ConfigError(f"capture={self.capture!r} must be 'auto', 'on' or 'off'")

    @property
    def use_batch_norm(self) -> bool:
        return self.batch_norm == "on" or (self.batch_norm == "auto" and len(self.widths) >= 2)


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
