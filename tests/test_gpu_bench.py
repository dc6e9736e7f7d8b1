"""bench/gpu.py runs (on the CPU, --smoke: tiny sizes, capture emulated, no MPS) and prints its one table; its
numbers are never asserted here (they are measured on a GPU)."""

from __future__ import annotations

import json

from conftest import ROOT, run_script


def test_gpu_bench_smoke_runs_every_section_and_prints_one_table(tmp_path):
    proc = run_script([str(ROOT / "bench" / "gpu.py"), "--smoke", "--json", "out.json"], cwd=tmp_path,
                      env={"PYTHONPATH": str(ROOT)}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = proc.stdout[proc.stdout.rindex("bench/gpu.py on cpu"):].splitlines()
    assert "FAILED" not in proc.stdout
    sections = {line.split()[0] for line in table[2:] if line and not line.startswith(("targets", "section"))}
    assert sections == {"check", "depth_width", "packing", "resnet44", "batch_augment", "resnet50", "dying_relu"}
    results = json.loads((tmp_path / "out.json").read_text())["results"]
    check = results["check"]
    assert check["depth_width cosine, lr recapture"]["max_rel"] == 0.0  # emulated capture: the eager arithmetic
    assert check["depth_width cosine, lr tensor"]["max_rel"] < 1e-5
    runs = {k: r for k, r in results["packing"].items() if k != "section_s"}
    assert set(runs) == {"1 procs, no MPS, captured", "2 procs, no MPS, captured"}  # timed, not asserted
    assert all(set(r) >= {"net_epochs_per_s", "paper_preset_min", "overlapping"} for r in runs.values())


def test_gpu_bench_refuses_to_run_without_a_gpu_unless_smoke(tmp_path):
    import pytest
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    proc = run_script([str(ROOT / "bench" / "gpu.py"), "--only", "depth_width"], cwd=tmp_path,
                      env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode != 0 and "--smoke" in proc.stderr
