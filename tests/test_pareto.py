"""Accuracy against cost (analysis/pareto.py, analysis/costs.py): tiny real MLflow SQLite stores written here by
hand, one sweep per way a cost can be recorded (priced, GPU-seconds, CPU-core-seconds, and a store from before
the cost keys: training time only). The front is worked out by hand below and checked against the function that
computes it, the figure's list of its trials and the HTML report's table.

    .venv/bin/pytest tests/test_pareto.py -q     # ~10 s
"""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from analysis.html_report import write_report
from analysis.overview import draw_overview
from analysis.pareto import front_of, front_table, pareto_figure, pareto_front
from analysis.records import load_sweep

STUDY = SimpleNamespace(name="tiny", question="Which network is worth its cost?", metric="test/rmse", mode="min")

# widths, test/rmse, cost/usd, cost/device_s, time/train_s, trial_status
TRIALS = [
    ("16", 300.0, 0.010, 36.0, 30.0, "finished"),          # cheapest: on the front
    ("32-16", 250.0, 0.020, 72.0, 60.0, "finished"),       # on the front
    ("64", 280.0, 0.015, 54.0, 45.0, "finished"),          # on the front: between 16 and 32-16
    ("256-128-64", 240.0, 0.050, 180.0, 150.0, "finished"),  # the best: on the front
    ("128", 260.0, 0.030, 108.0, 90.0, "finished"),        # 32-16 is cheaper and better
    ("64-64", 255.0, 0.020, 72.0, 60.0, "finished"),       # 32-16 costs the same and is better
    ("16-16", 200.0, 0.005, 18.0, 15.0, "stopped"),        # cheap and good, but stopped early: never on the front
    ("512", float("nan"), 0.004, 14.4, 12.0, "diverged"),  # no metric
]
FRONT = ["16", "64", "32-16", "256-128-64"]  # by hand, cheapest first


def write_sweep(uri: str, study: str, cost: str, device: str = "gpu") -> str:
    """A sweep of TRIALS whose trials record `cost`: "usd" (all keys), "device_s" (no price) or "time" (a store
    from before the cost keys: time/train_s only)."""
    client = MlflowClient(uri)
    experiment = client.create_experiment(study, artifact_location=uri.replace("sqlite:///", "file://")[:-9] + study)
    parent = client.create_run(experiment, tags={"sweep.parent": "1", "search": "grid", "scheduler": "fifo"})
    parent = parent.info.run_id
    client.log_batch(parent, params=[Param("space.widths", str([t[0] for t in TRIALS]))])
    for widths, rmse, usd, device_s, train_s, status in TRIALS:
        params = {"widths": widths, "epochs": "3"}
        metrics = {"test/rmse": rmse, "time/train_s": train_s}
        if cost in ("usd", "device_s"):
            params.update({"cost.device": device, "cost.units": "0.25"})
            metrics["cost/device_s"] = device_s
        if cost == "usd":
            params["cost.usd_per_device_h"] = "1.0"
            metrics["cost/usd"] = usd
        run = client.create_run(experiment, run_name=f"widths={widths}",
                                tags={"mlflow.parentRunId": parent, "trial_status": status}).info.run_id
        client.log_batch(run, params=[Param(k, v) for k, v in params.items()],
                         metrics=[Metric(k, v, 0, 3) for k, v in metrics.items()])
        client.set_terminated(run)
        time.sleep(0.002)
    client.set_terminated(parent)
    return parent


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pareto")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    for study, cost, device in (("priced", "usd", "gpu"), ("gpu", "device_s", "gpu"), ("cpu", "device_s", "cpu"),
                                ("old", "time", "gpu")):
        write_sweep(uri, study, cost, device)
    return uri


def test_pareto_front_by_hand():
    assert pareto_front([1, 2, 3], [0.5, 0.4, 0.45], "min") == [0, 1]
    assert pareto_front([1, 2, 3], [0.5, 0.7, 0.6], "max") == [0, 1]
    assert pareto_front([3, 1, 2], [1.0, 3.0, 2.0], "min") == [1, 2, 0]  # cheapest first
    assert pareto_front([1, 1], [2.0, 2.0], "min") == [0, 1]  # equal points: neither beats the other
    assert pareto_front([1, 1], [2.0, 1.0], "min") == [1]  # same cost, worse: dominated
    assert pareto_front([float("nan"), 2, 1], [0.0, 1.0, float("nan")], "min") == [1]
    assert pareto_front([], [], "min") == []


def test_front_of_a_priced_sweep(store, tmp_path):
    sweep = load_sweep("priced", tracking_uri=store)
    found = front_of(sweep, "test/rmse", "min")
    assert found.note == "" and found.cost.key == "cost/usd" and found.cost.unit == "$"
    assert len(found.trials) == 6 and list(found.stopped["widths"].astype(str)) == ["16-16"]
    finished = found.trials.reset_index(drop=True)
    order = pareto_front(finished["cost"], finished["test/rmse"], "min")
    assert [str(finished["widths"][i]) for i in order] == FRONT
    assert list(found.front["config"]) == [f"widths={w}" for w in FRONT]

    table = front_table(sweep, "test/rmse", "min")
    assert list(table.columns) == ["trial", "config", "test/rmse", "cost ($)"]
    assert list(table["config"]) == [f"widths={w}" for w in FRONT]
    by_widths = {t[0]: t for t in TRIALS}
    assert list(table["cost ($)"]) == [by_widths[w][2] for w in FRONT]
    assert list(table["test/rmse"]) == [by_widths[w][1] for w in FRONT]

    fig = pareto_figure(found, "test/rmse", "min")  # what the figure lists beside the plot
    listed = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    assert re.findall(r"^\d+\. (\S+)$", listed, re.M) == [f"widths={w}" for w in FRONT]
    assert "$0.01" in listed and fig.axes[0].get_xlabel() == "cost (USD)"
    fig.clf()

    paths = draw_overview(sweep, "test/rmse", "min", tmp_path)
    assert "overview_pareto.png" in [p.name for p in paths]
    page = write_report(sweep, STUDY, "s", paths, tmp_path).read_text()
    front_html = page[page.index('<div id="pareto-front">'):]
    front_html = front_html[:front_html.index("</table>")]
    rows = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", front_html)]
    assert [cells[1] for cells in rows[1:]] == [f"widths={w}" for w in FRONT]  # after the header row
    assert [float(cells[2]) for cells in rows[1:]] == [by_widths[w][1] for w in FRONT]


@pytest.mark.parametrize("study, unit, label", [("gpu", "GPU-h", "device time (GPU-hours)"),
                                                ("cpu", "CPU-core-h", "device time (CPU core-hours)"),
                                                ("old", "s", "training time (s)")])
def test_unpriced_and_older_sweeps_fall_back(store, study, unit, label):
    sweep = load_sweep(study, tracking_uri=store)
    found = front_of(sweep, "test/rmse", "min")
    assert found.cost.unit == unit and found.cost.label == label
    expected = {"GPU-h": 1 / 3600, "CPU-core-h": 1 / 3600, "s": None}[unit]
    for _, row in found.trials.iterrows():
        widths = str(row["widths"])
        _, _, _, device_s, train_s, _ = next(t for t in TRIALS if t[0] == widths)
        assert row["cost"] == pytest.approx(device_s * expected if expected else train_s)
    assert list(found.front["config"]) == [f"widths={w}" for w in FRONT]  # costs proportional: the same front
    assert f"cost ({unit})" in front_table(sweep, "test/rmse", "min").columns


def test_too_few_finished_trials_give_a_sentence_not_a_figure(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("one", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment, tags={"sweep.parent": "1"}).info.run_id
    for status, rmse in (("finished", 1.0), ("stopped", 2.0)):
        run = client.create_run(experiment, tags={"mlflow.parentRunId": parent, "trial_status": status})
        client.log_batch(run.info.run_id, metrics=[Metric("test/rmse", rmse, 0, 1), Metric("time/train_s", 1.0, 0, 1)])
    sweep = load_sweep("one", tracking_uri=uri)
    found = front_of(sweep, "test/rmse", "min")
    assert found.note.startswith("no cost figure: 1 finished trial(s)") and found.front.empty
    assert front_table(sweep, "test/rmse", "min").empty
    assert "overview_pareto.png" not in [p.name for p in draw_overview(sweep, "test/rmse", "min", tmp_path)]
    page = write_report(sweep, STUDY, "s", [], tmp_path).read_text()
    assert "pareto-front" not in page and "No cost figure: 1 finished trial(s)" in page
