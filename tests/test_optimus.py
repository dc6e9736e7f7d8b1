"""The Optimus study: Eq. 1 fits, the regression on depth and device from a tiny real MLflow store, the
analysis-only `fit` preset, and the smoke sweep end to end (real Ray, fake CIFAR-10)."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from analysis.studies import optimus
from analysis.loss_curves import fit_loss_curve, loss_model

FIGURES = ("fits.png", "prediction.png", "loss_to_accuracy.png", "time_to_accuracy.png")
# The generating law of the tiny store: log(b + EPS) = a + c * depth + g[device], per coefficient.
LAW = {"b0": (math.log(0.5), -0.01), "b1": (math.log(1.0), -0.005), "b2": (math.log(0.06), 0.004)}
OFFSET = {"cpu": 0.0, "NVIDIA H100": 0.2}  # on b0 only
DEPTHS = {"cifar_resnet18": 18, "resnet20": 20, "resnet32": 32, "resnet44": 44, "cifar_resnet50": 50}


def true_coefficients(depth: int, device: str) -> dict[str, float]:
    b = {c: math.exp(a + s * depth) - optimus.EPS for c, (a, s) in LAW.items()}
    b["b0"] = math.exp(LAW["b0"][0] + LAW["b0"][1] * depth + OFFSET[device]) - optimus.EPS
    return b


def accuracy_of(loss: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - 0.5 * loss, 0, 1)  # monotone: 92% at loss 0.16


def test_fit_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    k = np.arange(1, 201)
    loss = loss_model(k, 0.05, 0.8, 0.2) + rng.normal(0, 0.003, len(k))
    fit = fit_loss_curve(k, loss)
    assert fit.b0 == pytest.approx(0.05, rel=0.1) and fit.b1 == pytest.approx(0.8, rel=0.15)
    assert fit.b2 == pytest.approx(0.2, abs=0.01) and fit.r2 > 0.99


def test_isotonic_mapping_and_goal_loss():
    loss, acc = optimus.isotonic_decreasing(np.array([0.1, 0.3, 0.2, 0.5]), np.array([0.95, 0.90, 0.85, 0.5]))
    assert list(loss) == [0.1, 0.2, 0.3, 0.5] and np.all(np.diff(acc) <= 0)
    assert acc[1] == acc[2] == pytest.approx(0.875)  # the violating pair pooled
    assert optimus.loss_for_accuracy(loss, acc, 0.9) == pytest.approx(0.1 + (0.05 / 0.075) * 0.1)
    assert math.isnan(optimus.loss_for_accuracy(loss, acc, 0.99))


def test_speed_model_matches_eq4():
    t = (0.0045, 0.397, 0.543, 0.0, 0.0)
    assert optimus.speed(2, 4, t, 32) == pytest.approx(1 / (0.0045 * 32 / 4 + 0.397 + 0.543 * 4 / 2))


def test_speed_fit_recovers_known_coefficients():
    """Eq. 4 fitted to (p, w) speeds generated from known t (plus 1% noise) gives t back."""
    rng = np.random.default_rng(1)
    truth = (0.004, 0.35, 0.5, 0.01, 0.02)
    p, w = (a.ravel() for a in np.meshgrid(np.arange(1, 9), np.arange(1, 13)))
    measured = optimus.speed(p, w, truth, 32) * (1 + rng.normal(0, 0.01, len(p)))
    t, r2 = optimus.fit_speed_model(pd.DataFrame({"p": p, "w": w, "steps_per_s": measured}), 32)
    assert r2 > 0.98
    assert t[1] == pytest.approx(0.35, rel=0.1) and t[2] == pytest.approx(0.5, rel=0.1)
    fitted = optimus.speed(p, w, t, 32)
    assert np.abs(fitted / optimus.speed(p, w, truth, 32) - 1).max() < 0.03
    with pytest.raises(ValueError, match="8 or more"):
        optimus.fit_speed_model(pd.DataFrame({"p": [1, 2], "w": [1, 1], "steps_per_s": [0.5, 0.7]}), 32)


def write_tiny_store(uri: str, epochs: int = 60) -> None:
    """A data sweep (and an older one of another preset) of known curves at several depths on two devices."""
    client = MlflowClient(uri)
    experiment = client.create_experiment("optimus")
    old = client.create_run(experiment, tags={"sweep.parent": "1", "preset": "smoke"}).info.run_id
    client.create_run(experiment, tags={"mlflow.parentRunId": old})  # no params: ignored (other preset)
    time.sleep(0.01)
    parent = client.create_run(experiment, tags={"sweep.parent": "1", "preset": "quick"}).info.run_id
    k = np.arange(1, epochs + 1)
    for device in OFFSET:
        for model, depth in DEPTHS.items():
            run = client.create_run(experiment, tags={"mlflow.parentRunId": parent, "trial_status": "finished"})
            run_id = run.info.run_id
            b = true_coefficients(depth, device)
            loss = loss_model(k, b["b0"], b["b1"], b["b2"])
            metrics = [Metric("train/loss", float(v), 0, int(s)) for s, v in zip(k, loss)]
            metrics += [Metric("test/accuracy", float(v), 0, int(s)) for s, v in zip(k, accuracy_of(loss))]
            client.log_batch(run_id, metrics=metrics,
                             params=[Param("model", model), Param("GPU type", device), Param("train_subset", "0")])
            client.set_terminated(run_id)
    client.set_terminated(parent)


def test_regression_and_prediction_on_a_tiny_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    write_tiny_store(uri)
    curves = optimus.collect_curves(uri)
    assert set(curves["device"]) == set(OFFSET) and curves["run_id"].nunique() == 2 * len(DEPTHS)
    result = optimus.run_analysis(curves, goal=0.92)
    values = result.values
    fits = result.tables["fits.csv"]
    assert (fits["r2"] > 0.999).all()
    for device in OFFSET:
        truth = true_coefficients(50, device)
        for c in optimus.COEFFICIENTS:
            assert values[f"predicted/{device}/{c}"] == pytest.approx(truth[c], rel=0.03), (device, c)
        assert values[f"error/{device}/wape_pct"] < 1.0
        # epochs to 92% from the closed form of Eq. 1 at the mapped loss 0.16
        expected = (1 / (0.16 - truth["b2"]) - truth["b1"]) / truth["b0"]
        assert values[f"predicted/{device}/epochs_to_goal"] == pytest.approx(expected, rel=0.05)
    assert values["goal_loss"] == pytest.approx(0.16, abs=0.005)
    speed_table = result.tables["speed.csv"]
    assert set(speed_table["p"]) == {2, 4} and len(speed_table) == 64
    assert np.isfinite(speed_table["hours_to_goal"]).all()


def test_fit_preset_records_on_a_parent_run(tmp_path, clean_env, monkeypatch, capsys):
    from sweeps import optimus as study
    from sweeps.runner import main

    monkeypatch.chdir(tmp_path)
    results = tmp_path / "res"
    results.mkdir()
    uri = f"sqlite:///{results / 'mlflow.db'}"
    write_tiny_store(uri, epochs=20)
    assert main(study.STUDY, ["--preset", "fit", "--results-dir", str(results), "--set", "paleo=false"]) == 0
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("optimus")
    step = client.search_runs([experiment.experiment_id], "tags.analysis_only = '1'")[0]
    assert step.data.metrics["runs_fitted"] == 2 * len(DEPTHS)
    assert "predicted/NVIDIA H100/b0" in step.data.metrics
    artifacts = {a.path for a in client.list_artifacts(step.info.run_id, "optimus")}
    assert {"optimus/fits.csv", "optimus/speed.csv", "optimus/prediction.csv"} <= artifacts
    for name in FIGURES:
        assert (results / "optimus" / name).stat().st_size > 5000, name
    printed = capsys.readouterr().out
    assert "Eq. 1 fitted to 10 runs on NVIDIA H100, cpu" in printed and "error against the real run (WAPE" in printed
    assert "Eq. 4 (config speed_t): fastest to 92%: p = 2:" in printed

    # Eq. 4 fitted to a measured trace instead of the config's coefficients; a bad trace is a one-line exit 2
    p, w = (a.ravel() for a in np.meshgrid([1, 2, 4], [1, 2, 4, 8]))
    trace = pd.DataFrame({"p": p, "w": w, "steps_per_s": optimus.speed(p, w, (0.004, 0.3, 0.5, 0, 0), 32)})
    trace.to_csv(tmp_path / "trace.csv", index=False)
    argv = ["--preset", "fit", "--results-dir", str(results), "--set", "paleo=false"]
    assert main(study.STUDY, [*argv, "--set", f"speed_trace={tmp_path / 'trace.csv'}"]) == 0
    step = client.search_runs([experiment.experiment_id], "tags.analysis_only = '1'",
                              order_by=["attributes.start_time DESC"])[0]
    assert step.data.metrics["speed/fit_r2"] > 0.999
    assert step.data.params["speed/t"].startswith("0.004")
    trace.head(3).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(SystemExit) as exited:
        main(study.STUDY, [*argv, "--set", f"speed_trace={tmp_path / 'short.csv'}"])
    assert exited.value.code == 2
    assert "speed_trace" in capsys.readouterr().err


def test_fit_preset_without_records_exits_2(tmp_path, clean_env, monkeypatch):
    from sweeps import optimus as study
    from sweeps.runner import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(study.STUDY, ["--preset", "fit", "--results-dir", str(tmp_path / "res")])
    assert exited.value.code == 2
    assert not (tmp_path / "res").exists()  # nothing created


def test_paleo_table():
    table, values = optimus.paleo_table()
    by_model = table.set_index("model")
    for name, documented in optimus.TORCHVISION_GMACS.items():  # our hook count vs torchvision's documented MACs
        assert by_model.loc[name, "gmacs"] == pytest.approx(documented, rel=0.02), name
    # PALEO: 2 x 15.47 GFLOP / (0.49 x 5.6 TFLOP/s) = 11.3 ms per VGG16 image on a K80
    assert by_model.loc["vgg16", "k80_inference_ms"] == pytest.approx(2 * 15.47e9 / (0.49 * 5.6e12) * 1e3, rel=0.02)
    assert 0.98 < values["paleo/vgg19_conv_share"] < 1.0  # Lu et al. 2017: about 99% (VGG16)


@pytest.mark.slow
def test_smoke_sweep_then_fit_step(tmp_path, clean_env, monkeypatch):
    from fake_datasets import UncheckedCIFAR10, make_cifar
    from sweeps import optimus as study
    from sweeps.runner import main
    from trainables.data.vision import DATASETS

    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(DATASETS["cifar10"], cls=UncheckedCIFAR10))
    monkeypatch.chdir(tmp_path)
    data_dir = tmp_path / "data"
    make_cifar(data_dir, UncheckedCIFAR10, per_file=64, learnable=True)
    results = tmp_path / "res"
    argv = ["--preset", "smoke", "--results-dir", str(results), "--set", f"data_dir={data_dir}"]
    assert main(study.STUDY, argv) == 0
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("optimus")
    parent = client.search_runs([experiment.experiment_id], "tags.`sweep.parent` = '1'")[0]
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(c.data.params["model"] for c in children) == sorted(study.DEPTH_MODELS)
    for child in children:
        assert child.data.params["GPU type"] == "cpu"  # recorded by the trial itself (trainables.runtime.session.PARAMS_KEY)
        if child.data.tags["trial_status"] == "finished":
            assert len(client.get_metric_history(child.info.run_id, "train/loss")) == 5
    assert sum(c.data.tags["trial_status"] == "finished" for c in children) >= 4
    assert main(study.STUDY, ["--preset", "fit", "--results-dir", str(results)]) == 0
    for name in FIGURES:
        assert (results / "optimus" / name).stat().st_size > 5000, name
