"""The overview figures every sweep draws (analysis/overview.py), `python -m analysis list` and the analysis
command line's help, from tiny real MLflow SQLite stores written here: a depth_width-like sweep (categorical
widths, lr over 3 decades, one diverged and one errored trial), two joint_search sweeps (optuna and random) for
one progress line per search, and sweeps made to test the axes (22 and 60 named values, integer parameters).

    .venv/bin/pytest tests/test_overview.py -q     # ~15 s
"""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from analysis import overview
from analysis.__main__ import main as analysis_main
from conftest import ROOT, run_script
from analysis.records import load_sweep

DOMAIN = "<ray.tune.search.sample.Float object at 0x7f0000000000>"  # how the runner stores a Tune domain
WIDTHS = ["16", "32-16", "64-32-16"]


def write_sweep(client: MlflowClient, study: str, tags: dict, space: dict, trials: list[tuple[dict, dict, str]],
                parent_metrics: dict | None = None) -> str:
    """A parent run (tags, space.* params, metrics) with one child per (params, final metrics, trial_status)."""
    experiment = client.get_experiment_by_name(study)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(study)
    parent = client.create_run(experiment_id, tags={"sweep.parent": "1", **tags}).info.run_id
    client.log_batch(parent, params=[Param(f"space.{k}", v) for k, v in space.items()],
                     metrics=[Metric(k, v, 0, 0) for k, v in (parent_metrics or {}).items()])
    for params, metrics, status in trials:
        run = client.create_run(experiment_id, tags={"mlflow.parentRunId": parent, "trial_status": status}).info.run_id
        client.log_batch(run, params=[Param(k, str(v)) for k, v in params.items()],
                         metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()])
        client.set_terminated(run)
        time.sleep(0.002)  # distinct start times: the progress figure orders trials by them
    client.set_terminated(parent)
    time.sleep(0.01)
    return parent


def depth_width_trials(n: int = 12) -> list[tuple[dict, dict, str]]:
    rng = np.random.default_rng(0)
    trials = []
    for i in range(n):
        lr = float(10 ** rng.uniform(-4, -1))
        widths = WIDTHS[i % 3]
        rmse = 100 + 30 * (np.log10(lr) + 4) + 2 * (i % 3) + rng.normal(0, 1)  # lr matters, widths barely
        trials.append(({"widths": widths, "lr": lr, "epochs": 3}, {"test/rmse": rmse, "time/train_s": 1.0 + i % 3},
                       "finished"))
    trials.append(({"widths": "16", "lr": 0.09, "epochs": 3}, {"test/rmse": float("nan")}, "diverged"))
    trials.append(({"widths": "32-16", "lr": 0.05, "epochs": 3}, {}, "error"))
    return trials


def joint_trials(seed: int, n: int = 6) -> list[tuple[dict, dict, str]]:
    rng = np.random.default_rng(seed)
    return [({"lr": float(10 ** rng.uniform(-4, 0)), "batch_size": int(rng.choice([32, 64, 128, 256])),
              "weight_decay": float(10 ** rng.uniform(-6, -2))},
             {"val/accuracy": float(rng.uniform(0.5, 0.9)), "time/train_s": float(rng.uniform(1, 3))},
             "finished" if i % 3 else "stopped") for i in range(n)]


@pytest.fixture(scope="module")
def empty_db(tmp_path_factory):
    """A migrated, empty MLflow SQLite store, copied by each test (creating the tables takes seconds)."""
    path = tmp_path_factory.mktemp("empty") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


def new_store(empty_db, folder) -> str:
    folder.mkdir(exist_ok=True)
    shutil.copy(empty_db, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


@pytest.fixture(scope="module")
def store(tmp_path_factory, empty_db):
    """Read by several tests (written once: a few seconds)."""
    results = tmp_path_factory.mktemp("store") / "res"
    uri = new_store(empty_db, results)
    client = MlflowClient(uri)
    write_sweep(client, "depth_width", {"preset": "smoke", "search": "grid", "scheduler": "fifo"},
                {"widths": str(WIDTHS), "lr": DOMAIN}, depth_width_trials())
    joint_space = {"lr": DOMAIN, "batch_size": "[32, 64, 128, 256]", "weight_decay": DOMAIN}
    write_sweep(client, "joint_search", {"preset": "quick", "search": "optuna", "scheduler": "asha",
                                         "cost.device": "gpu"},
                joint_space, joint_trials(1), {"cost/device_h": 0.0123, "cost/usd": 0.0377, "sweep/wall_s": 228.0})
    write_sweep(client, "joint_search", {"preset": "quick", "search": "random", "scheduler": "asha"},
                joint_space, joint_trials(2, n=5))
    return results, uri


def test_four_figures_from_mlflow_alone(store, tmp_path):
    results, uri = store
    sweep = load_sweep("depth_width", tracking_uri=uri)
    axes = {a.key: a for a in overview.swept_axes(sweep)}
    assert set(axes) == {"widths", "lr"}  # epochs did not vary; it is not swept
    assert axes["widths"].categorical and axes["widths"].categories == WIDTHS  # "16" parsed as 16 is still a name
    assert not axes["lr"].categorical and axes["lr"].log and axes["lr"].title == "lr (log)"
    started = time.perf_counter()
    paths = overview.draw_overview(sweep, "test/rmse", "min", tmp_path / "dw")
    elapsed = time.perf_counter() - started
    assert [p.name for p in paths] == list(overview.FIGURES)
    for path in paths:
        assert path.stat().st_size > 10_000, path
    assert elapsed < 5, elapsed  # drawn at the end of every sweep
    assert overview.overview_notes(sweep, "test/rmse", "min") == []  # every figure drawn: nothing to explain
    found, note = overview.importances(sweep, "test/rmse", "min")
    assert note == "" and set(found) == {"widths", "lr"} and found["lr"] > found["widths"]
    assert sum(found.values()) == pytest.approx(1.0)

    joint = load_sweep("joint_search", tracking_uri=uri)  # the latest: random
    assert joint.parent.data.tags["search"] == "random"
    groups = overview.compared_sweeps(MlflowClient(uri), joint)
    assert list(groups) == ["random, asha", "optuna, asha"]  # one progress line per search
    assert {a.key for a in overview.swept_axes(joint)} == {"lr", "batch_size", "weight_decay"}
    paths = overview.draw_overview(joint, "val/accuracy", "max", tmp_path / "js")
    assert len(paths) == 4 and all(p.stat().st_size > 10_000 for p in paths)


def test_no_importance_figure_with_one_parameter_or_too_few_trials(tmp_path, empty_db):
    client = MlflowClient(new_store(empty_db, tmp_path))
    uri = client.tracking_uri
    write_sweep(client, "one", {"search": "grid", "scheduler": "fifo"}, {"lr": DOMAIN},
                [({"lr": 10.0 ** -k}, {"loss": float(k), "time/train_s": 1.0 + k % 2}, "finished")
                 for k in range(1, 6)])
    one = load_sweep("one", tracking_uri=uri)
    found, note = overview.importances(one, "loss", "min")
    assert found == {} and note == overview.importance_note(one, "loss")
    assert note.startswith("No importance figure: only one parameter (lr) was swept")
    out = tmp_path / "one"
    out.mkdir()
    (out / "overview_importance.png").write_bytes(b"an older sweep's figure")
    paths = overview.draw_overview(one, "loss", "min", out)
    assert [p.name for p in paths] == ["overview_parallel.png", "overview_progress.png", "overview_pareto.png"]
    assert not (out / "overview_importance.png").exists()  # the folder shows this sweep, not an older one
    assert overview.overview_notes(one, "loss", "min") == [note]  # what a caller prints and the report shows

    write_sweep(client, "few", {"search": "grid", "scheduler": "fifo"}, {"lr": DOMAIN, "model": "['a', 'b']"},
                [({"lr": 0.1, "model": "a"}, {"loss": 1.0}, "finished"),
                 ({"lr": 0.01, "model": "b"}, {"loss": 2.0}, "finished"),
                 ({"lr": 0.001, "model": "a"}, {"loss": float("inf")}, "diverged")])
    few = load_sweep("few", tracking_uri=uri)
    found, note = overview.importances(few, "loss", "min")
    assert found == {} and "only 2 trial(s) with a finite loss" in note and str(overview.MIN_TRIALS) in note
    paths = overview.draw_overview(few, "loss", "min", tmp_path / "few")
    assert [p.name for p in paths] == ["overview_parallel.png", "overview_progress.png"]  # no cost recorded
    notes = overview.overview_notes(few, "loss", "min")
    assert len(notes) == 2 and notes[0] == note and notes[1].startswith("No cost figure")


def axis_sweep(client: MlflowClient, study: str, n_names: int) -> str:
    """Trials over `n_names` named networks (in declared order), an integer batch size and an integer epoch count
    spread over 5..40; the loss is best for the last names."""
    names = [f"{w}-{w // 2}" for w in range(16, 16 + 8 * n_names, 8)]
    trials = [({"widths": name, "batch_size": [32, 64, 128][i % 3], "epochs": 5 + (i * 7) % 36},
               {"loss": 100.0 - i}, "finished") for i, name in enumerate(names)]
    return write_sweep(client, study, {"search": "grid", "scheduler": "fifo"},
                       {"widths": str(names), "batch_size": "[32, 64, 128]", "epochs": DOMAIN}, trials)


def test_parallel_axes_label_every_name_and_integer_ticks(tmp_path, empty_db):
    client = MlflowClient(new_store(empty_db, tmp_path))
    axis_sweep(client, "names22", 22)
    sweep = load_sweep("names22", tracking_uri=client.tracking_uri)
    axes = {a.key: a for a in overview.swept_axes(sweep)}
    widths, batch, epochs = axes["widths"], axes["batch_size"], axes["epochs"]
    assert [text for _, text in widths.ticks()] == widths.categories and len(widths.categories) == 22
    assert "labelled" not in widths.title
    assert [text for _, text in batch.ticks()] == ["32", "64", "128"]  # each value of a grid axis
    epoch_ticks = [text for _, text in epochs.ticks()]
    assert len(epoch_ticks) >= 3 and all(t.isdigit() for t in epoch_ticks), epoch_ticks  # no 4.5 on integers
    assert [int(t) for t in epoch_ticks] == sorted(int(t) for t in epoch_ticks)
    for n in (22, overview.MAX_LABELS):  # the figure grows so that n labels, evenly spaced, do not overlap
        height, gap = overview.parallel_layout(n)
        assert 1 / (n - 1) >= gap - 1e-12 and height >= overview.PARALLEL_HEIGHT_IN
    assert overview.parallel_layout(overview.MAX_LABELS)[0] > overview.PARALLEL_HEIGHT_IN
    assert overview.draw_parallel(sweep, "loss", "min", tmp_path / "p.png").stat().st_size > 10_000


def test_parallel_axis_with_many_names_labels_the_best(tmp_path, empty_db):
    client = MlflowClient(new_store(empty_db, tmp_path))
    axis_sweep(client, "names60", 60)
    sweep = load_sweep("names60", tracking_uri=client.tracking_uri)
    widths = next(a for a in overview.swept_axes(sweep) if a.key == "widths")
    widths.label_best(sweep.runs["widths"], sweep.runs["loss"], "min")
    assert widths.labelled == widths.categories[::-1][:overview.MAX_LABELS]  # the lowest losses: the last names
    shown = [text for _, text in widths.ticks(gap=0.04)]
    assert 10 <= len(shown) < 60 and set(shown) <= set(widths.categories[-overview.MAX_LABELS:])
    assert widths.categories[-1] in shown  # the best is always labelled
    positions = [y for y, _ in widths.ticks(gap=0.04)]
    assert min(b - a for a, b in zip(positions, positions[1:])) >= 0.04 - 1e-9  # no label prints over another
    assert widths.title == f"widths\n(best {len(shown)} of 60 labelled)"
    assert overview.draw_parallel(sweep, "loss", "min", tmp_path / "p.png").stat().st_size > 10_000


def test_analysis_list(store, capsys):
    results, _ = store
    (results / "depth_width").mkdir(exist_ok=True)
    assert analysis_main(["list", "--results-dir", str(results)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["study", "parent", "run"] and len(lines) == 4
    for column in ("device-h", "usd", "wall min"):
        assert column in lines[0]
    rows = [line.split() for line in lines[1:]]
    assert [r[0] for r in rows] == ["joint_search", "joint_search", "depth_width"]  # newest first
    assert "random/asha" in rows[0] and "optuna/asha" in rows[1] and "grid/fifo" in rows[2]
    assert "4/2/0/0" in rows[1] and "3/2/0/0" in rows[0] and "12/0/1/1" in rows[2]  # finished/stopped/diverged/errored
    best = min(m["test/rmse"] for _, m, s in depth_width_trials() if s == "finished")
    assert f"{best:.4g}" in lines[3] and "test/rmse" in lines[3] and lines[3].rstrip().endswith("depth_width/")
    best = max(m["val/accuracy"] for _, m, _ in joint_trials(1))
    assert f"val/accuracy {best:.4g} (max)" in lines[2] and rows[1][-1] == "-"  # no figures folder yet
    # the cost the driver records on the parent run; "-" for sweeps written before it
    assert rows[1][-5:-1] == ["0.0123", "GPU-h", "$0.038", "3.8"]
    assert rows[0][-4:-1] == ["-", "-", "-"] and rows[2][-4:-1] == ["-", "-", "-"]

    assert analysis_main(["list", "depth_width", "--results-dir", str(results)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_analysis_list_empty_or_missing_store(tmp_path, capsys):
    assert analysis_main(["list", "--results-dir", str(tmp_path)]) == 0
    assert "no sweeps" in capsys.readouterr().out
    assert analysis_main(["list", "--results-dir", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_help_lists_the_commands_and_studies_before_any_heavy_import():
    from analysis.studies import names

    for argv in (["--help"], []):
        started = time.perf_counter()
        proc = run_script(["-X", "importtime", "-m", "analysis", *argv], cwd=ROOT)
        elapsed = time.perf_counter() - started
        assert proc.returncode == 0, proc.stderr[-2000:]
        for word in ("list", "replay", *names()):
            assert word in proc.stdout.split(), word
        imported = {line.split("|")[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
        assert not imported & {"mlflow", "pandas", "matplotlib", "ray", "torch"}, imported
        assert elapsed < 3, elapsed  # ~0.1 s; generous for a loaded CI machine
