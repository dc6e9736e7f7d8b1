"""The data-set summary: dataset_summary's artifacts, analysis.datasets' figure, text and command, and the
round trip through a real MLflow run (SQLite store), as a study logs them on its parent run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torchvision
from mlflow.tracking import MlflowClient

from analysis.datasets import artifacts_from_run, draw_summary, main, summary_text
from fake_datasets import UncheckedFlowers102, make_dtd, make_flowers102
from trainables.artifacts import encode_all
from trainables.data.vision import DATASETS, dataset_summary, load_vision_data


@pytest.fixture
def flowers(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "flowers_test",
                        dataclasses.replace(DATASETS["flowers102"], cls=UncheckedFlowers102, num_classes=4))
    make_flowers102(tmp_path, classes=4, per_split=(3, 2, 1))
    return load_vision_data("flowers_test", tmp_path, size=16)


def test_summary_counts(flowers):
    art = dataset_summary(flowers, classes=2, per_class=2, seed=1)
    splits, table = art["dataset/splits.csv"], art["dataset/classes.csv"]
    assert splits.to_dict("list") == {"split": ["train", "val", "test"], "images": [12, 8, 4], "classes": [4, 4, 4]}
    assert table["name"].tolist() == list(flowers.classes) and table["train"].tolist() == [3] * 4
    assert table["val"].tolist() == [2] * 4 and table["test"].tolist() == [1] * 4
    samples, info = art["dataset/samples.npy"], art["dataset/summary.json"]
    assert samples.shape == (2, 2, 3, 16, 16) and samples.dtype == np.uint8
    assert info["image_shape"] == [3, 16, 16] and info["num_classes"] == 4 and info["sample_counts"] == [2, 2]
    for row, label in enumerate(info["sample_labels"]):  # each row holds training images of its label
        pool = {flowers.train.images[i].tobytes() for i in np.flatnonzero(flowers.train.labels == label)}
        assert all(samples[row, k].tobytes() in pool for k in range(2))
    assert info["sample_names"] == [flowers.classes[i] for i in info["sample_labels"]]
    again = dataset_summary(flowers, classes=2, per_class=2, seed=1)
    np.testing.assert_array_equal(again["dataset/samples.npy"], samples)  # seeded
    text = summary_text(art)
    assert "flowers_test: 4 classes" in text and "train 12, val 8, test 4" in text and "min 3, median 3, max 3" in text


def test_command_writes_figure_and_tables(tmp_path, capsys):
    make_dtd(tmp_path / "data", classes=3, per_split=(4, 1, 1))
    code = main(["dtd", "--data-dir", str(tmp_path / "data"), "--size", "24", "--classes", "3", "--per-class", "2",
                 "--results-dir", str(tmp_path / "results")])
    assert code == 0
    out = tmp_path / "results" / "datasets" / "dtd"
    assert sorted(p.name for p in out.iterdir()) == ["classes.csv", "dataset.png", "splits.csv"]
    png = (out / "dataset.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert "dtd: 47 classes" in capsys.readouterr().out
    assert (out / "classes.csv").read_text().splitlines()[1] == "0,texture0,4,1,1"


class UnreachableAircraft(torchvision.datasets.FGVCAircraft):
    _URL = "http://127.0.0.1:9/fgvc-aircraft-2013b.tar.gz"  # the discard port: refused at once, like no network


def test_command_missing_dataset_exit_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(DATASETS, "aircraft_offline", dataclasses.replace(DATASETS["fgvc_aircraft"],
                                                                          cls=UnreachableAircraft))
    assert main(["aircraft_offline", "--data-dir", str(tmp_path / "empty"), "--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: dataset 'aircraft_offline'") and "variants.txt" in err
    assert "download failed" in err and not (tmp_path / "datasets").exists()
    assert [p.name for p in (tmp_path / "empty").iterdir() if not p.name.endswith(".lock")] == []  # no leftovers


def test_round_trip_through_mlflow_run(tmp_path, flowers):
    from sweeps.recording import log_artifact_bytes  # how the runner writes a parent run's artifacts

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("datasets", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(exp).info.run_id
    art = dataset_summary(flowers, classes=3, per_class=2)
    for path, data in encode_all(art).items():
        log_artifact_bytes(client, run_id, path, data)
    back = artifacts_from_run(uri, run_id)
    assert sorted(back) == sorted(art)
    np.testing.assert_array_equal(back["dataset/samples.npy"], art["dataset/samples.npy"])
    assert back["dataset/summary.json"] == art["dataset/summary.json"]
    assert back["dataset/classes.csv"].equals(art["dataset/classes.csv"])
    assert summary_text(back) == summary_text(art)
    paths = draw_summary(back, tmp_path / "redrawn")
    assert [p.name for p in paths] == ["dataset.png", "splits.csv", "classes.csv"] and all(p.is_file() for p in paths)
    other = client.create_run(exp).info.run_id
    assert artifacts_from_run(uri, other) is None  # a run without a summary
