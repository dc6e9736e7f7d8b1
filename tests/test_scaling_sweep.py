"""The scaling study's smoke preset end to end on CPU: a sweep of several DDP trials (real Ray Train,
Gloo), one MLflow child run each, a skipped NCCL variant, every figure, regenerated from MLflow."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, run_script
from fake_datasets import make_mnist

FIGURES = ["throughput_vs_learners.png", "training_time_vs_learners.png", "cost_vs_learners.png",
           "efficiency_vs_learners.png", "allreduce_comparison.png"]


@pytest.mark.slow
def test_scaling_smoke_end_to_end(tmp_path):
    make_mnist(tmp_path / "data", "FashionMNIST", n_train=256, n_test=128, learnable=True)
    proc = run_script([str(ROOT / "sweeps" / "scaling.py"), "--preset", "smoke", "--results-dir", "res",
                       "--set", f"data_dir={tmp_path / 'data'}"], cwd=tmp_path, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parent_id = next(l for l in proc.stdout.splitlines() if l.startswith("regenerate")).split("--parent-run ")[1].split()[0]
    client = MlflowClient(f"sqlite:///{tmp_path / 'res' / 'mlflow.db'}")
    parent = client.get_run(parent_id)
    children = client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'")
    by_job = {c.data.params["job"]: c for c in children}
    assert sorted(by_job) == sorted(["strong-1", "strong-2", "weak-2", "hook-fp16-2", "backend-nccl-2"])  # exactly one run per trial
    assert by_job["backend-nccl-2"].data.tags["trial_status"] == "skipped"
    for job, run in by_job.items():
        if job == "backend-nccl-2":
            continue
        assert run.data.tags["trial_status"] == "finished", job
        assert run.data.params["ddp.workers"] == job[-1] and run.data.params["ddp.backend"] == "gloo"
        assert run.data.metrics["ddp/replicas_identical"] == 1.0
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss")) == [1, 2]
    assert by_job["hook-fp16-2"].data.params["ddp.comm_hook"] == "fp16"
    assert by_job["strong-2"].data.params["batch_per_worker"] == "16"  # global 32 split over 2
    assert by_job["weak-2"].data.params["batch_per_worker"] == "32"
    assert "skipped: NCCL needs GPUs" in proc.stdout and "E(N)" in proc.stdout
    figures = tmp_path / "res" / "scaling"
    for name in FIGURES:
        assert (figures / name).stat().st_size > 5000, name
        (figures / name).unlink()
    regen = run_script(["-m", "analysis", "scaling", "--parent-run", parent_id, "--results-dir", "res"],
                       cwd=tmp_path)
    assert regen.returncode == 0, regen.stderr[-2000:]
    for name in FIGURES:
        assert (figures / name).stat().st_size > 5000, name
