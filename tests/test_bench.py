"""The benchmarks still run (a functional check at toy sizes; their numbers are never asserted)."""

from __future__ import annotations

from conftest import ROOT, run_script


def test_gpu_resnet50_bench_runs_both_variants_on_cpu(tmp_path):
    proc = run_script([str(ROOT / "bench" / "gpu_resnet50.py"), "--device", "cpu", "--batch", "4", "--steps", "1",
                       "--repeats", "1"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line.split() for line in proc.stdout.splitlines() if "fp32, NCHW" in line or "AMP + channels_last" in line]
    assert len(rows) == 2 and rows[0][-3] == "1.00x" and rows[1][-1] == "n/a"  # no known peak on a CPU
    assert float(rows[1][-4]) > 0  # images/s


def test_gpu_resnet50_bench_refuses_cuda_without_a_gpu(tmp_path):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: --device cuda is valid here")
    proc = run_script([str(ROOT / "bench" / "gpu_resnet50.py"), "--device", "cuda"], cwd=tmp_path)
    assert proc.returncode != 0 and "no CUDA device" in proc.stderr


def test_population_models_bench_times_both_ways(tmp_path):
    proc = run_script([str(ROOT / "bench" / "population_models.py"), "--smoke"], cwd=tmp_path,
                      env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if "separate/fused" in line]
    assert len(rows) == 2 and all(float(r.split()[-1].rstrip("x")) > 0 for r in rows)


def test_transfer_features_bench_times_the_three_paths(tmp_path):
    proc = run_script([str(ROOT / "bench" / "transfer_features.py"), "--smoke"], cwd=tmp_path,
                      env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line[:28].strip(): line[28:].split() for line in proc.stdout.splitlines()
            if line.startswith(("fine-tuning", "feature extractor")) and ":" not in line}
    assert set(rows) == {"fine-tuning", "feature extractor", "feature extractor, cached"}
    assert float(rows["feature extractor, cached"][1]) > 0 and float(rows["feature extractor"][1]) == 0  # extraction
    assert "cached features vs plain feature extractor: " in proc.stdout
