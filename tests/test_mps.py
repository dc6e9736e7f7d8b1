"""trainables/runtime/mps.py and cluster.yaml's MPS line, against stand-ins for nvidia-smi and
nvidia-cuda-mps-control (CI has no GPU): what is started, with which folders, and the one line said when not.

The stand-in daemon keeps its state in a file per pipe folder under $FAKE_MPS_STATE and answers as the real
client does: `-d` starts it (or fails, with FAKE_MPS_DENY set), `get_server_list` answers only while it runs,
`quit` stops it, and with no daemon the client says "Cannot find MPS control daemon process" and fails.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest
import yaml

from conftest import ROOT
from trainables.runtime import mps

FAKE_SMI = "#!/bin/bash\necho 'GPU 0: NVIDIA H200 (UUID: GPU-00000000-fake)'\n"
FAKE_CONTROL = r"""#!/bin/bash
pipe="${CUDA_MPS_PIPE_DIRECTORY:-/tmp/nvidia-mps}"
state="$FAKE_MPS_STATE/daemon${pipe//\//_}"
echo "$* pipe=$pipe log=${CUDA_MPS_LOG_DIRECTORY:-}" >> "$FAKE_MPS_STATE/calls"
if [ "$1" = "-d" ]; then
  if [ -n "$FAKE_MPS_DENY" ]; then echo "An error occurred: Operation not permitted" >&2; exit 1; fi
  echo up > "$state"; exit 0
fi
read -r command
if [ ! -f "$state" ] || [ "$(< "$state")" != up ]; then echo "Cannot find MPS control daemon process"; exit 1; fi
if [ "$command" = quit ]; then echo down > "$state"; fi
exit 0
"""


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    """A PATH holding only the stand-ins (`with_gpu`, `with_control` choose which), a temporary folder of our own."""
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("FAKE_MPS_STATE", str(state))
    monkeypatch.delenv("FAKE_MPS_DENY", raising=False)
    monkeypatch.delenv(mps.PIPE_ENV, raising=False)
    monkeypatch.delenv(mps.LOG_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()

    def install(with_gpu=True, with_control=True):
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        for name, text, wanted in (("nvidia-smi", FAKE_SMI, with_gpu), (mps.CONTROL, FAKE_CONTROL, with_control)):
            if wanted:
                (bin_dir / name).write_text(text)
                (bin_dir / name).chmod(0o755)
        monkeypatch.setenv("PATH", str(bin_dir))
        return state
    return install


def test_no_gpu_no_daemon_and_one_line_saying_so(fakes):
    fakes(with_gpu=False)
    lines = []
    assert mps.start_mps(say=lines.append) is None
    assert len(lines) == 1 and "no NVIDIA GPU" in lines[0]


def test_no_control_binary_no_daemon_and_one_line_saying_so(fakes):
    fakes(with_control=False)
    lines = []
    assert mps.start_mps(say=lines.append) is None
    assert len(lines) == 1 and f"{mps.CONTROL} is not on PATH" in lines[0]


def test_starts_the_daemon_in_writable_folders_exports_them_and_stops_it(fakes):
    state = fakes()
    lines = []
    handle = mps.start_mps(say=lines.append)
    assert handle is not None and len(lines) == 1 and lines[0].startswith("MPS: started")
    pipe, log = mps.default_dirs()
    assert (handle.pipe_dir, handle.log_dir) == (pipe, log) and os.path.isdir(pipe) and os.path.isdir(log)
    assert os.environ[mps.PIPE_ENV] == pipe and os.environ[mps.LOG_ENV] == log  # what Ray's processes inherit
    assert handle.env == {mps.PIPE_ENV: pipe, mps.LOG_ENV: log}
    assert f"-d pipe={pipe} log={log}" in (state / "calls").read_text()
    handle.stop(say=lines.append)
    handle.stop(say=lines.append)  # once only
    assert lines[1].startswith("MPS: stopped") and len(lines) == 2
    assert mps.PIPE_ENV not in os.environ and mps.LOG_ENV not in os.environ
    assert mps._control("get_server_list", handle.env) is None  # the daemon is gone


def test_a_running_daemon_is_used_and_left_running(fakes, monkeypatch):
    state = fakes()
    subprocess.run([mps.CONTROL, "-d"], check=True, env={**os.environ, mps.PIPE_ENV: "/tmp/nvidia-mps"})
    lines = []
    assert mps.start_mps(say=lines.append) is None
    assert len(lines) == 1 and "already running" in lines[0] and "/tmp/nvidia-mps" in lines[0]
    assert os.environ[mps.PIPE_ENV] == "/tmp/nvidia-mps"
    assert "quit" not in (state / "calls").read_text() and (state / "daemon_tmp_nvidia-mps").read_text() == "up\n"


def test_without_the_rights_no_daemon_and_the_command_to_ask_for(fakes, monkeypatch):
    fakes()
    monkeypatch.setenv("FAKE_MPS_DENY", "1")
    lines = []
    assert mps.start_mps(say=lines.append) is None
    assert len(lines) == 1 and "Operation not permitted" in lines[0] and f"{mps.CONTROL} -d" in lines[0]
    assert mps.PIPE_ENV not in os.environ


def test_cluster_yaml_starts_mps_on_gpu_workers_before_ray(fakes, tmp_path):
    """Run the worker start command that starts MPS (the others start Ray) with and without a GPU."""
    config = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    commands = config["worker_start_ray_commands"]
    line = next(i for i, c in enumerate(commands) if mps.CONTROL in c)
    assert line < next(i for i, c in enumerate(commands) if "ray start" in c)  # before the trials' processes
    assert "turn MPS off" in (ROOT / "cluster.yaml").read_text()
    state = fakes(with_gpu=False)
    no_gpu = tmp_path / "bin" / "nvidia-smi"
    no_gpu.write_text("#!/bin/bash\necho 'No devices were found'; exit 6\n")  # shadows a real one later on PATH
    no_gpu.chmod(0o755)
    env = {**os.environ, "HOME": str(tmp_path), "PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin"}  # mkdir from the system
    assert subprocess.run(["/bin/bash", "-c", commands[line]], env=env).returncode == 0
    assert not (state / "calls").exists()  # no GPU: nothing started
    no_gpu.unlink()
    state = fakes(with_gpu=True)
    for _ in range(2):  # the second run finds the daemon and leaves it
        assert subprocess.run(["/bin/bash", "-c", commands[line]], env=env).returncode == 0
    calls = (state / "calls").read_text().splitlines()
    assert sum(c.startswith("-d ") for c in calls) == 1 and (tmp_path / "nvidia-mps-log").is_dir()
    assert f"-d pipe=/tmp/nvidia-mps log={tmp_path}/nvidia-mps-log" in calls


def test_a_local_sweep_with_gpu_trials_starts_mps_before_ray_and_stops_it(fakes, tmp_path, clean_env):
    """sweeps/runner.py: a local sweep whose trials hold a GPU starts the daemon before Ray; here Ray finds no GPU
    (CI), so the sweep is refused in one line, exit 2, and the daemon it started is stopped again."""
    import sys

    from conftest import run_script

    state = fakes()
    path = f"{tmp_path / 'bin'}:{os.path.dirname(sys.executable)}:/usr/bin:/bin"
    proc = run_script(["sweeps/staleness.py", "--preset", "smoke", "--gpus-per-trial", "0.5",
                       "--results-dir", str(tmp_path / "results")], cwd=ROOT,
                      env={"PATH": path}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "needs 1 CPUs and 0.5 GPUs" in lines[0] and "MPS" not in lines[0], proc.stderr
    calls = (state / "calls").read_text().splitlines()
    assert sum(c.startswith("-d ") for c in calls) == 1, calls  # started once, before Ray
    daemons = list(state.glob("daemon*"))
    assert daemons and all(f.read_text() == "down\n" for f in daemons)  # and stopped
