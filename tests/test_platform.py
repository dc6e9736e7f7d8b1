"""The study platform end to end (real Ray, real MLflow on SQLite): one-shot trials, per-trial artifacts,
an analysis-only step reading another sweep, metric keys without a namespace; and the recorder writing
artifacts once across a driver restart."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from analysis.records import load_sweep, trial_artifact
from analysis.report import render
from conftest import ROOT, run_script
from sweeps.recording import MLflowRecorder
from trainables.artifacts import ARTIFACTS_KEY, decode, encode_all

SCRIPT = str(ROOT / "tests" / "toy_fit_study.py")


def _parent_id(stdout: str) -> str:
    line = next(l for l in stdout.splitlines() if l.startswith("regenerate the figures"))
    return line.split("--parent-run ")[1].split()[0]


@pytest.mark.slow
def test_one_shot_trials_artifacts_and_an_analysis_only_step(tmp_path):
    env = {"PYTHONPATH": str(ROOT / "tests")}
    proc = run_script([SCRIPT, "--results-dir", "res"], cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    uri = f"sqlite:///{tmp_path / 'res' / 'mlflow.db'}"
    client = MlflowClient(uri)
    sweep = load_sweep("toy_fit", _parent_id(proc.stdout), uri)
    runs = sweep.runs
    assert len(runs) == 2 and set(runs["trial_status"]) == {"finished"}  # one-shot: finished, no epoch count
    assert "epochs" not in runs
    for run_id in runs["run_id"]:
        # reported once: every metric has exactly one value, at step 1; a key without "/" is recorded too
        for key in ("fit/slope", "fit/rmse", "lr", "diverged"):
            assert [m.step for m in client.get_metric_history(run_id, key)] == [1], key
        names = {a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id, "data")}
        assert {"residuals.npy", "fit.json", "data/points.csv"} <= names
        residuals = trial_artifact(uri, run_id, "residuals.npy")
        points = trial_artifact(uri, run_id, "data/points.csv")
        slope = trial_artifact(uri, run_id, "fit.json")["slope"]
        assert residuals.shape == (50,) and list(points.columns) == ["x", "y"]
        intercept = client.get_run(run_id).data.metrics["fit/intercept"]
        np.testing.assert_allclose(points["y"] - (slope * points["x"] + intercept), residuals, atol=1e-9)
    assert (tmp_path / "res" / "toy_fit" / "fit_points.png").exists()
    # figures drawn from the artifacts alone (what `python -m analysis STUDY` does)
    (tmp_path / "res" / "toy_fit" / "fit_points.png").unlink()
    import toy_fit_study  # noqa: E402  (tests/ is on sys.path under pytest)

    sweep.runs.attrs.update(tracking_uri=uri, parent_run_id=sweep.parent_run_id)
    render(sweep, toy_fit_study.figures, tmp_path / "res" / "toy_fit")
    assert (tmp_path / "res" / "toy_fit" / "fit_points.png").stat().st_size > 1000

    # ASHA has nothing to stop in a one-shot study: one line, exit 2
    bad = run_script([SCRIPT, "--results-dir", "res", "--scheduler", "asha"], cwd=tmp_path, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "one-shot" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1

    # The analysis-only step: trains nothing, reads the latest sweep, records its fit on a parent run
    fit = run_script([SCRIPT, "--preset", "fit", "--results-dir", "res"], cwd=tmp_path, env=env)
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "analysis only" in fit.stdout
    parent = client.get_run(_parent_id(fit.stdout))
    assert parent.data.tags["analysis_only"] == "1" and parent.data.tags["source_run"] == sweep.parent_run_id
    assert parent.data.metrics["mean_slope"] == pytest.approx(runs["fit/slope"].mean())
    assert parent.data.metrics["trials"] == 2 and parent.data.params["method"] == "mean"
    assert len(trial_artifact(uri, parent.info.run_id, "fits/slopes.csv")) == 2
    assert load_sweep("toy_fit", parent.info.run_id, uri).runs.empty  # no trials
    assert (tmp_path / "res" / "toy_fit" / "slopes.png").exists()
    # --from-run names the sweep to read; a trial's run or an unknown ID is refused before anything is created
    again = run_script([SCRIPT, "--preset", "fit", "--results-dir", "res", "--from-run", sweep.parent_run_id],
                       cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    for wrong in (runs["run_id"].iloc[0], "0" * 32):
        bad = run_script([SCRIPT, "--preset", "fit", "--results-dir", "res", "--from-run", wrong], cwd=tmp_path, env=env)
        assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    experiment = client.get_experiment_by_name("toy_fit")
    parents = client.search_runs([experiment.experiment_id], "tags.`sweep.parent` = '1'")
    assert len(parents) == 3  # the sweep and two analysis steps; the refused ones created nothing


def test_artifacts_round_trip_through_their_encoding():
    import pandas as pd
    import torch

    values = {"a.npy": torch.arange(6.0).reshape(2, 3), "t.csv": pd.DataFrame({"x": [1, 2]}),
              "v.json": {"k": [1, 2.5]}, "note.txt": "hello", "raw.bin": b"\x00\x01"}
    encoded = encode_all(values)
    np.testing.assert_array_equal(decode("a.npy", encoded["a.npy"]), np.arange(6.0).reshape(2, 3))
    assert decode("t.csv", encoded["t.csv"]).equals(values["t.csv"])
    assert decode("v.json", encoded["v.json"]) == {"k": [1, 2.5]}
    assert decode("note.txt", encoded["note.txt"]) == "hello" and decode("raw.bin", encoded["raw.bin"]) == b"\x00\x01"
    with pytest.raises(TypeError, match="bad.pkl"):
        encode_all({"bad.pkl": object()})


def test_recorder_writes_artifacts_once_across_a_restored_driver(tmp_path):
    """A resumed sweep replays a trial's epochs since its checkpoint: metrics and artifacts already in MLflow are
    not written again; later ones are."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("s", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(experiment, tags={"sweep.parent": "1"}).info.run_id
    from conftest import sweep_plan
    from sweeps import depth_width

    plan = sweep_plan(depth_width.STUDY, ["--preset", "smoke", "--set", "epochs=3"])
    trial = SimpleNamespace(trial_id="t1", config={"widths": "16"}, last_result={})

    def result(epoch):
        return {"epoch": epoch, "diverged": 0, "train/loss": 1.0 / epoch, "training_iteration": epoch,
                ARTIFACTS_KEY: encode_all({f"hist/epoch{epoch}.npy": np.full(3, epoch), "latest.json": {"epoch": epoch}})}

    first = MLflowRecorder(uri, experiment, parent, plan)
    first.on_trial_start(0, [trial], trial)
    for epoch in (1, 2):
        first.on_trial_result(0, [trial], trial, result(epoch))
    first.on_checkpoint(0, [trial], trial, None)  # written up to epoch 2; then the driver dies

    second = MLflowRecorder(uri, experiment, parent, plan)  # the resumed driver
    second.on_trial_start(0, [trial], trial)
    for epoch in (2, 3):  # epoch 2 is replayed from the checkpoint
        second.on_trial_result(0, [trial], trial, result(epoch))
    trial.last_result = result(3)
    second.on_trial_complete(0, [trial], trial)

    run_id = client.search_runs([experiment], "tags.`ray.trial_id` = 't1'")[0].info.run_id
    assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == [1, 2, 3]
    assert sorted(a.path for a in client.list_artifacts(run_id, "hist")) == [f"hist/epoch{e}.npy" for e in (1, 2, 3)]
    assert trial_artifact(uri, run_id, "latest.json") == {"epoch": 3}
    np.testing.assert_array_equal(trial_artifact(uri, run_id, "hist/epoch2.npy"), [2, 2, 2])
    run = client.get_run(run_id)
    assert run.data.tags["trial_status"] == "finished" and run.info.run_name == "widths=16"
    assert run.data.params["widths"] == "16" and run.data.params["epochs"] == "3"  # the trial's whole config
