"""The batch-augmentation study: its recipe, its trial wrapper, ASHA's time attribute, and the smoke
sweep end to end (real Ray, real MLflow SQLite, real ResNet-44 training on a fake CIFAR-10 written in
the real pickle format). Shapes, label repetition, distinct cutout masks and M = 1 = plain pipeline
are tested in tests/test_augment.py."""

from __future__ import annotations

import dataclasses
import math
import pickle

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from fake_datasets import UncheckedCIFAR10, make_cifar
from trainables.training.augment import batch_augment, normalize
from sweeps.batch_augment import BatchAugmentConfig, he_milestones, to_loop
from trainables.image.probes import BestAccuracy
from trainables.config import ConfigError, from_dict
from trainables.data.vision import DATASETS

def colour_classes(root, seed: int = 0) -> None:
    """Rewrite make_cifar's files so each class is a colour plus noise. Its learnable patterns are fixed
    per pixel, which a 4-pixel random crop scrambles; a colour survives crop, flip and cutout, so ResNet-44
    learns it within a few epochs of 20 steps."""
    colours = np.random.default_rng(99).integers(30, 226, size=(10, 3, 1))
    rng = np.random.default_rng(seed)
    for path in sorted((root / UncheckedCIFAR10.base_folder).glob("*_batch*")):
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        labels = np.asarray(entry["labels"])
        pixels = colours[labels] + rng.normal(0, 30, size=(len(labels), 3, 1024))
        entry["data"] = np.clip(pixels, 0, 255).astype(np.uint8).reshape(len(labels), 3072)
        with open(path, "wb") as f:
            pickle.dump(entry, f)


FIGURES = ["val_error_vs_epochs.png", "epochs_to_target_vs_m.png", "time_to_target_vs_m.png", "cutout_examples.png"]


def test_m_copies_get_different_crops():
    x = torch.randint(1, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    y, labels = batch_augment(x, torch.arange(4), 8, torch.Generator().manual_seed(0), mean=(0.5,) * 3,
                              std=(0.25,) * 3, padding=4, flip=False, cutout=0)
    assert y.shape == (32, 3, 32, 32) and torch.equal(labels, torch.arange(4).repeat(8))
    padded = normalize(torch.nn.functional.pad(x, (4,) * 4), (0.5,) * 3, (0.25,) * 3)
    for i in range(4):
        offsets = set()
        for k in range(8):  # each copy is one shifted window of its own sample
            copy = y[k * 4 + i]
            hits = [(dy, dx) for dy in range(9) for dx in range(9)
                    if torch.equal(padded[i, :, dy:dy + 32, dx:dx + 32], copy)]
            assert len(hits) == 1
            offsets.add(hits[0])
        assert len(offsets) > 2  # 8 copies, 81 possible windows: independent draws


def test_recipe_and_lr_scaling():
    assert he_milestones(50_000) == (82, 123) and he_milestones(45_000) == (91, 137)
    cfg = BatchAugmentConfig()
    assert (cfg.model, cfg.batch_size, cfg.cutout, cfg.crop_flip, cfg.weight_decay, cfg.momentum) == (
        "resnet44", 64, 16, True, 1e-4, 0.9)
    assert cfg.lr_milestones == (82, 123) and cfg.target_accuracy == 0.94 and cfg.epochs == 100
    base = BatchAugmentConfig(batch_m=4, lr=0.1)
    assert to_loop(base).loop.lr == pytest.approx(0.1)
    assert to_loop(dataclasses.replace(base, lr_scaling="linear")).loop.lr == pytest.approx(0.4)
    trial = to_loop(dataclasses.replace(base, lr_scaling="sqrt"))
    assert trial.loop.lr == pytest.approx(0.2) and trial.params == {"lr_effective": pytest.approx(0.2)}
    assert not hasattr(to_loop(base).loop, "lr_scaling")  # the loop's config holds the loop's keys only
    with pytest.raises(ConfigError, match="lr_scaling='cubic'"):
        from_dict(BatchAugmentConfig, {"lr_scaling": "cubic"})
    with pytest.raises(ConfigError, match="target_accuracy=94"):
        from_dict(BatchAugmentConfig, {"target_accuracy": 94})


def test_best_accuracy_probe_keeps_the_best_through_a_checkpoint():
    probe = BestAccuracy()
    probe.start(None, None, None, None)
    seen = [probe.observe(epoch, {"test/accuracy": acc, "train/loss": 1.0}, None, epoch == 3)[0]
            for epoch, acc in enumerate((0.4, 0.7, 0.5), start=1)]
    assert [m["test/best_accuracy"] for m in seen] == [0.4, 0.7, 0.7]
    assert seen[-1]["test/error"] == pytest.approx(0.5)
    assert probe.observe(4, {"train/loss": 1.0}, None, True) == ({}, {})  # no test accuracy: nothing to add
    resumed = BestAccuracy()
    resumed.start(None, None, None, probe.state())
    assert resumed.best == 0.7


def test_asha_time_attribute_in_passes():
    from conftest import sweep_plan
    from sweeps.batch_augment import STUDY
    from sweeps.tuning import scheduler

    plan = sweep_plan(STUDY, ["--preset", "quick", "--scheduler", "asha", "--asha-time", "passes"])
    asha = scheduler(plan)
    # M in {1, 2, 4}, 8 epochs: up to 32 passes; the M = 1 trial keeps its 2 grace epochs
    assert asha._time_attr == "train/passes" and asha._max_t == 32
    assert sorted(milestone for milestone, _ in asha._brackets[0]._rungs) == [2, 6, 18]
    assert scheduler(sweep_plan(STUDY, ["--preset", "quick", "--scheduler", "asha"]))._time_attr == "epoch"


def test_asha_time_without_asha_is_a_usage_error(tmp_path):
    from conftest import ROOT, run_script

    proc = run_script([str(ROOT / "sweeps" / "batch_augment.py"), "--asha-time", "passes", "--results-dir", "res"],
                      cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == "error: --asha-time passes needs --scheduler asha"
    assert not (tmp_path / "res").exists()


@pytest.mark.slow
def test_smoke_sweep_end_to_end(tmp_path, clean_env, monkeypatch):
    """Data built on the driver (registry patched in this process) and shipped to the trials."""
    from sweeps import batch_augment
    from sweeps.runner import main

    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(DATASETS["cifar10"], cls=UncheckedCIFAR10))
    monkeypatch.chdir(tmp_path)
    data_dir = tmp_path / "data"
    make_cifar(data_dir, UncheckedCIFAR10, per_file=64, learnable=True)
    colour_classes(data_dir)
    results = tmp_path / "res"
    argv = ["--preset", "smoke", "--results-dir", str(results), "--set", f"data_dir={data_dir}",
            "--set", "target_accuracy=0.35", "--set", "epochs=4"]
    assert main(batch_augment.STUDY, argv) == 0

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("batch_augment")
    parent = client.search_runs([experiment.experiment_id], "tags.`sweep.parent` = '1'")[0]
    children = client.search_runs([experiment.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(int(c.data.params["batch_m"]) for c in children) == [1, 2]
    for child in children:
        params, metrics = child.data.params, child.data.metrics
        assert params["model"] == "resnet44" and params["cutout"] == "16" and params["crop_flip"] == "True"
        assert int(params["n_params"]) == pytest.approx(0.66e6, rel=0.02)  # He et al.: 0.66M
        assert float(params["lr_effective"]) == pytest.approx(0.05)
        epochs = int(child.data.tags["stopped_at_epoch"])
        history = client.get_metric_history(child.info.run_id, "test/error")
        assert sorted(m.step for m in history) == list(range(1, epochs + 1))
        for key in ("train/loss", "time/train_s", "time/epoch_s", "test/best_accuracy", "train/passes"):
            assert len(client.get_metric_history(child.info.run_id, key)) == epochs, key
        assert metrics["train/passes"] == epochs * int(params["batch_m"])
        # the target-accuracy stop: a trial ends at the first epoch at or above 35%, and counts as finished
        accuracies = [1 - m.value for m in sorted(history, key=lambda m: m.step)]
        assert all(a < 0.35 for a in accuracies[:-1])
        assert child.data.tags["trial_status"] == "finished"
        assert (accuracies[-1] >= 0.35) or epochs == 4
        assert metrics["test/best_accuracy"] == pytest.approx(max(accuracies), abs=1e-6)
    assert any(int(c.data.tags["stopped_at_epoch"]) < 4 for c in children), "no trial reached the 35% target"

    figures = results / "batch_augment"
    for name in FIGURES:
        assert (figures / name).stat().st_size > 5000, name
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert {f"figures/{name}" for name in FIGURES} <= artifacts

    # Regenerated from the MLflow records in a separate process (the cutout figure from the recorded data dir).
    from conftest import run_script

    for name in FIGURES:
        (figures / name).unlink()
    regen = run_script(["-m", "analysis", "batch_augment", "--results-dir", str(results)], cwd=tmp_path)
    assert regen.returncode == 0, regen.stderr[-2000:]
    assert "per M" in regen.stdout and "He et al. 2015" in regen.stdout
    for name in FIGURES:
        assert (figures / name).stat().st_size > 5000, name
    assert math.isfinite(float(regen.stdout.split("ours at M=1: ")[-1].split("%")[0]))
