"""Probes: what a study adds to the image trial's reports, by composition rather than by wrapping its session.

    >>> trial = ImageTrial(loop=cfg, probes=(BestAccuracy(),))     # trainables.image.trial
    >>> train_image(trial, data, session)          # every report also carries test/error, test/best_accuracy

The image loop calls each probe three ways:
- `start(cfg, model, data, state)` once, after the model is built and a checkpoint (if any) restored; `data` is the
  trial's data on its device, `state` what the probe's `state()` returned in that checkpoint (None: none);
- `observe(epoch, metrics, model, last)` at every report, before it is made: it returns extra metrics and
  artifacts (name -> value, trainables/artifacts.py) for that report; `last` is True for the trial's last report
  (its final epoch, a reached target, or a diverged epoch);
- `state()` whenever the loop checkpoints: a small dict that `start` gets back on a restart.
"""

from __future__ import annotations

from typing import Any, Protocol


class Probe(Protocol):
    name: str  # its key in the trial's checkpoint

    def start(self, cfg: Any, model: Any, data: Any, state: dict | None) -> None: ...

    def observe(self, epoch: int, metrics: dict[str, float], model: Any,
                last: bool) -> tuple[dict[str, float], dict[str, Any]]: ...

    def state(self) -> dict: ...


class BestAccuracy:
    """Adds `test/error` (1 - accuracy: what a study that minimizes error plots and ASHA ranks) and
    `test/best_accuracy` (the best test accuracy so far) to every report that has a test accuracy, so a trial that
    never reaches its target still records its best in its final metrics. The best survives restarts."""

    name = "best_accuracy"

    def __init__(self) -> None:
        self.best = 0.0

    def start(self, cfg: Any, model: Any, data: Any, state: dict | None) -> None:
        self.best = float((state or {}).get("best", 0.0))

    def observe(self, epoch: int, metrics: dict[str, float], model: Any,
                last: bool) -> tuple[dict[str, float], dict[str, Any]]:
        if "test/accuracy" not in metrics:
            return {}, {}
        accuracy = metrics["test/accuracy"]
        self.best = max(self.best, accuracy) if accuracy == accuracy else self.best  # NaN (a diverged epoch): kept
        return {"test/error": 1.0 - accuracy, "test/best_accuracy": self.best}, {}

    def state(self) -> dict:
        return {"best": self.best}
