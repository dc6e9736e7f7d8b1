"""Scheduler replay (`python -m analysis replay`, analysis/replay.py, analysis/recorded_curves.py).

- ASHA over five hand-written curves in a real MLflow SQLite store, its decisions worked out by hand below;
- bad input: no such sweep, a sweep with early-stopped trials, one-shot trials, an unknown scheduler or study:
  one `error: ...` line on stderr and exit code 2;
- HyperBand, which pauses trials, replayed in-process against a real Ray Tune run of the same curves (slow);
- the equality the replay promises (slow): on a real depth_width smoke sweep, replaying the fifo sweep with ASHA
  gives the decisions of a live `--scheduler asha` sweep with the same settings, seed and trial order
  (`--max-concurrent 1`): the same trials stopped at the same epochs.

    .venv/bin/pytest tests/test_replay.py -q      # ~10 s without the slow tests, ~1.5 min with them
"""

from __future__ import annotations

import csv
import time

import numpy as np
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from analysis.__main__ import main as analysis_main
from conftest import ROOT, run_script

MAX_T = 9
# name: (value at epoch 1, at epoch 3, at epoch 9), linear in between; test/rmse, lower is better
CURVES = {"t1": (10.0, 8.0, 7.0), "t2": (12.0, 11.0, 10.0), "t3": (9.0, 7.0, 6.0), "t4": (11.0, 10.0, 9.0),
          "t5": (9.5, 8.5, 5.0)}
DEVICE_S_PER_EPOCH = {"t1": 1.0, "t2": 2.0, "t3": 3.0, "t4": 4.0, "t5": 5.0}
# ASHA, grace 1, reduction factor 3, max_t 9: rungs at epochs 1 and 3 (at 9 a trial ends). A trial is stopped at
# a rung when its value is worse than the 2/3 quantile of the negated values recorded there before it:
#   t1: first at both rungs -> runs to the end
#   t2: epoch 1, 12 vs t1's 10 -> cutoff 10: stopped at 1
#   t3: epoch 1, 9 against {10, 12}: cutoff 10.67, continues; epoch 3, 7 against {8}: continues
#   t4: epoch 1, 11 against {10, 12, 9}: cutoff 9.67: stopped at 1
#   t5: epoch 1, 9.5 against {10, 12, 9, 11}: cutoff 10, continues; epoch 3, 8.5 against {8, 7}: cutoff 7.33:
#       stopped at 3, though it would have ended the best (5)
ASHA_STOPS = {"t2": 1, "t4": 1, "t5": 3}


def curve(name: str) -> list[float]:
    e1, e3, e9 = CURVES[name]
    return list(np.interp(np.arange(1, MAX_T + 1), [1, 3, 9], [e1, e3, e9]))


def write_sweep(client: MlflowClient, study: str, statuses: dict[str, str] | None = None, epochs: int = MAX_T,
                scheduler: str = "fifo") -> str:
    """A sweep of the CURVES' trials, started in their order, each with test/rmse and the cumulative
    cost/device_s at every epoch; `statuses` overrides a trial's trial_status (default finished)."""
    experiment = client.get_experiment_by_name(study)
    experiment_id = (experiment.experiment_id if experiment else
                     client.create_experiment(study, artifact_location=client.tracking_uri.replace(
                         "sqlite:///", "file://").removesuffix("mlflow.db") + f"artifacts/{study}"))
    parent = client.create_run(experiment_id, tags={"sweep.parent": "1", "search": "grid",
                                                    "scheduler": scheduler}).info.run_id
    client.log_batch(parent, params=[Param("space.name", str(list(CURVES)))])
    for name in CURVES:
        run = client.create_run(experiment_id, run_name=name, tags={
            "mlflow.parentRunId": parent, "trial_status": (statuses or {}).get(name, "finished")}).info.run_id
        values = curve(name)[:epochs]
        metrics = [Metric("test/rmse", v, 0, k) for k, v in enumerate(values, start=1)]
        metrics += [Metric("cost/device_s", DEVICE_S_PER_EPOCH[name] * k, 0, k) for k in range(1, epochs + 1)]
        client.log_batch(run, params=[Param("name", name), Param("cost.device", "cpu")], metrics=metrics)
        client.set_terminated(run)
        time.sleep(0.003)  # distinct start times: the replay runs trials in the order they started
    client.set_terminated(parent)
    return parent


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    results = tmp_path_factory.mktemp("replay")
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    sweeps = {"fifo": write_sweep(client, "depth_width"),
              "asha": write_sweep(client, "depth_width", statuses={"t2": "stopped"}, scheduler="asha"),
              "one_shot": write_sweep(client, "staleness", epochs=1)}
    return results, sweeps


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_asha_decisions_worked_out_by_hand(store, capsys):
    results, sweeps = store
    argv = ["replay", "depth_width", "--parent-run", sweeps["fifo"], "--results-dir", str(results),
            "--scheduler", "asha", "--grace-period", "1", "--reduction-factor", "3"]
    assert analysis_main(argv) == 0
    out = capsys.readouterr().out
    assert "grace 1, rf 3" in out and "device-s from cost/device_s" in out
    (row,) = read_csv(results / "depth_width" / "replay_asha.csv")
    stopped = dict(item.split("@") for item in row["stopped_at"].split())
    assert {k.removeprefix("name="): int(v) for k, v in stopped.items()} == ASHA_STOPS
    used = {name: ASHA_STOPS.get(name, MAX_T) for name in CURVES}
    assert int(row["epochs_used"]) == sum(used.values()) and int(row["epochs_full"]) == MAX_T * len(CURVES)
    assert float(row["device_s_used"]) == pytest.approx(sum(DEVICE_S_PER_EPOCH[n] * e for n, e in used.items()))
    assert float(row["device_s_full"]) == pytest.approx(MAX_T * sum(DEVICE_S_PER_EPOCH.values()))
    # kept: t1 (7), t3 (6); the true best is t5 (5), which ASHA stopped
    assert row["best_kept"] == "name=t3" and float(row["best_kept_metric"]) == pytest.approx(6.0)
    assert float(row["rank"]) == 2 and float(row["gap"]) == pytest.approx((6.0 - 5.0) / 5.0)
    assert (results / "depth_width" / "replay_asha.png").stat().st_size > 10_000


def test_settings_give_one_row_each(store, capsys):
    results, sweeps = store
    base = ["replay", "depth_width", "--parent-run", sweeps["fifo"], "--results-dir", str(results)]
    assert analysis_main([*base, "--scheduler", "asha", "--grace-period", "1,3,20", "--reduction-factor", "2,3"]) == 0
    out = capsys.readouterr().out
    rows = read_csv(results / "depth_width" / "replay_asha.csv")
    assert [r["setting"] for r in rows] == ["grace 1, rf 2", "grace 1, rf 3", "grace 3, rf 2", "grace 3, rf 3"]
    assert "note: grace period 20 skipped" in out
    assert analysis_main([*base, "--scheduler", "optimus", "--margin", "0,0.2"]) == 0
    rows = read_csv(results / "depth_width" / "replay_optimus.csv")
    assert [r["setting"] for r in rows] == ["margin 0", "margin 0.2"]
    assert int(rows[0]["stopped"]) >= int(rows[1]["stopped"])  # a smaller margin stops at least as many
    assert analysis_main([*base, "--scheduler", "hyperband"]) == 0
    assert [r["setting"] for r in read_csv(results / "depth_width" / "replay_hyperband.csv")] == ["rf 3"]


@pytest.mark.parametrize("case, argv, says", [
    ("no such run", ["depth_width", "--parent-run", "0123456789abcdef", "--scheduler", "asha"], "no run"),
    ("no sweep of the study", ["optimizers", "--scheduler", "asha"], "no sweep of 'optimizers'"),
    ("early-stopped trials", ["depth_width", "--parent-run", "{asha}", "--scheduler", "asha"], "cannot be replayed"),
    ("one-shot trials", ["staleness", "--scheduler", "asha"], "one-shot"),
    ("unknown scheduler", ["depth_width", "--scheduler", "median"], "invalid choice: 'median'"),
    ("unknown study", ["no_such_study", "--scheduler", "asha"], "invalid choice: 'no_such_study'"),
    ("option of another scheduler", ["depth_width", "--scheduler", "asha", "--margin", "0.1"], "optimus option"),
    ("bad factor", ["depth_width", "--scheduler", "hyperband", "--reduction-factor", "1"], "must be > 1"),
])
def test_bad_input_is_one_error_line_and_exit_2(store, capsys, case, argv, says):
    results, sweeps = store
    argv = [a.format(**sweeps) for a in argv]
    assert analysis_main(["replay", *argv, "--results-dir", str(results)]) == 2, case
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], (case, captured.err)
    assert captured.out == ""


def test_a_missing_store_is_an_error_and_is_not_created(tmp_path, capsys):
    assert analysis_main(["replay", "depth_width", "--scheduler", "asha", "--results-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: no MLflow store") and not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_hyperband_replay_equals_a_real_tune_run(tmp_path):
    """HyperBand pauses trials, so the replay plays Tune's controller (analysis/replay.py `replay_synchronous`):
    the same curves in a real Tune run (one trial at a time, a trainable that reports them and resumes from a
    checkpoint) must end every trial at the same epoch."""
    import json
    import os
    import tempfile

    import ray
    from ray import tune
    from ray.tune.schedulers import HyperBandScheduler

    from analysis.recorded_curves import TrialCurve
    from analysis.replay import replay_synchronous

    rng = np.random.default_rng(3)
    max_t, names = 8, [f"c{i}" for i in range(12)]
    values = {n: list(rng.uniform(1, 3) / np.arange(1, max_t + 1) ** rng.uniform(0.1, 1) + rng.uniform(0, 1))
              for n in names}

    def trainable(config):  # self-contained: Ray's workers cannot import this test module
        start = 0
        if (checkpoint := tune.get_checkpoint()) is not None:
            with checkpoint.as_directory() as folder:
                start = json.load(open(os.path.join(folder, "done.json")))
        for i in range(start, len(config["values"])):
            folder = tempfile.mkdtemp()
            json.dump(i + 1, open(os.path.join(folder, "done.json"), "w"))
            tune.report({"epoch": i + 1, "loss": config["values"][i]},
                        checkpoint=tune.Checkpoint.from_directory(folder))

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
        tuner = tune.Tuner(
            trainable,
            param_space={"name": tune.grid_search(names),
                         "values": tune.sample_from(lambda s: values[s.config["name"]])},
            tune_config=tune.TuneConfig(metric="loss", mode="min", reuse_actors=True, scheduler=HyperBandScheduler(
                time_attr="epoch", max_t=max_t, reduction_factor=2)),
            run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0))
        live = {r.config["name"]: int(r.metrics["epoch"]) for r in tuner.fit()}
    finally:
        ray.shutdown()
    curves = [TrialCurve(n, n, {}, i, "finished", list(range(1, max_t + 1)), values[n], [1.0] * max_t)
              for i, n in enumerate(names)]
    stops = replay_synchronous(HyperBandScheduler(time_attr="epoch", metric="loss", mode="min", max_t=max_t,
                                                  reduction_factor=2), curves, "loss")
    replayed = {n: stops[n] or max_t for n in names}
    assert sum(e < max_t for e in live.values()) >= 3  # HyperBand really stopped some: the test can fail
    assert replayed == live


@pytest.mark.slow
def test_replayed_asha_equals_a_live_asha_sweep(tmp_path):
    """The same smoke sweep (3 networks x 3 seeds, 9 epochs, one trial at a time) with fifo, then with ASHA live;
    ASHA replayed over the fifo sweep's records must stop the same trials at the same epochs."""
    results = tmp_path / "res"
    common = ["--preset", "smoke", "--max-concurrent", "1", "--seed", "0", "--set", "epochs=9", "--set", "seeds=3",
              "--population", "off", "--results-dir", str(results)]
    for scheduler in ("fifo", "asha"):
        proc = run_script([str(ROOT / "sweeps" / "depth_width.py"), *common, "--scheduler", scheduler], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("depth_width").experiment_id
    parents = {p.data.tags["scheduler"]: p for p in client.search_runs([experiment], "tags.`sweep.parent` = '1'")}

    def trials(parent) -> dict:
        return {r.info.run_name: r for r in
                client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")}

    fifo, live = trials(parents["fifo"]), trials(parents["asha"])
    assert len(fifo) == len(live) == 9 and all(r.data.tags["trial_status"] == "finished" for r in fifo.values())
    live_stops = {name: int(r.data.tags["stopped_at_epoch"]) for name, r in live.items()
                  if r.data.tags["trial_status"] == "stopped"}
    assert 0 < len(live_stops) < 9  # ASHA really stopped some trials: the test can fail
    for name, epoch in live_stops.items():  # the premise: the same curves on the CPU
        history = {m.step: m.value for m in client.get_metric_history(fifo[name].info.run_id, "test/rmse")}
        assert live[name].data.metrics["test/rmse"] == pytest.approx(history[epoch], rel=1e-9)
    params = parents["asha"].data.params  # the live settings are the replay's defaults: grace 1, factor 3
    assert (params.get("asha.grace_period", "1"), float(params.get("asha.reduction_factor", "3"))) == ("1", 3.0)

    assert analysis_main(["replay", "depth_width", "--parent-run", parents["fifo"].info.run_id,
                          "--results-dir", str(results), "--scheduler", "asha"]) == 0
    (row,) = read_csv(results / "depth_width" / "replay_asha.csv")
    assert row["setting"] == "grace 1, rf 3" and int(row["stopped"]) == len(live_stops)
    replayed = {}
    for item in row["stopped_at"].split():  # e.g. widths=32-16,seed=2@1
        label, epoch = item.rsplit("@", 1)
        replayed[label.replace(",", " ")] = int(epoch)  # the run names: "widths=32-16 seed=2"
    assert replayed == live_stops
