"""Benchmark of data-parallel trials on CPU (Gloo): scaling from 1 to 2 workers and the start-up cost.

    python bench/ddp.py            # ~3 min on a 2-core CPU

Runs the scaling study's runner path for real (a Ray Tune trial that launches a Ray Train
TorchTrainer per job, one job at a time) with LeNet-5 on a synthesized FashionMNIST of 4096
images in the real idx format, 3 epochs:
- weak scaling: 64 images per worker, 1 and 2 workers -> throughput ratio X(2)/X(1) and the
  efficiency E(2) = X(2) / (2 X(1));
- strong scaling: a global batch of 64 split over 2 workers, against 1 worker;
- the fixed cost of a DDP trial: the trial's MLflow run duration (driver side, from start to
  close) minus its training time, i.e. worker-group start-up, process group, evaluation and
  teardown.
Throughput is `perf/steady_images_per_s` (epochs after the first). On a 2-core machine the
2-worker jobs share the cores, so this measures DDP's overheads, not a speed-up.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from mlflow.tracking import MlflowClient  # noqa: E402

from analysis.records import load_sweep  # noqa: E402
from fake_datasets import make_mnist  # noqa: E402
from sweeps import scaling  # noqa: E402
from sweeps.runner import main  # noqa: E402
from sweeps.study import Preset  # noqa: E402


def run(tmp: Path):
    make_mnist(tmp / "data", "FashionMNIST", n_train=4096, n_test=256, learnable=True)
    preset = Preset("bench", config={"model": "lenet5", "epochs": 3, "global_batch": 64, "worker_batch": 64,
                                     "lr": 0.1},
                    space={"job": ["weak-1", "weak-2", "strong-2"]})
    study = dataclasses.replace(scaling.STUDY, presets={"bench": preset}, default_preset="bench")
    assert main(study, ["--results-dir", str(tmp / "res"), "--data-dir", str(tmp / "data"),
                        "--checkpoint-every", "0"]) == 0
    sweep = load_sweep("scaling", tracking_uri=f"sqlite:///{tmp / 'res' / 'mlflow.db'}")
    client = MlflowClient(sweep.tracking_uri)
    rows = {}
    for _, row in sweep.runs.iterrows():
        info = client.get_run(row["run_id"]).info
        rows[row["job"]] = {"images_per_s": row["perf/steady_images_per_s"], "train_s": row["time/train_s"],
                            "run_s": (info.end_time - info.start_time) / 1000}
    return rows


def main_bench() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(Path(tmp))
    x1, x2w, x2s = (rows[j]["images_per_s"] for j in ("weak-1", "weak-2", "strong-2"))
    print("DDP on CPU (Gloo), LeNet-5, 4096 images, 3 epochs, one job at a time")
    print(f"  {'job':<9} {'images/s':>9} {'train s':>8} {'trial s':>8} {'fixed s':>8}")
    for job, r in rows.items():
        print(f"  {job:<9} {r['images_per_s']:>9.0f} {r['train_s']:>8.1f} {r['run_s']:>8.1f} "
              f"{r['run_s'] - r['train_s']:>8.1f}")
    print(f"  weak scaling 1 -> 2 workers: X(2)/X(1) = {x2w / x1:.2f}, efficiency E(2) = {x2w / (2 * x1):.2f}")
    print(f"  strong scaling 1 -> 2 workers (global batch 64): X(2)/X(1) = {x2s / x1:.2f}")
    fixed = [r["run_s"] - r["train_s"] for r in rows.values()]
    print(f"  fixed cost of a DDP trial (run duration - training): {min(fixed):.1f}-{max(fixed):.1f} s")


if __name__ == "__main__":
    main_bench()
