"""CUDA MPS (Multi-Process Service) for trials that share a GPU: start the daemon, and stop it afterwards.

    from trainables.runtime.mps import start_mps
    mps = start_mps()          # prints one line: started, or why not (and then returns None)
    try:
        ...                    # ray.init() and the sweep: every CUDA process started from here on uses MPS
    finally:
        if mps:
            mps.stop()

Why: processes that share a GPU without MPS take turns on it (time slicing); with MPS their kernels run
side by side. On an H200, 16 processes each training one captured depth_width network reached 397
network-epochs/s with MPS against 63 for 8 processes without it (2026-12-04), and bench/gpu.py
measures 1, 4, 8 and 16 processes both ways.

`start_mps()` starts `nvidia-cuda-mps-control -d` with CUDA_MPS_PIPE_DIRECTORY and CUDA_MPS_LOG_DIRECTORY set
to folders this user can write (under the temporary folder, one per user) and exports both into this process's
environment, so processes started afterwards (Ray's raylet and its workers, when this process starts Ray)
find the daemon. Call it before anything in this process or its children creates a CUDA context that should
use MPS, i.e. before `ray.init()`. It returns an `MPSHandle` whose `stop()` quits the daemon (and restores
the environment), or None with its one line saying why not:
- no NVIDIA GPU (`nvidia-smi -L` lists none) or no `nvidia-cuda-mps-control` on PATH;
- a daemon already answers (at $CUDA_MPS_PIPE_DIRECTORY, ours, or the default /tmp/nvidia-mps): it is used
  and left running (its pipe folder is exported);
- the daemon did not start or does not answer (e.g. another user's daemon owns the GPU, or the GPU's compute
  mode forbids it): the line gives the command for someone with the rights.
Processes attach to MPS when they create their CUDA context; a trial process started before the daemon keeps
time slicing. `echo quit | nvidia-cuda-mps-control` (with the same CUDA_MPS_PIPE_DIRECTORY) stops a daemon by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

CONTROL = "nvidia-cuda-mps-control"
DEFAULT_PIPE_DIRECTORY = "/tmp/nvidia-mps"  # where MPS clients look when CUDA_MPS_PIPE_DIRECTORY is unset
PIPE_ENV, LOG_ENV = "CUDA_MPS_PIPE_DIRECTORY", "CUDA_MPS_LOG_DIRECTORY"
START_TIMEOUT_S = 10.0


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class MPSHandle:
    """A daemon this process started: `stop()` quits it (once) and restores CUDA_MPS_* in os.environ."""

    pipe_dir: str
    log_dir: str
    message: str  # the line start_mps printed
    _previous_env: dict[str, str | None] = field(default_factory=dict, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def env(self) -> dict[str, str]:
        """The variables a CUDA process needs to use this daemon (already in os.environ since start_mps)."""
        return {PIPE_ENV: self.pipe_dir, LOG_ENV: self.log_dir}

    def stop(self, say: Callable[[str], None] | None = None) -> None:
        if self._stopped:
            return
        self._stopped = True
        ok = _control("quit", self.env) is not None
        deadline = time.monotonic() + START_TIMEOUT_S  # the control daemon leaves once its servers have quit
        while ok and _control("get_server_list", self.env) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        for key, value in self._previous_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        (say or _say)(f"MPS: stopped the daemon at {self.pipe_dir}" if ok else
                      f"MPS: could not stop the daemon at {self.pipe_dir}; stop it with "
                      f"`echo quit | {PIPE_ENV}={self.pipe_dir} {CONTROL}`")

    def __enter__(self) -> "MPSHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _control(command: str, env: dict[str, str]) -> str | None:
    """Send one command to the control daemon at env's pipe folder; its answer, or None if none answers."""
    try:
        proc = subprocess.run([CONTROL], input=command + "\n", capture_output=True, text=True, timeout=5,
                              env={**os.environ, **env})
    except (OSError, subprocess.TimeoutExpired):
        return None
    # With no daemon the client exits non-zero (or says it cannot connect).
    if proc.returncode != 0 or "Cannot find MPS control daemon" in proc.stdout + proc.stderr:
        return None
    return proc.stdout


def _gpu_count() -> int:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return 0
    return sum(line.startswith("GPU ") for line in out.stdout.splitlines()) if out.returncode == 0 else 0


def default_dirs() -> tuple[str, str]:
    """This user's pipe and log folders: <tmp>/dlsweeps-mps-<uid>/{pipe,log}."""
    root = Path(tempfile.gettempdir()) / f"dlsweeps-mps-{os.getuid()}"
    return str(root / "pipe"), str(root / "log")


def start_mps(say: Callable[[str], None] | None = None) -> MPSHandle | None:
    """Start the MPS control daemon for this user's processes; one line to `say` (default: stderr) either way.
    Returns the handle to stop it, or None when it was not started (see the module's docstring)."""
    say = say or _say
    if _gpu_count() == 0:
        say("MPS: not started: no NVIDIA GPU here (nvidia-smi lists none); trials sharing a GPU would time-slice")
        return None
    if shutil.which(CONTROL) is None:
        say(f"MPS: not started: {CONTROL} is not on PATH (it ships with the NVIDIA driver); trials sharing a GPU "
            "take turns on it instead of running side by side")
        return None
    pipe_dir, log_dir = default_dirs()
    candidates = list(dict.fromkeys([os.environ.get(PIPE_ENV) or DEFAULT_PIPE_DIRECTORY, pipe_dir]))
    for candidate in candidates:
        if _control("get_server_list", {PIPE_ENV: candidate}) is not None:
            os.environ[PIPE_ENV] = candidate
            say(f"MPS: a daemon is already running (pipe folder {candidate}): trials use it; it is left running")
            return None
    try:
        for folder in (pipe_dir, log_dir):
            os.makedirs(folder, mode=0o700, exist_ok=True)
    except OSError as e:
        say(f"MPS: not started: cannot create {pipe_dir} ({e.strerror}); start it by hand: "
            f"`{PIPE_ENV}=<folder> {LOG_ENV}=<folder> {CONTROL} -d`")
        return None
    env = {PIPE_ENV: pipe_dir, LOG_ENV: log_dir}
    hint = f"`{PIPE_ENV}={pipe_dir} {LOG_ENV}={log_dir} {CONTROL} -d` as a user allowed to"
    try:
        proc = subprocess.run([CONTROL, "-d"], capture_output=True, text=True, timeout=START_TIMEOUT_S,
                              env={**os.environ, **env})
    except (OSError, subprocess.TimeoutExpired) as e:
        say(f"MPS: not started: {CONTROL} -d failed ({e}); run {hint}")
        return None
    deadline = time.monotonic() + START_TIMEOUT_S
    answered = False
    while proc.returncode == 0 and time.monotonic() < deadline:
        if _control("get_server_list", env) is not None:
            answered = True
            break
        time.sleep(0.1)
    if proc.returncode != 0 or not answered:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        why = detail[-1] if detail else f"exit status {proc.returncode}, no answer on {pipe_dir}"
        say(f"MPS: not started: {why} (no rights, another user's daemon, or the GPU's compute mode); run {hint}")
        return None
    previous = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # Ray and its trial processes, started from here on, inherit it
    message = (f"MPS: started {CONTROL} (pipe {pipe_dir}, log {log_dir}): trials sharing a GPU run side by side; "
               "stopped when the sweep ends")
    say(message)
    return MPSHandle(pipe_dir, log_dir, message, previous)
