"""The Optimus early-stopping scheduler (analysis/schedulers.py `OptimusScheduler`): its rule on synthetic curves
of known shape, fed to the scheduler as real Tune trials; then inside a real Tune run, and as
`--scheduler optimus` of a smoke sweep."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

from conftest import ROOT, run_script
from analysis.schedulers import DEFAULT_MARGIN, OptimusScheduler, default_min_points

MAX_T = 20
STOP, CONTINUE = TrialScheduler.STOP, TrialScheduler.CONTINUE


def curve(b0: float, b1: float, b2: float, noise: float = 0.002, seed: int = 0) -> list[float]:
    """Optimus's model at epochs 1..MAX_T plus a little Gaussian noise."""
    k = np.arange(1, MAX_T + 1)
    return list(1 / (b0 * k + b1) + b2 + np.random.default_rng(seed).normal(0, noise, len(k)))


GOOD = dict(b0=0.5, b1=1.0, b2=0.10)  # reaches ~0.19 at epoch 20
HIGH_FLOOR = dict(b0=0.5, b1=1.0, b2=0.50)  # can never go below 0.5
STEEP = dict(b0=0.6, b1=0.1, b2=0.05)  # 0.45 at epoch 4 (worse than 0.19), ~0.13 at epoch 20 (better)
# errors in [0, 1] for accuracies (1 - error): the same stories
HIGH_FLOOR_ERR = dict(b0=0.5, b1=2.0, b2=0.50)
STEEP_ERR = dict(b0=0.6, b1=1.1, b2=0.05)  # 0.34 at epoch 4, ~0.13 at epoch 20


def feed(stopper: OptimusScheduler, values: list[float], metric: str = "loss") -> tuple[Trial, list[str]]:
    """Report `values` at epochs 1, 2, ... as one trial until the stopper says STOP; the decisions it made."""
    trial = Trial("__fake", stub=True)
    stopper.on_trial_add(None, trial)
    decisions = []
    for epoch, value in enumerate(values, start=1):
        decisions.append(stopper.on_trial_result(None, trial, {"epoch": epoch, metric: value}))
        if decisions[-1] == STOP:
            break
    else:
        stopper.on_trial_complete(None, trial, {})
    return trial, decisions


def stopper(mode: str = "min", metric: str = "loss", **kw) -> OptimusScheduler:
    return OptimusScheduler(metric, mode, time_attr="epoch", max_t=MAX_T, **kw)


def test_defaults():
    assert default_min_points(20) == 4 and default_min_points(200) == 40 and default_min_points(3) == 4
    s = stopper()
    assert s._min_points == 4 and s._margin == DEFAULT_MARGIN == 0.2


def test_stops_a_high_floor_at_min_points_and_not_before():
    s = stopper()
    _, good = feed(s, curve(**GOOD))
    assert good == [CONTINUE] * MAX_T and s.best < 0.2
    trial, bad = feed(s, curve(**HIGH_FLOOR, seed=1))
    assert bad == [CONTINUE] * 3 + [STOP]  # judged only from the 4th point (min_points), stopped there
    assert s.stopped[trial.trial_id]["predicted"] > 0.5 and s.stopped[trial.trial_id]["best"] == s.best


def test_keeps_a_worse_trial_whose_steep_curve_will_beat_the_best():
    s = stopper()
    feed(s, curve(**GOOD))
    values = curve(**STEEP, seed=2)
    assert values[3] > 2 * s.best  # at its first judgement it is far behind
    _, decisions = feed(s, values)
    assert decisions == [CONTINUE] * MAX_T and s.best < 0.15  # and it ends up the best


def test_margin_decides_a_near_miss():
    near = dict(b0=0.5, b1=1.0, b2=0.11)  # ~0.01 (5%) above the best's final value
    s = stopper(margin=0.10)
    feed(s, curve(**GOOD, noise=0))
    assert feed(s, curve(**near, noise=0))[1] == [CONTINUE] * MAX_T
    s = stopper(margin=0.0)
    feed(s, curve(**GOOD, noise=0))
    assert feed(s, curve(**near, noise=0))[1][-1] == STOP


def test_mode_max_fits_the_error_of_accuracies():
    s = stopper(mode="max", metric="acc")
    _, good = feed(s, [1 - v for v in curve(**GOOD)], metric="acc")
    assert good == [CONTINUE] * MAX_T and s.best > 0.8
    trial, bad = feed(s, [1 - v for v in curve(**HIGH_FLOOR_ERR, seed=1)], metric="acc")
    assert bad == [CONTINUE] * 3 + [STOP] and s.stopped[trial.trial_id]["predicted"] < 0.5
    _, steep = feed(s, [1 - v for v in curve(**STEEP_ERR, seed=2)], metric="acc")
    assert steep == [CONTINUE] * MAX_T and s.best > 0.85


def test_mode_max_leaves_metrics_outside_0_1_alone():
    s = stopper(mode="max", metric="images_per_s")
    feed(s, [1000 * (1 - v) for v in curve(**GOOD)], metric="images_per_s")
    assert feed(s, [100 * (1 - v) for v in curve(**HIGH_FLOOR)], metric="images_per_s")[1] == [CONTINUE] * MAX_T


def test_a_failed_fit_continues(monkeypatch):
    import analysis.schedulers

    s = stopper()
    feed(s, curve(**GOOD))

    def fail(k, loss):
        raise ValueError("no fit")

    monkeypatch.setattr(analysis.schedulers, "fit_loss_curve", fail)
    assert feed(s, curve(**HIGH_FLOOR))[1] == [CONTINUE] * MAX_T

    class Nonsense:
        def predict(self, k):
            return np.array(math.nan)

    monkeypatch.setattr(analysis.schedulers, "fit_loss_curve", lambda k, loss: Nonsense())
    assert feed(s, curve(**HIGH_FLOOR))[1] == [CONTINUE] * MAX_T


def test_non_finite_values_are_not_points_and_not_the_best():
    s = stopper()
    feed(s, curve(**GOOD))
    best = s.best
    values = curve(**HIGH_FLOOR)
    values[1] = math.nan  # left to the runner's divergence handling
    _, decisions = feed(s, [-math.inf] + values)
    assert s.best == best
    assert decisions == [CONTINUE] * 5 + [STOP]  # inf and NaN are not points: the 4th finite one is at epoch 6


def test_tune_config_metric_and_mode_must_agree():
    s = stopper()
    assert s.set_search_properties("loss", "min") and s.set_search_properties(None, None)
    assert not s.set_search_properties("acc", "min") and not s.set_search_properties("loss", "max")
    bare = OptimusScheduler(time_attr="epoch", max_t=MAX_T)
    with pytest.raises(ValueError, match="metric and a mode"):
        bare.on_trial_add(None, Trial("__fake", stub=True))
    assert bare.set_search_properties("loss", "min")
    bare.on_trial_add(None, Trial("__fake", stub=True))


def test_one_shot_study_refuses_optimus():
    from conftest import sweep_plan
    from sweeps import depth_width
    from sweeps.cli import UsageError

    study = dataclasses.replace(depth_width.STUDY, trial=dataclasses.replace(depth_width.STUDY.trial, epochs=None))
    with pytest.raises(UsageError, match="nothing for optimus to stop"):
        sweep_plan(study, ["--preset", "smoke", "--scheduler", "optimus"])


def test_stop_margin_reaches_the_stopper_and_needs_optimus():
    from conftest import sweep_plan
    from sweeps import depth_width
    from sweeps.cli import UsageError
    from sweeps.tuning import scheduler

    study = depth_width.STUDY
    assert scheduler(sweep_plan(study, ["--preset", "smoke", "--scheduler", "optimus", "--stop-margin", "0.3"]))._margin == 0.3
    assert scheduler(sweep_plan(study, ["--preset", "smoke", "--scheduler", "optimus"]))._margin == 0.2  # the default
    for argv in (["--stop-margin", "0.3"], ["--scheduler", "optimus", "--stop-margin", "-1"]):
        with pytest.raises(UsageError, match="--stop-margin .* needs --scheduler optimus"):
            sweep_plan(study, ["--preset", "smoke", *argv])


CURVES = {"good": curve(**GOOD), "high floor": curve(**HIGH_FLOOR, seed=1), "steep": curve(**STEEP, seed=2)}


@pytest.mark.slow
def test_in_a_real_tune_run_the_high_floor_trial_stops(tmp_path):
    import ray
    from ray import tune

    def trainable(config):  # self-contained: the workers cannot import this test module
        for epoch, value in enumerate(config["values"], start=1):
            tune.report({"epoch": epoch, "loss": value})

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        tuner = tune.Tuner(  # one at a time: the good curve has finished when the high floor is judged
            trainable,
            param_space={"name": tune.grid_search(["good", "high floor", "steep"]),
                         "values": tune.sample_from(lambda spec: CURVES[spec.config["name"]])},
            tune_config=tune.TuneConfig(metric="loss", mode="min", max_concurrent_trials=1,
                                        scheduler=OptimusScheduler("loss", "min", time_attr="epoch", max_t=MAX_T)),
            run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0))
        results = tuner.fit()
    finally:
        ray.shutdown()
    epochs = {r.config["name"]: r.metrics["epoch"] for r in results}
    assert epochs == {"good": MAX_T, "high floor": 4, "steep": MAX_T}


@pytest.mark.slow
def test_smoke_sweep_with_scheduler_optimus(tmp_path):
    """9 epochs (the smoke preset's 3 are fewer than min_points = 4): whatever it stops is recorded as stopped."""
    proc = run_script([str(ROOT / "sweeps" / "depth_width.py"), "--preset", "smoke", "--scheduler", "optimus",
                       "--stop-margin", "0.1", "--set", "epochs=9", "--results-dir", "res"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "smoke, grid, optimus" in proc.stdout
    client = MlflowClient(f"sqlite:///{tmp_path / 'res' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("depth_width").experiment_id])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(children) == 3
    for child in children:
        stopped_at, status = int(child.data.tags["stopped_at_epoch"]), child.data.tags["trial_status"]
        assert (status, stopped_at) == ("finished", 9) or (status == "stopped" and 4 <= stopped_at < 9)
