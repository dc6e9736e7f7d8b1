"""Checkpoint uploads that wait out a storage outage (trainables/runtime/storage_outage.py), step by step.

The probes and reports here are plain callables that fail the way Ray's do while S3 is down (OSError
from pyarrow, or Ray's RuntimeError when the storage answers without its marker file); the real S3
outage, with Ray and SeaweedFS, is tests/test_durability.py's.
"""

from __future__ import annotations

import time

import pytest

from trainables.runtime import ray_internals as ray_internals
from trainables.runtime.storage_outage import report_through_outage, say_back, wait_for_storage

DOWN = OSError("When getting information for key 'x' in bucket 'sweeps': AWS Error NETWORK_CONNECTION\ndetails")
NO_MARKER = RuntimeError(f"{ray_internals.STORAGE_CHECK_FAILURE} with the following settings:\nStorageContext<...>")


def failing(times: int, error: BaseException, calls: list):
    def call():
        calls.append(time.monotonic())
        if len(calls) <= times:
            raise error
        return "ok"

    return call


def test_outage_errors_are_told_apart_from_bugs():
    assert ray_internals.is_storage_outage(DOWN) and ray_internals.is_storage_outage(NO_MARKER)
    assert not ray_internals.is_storage_outage(RuntimeError("CUDA out of memory"))
    assert not ray_internals.is_storage_outage(ValueError("bad checkpoint"))


def test_a_reachable_storage_is_probed_once_and_nothing_said(capsys):
    calls = []
    assert wait_for_storage(failing(0, DOWN, calls), "trial t", retry_s=0.01) is None
    assert len(calls) == 1 and capsys.readouterr().err == ""


def test_wait_for_storage_probes_until_it_answers_and_says_so_once(capsys):
    calls = []
    started = time.monotonic()
    down_since = wait_for_storage(failing(3, NO_MARKER, calls), "trial t", retry_s=0.05)
    assert len(calls) == 4 and started <= down_since <= calls[0] + 0.01
    assert calls[-1] - calls[0] >= 3 * 0.05  # waited between probes
    err = capsys.readouterr().err.splitlines()
    assert err == [f"trial t: the sweep's storage is unreachable (RuntimeError: {ray_internals.STORAGE_CHECK_FAILURE} "
                   "with the following settings:); the checkpoint waits for it, retried every 0.05 s for up to 600 s"]
    say_back("trial t", down_since)
    assert capsys.readouterr().err.startswith("trial t: storage back after 0 s; checkpoint saved")


def test_wait_for_storage_gives_up_after_wait_s_with_the_storage_error():
    calls = []
    with pytest.raises(OSError, match="NETWORK_CONNECTION"):
        wait_for_storage(failing(10**6, DOWN, calls), "trial t", wait_s=0.2, retry_s=0.05)
    assert 0.2 <= calls[-1] - calls[0] < 1.0 and 4 <= len(calls) <= 8


def test_other_errors_are_raised_at_once():
    probes, reports = [], []
    with pytest.raises(ValueError):
        wait_for_storage(failing(1, ValueError("a bug"), probes), "trial t", retry_s=0.01)
    with pytest.raises(ValueError):
        report_through_outage(failing(1, ValueError("a bug"), reports), lambda: None, "trial t", retry_s=0.01)
    assert len(probes) == 1 and len(reports) == 1


def test_a_failed_report_is_made_again_once_the_storage_answers(capsys):
    reports, probes = [], []
    assert report_through_outage(failing(2, DOWN, reports), failing(3, DOWN, probes), "trial t", retry_s=0.01) == "ok"
    # report fails, probes fail 3 times then pass, report fails again (the outage came back), probe passes, report
    assert len(reports) == 3 and len(probes) == 5
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "storage is unreachable (OSError: When getting information" in err[0]
    assert err[1].startswith("trial t: storage back after ")


def test_report_through_outage_gives_up_after_wait_s():
    reports = []
    with pytest.raises(OSError):
        report_through_outage(failing(10**6, DOWN, reports), lambda: None, "trial t", wait_s=0.2, retry_s=0.05)
    assert 0.2 <= reports[-1] - reports[0] < 1.0
