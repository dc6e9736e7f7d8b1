"""cluster.yaml's start commands, run for real: a two-node Ray cluster on 127.0.0.1 with token authentication.

The head and worker `ray start` commands are taken out of cluster.yaml itself and adapted for one machine
only where they must be (free ports instead of 6379/8076 and the agents' fixed defaults, a temp dir of the
test's own, CPUs, no AWS autoscaling config); RAY_AUTH_MODE=token stays as written. The token is generated
with `ray get-auth-token --generate` into a temporary HOME (what `file_mounts` puts at ~/.ray/auth_token on
every node): the real ~/.ray of the machine is never read or written. Then:

- the worker joins (2 alive nodes, seen by a client with the token);
- a client with the token submits a smoke sweep as a Ray job (`ray job submit --working-dir`), which
  records to a real `mlflow server` and keeps its Tune state on a real S3 server (tests/servers.py);
- clients without the token, or with a wrong one, are refused by the dashboard (job API) and the GCS.

Every process started here is stopped here: the servers by their PID, the Ray processes (daemonized by
`ray start`, and the job's driver and trial workers) by PID, found by the temporary HOME in their
environment (`ray stop` would stop every Ray process of the user on the machine, not only ours).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import ROOT
from servers import MlflowServer, S3Server, free_port

pytestmark = pytest.mark.slow

CONFIG = yaml.safe_load((ROOT / "cluster.yaml").read_text())
BIN = Path(sys.executable).parent


def _start_command(key: str) -> str:
    (command,) = [c for c in CONFIG[key] if "ray start" in c]
    return command


def _adapt(command: str, ports: dict[str, int], temp_dir: str, cpus: int) -> str:
    """The cluster.yaml command for a second node on the same machine; everything else as written."""
    command = command.replace("--port=6379", f"--port={ports['gcs']}")
    command = command.replace(":6379", f":{ports['gcs']}")  # the worker's --address=$RAY_HEAD_IP:6379
    command = re.sub(r"--object-manager-port=\d+", f"--object-manager-port={ports['object_manager']}", command)
    command = re.sub(r" --autoscaling-config=\S+", "", command)  # the AWS autoscaler: not here
    extra = [f"--temp-dir={temp_dir}", f"--num-cpus={cpus}", "--num-gpus=0", "--node-ip-address=127.0.0.1",
             f"--node-manager-port={ports['node_manager']}", f"--metrics-export-port={ports['metrics']}",
             f"--dashboard-agent-listen-port={ports['agent_http']}",
             f"--dashboard-agent-grpc-port={ports['agent_grpc']}",
             f"--runtime-env-agent-port={ports['runtime_env']}", "--disable-usage-stats"]
    if "--head" in command:
        extra += [f"--dashboard-port={ports['dashboard']}", f"--ray-client-server-port={ports['client']}"]
    return command + " " + " ".join(extra)


def _ports() -> dict[str, int]:
    return {name: free_port() for name in ("gcs", "object_manager", "node_manager", "metrics", "agent_http",
                                           "agent_grpc", "runtime_env", "dashboard", "client")}


def _ours(home: Path) -> set[int]:
    """PIDs of the processes whose environment has our temporary HOME (Ray's daemons, drivers, workers),
    and their descendants (some Ray agents overwrite their environ block with their process title)."""
    needle = f"HOME={home}\0".encode()
    parent: dict[int, int] = {}
    pids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                if needle in (entry / "environ").read_bytes() + b"\0":
                    pids.add(int(entry.name))
            except (OSError, ValueError, IndexError):  # gone, or not ours
                pass
    while True:
        more = {pid for pid, ppid in parent.items() if ppid in pids} - pids
        if not more:
            return pids
        pids |= more


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill_ours(home: Path, grace: float = 5) -> set[int]:
    """SIGTERM, then SIGKILL after `grace`, to our processes (found before the first signal: orphans are
    re-parented once the raylet is gone); returns those still alive (none, normally)."""
    pids = _ours(home)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while any(map(_alive, pids)) and time.monotonic() < deadline:
            time.sleep(0.2)
        pids = {pid for pid in pids if _alive(pid)} | _ours(home)
        if not pids:
            break
    return pids


def _run(args: list[str], env: dict[str, str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout, **kw)


def _start_node(command: str, env: dict[str, str]) -> None:
    r = _run(["bash", "-c", command], env, timeout=100)
    assert r.returncode == 0, f"{command}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"


CONNECT = ("import ray, sys; ray.init(address=sys.argv[1], logging_level='ERROR'); "
           "print('alive', sum(n['Alive'] for n in ray.nodes()))")


def test_cluster_yaml_start_commands_join_with_the_token_and_refuse_without(tmp_path):
    started = time.monotonic()
    home, stranger = tmp_path / "home", tmp_path / "stranger"  # a node's HOME; a client's HOME without a token
    home.mkdir(), stranger.mkdir()
    # One temp dir per node, as on two machines (a shared one makes the worker's runtime-env agent delete the
    # job's working_dir, the driver's cwd, when its trials end); short: socket paths must stay < 108 chars.
    temp_dirs = [tempfile.mkdtemp(prefix="rauth", dir="/tmp") for _ in range(2)]
    s3 = S3Server(tmp_path / "s3")
    tracking = MlflowServer(tmp_path / "mlflow", s3)

    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("RAY_", "MLFLOW_TRACKING", "AWS_")) and k != "HOME"}
    base.update(PATH=f"{BIN}:{base.get('PATH', '')}", RAY_USAGE_STATS_ENABLED="0", MLFLOW_DISABLE_TELEMETRY="true")
    # A node's environment: what ~/.bashrc gives its login shells (cluster.yaml's setup_commands), here.
    node_env = {**base, **s3.env, "HOME": str(home), "MLFLOW_TRACKING_URI": tracking.uri,
                "MLFLOW_S3_ENDPOINT_URL": s3.endpoint, "RAY_HEAD_IP": "127.0.0.1"}
    try:
        # The token, as the user generates it (cluster.yaml's header), at ~/.ray/auth_token of this HOME.
        gen = _run([str(BIN / "ray"), "get-auth-token", "--generate"], node_env)
        assert gen.returncode == 0, gen.stderr
        token = (home / ".ray" / "auth_token").read_text().strip()
        assert token and gen.stdout.strip() == token

        ports = _ports()
        head = _adapt(_start_command("head_start_ray_commands"), ports, temp_dirs[0], cpus=0)  # head: no trials
        assert "RAY_AUTH_MODE=token ray start --head" in head
        _start_node(head, node_env)
        # the worker's ports picked once the head has taken its own
        worker = _adapt(_start_command("worker_start_ray_commands"), _ports() | {"gcs": ports["gcs"]}, temp_dirs[1],
                        cpus=2)
        assert "RAY_AUTH_MODE=token ray start --address" in worker
        _start_node(worker, node_env)

        # The worker joined: a client with the token (RAY_AUTH_MODE=token, ~/.ray/auth_token) sees 2 nodes.
        gcs = f"127.0.0.1:{ports['gcs']}"
        client_env = {**base, "HOME": str(home), "RAY_AUTH_MODE": "token"}
        r = _run([sys.executable, "-c", CONNECT, gcs], client_env)
        assert r.returncode == 0 and "alive 2" in r.stdout, r.stdout + r.stderr[-3000:]

        # Clients without the token are refused: by the dashboard's job API (no token: 401; a wrong one: 403)...
        dashboard = f"http://127.0.0.1:{ports['dashboard']}"
        no_token = {**base, "HOME": str(stranger)}
        r = _run([str(BIN / "ray"), "job", "list", "--address", dashboard], no_token)
        assert r.returncode != 0 and "Unauthorized: Missing authentication token" in r.stdout + r.stderr, \
            r.stdout + r.stderr
        wrong = {**no_token, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "0" * len(token)}
        r = _run([str(BIN / "ray"), "job", "list", "--address", dashboard], wrong)
        assert r.returncode != 0 and "Forbidden: Invalid authentication token" in r.stdout + r.stderr, \
            r.stdout + r.stderr
        # ... and by the GCS (a driver or `ray status` joining the cluster).
        r = _run([sys.executable, "-c", CONNECT, gcs], no_token)
        assert r.returncode != 0 and "AuthenticationError" in r.stderr and "alive" not in r.stdout, \
            r.stdout + r.stderr[-3000:]
        print("token-less ray.init:", next(l for l in r.stderr.splitlines() if "AuthenticationError" in l))

        # A client with the token submits a smoke sweep as a Ray job; it records to the tracking server and
        # keeps its Tune state on the S3 server.
        # The servers start only now: started alongside Ray on 2 cores, the worker once missed Ray's fixed 30 s
        # start-up limit ("The current node timed out during startup").
        s3.start()
        tracking.start()
        submit = [str(BIN / "ray"), "job", "submit", "--address", dashboard, "--working-dir", str(ROOT),
                  "--",
                  "python", "sweeps/depth_width.py", "--preset", "smoke", "--address", "auto",
                  "--storage", "s3://sweeps/auth", "--results-dir", str(tmp_path / "res")]
        r = _run(submit, client_env, timeout=180, cwd=tmp_path)
        assert r.returncode == 0 and "succeeded" in r.stdout, r.stdout[-4000:] + r.stderr[-3000:]

        client = MlflowClient(tracking.uri)
        experiment = client.get_experiment_by_name("depth_width")
        (parent,) = client.search_runs([experiment.experiment_id], "tags.`sweep.parent` = '1'")
        children = client.search_runs([experiment.experiment_id],
                                      f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
        assert parent.info.status == "FINISHED"
        assert sorted(c.data.params["widths"] for c in children) == ["16", "16-16-16", "32-16"]
        assert all(c.info.status == "FINISHED" for c in children)
        experiment_path = parent.data.tags["ray_experiment_path"]
        assert experiment_path.startswith("s3://sweeps/auth/depth_width-")
        names = [k.rsplit("/", 1)[-1] for k in s3.keys(experiment_path.removeprefix("s3://sweeps/"))]
        assert "tuner.pkl" in names and any(n.startswith("experiment_state-") for n in names)
        assert names.count("state.pt") == 3  # a checkpoint per trial, uploaded from the worker node
    finally:
        survivors = _kill_ours(home)
        tracking.stop()
        s3.stop()
        for temp_dir in temp_dirs:
            shutil.rmtree(temp_dir, ignore_errors=True)
    assert not survivors, f"processes of the test survived: {survivors}"
    print(f"cluster auth test: {time.monotonic() - started:.1f} s")
