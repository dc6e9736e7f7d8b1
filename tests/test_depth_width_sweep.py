"""The depth-vs-width study end to end: real Ray, real MLflow (SQLite), real training."""

from __future__ import annotations

import dataclasses

import pytest
from mlflow.tracking import MlflowClient

from analysis.records import load_sweep, trial_artifact
from conftest import ROOT, run_script

SCRIPT = str(ROOT / "sweeps" / "depth_width.py")
FIGURES = ["rmse_vs_hidden_units.png", "rmse_vs_params.png", "train_time_vs_params.png"]


def _children(results, parent_id):
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    parent = client.get_run(parent_id)
    return client, parent, client.search_runs([parent.info.experiment_id],
                                              f"tags.`mlflow.parentRunId` = '{parent_id}'")


def _parent_id(stdout: str) -> str:
    line = next(l for l in stdout.splitlines() if l.startswith("regenerate the figures"))
    return line.split("--parent-run ")[1].split()[0]


@pytest.mark.slow
def test_smoke_grid_end_to_end_and_regeneration(tmp_path):
    proc = run_script([SCRIPT, "--preset", "smoke", "--set", "seeds=2", "--results-dir", "res"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = tmp_path / "res"
    parent_id = _parent_id(proc.stdout)
    client, parent, children = _children(results, parent_id)
    assert parent.data.tags["sweep.parent"] == "1" and parent.data.tags["preset"] == "smoke"
    assert parent.data.tags["search"] == "grid" and parent.data.tags["scheduler"] == "fifo"
    assert len(parent.data.tags["git_commit"]) >= 7 and parent.data.tags["version.torch"]
    assert parent.info.status == "FINISHED"
    # 3 networks, each one population trial of 2 replicate seeds: one child run per network
    assert sorted((c.data.params["widths"], c.data.params["seed"], c.data.params["seeds"]) for c in children) == [
        (w, "0", "2") for w in ["16", "16-16-16", "32-16"]]
    for child in children:
        # each replica's final metrics (an artifact) and the mean/std over them (metrics)
        replicas = trial_artifact(f"sqlite:///{results / 'mlflow.db'}", child.info.run_id, "replicas.csv")
        assert list(replicas["seed"]) == [0, 1] and replicas["test/rmse"].notna().all()
        assert replicas["test/rmse"].iloc[0] != replicas["test/rmse"].iloc[1]  # different seeds, different nets
        assert child.data.metrics["test/rmse"] == pytest.approx(replicas["test/rmse"].mean())
        assert child.data.metrics["test/rmse_std"] == pytest.approx(replicas["test/rmse"].std())
        assert [m.step for m in client.get_metric_history(child.info.run_id, "train/lr")] == [1, 2, 3]
        params = child.data.params
        assert {"n_layers", "widths", "total_units", "n_params", "lr", "momentum", "epochs"} <= set(params)
        assert int(params["n_layers"]) == len(params["widths"].split("-"))
        assert child.data.tags["trial_status"] == "finished" and child.info.status == "FINISHED"
        history = client.get_metric_history(child.info.run_id, "test/rmse")
        assert sorted(m.step for m in history) == [1, 2, 3]  # one point per epoch, epoch as step
        for key in ("train/loss", "time/epoch_s", "time/train_s", "diverged"):
            assert len(client.get_metric_history(child.info.run_id, key)) == 3
    figures = results / "depth_width"
    for name in FIGURES:
        assert (figures / name).stat().st_size > 5000
    artifacts = {a.path for a in client.list_artifacts(parent_id, "figures")}
    assert {f"figures/{name}" for name in FIGURES} <= artifacts
    assert "best network per depth" in proc.stdout and "mlflow ui --backend-store-uri" in proc.stdout

    # The figures come back from the MLflow records alone, in a separate process.
    for name in FIGURES:
        (figures / name).unlink()
    regen = run_script(["-m", "analysis", "depth_width", "--parent-run", parent_id, "--results-dir", "res"],
                       cwd=tmp_path)
    assert regen.returncode == 0, regen.stderr[-2000:]
    for name in FIGURES:
        assert (figures / name).stat().st_size > 5000


@pytest.mark.slow
def test_smoke_optuna_asha(tmp_path):
    proc = run_script([SCRIPT, "--preset", "smoke", "--search", "optuna", "--scheduler", "asha",
                       "--num-samples", "4", "--set", "epochs=9", "--results-dir", "res"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parent_id = _parent_id(proc.stdout)
    client, parent, children = _children(tmp_path / "res", parent_id)
    assert parent.data.tags["search"] == "optuna" and parent.data.tags["scheduler"] == "asha"
    assert len(children) == 4
    statuses = {c.data.tags["trial_status"] for c in children}
    assert statuses <= {"finished", "stopped"} and "finished" in statuses
    for child in children:
        stopped_at = int(child.data.tags["stopped_at_epoch"])
        steps = [m.step for m in client.get_metric_history(child.info.run_id, "test/rmse")]
        assert max(steps) == stopped_at and len(steps) == len(set(steps))
        assert (stopped_at < 9) == (child.data.tags["trial_status"] == "stopped")
    for name in FIGURES:
        assert (tmp_path / "res" / "depth_width" / name).stat().st_size > 5000


@pytest.mark.slow
def test_diverging_trial_is_recorded_and_the_sweep_goes_on(tmp_path, clean_env, monkeypatch):
    from sweeps import depth_width
    from sweeps.runner import main
    from sweeps.study import Preset

    monkeypatch.chdir(tmp_path)
    study = dataclasses.replace(depth_width.STUDY, presets={
        "smoke": Preset("two learning rates, one diverging", config={"n_points": 2000, "epochs": 4},
                        space={"widths": ["256-128-128"], "lr": [0.01, 1e4]}),
    }, default_preset="smoke")
    assert main(study, ["--results-dir", str(tmp_path / "res"), "--max-concurrent", "1"]) == 0
    sweep = load_sweep("depth_width", tracking_uri=f"sqlite:///{tmp_path / 'res' / 'mlflow.db'}")
    runs = sweep.runs.set_index("lr")
    assert runs.loc[1e4, "trial_status"] == "diverged" and runs.loc[1e4, "diverged"] == 1
    assert runs.loc[0.01, "trial_status"] == "finished" and runs.loc[0.01, "diverged"] == 0
    assert (tmp_path / "res" / "depth_width" / "rmse_vs_params.png").exists()
