"""The optimizers study: its config (regularization, per-method learning rates), and the smoke sweeps end to end
(real Ray, real MLflow SQLite, real training on MNIST and CIFAR-10 written in their real on-disk formats):
separate trials and one population of methods give the same table, the LR search feeds the sweep, and the
figures are redrawn from MLflow alone. (RMSProp-Nesterov's step and the dropout scaling equivalence:
tests/test_optimizers.py; a population of optimizers against separate runs: tests/test_population_trials.py.)"""

from __future__ import annotations

import dataclasses
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, run_script
from fake_datasets import UncheckedCIFAR10, make_cifar, make_mnist
from trainables.config import ConfigError, from_dict
from sweeps.optimizers import OptimizersConfig, to_loop
from trainables.config import to_dict
from trainables.data.vision import DATASETS
from trainables.studies.optimizers import METHOD_LRS, METHODS


def classify_config(cfg: OptimizersConfig) -> dict:
    return to_dict(to_loop(cfg).loop)

FIGURES = ("train_loss_curves.png", "training_time.png", "test_accuracy.png", "test_accuracy.csv")


def test_regularization_and_per_method_learning_rates():
    l2 = classify_config(from_dict(OptimizersConfig, {"optimizer": "adadelta", "regularization": "l2"}))
    assert (l2["weight_decay"], l2["dropout_input"], l2["dropout_hidden"], l2["lr"]) == (1e-4, 0.0, 0.0, 1.0)
    assert l2["widths"] == (1000, 1000) and l2["batch_size"] == 128 and l2["model"] == "mlp"
    drop = classify_config(from_dict(OptimizersConfig, {"optimizer": "adam", "regularization": "dropout"}))
    assert (drop["weight_decay"], drop["dropout_input"], drop["dropout_hidden"], drop["lr"]) == (0.0, 0.2, 0.5, 1e-3)
    fused = classify_config(from_dict(OptimizersConfig, {"optimizers": ",".join(METHODS), "lr_adam": 0.003}))
    assert fused["lrs"] == tuple(0.003 if m == "adam" else METHOD_LRS[m] for m in METHODS)
    with pytest.raises(ConfigError, match="weight_decay: set by regularization"):
        from_dict(OptimizersConfig, {"weight_decay": 0.01})
    with pytest.raises(ConfigError, match="regularization='both'"):
        from_dict(OptimizersConfig, {"regularization": "both"})


def _sweep(tmp_path, name, *flags):
    from sweeps import optimizers
    from sweeps.runner import main

    results = tmp_path / name
    assert main(optimizers.STUDY, ["--preset", "smoke", "--results-dir", str(results), *flags]) == 0
    return results, pd.read_csv(results / "optimizers" / "test_accuracy.csv")


def _children(results):
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("optimizers")
    parent = client.search_runs([experiment.experiment_id], "tags.`sweep.parent` = '1'")[0]
    return parent, client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")


@pytest.mark.slow
def test_smoke_sweeps_separate_and_fused_give_the_same_table_and_redraw(tmp_path, clean_env, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    make_mnist(tmp_path / "data", "MNIST", n_train=600, n_test=200, learnable=True)
    monkeypatch.setenv("DLSWEEPS_DATA_DIR", str(tmp_path / "data"))

    # eps=1e-8 for every method: AdaGrad's own delta (1e-10) turns a gradient element that is rounding noise
    # around 0 (it differs between the fused batched matmul and the separate one) into a full +-lr first step
    separate, table = _sweep(tmp_path, "separate", "--set", "eps=1e-8")
    out = capsys.readouterr().out
    assert "10 trials (10 finished)" in out and "Srivastava et al. 2014: 1.25%" in out and "Kingma & Ba" in out
    assert "training time with dropout / with L2:" in out
    _, children = _children(separate)
    assert len(children) == 10
    lrs = {c.data.params["optimizer"]: float(c.data.params["method_lr"]) for c in children}
    assert lrs == METHOD_LRS  # each method at its own learning rate
    assert sorted(table["method"].unique()) == sorted(METHODS) and set(table["regularization"]) == {"l2", "dropout"}
    assert (table["seeds"] == 1).all() and table["test_accuracy"].between(0, 1).all()

    fused, fused_table = _sweep(tmp_path, "fused", "--population", "on", "--set", "eps=1e-8")
    _, children = _children(fused)
    assert len(children) == 2  # one population of the 5 methods per regularization
    assert {c.data.params["optimizers"] for c in children} == {",".join(METHODS)}
    key = ["regularization", "method"]
    a, b = table.set_index(key).sort_index(), fused_table.set_index(key).sort_index()
    assert list(a.index) == list(b.index)
    pd.testing.assert_series_equal(a["lr"], b["lr"])
    for column in ("train_loss", "test_accuracy"):  # the same models, fused or not (CPU: equal up to rounding)
        pd.testing.assert_series_equal(a.loc["l2", column], b.loc["l2", column], rtol=2e-3, atol=1e-5)
    # (with dropout the masks match a separate run's only at equal thread counts: not asserted through Ray)
    assert b.loc["dropout", "train_loss"].notna().all()

    # redrawn from the MLflow records alone
    figures_dir = fused / "optimizers"
    for name in FIGURES:
        (figures_dir / name).unlink()
    proc = run_script(["-m", "analysis", "optimizers", "--results-dir", str(fused)], cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    for name in FIGURES:
        assert (figures_dir / name).stat().st_size > (2000 if name.endswith(".png") else 300), name
    pd.testing.assert_frame_equal(pd.read_csv(figures_dir / "test_accuracy.csv"), fused_table)


@pytest.mark.slow
def test_cifar10_with_an_lr_search(tmp_path, clean_env, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(DATASETS["cifar10"], cls=UncheckedCIFAR10))
    make_cifar(tmp_path / "data", UncheckedCIFAR10, per_file=40, learnable=True)
    results, table = _sweep(tmp_path, "cifar", "--set", "dataset=cifar10", "--set", f"data_dir={tmp_path / 'data'}",
                            "--set", "lr_search=2", "--set", "lr_search_epochs=1", "--population", "on",
                            "--set", "epochs=1")
    out = capsys.readouterr().out
    searched = {line.split()[2].rstrip(":"): float(line.split()[4]) for line in out.splitlines() if line.startswith("lr search ")
                and "trials" in line}
    assert sorted(searched) == sorted(METHODS)
    parent, children = _children(results)
    for method, lr in searched.items():  # the sweep trained with what the search found
        assert float(parent.data.params[f"base.lr_{method}"]) == pytest.approx(lr, rel=5e-3)
        assert table.set_index(["regularization", "method"]).loc[("l2", method), "lr"] == pytest.approx(lr, rel=5e-3)
        assert lr != METHOD_LRS[method]
    assert {c.data.params["dataset"] for c in children} == {"cifar10"}
