"""The transfer-learning study: batched random-resized crops, pretrained weights (a locally saved ResNet state
dict; torchvision's download path offline is a one-line error), the frozen backbone, the cached-features fast
path against the plain one, grid points that pair modes with their own learning rates, and the smoke sweep
end to end (real Ray, real MLflow SQLite, fake Flowers102 in its real on-disk format), its figures redrawn
from MLflow alone."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torchvision
from mlflow.tracking import MlflowClient

from conftest import run_script
from fake_datasets import UncheckedFlowers102, make_dtd, make_flowers102
from trainables.training.augment import center_crop_resize, random_resized_crop_flip
from trainables.config import ConfigError, from_dict
from trainables.models.pretrained import (WeightsUnavailableError, build_transfer_model, fetch_weights, load_pretrained,
                                   weights_file)
from trainables.runtime.session import LocalSession
from trainables.studies.transfer.config import TransferConfig
from trainables.studies.transfer.trial import make_data
from trainables.studies.transfer.trial import train_transfer as train_typed


def train_transfer(config: dict, data, session) -> None:
    """The trial on a config given as the plain values a trial receives."""
    train_typed(from_dict(TransferConfig, config), data, session)
from trainables.data.vision import DATASETS

FIGURES = ("accuracy_curves.png", "best_accuracy_vs_lr.png", "epoch_time.png", "dataset.png")
SMALL = {"arch": "resnet18", "image_size": 32, "load_size": 36, "batch_size": 8}


@pytest.fixture
def flowers(tmp_path, monkeypatch):
    """A fake Flowers102 (4 classes, 8/4/4 images each) registered with the MD5 checks off, and its data dir."""
    monkeypatch.setitem(DATASETS, "flowers102", dataclasses.replace(DATASETS["flowers102"], cls=UncheckedFlowers102))
    data_dir = tmp_path / "data"
    make_flowers102(data_dir, classes=4, per_split=(8, 4, 4))
    return data_dir


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    """A ResNet-18 state dict saved locally (random weights: no pretrained file can be downloaded here)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def _offline(monkeypatch, tmp_path):
    """An empty torch hub and every download through a closed local port: offline whatever the machine has."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for key in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(key, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)


# ---------------------------------------------------------------- augmentation

def test_random_resized_crop_is_a_resampled_window_and_flip():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(64, dtype=torch.uint8).view(1, 1, 8, 8).repeat(6, 3, 1, 1)
    whole = random_resized_crop_flip(x, 8, g, scale=(1, 1), ratio=(1, 1), flip=False)
    assert torch.equal(whole * 255, x.float())  # the whole image at its own size: itself, on [0, 1]
    flipped = random_resized_crop_flip(x, 8, g, scale=(1, 1), ratio=(1, 1), flip=True) * 255
    mirrored = [torch.equal(f, x[0].float().flip(-1)) for f in flipped]
    assert all(m or torch.equal(f, x[0].float()) for m, f in zip(mirrored, flipped)) and 0 < sum(mirrored) < 6
    quarter = random_resized_crop_flip(x, 4, g, scale=(0.25, 0.25), ratio=(1, 1), flip=False) * 255
    for crop in quarter:  # a 4x4 box sampled at 4x4: exactly a window of the image
        top, left = int(crop[0, 0, 0]) // 8, int(crop[0, 0, 0]) % 8
        assert torch.equal(crop, x[0, :, top:top + 4, left:left + 4].float())
    # a box that can never fit (aspect 4 on a square, whole area): the whole image, as torchvision falls back
    fallback = random_resized_crop_flip(x, 8, g, scale=(1, 1), ratio=(4, 4), flip=False)
    assert torch.equal(fallback * 255, x.float())
    big = random_resized_crop_flip(torch.randint(0, 256, (32, 3, 40, 30), dtype=torch.uint8), 24, g)
    assert big.shape == (32, 3, 24, 24) and 0 <= big.min() and big.max() <= 1


def test_center_crop_keeps_the_middle():
    x = torch.zeros(1, 3, 16, 16, dtype=torch.uint8)
    x[..., 4:12, 4:12] = 255
    assert torch.equal(center_crop_resize(x, 8, 0.5), torch.ones(1, 3, 8, 8))
    assert center_crop_resize(x, 4, 0.5).shape == (1, 3, 4, 4)


# ---------------------------------------------------------------- weights

def test_a_saved_state_dict_loads_and_a_wrong_one_says_why(resnet18_file, tmp_path):
    state = load_pretrained("resnet18", weights_path=str(resnet18_file))
    model = build_transfer_model("resnet18", state, num_classes=7, frozen=False)
    assert model.head.out_features == 7 and model.head.in_features == 512
    assert torch.equal(model.backbone.conv1.weight, state["conv1.weight"])
    with pytest.raises(WeightsUnavailableError, match=r"is not a resnet50 state dict: .*set arch="):
        load_pretrained("resnet50", weights_path=str(resnet18_file))
    with pytest.raises(WeightsUnavailableError, match="no such file"):
        load_pretrained("resnet18", weights_path=str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_text("not a tensor file")
    with pytest.raises(WeightsUnavailableError, match="cannot read .* as a state dict"):
        load_pretrained("resnet18", weights_path=str(tmp_path / "junk.pth"))


def test_offline_without_the_weights_file_is_one_line_naming_it(monkeypatch, tmp_path):
    _offline(monkeypatch, tmp_path)
    expected = weights_file("resnet50", "IMAGENET1K_V1")
    assert str(expected).startswith(str(tmp_path / "torch")) and expected.name == "resnet50-0676ba61.pth"
    with pytest.raises(WeightsUnavailableError) as error:
        fetch_weights("resnet50", "IMAGENET1K_V1")
    message = str(error.value)
    assert "\n" not in message and str(expected) in message
    assert "python -m trainables.models.pretrained resnet50 --weights IMAGENET1K_V1" in message and "weights_path" in message
    assert not expected.exists()
    with pytest.raises(ConfigError, match="weights='V9' is not one of resnet50's"):
        from_dict(TransferConfig, {"weights": "V9"})


# ---------------------------------------------------------------- the trial

def test_feature_extractor_leaves_the_backbone_unchanged_and_fine_tuning_moves_it(flowers, resnet18_file):
    config = {**SMALL, "data_dir": str(flowers), "weights_path": str(resnet18_file), "epochs": 2}
    data = make_data(from_dict(TransferConfig, config))
    assert data.images.train.images.shape == (32, 3, 36, 36) and len(data.images.val.labels) == 16
    changes = {}
    for mode in ("feature_extractor", "finetune"):
        session = LocalSession(epochs=2)
        train_transfer({**config, "mode": mode, "lr": 0.01}, data, session)
        assert [h["epoch"] for h in session.history] == [1, 2]
        assert all(math.isfinite(h["test/accuracy"]) and math.isfinite(h["val/accuracy"]) for h in session.history)
        changes[mode] = session.history[-1]["backbone/max_change"]
    assert changes["feature_extractor"] == 0.0  # parameters and batch-norm statistics alike
    assert changes["finetune"] > 1e-4

    model = build_transfer_model("resnet18", data.state, 102, frozen=True)
    model.train()
    assert not model.backbone.training and model.head.training
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert model(torch.rand(2, 3, 32, 32)).grad_fn is not None  # the head still learns
    assert model.features(torch.rand(2, 3, 32, 32)).grad_fn is None  # no graph through the backbone


def test_cached_features_train_the_same_head_as_the_plain_path(flowers, resnet18_file):
    config = {**SMALL, "data_dir": str(flowers), "weights_path": str(resnet18_file), "epochs": 3,
              "mode": "feature_extractor", "lr": 0.1, "augment": False}
    data = make_data(from_dict(TransferConfig, config))
    plain, cached = LocalSession(epochs=3), LocalSession(epochs=3)
    train_transfer(config, data, plain)
    train_transfer({**config, "cache_features": True}, data, cached)
    assert "time/features_s" in cached.history[0] and "time/features_s" not in plain.history[0]
    for a, b in zip(plain.history, cached.history):  # same head init, data order and features
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=1e-3)
        assert b["test/loss"] == pytest.approx(a["test/loss"], rel=1e-3)
        assert b["test/accuracy"] == pytest.approx(a["test/accuracy"], abs=1e-6)
    assert cached.history[-1]["backbone/max_change"] == 0.0


def test_dtd_trains_through_the_same_trial(tmp_path, resnet18_file):
    data_dir = tmp_path / "data"
    make_dtd(data_dir, classes=3, per_split=(6, 2, 2))
    config = {**SMALL, "dataset": "dtd", "data_dir": str(data_dir), "weights_path": str(resnet18_file),
              "epochs": 1, "mode": "feature_extractor", "lr": 0.1, "cache_features": True}
    data = make_data(from_dict(TransferConfig, config))
    assert data.images.num_classes == 47 and len(data.images.train.labels) == 18
    session = LocalSession(epochs=1)
    train_transfer(config, data, session)
    assert 0 <= session.history[0]["test/accuracy"] <= 1


def test_a_diverging_trial_is_recorded_as_diverged(flowers, resnet18_file):
    config = {**SMALL, "data_dir": str(flowers), "weights_path": str(resnet18_file), "epochs": 3,
              "mode": "finetune", "lr": 1e4}
    session = LocalSession(epochs=3)
    train_transfer(config, make_data(from_dict(TransferConfig, config)), session)
    assert session.history[-1]["diverged"] == 1 and len(session.history) < 3
    assert math.isnan(session.history[-1]["test/accuracy"])


def test_config_errors():
    with pytest.raises(ConfigError, match="image_size=256 is larger than load_size=224"):
        from_dict(TransferConfig, {"image_size": 256, "load_size": 224})
    with pytest.raises(ConfigError, match="mode='linear'"):
        from_dict(TransferConfig, {"mode": "linear"})
    with pytest.raises(ConfigError, match="dataset='mnist' is not one of flowers102, dtd, fgvc_aircraft"):
        from_dict(TransferConfig, {"dataset": "mnist"})
    assert TransferConfig(epochs=200).decay_epochs() == [60, 120, 180]
    assert TransferConfig(epochs=8).decay_epochs() == [2, 5, 7]


# ---------------------------------------------------------------- the study

def test_presets_pair_each_mode_with_its_learning_rates():
    from conftest import sweep_plan
    from sweeps import transfer

    def plan(*argv):
        return sweep_plan(transfer.STUDY, list(argv))

    quick = plan()
    assert [(p["mode"], p["lr"]) for p in quick.points] == [
        ("finetune", 0.001), ("finetune", 0.01), ("finetune", 0.1),
        ("feature_extractor", 1.0), ("feature_extractor", 0.1), ("feature_extractor", 0.01),
        ("feature_extractor", 0.001)]
    assert quick.num_samples == 7 and quick.base.arch == "resnet18"
    pinned = plan("--set", "lr=0.01")  # pinning a key of the points: the modes remain, once each
    assert pinned.points == ({"mode": "finetune"}, {"mode": "feature_extractor"}) and pinned.num_samples == 2
    assert plan("--preset", "paper").base.arch == "resnet50"
    assert plan("--set", "seeds=2").space["seed"] == (0, 1)  # seeds: separate trials, each point twice


def test_offline_weights_error_exits_2_and_creates_nothing(tmp_path, monkeypatch, clean_env):
    _offline(monkeypatch, tmp_path)
    proc = run_script(["sweeps/transfer.py", "--preset", "smoke", "--results-dir", str(tmp_path / "res")],
                      cwd=pytest.importorskip("pathlib").Path(__file__).resolve().parent.parent,
                      env={"TORCH_HOME": str(tmp_path / "torch"), "HTTPS_PROXY": "http://127.0.0.1:9",
                           "https_proxy": "http://127.0.0.1:9"})
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip()
    assert line.startswith("error: pretrained weights resnet18 IMAGENET1K_V1: ") and "\n" not in line
    assert "python -m trainables.models.pretrained resnet18" in line
    assert not (tmp_path / "res").exists()


@pytest.mark.slow
def test_smoke_sweep_end_to_end(flowers, resnet18_file, tmp_path, clean_env, monkeypatch):
    from sweeps import transfer
    from sweeps.runner import main

    monkeypatch.chdir(tmp_path)
    results = tmp_path / "res"
    argv = ["--preset", "smoke", "--results-dir", str(results), "--set", f"data_dir={flowers}",
            "--set", f"weights_path={resnet18_file}"]
    assert main(transfer.STUDY, argv) == 0

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("transfer")
    parent = client.search_runs([experiment.experiment_id], "tags.`sweep.parent` = '1'")[0]
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    by_mode = {c.data.params["mode"]: c for c in children}
    assert sorted(by_mode) == ["feature_extractor", "finetune"] and len(children) == 2
    assert float(by_mode["finetune"].data.params["lr"]) == 0.01
    assert float(by_mode["feature_extractor"].data.params["lr"]) == 0.1
    for mode, child in by_mode.items():
        assert child.data.tags["trial_status"] == "finished"
        assert len(client.get_metric_history(child.info.run_id, "test/accuracy")) == 3
        trained = int(child.data.params["n_trained_params"])
        assert trained == (512 * 103 if mode == "feature_extractor" else int(child.data.params["n_params"]))
    assert by_mode["feature_extractor"].data.metrics["backbone/max_change"] == 0.0
    assert by_mode["finetune"].data.metrics["backbone/max_change"] > 0.0
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "dataset")}
    assert {"dataset/classes.csv", "dataset/splits.csv", "dataset/samples.npy"} <= logged

    figures = results / "transfer"
    for name in FIGURES:
        assert (figures / name).stat().st_size > 5000, name
    assert {f"figures/{name}" for name in FIGURES} <= {a.path for a in client.list_artifacts(parent.info.run_id,
                                                                                            "figures")}
    for name in FIGURES:  # redrawn from the MLflow records alone, in another process
        (figures / name).unlink()
    regen = run_script(["-m", "analysis", "transfer", "--results-dir", str(results)], cwd=tmp_path)
    assert regen.returncode == 0, regen.stderr[-2000:]
    assert "winner: " in regen.stdout and "PyTorch transfer-learning tutorial" in regen.stdout
    assert "training time per epoch: fine-tuning" in regen.stdout
    for name in FIGURES:
        assert (figures / name).stat().st_size > 5000, name
