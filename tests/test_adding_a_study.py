"""README's "Adding a study", done as it says: a throwaway image study in its files (tests/toy_image_study.py for
sweeps/<study>.py, tests/toy_image_figures.py for analysis/studies/<study>.py, this test) runs its smoke preset end
to end on the shared image loop: real Ray, real MLflow, mnist5k's real digits."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, run_script


@pytest.mark.slow
def test_a_new_image_study_runs_its_smoke_preset(tmp_path):
    proc = run_script([str(ROOT / "tests" / "toy_image_study.py"), "--results-dir", "res"], cwd=tmp_path,
                      env={"PYTHONPATH": str(ROOT / "tests")}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best smoothing" in proc.stdout and "cost: 2 trials" in proc.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'res' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("toy_image").experiment_id
    children = client.search_runs([experiment], "tags.`mlflow.parentRunId` != ''")
    assert sorted(c.info.run_name for c in children) == ["smoothing=0", "smoothing=0.1"]
    for child in children:
        params = child.data.params
        assert params["dataset"] == "mnist5k" and params["model"] == "lenet5"  # the study's defaults
        assert float(params["decay_from_smoothing"]) == pytest.approx(1e-3 * float(params["smoothing"]))
        assert int(params["macs_per_sample"]) > int(params["n_params"]) > 10_000  # the loop's own params
        assert child.data.tags["trial_status"] == "finished" and child.data.metrics["test/accuracy"] > 0.5
    assert (tmp_path / "res" / "toy_image" / "accuracy_vs_smoothing.png").exists()
    assert (tmp_path / "res" / "toy_image" / "report.html").exists()
