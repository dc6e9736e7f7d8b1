"""Checkpoint uploads that wait out a storage outage instead of failing the trial.

A trial uploads each checkpoint to the sweep's storage (a folder, or S3) inside its report. While S3 is
unreachable (stopped, restarting, a network partition) the upload raises; left to Ray, the trial fails,
and Tune's retry restores the last checkpoint from that same unreachable storage and fails again, so a
short outage spends all of `--max-failures` in seconds (measured: S3 stopped for ~35 s during a 3-trial
sweep, all three trials ended errored).

So a checkpointed report that fails on storage waits: the storage is probed every `RETRY_S` seconds
(the check Ray starts every upload with), the report is made again once it answers, and one line says
so on each side of the outage. After `WAIT_S` seconds of outage (`DLSWEEPS_STORAGE_WAIT_S`, default 600)
the error is raised after all: the trial fails, and Tune's `--max-failures` takes over.

    report_through_outage(lambda: tune.report(metrics, checkpoint=c), ray_internals.storage_probe(), "trial 3")
"""

from __future__ import annotations

import os
import sys
import time
from typing import Callable, TypeVar

from trainables.runtime import ray_internals as ray_internals

WAIT_S = float(os.environ.get("DLSWEEPS_STORAGE_WAIT_S", "600"))
RETRY_S = 2.0

T = TypeVar("T")


def wait_for_storage(probe: Callable[[], None], what: str, wait_s: float = WAIT_S, retry_s: float = RETRY_S,
                     down_since: float | None = None) -> float | None:
    """Return once `probe()` passes: None if the storage answered at once, else when the outage began
    (`time.monotonic()`; `down_since` continues an outage already under way). Pair it with `say_back`.

    Raises the probe's last error once the outage has lasted `wait_s` seconds; errors that are not
    storage outages (`ray_internals.is_storage_outage`) are raised at once.
    """
    while True:
        try:
            probe()
            return down_since
        except BaseException as e:  # noqa: BLE001  (_wait_after raises all but an outage)
            down_since = _wait_after(e, what, down_since, wait_s, retry_s)


def say_back(what: str, down_since: float | None) -> None:
    if down_since is not None:
        print(f"{what}: storage back after {time.monotonic() - down_since:.0f} s; checkpoint saved",
              file=sys.stderr, flush=True)


def report_through_outage(report: Callable[[], T], probe: Callable[[], None], what: str,
                          wait_s: float = WAIT_S, retry_s: float = RETRY_S) -> T:
    """`report()`, made again after every storage outage it hits, once `probe()` passes.

    Only for reports that may be repeated after a failed upload: a Tune trial's (the failed attempt
    queued no result; `ray_internals.repeatable_checkpoint_report` puts Ray's counters back). A Ray Train
    worker's report is a collective across ranks: call `wait_for_storage` before it instead.
    """
    down_since = None
    while True:
        try:
            result = report()
        except BaseException as e:  # noqa: BLE001  (_wait_after raises all but an outage)
            down_since = _wait_after(e, what, down_since, wait_s, retry_s)  # also when the probe passed
            down_since = wait_for_storage(probe, what, wait_s, retry_s, down_since)
            continue
        say_back(what, down_since)
        return result


def _wait_after(error: BaseException, what: str, down_since: float | None, wait_s: float, retry_s: float) -> float:
    """One failed attempt: raise `error` unless it is a storage outage younger than `wait_s`; else say so
    (once, when the outage begins), sleep `retry_s` and return when the outage began."""
    if not ray_internals.is_storage_outage(error):
        raise error
    now = time.monotonic()
    if down_since is None:
        down_since = now
        lines = str(error).strip().splitlines()
        reason = f"{type(error).__name__}: {lines[0] if lines else ''}"[:300]
        print(f"{what}: the sweep's storage is unreachable ({reason}); the checkpoint waits for it, "
              f"retried every {retry_s:g} s for up to {wait_s:g} s", file=sys.stderr, flush=True)
    if now - down_since >= wait_s:
        raise error
    time.sleep(retry_s)
    return down_since
