"""The thin layer between a trial's training loop and Ray Tune.

A trial function has the signature `trial_fn(config: dict, data, session)` and
calls `session.restore()` once and `session.report(metrics, epoch, state_fn)`
once per epoch (a one-shot trial, which fits once or runs a fixed batch of
simulations, reports once, as epoch 1 of 1). A report may carry `artifacts`
(name -> array, table, JSON value; see trainables/artifacts.py) for the trial's
own MLflow run. Two sessions implement that contract:

- `TuneSession` reports to Ray Tune and checkpoints every `checkpoint_every`
  epochs (and at the last epoch), so a trial can resume;
- `LocalSession` keeps the metrics in a list, so the same loop runs without Ray
  (tests, benchmarks, notebooks).

Both stop a trial whose loss became NaN or infinite: the epoch is reported with
`diverged=1` and `report` returns False, so the loop returns and the sweep goes on.
"""

from __future__ import annotations

import io
import math
import os
import queue
import tempfile
import threading
import time
from typing import Any, Callable

import torch

from trainables.runtime import ray_internals as ray_internals
from trainables.artifacts import ARTIFACTS_KEY, encode_all
from trainables.runtime.storage_outage import report_through_outage

STATE_FILE = "state.pt"
# Called with the epoch after each checkpoint a TuneSession has saved (e.g. a test's fault injection,
# tests/fault_injection.py, installed through a sitecustomize in the workers' environment).
CHECKPOINT_OBSERVERS: list[Callable[[int], None]] = []
MAX_PENDING_CHECKPOINTS = 2  # checkpoints a trial's loop may run ahead of their upload before it waits


def is_diverged(metrics: dict[str, float]) -> bool:
    """A trial diverged when any of its losses is NaN or infinite."""
    return any(key.endswith("loss") and not math.isfinite(value) for key, value in metrics.items())


class LocalSession:
    """Runs a trial in-process: metrics go to `self.history`, checkpoints to memory."""

    def __init__(self, epochs: int, checkpoint_every: int = 0, state: dict | None = None):
        self.epochs = epochs
        self.checkpoint_every = checkpoint_every
        self.history: list[dict[str, Any]] = []
        self.artifacts: dict[str, Any] = {}  # the latest value of every artifact reported
        self.state = state

    def restore(self) -> dict | None:
        return self.state

    def report(self, metrics: dict[str, float], epoch: int, state_fn: Callable[[], dict] | None = None,
               artifacts: dict[str, Any] | None = None) -> bool:
        diverged = is_diverged(metrics)
        if artifacts:
            encode_all(artifacts)  # fail here as a trial under Tune would
            self.artifacts.update(artifacts)
        self.history.append({**metrics, "epoch": epoch, "diverged": int(diverged)})
        if state_fn is not None and _checkpoint_due(epoch, self.epochs, self.checkpoint_every):
            self.state = state_fn()
        return not diverged


class TuneSession:
    """Reports to Ray Tune from a background thread; checkpoints are `state.pt` files.

    Each `tune.report` blocks its caller for a round of Ray's bookkeeping (~2 ms
    measured on 2 CPUs, 7% of a 30 ms epoch), so the training loop only queues
    the epoch's metrics (and the checkpoint, serialized right away because
    training goes on mutating the weights) and a reporter thread hands them to
    Tune in order. When Tune stops the trial (ASHA), Ray ends the reporting
    thread with SystemExit; the loop sees it at its next report and returns, so
    a stopped trial trains at most one epoch more than it reports.

    A checkpoint upload that finds the storage unreachable (S3 down) waits for it
    and is made again (trainables/runtime/storage_outage.py); meanwhile the loop trains on
    until MAX_PENDING_CHECKPOINTS checkpoints are queued, then waits as well.
    """

    def __init__(self, epochs: int, checkpoint_every: int):
        self.epochs = epochs
        self.checkpoint_every = checkpoint_every
        self.report_s = 0.0  # time the training loop spent blocked in reporting and checkpointing
        self.stopped = False
        self._error: BaseException | None = None
        self._queue: queue.Queue = queue.Queue()
        self._checkpoint_slots = threading.Semaphore(MAX_PENDING_CHECKPOINTS)
        self._thread = threading.Thread(target=self._drain, name="tune-reporter", daemon=True)
        self._thread.start()

    def restore(self) -> dict | None:
        from ray import tune

        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            return torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=False)

    def report(self, metrics: dict[str, float], epoch: int, state_fn: Callable[[], dict] | None = None,
               artifacts: dict[str, Any] | None = None) -> bool:
        started = time.perf_counter()
        self._raise_reporter_error()
        if self.stopped:
            return False
        diverged = is_diverged(metrics)
        metrics = {**metrics, "epoch": epoch, "diverged": int(diverged), "time/report_s": self.report_s}
        if artifacts:
            metrics[ARTIFACTS_KEY] = encode_all(artifacts)  # the driver's recorder writes them to MLflow
        state = None
        if state_fn is not None and not diverged and _checkpoint_due(epoch, self.epochs, self.checkpoint_every):
            if not self._wait_for_checkpoint_slot():
                return False  # Tune stopped the trial meanwhile
            buffer = io.BytesIO()
            torch.save(state_fn(), buffer)
            state = buffer.getvalue()
        self._queue.put((metrics, state))
        self.report_s += time.perf_counter() - started
        return not diverged

    def _wait_for_checkpoint_slot(self) -> bool:
        """Block while MAX_PENDING_CHECKPOINTS checkpoints wait for the reporter (e.g. through a storage
        outage): their bytes are held in memory. False if Tune stopped the trial meanwhile."""
        while not self._checkpoint_slots.acquire(timeout=1.0):
            if not self._thread.is_alive():
                self._raise_reporter_error()
                return False
        return not self.stopped

    def close(self) -> None:
        """Wait until Tune has every report; call once when the trial's loop returns."""
        self._queue.put(None)
        self._thread.join()
        self._raise_reporter_error()

    def _drain(self) -> None:
        from ray import tune

        while (item := self._queue.get()) is not None:
            metrics, state = item
            try:
                if state is None:
                    tune.report(metrics)
                    continue
                with tempfile.TemporaryDirectory() as folder:
                    with open(os.path.join(folder, STATE_FILE), "wb") as f:
                        f.write(state)
                    checkpoint = tune.Checkpoint.from_directory(folder)
                    # an S3 outage: wait for it (the loop runs ahead by MAX_PENDING_CHECKPOINTS), then upload
                    report = ray_internals.repeatable_checkpoint_report(
                        lambda: tune.report(metrics, checkpoint=checkpoint))
                    report_through_outage(report, ray_internals.storage_probe(),
                                          f"trial {tune.get_context().get_trial_name()}")
                self._checkpoint_slots.release()
                for observe in CHECKPOINT_OBSERVERS:
                    observe(metrics["epoch"])
            except SystemExit:  # Tune stopped the trial
                self.stopped = True
                return
            except BaseException as e:  # noqa: BLE001  (re-raised in the training thread)
                self._error = e
                return

    def _raise_reporter_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error


def training_state(model, optimizer, scheduler, generator: torch.Generator | list[torch.Generator], epoch: int,
                   train_s: float) -> dict:
    """What a checkpoint holds to resume a trial exactly: weights, optimizer and schedule, RNG (one data-order
    generator, or one per replica of a population), clock."""
    generators = generator if isinstance(generator, list) else [generator]
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "generators": [g.get_state() for g in generators], "epoch": epoch, "train_s": train_s}


def load_training_state(state: dict | None, model, optimizer, scheduler,
                        generator: torch.Generator | list[torch.Generator]) -> tuple[int, float]:
    """Restore `training_state` in place; returns (epochs done, training seconds so far), (0, 0.0) if none."""
    if state is None:
        return 0, 0.0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    generators = generator if isinstance(generator, list) else [generator]
    if len(generators) != len(state["generators"]):
        raise ValueError(f"a checkpoint of {len(state['generators'])} replicas cannot resume {len(generators)}")
    for g, saved in zip(generators, state["generators"]):
        g.set_state(saved)
    return state["epoch"], state["train_s"]


def _checkpoint_due(epoch: int, epochs: int, every: int) -> bool:
    return every > 0 and (epoch % every == 0 or epoch == epochs)


def set_threads_from_resources() -> int:
    """Ray sets OMP_NUM_THREADS=1 in workers; use the CPUs the trial was given instead."""
    import ray

    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    threads = max(1, int(round(cpus)))
    torch.set_num_threads(threads)
    return threads


def run_with_tune(run: Callable, task: Any, data: Any, device: torch.device, epochs: int,
                  checkpoint_every: int) -> None:
    """Run `run(task, data, session, device)` in a Tune trial's process with a `TuneSession` of `epochs` reports
    (1 for a one-shot trial), its threads set from the CPUs the trial holds. The data set arrives through the
    object store, built once on the driver."""
    set_threads_from_resources()
    # A trial stopped by ASHA finishes its current epoch first; Tune reuses the actor only if that takes
    # under TUNE_FUNCTION_THREAD_TIMEOUT_S (default 2 s), else the next trial errors. Epochs of image
    # models on a CPU take longer. Read in this (the actor's) process when Tune resets it.
    os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", "600")
    ray_internals.quiet_checkpoint_logs()  # Ray logs every persisted checkpoint at INFO
    session = TuneSession(epochs, checkpoint_every)
    try:
        run(task, data, session, device)
    finally:
        session.close()
    if session.stopped:
        # End the thread the way Ray ends a stopped trial's, without the final report it no longer takes.
        raise SystemExit(0)
