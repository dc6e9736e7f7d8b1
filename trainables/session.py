"""The thin layer between a trial's training loop and Ray Tune.

A trial function has the signature `trial_fn(config: dict, data, session)` and
calls `session.restore()` once and `session.report(metrics, epoch, state_fn)`
once per epoch. Two sessions implement that contract:

- `TuneSession` reports to Ray Tune and checkpoints every `checkpoint_every`
  epochs (and at the last epoch), so a trial can resume;
- `LocalSession` keeps the metrics in a list, so the same loop runs without Ray
  (tests, benchmarks, notebooks).

Both stop a trial whose loss became NaN or infinite: the epoch is reported with
`diverged=1` and `report` returns False, so the loop returns and the sweep goes on.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from typing import Any, Callable

import torch

STATE_FILE = "state.pt"


def is_diverged(metrics: dict[str, float]) -> bool:
    """A trial diverged when any of its losses is NaN or infinite."""
    return any(key.endswith("loss") and not math.isfinite(value) for key, value in metrics.items())


class LocalSession:
    """Runs a trial in-process: metrics go to `self.history`, checkpoints to memory."""

    def __init__(self, epochs: int, checkpoint_every: int = 0, state: dict | None = None):
        self.epochs = epochs
        self.checkpoint_every = checkpoint_every
        self.history: list[dict[str, Any]] = []
        self.state = state

    def restore(self) -> dict | None:
        return self.state

    def report(self, metrics: dict[str, float], epoch: int, state_fn: Callable[[], dict] | None = None) -> bool:
        diverged = is_diverged(metrics)
        self.history.append({**metrics, "epoch": epoch, "diverged": int(diverged)})
        if state_fn is not None and _checkpoint_due(epoch, self.epochs, self.checkpoint_every):
            self.state = state_fn()
        return not diverged


class TuneSession:
    """Reports to Ray Tune; checkpoints are `state.pt` files in a Tune checkpoint folder."""

    def __init__(self, epochs: int, checkpoint_every: int):
        self.epochs = epochs
        self.checkpoint_every = checkpoint_every

    def restore(self) -> dict | None:
        from ray import tune

        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=False)

    def report(self, metrics: dict[str, float], epoch: int, state_fn: Callable[[], dict] | None = None) -> bool:
        from ray import tune

        diverged = is_diverged(metrics)
        metrics = {**metrics, "epoch": epoch, "diverged": int(diverged)}
        if state_fn is None or diverged or not _checkpoint_due(epoch, self.epochs, self.checkpoint_every):
            tune.report(metrics)
            return not diverged
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state_fn(), os.path.join(folder, STATE_FILE))
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))
        return True


def _checkpoint_due(epoch: int, epochs: int, every: int) -> bool:
    return every > 0 and (epoch % every == 0 or epoch == epochs)


def set_threads_from_resources() -> int:
    """Ray sets OMP_NUM_THREADS=1 in workers; use the CPUs the trial was given instead."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    threads = max(1, int(round(cpus)))
    torch.set_num_threads(threads)
    return threads


def tune_trainable(trial_fn: Callable, epochs_key: str = "epochs") -> Callable:
    """Wrap `trial_fn(config, data, session)` as a Ray Tune function trainable.

    The data set and run settings arrive through `tune.with_parameters`, i.e.
    from the object store, built once on the driver.
    """

    def trainable(config: dict, data: Any = None, checkpoint_every: int = 0) -> None:
        set_threads_from_resources()
        # Ray logs every persisted checkpoint at INFO; at one checkpoint per few epochs that floods the driver.
        for name in ("ray.train._internal.storage", "ray.train.v2._internal.execution.storage"):
            logging.getLogger(name).setLevel(logging.WARNING)
        trial_fn(config, data, TuneSession(int(config[epochs_key]), checkpoint_every))

    trainable.__name__ = getattr(trial_fn, "__name__", "trainable")
    return trainable
