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
    assert sorted(by_job) == sorted(["strong-1", "strong-2", "weak-2", "hook-powersgd-2", "backend-nccl-2"])  # exactly one run per trial
    assert by_job["backend-nccl-2"].data.tags["trial_status"] == "skipped"
    for job, run in by_job.items():
        if job == "backend-nccl-2":
            continue
        assert run.data.tags["trial_status"] == "finished", job
        assert run.data.params["ddp.workers"] == job[-1] and run.data.params["ddp.backend"] == "gloo"
        assert run.data.metrics["ddp/replicas_identical"] == 1.0
        assert sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss")) == [1, 2]
    assert by_job["hook-powersgd-2"].data.params["ddp.comm_hook"] == "powersgd"  # compressed in epoch 2
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


def test_allreduce_comparison_marks_failed_and_skipped_variants(tmp_path):
    """A comparison job that failed (a crashed rank) or was skipped keeps its place in the figure
    and the summary, with the reason, instead of silently disappearing."""
    import pandas as pd

    from analysis.studies import scaling
    from sweeps.scaling import parse_job

    def run(job: str, status: str, throughput: float | None) -> dict:
        j = parse_job(job)
        return {"job": job, "mode": j.mode, "workers": j.workers, "variant": j.variant, "trial_status": status,
                scaling.THROUGHPUT: throughput, "ddp.gpus_per_worker": 0.0, "price_per_gpu_hour": 3.06,
                "priced_instance": "p3.2xlarge", "time/train_s": 10.0, "time/iter_s": 0.1, "epochs": 2,
                "batch_per_worker": 32, "worker_batch": 32, "test/accuracy": 0.5, "model": "lenet5",
                "dataset": "fashion_mnist"}

    runs = pd.DataFrame([run("strong-1", "finished", 100.0), run("weak-2", "finished", 180.0),
                         run("hook-fp16-2", "finished", 170.0), run("hook-powersgd-2", "error", None),
                         run("backend-nccl-2", "skipped", None)])
    rows, notes = scaling.comparison(runs, scaling.jobs(runs))
    # weak-1 is strong-1 here (same batch per worker), so the default all-reduce has N=1 and N=2
    assert sorted(zip(rows["variant"], rows["workers"])) == [("allreduce", 1), ("allreduce", 2), ("fp16", 2)]
    assert notes == ["powersgd at N=2 failed: see the trial's error in MLflow",
                     "nccl at N=2 skipped: NCCL needs GPUs (none given)"]
    assert "powersgd at N=2 failed" in scaling.summary(runs)
    paths = scaling.figures(runs, tmp_path)
    assert [p.name for p in paths] == FIGURES and all(p.stat().st_size > 5000 for p in paths)
    # a sweep of comparison jobs only (`--set job=hook-powersgd-2`): no N=1 job, so no efficiency to draw
    only_hooks = runs[runs["job"].isin(["hook-fp16-2", "hook-powersgd-2"])]
    assert len(scaling.figures(only_hooks, tmp_path / "hooks")) == len(FIGURES)
    assert "hook-fp16-2" in scaling.summary(only_hooks)
