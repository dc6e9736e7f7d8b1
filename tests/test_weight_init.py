"""The weight-initialization study: init -> weight_init/init_sigma, the variances each init draws (measured on built
layers), layer_statistics on a plain MLP and on a fused population, and the smoke sweep end to end (real Ray, real
MLflow SQLite, a fake MNIST in the real idx format), its figures redrawn from MLflow alone by
`python -m analysis weight_init`."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from fake_datasets import make_mnist
from trainables.config import ConfigError, from_dict
from sweeps.weight_init import INITS, STUDY_ACTIVATIONS, WeightInitConfig, to_loop
from trainables.image.trial import build_classifier, trial_params
from trainables.studies.weight_init import HISTOGRAMS, LAYER_STATS, layer_statistics
from trainables.training.population import build_population


def classify_config(values: dict):
    """The loop's config of a weight_init config given as plain values."""
    return to_loop(from_dict(WeightInitConfig, values)).loop


def _model(init: str, activation: str = "tanh", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_classifier(classify_config({"init": init, "activation": activation}))


@pytest.mark.parametrize("init", list(INITS))
def test_each_init_draws_its_variance(init):
    """The empirical variance of every Linear layer's weights (784x100, 100x100 x4, 100x10) against the scheme's,
    within 5 standard errors of a sample variance (Var(s^2) = 2 sigma^4 / (n - 1) for normal draws); biases 0."""
    linears = [m for m in _model(init).modules() if isinstance(m, torch.nn.Linear)]
    assert [tuple(m.weight.shape) for m in linears] == [(100, 784), *[(100, 100)] * 4, (10, 100)]
    for m in linears:
        n_out, n_in = m.weight.shape
        expected = {"normal_small": 0.01**2, "normal_large": 1.0, "glorot": 2 / (n_in + n_out), "he": 2 / n_in}[init]
        w = m.weight.detach().double()
        assert abs(w.mean().item()) < 5 * math.sqrt(expected / w.numel())
        assert w.var().item() == pytest.approx(expected, rel=5 * math.sqrt(2 / (w.numel() - 1)))
        assert (m.bias == 0).all()


def test_init_owns_weight_init_and_sigma():
    cfg = WeightInitConfig()
    assert (cfg.dataset, cfg.model, cfg.widths, cfg.optimizer, cfg.lr, cfg.momentum) == (
        "mnist", "mlp", (100,) * 5, "sgd", 0.01, 0.9)
    small = classify_config({"init": "normal_small"})
    assert (small.weight_init, small.init_sigma) == ("normal", 0.01)
    assert classify_config({"init": "he"}).weight_init == "he" and not hasattr(classify_config({}), "init")
    assert trial_params(to_loop(WeightInitConfig(init="normal_large")))["init_sigma"] == 1.0
    with pytest.raises(ConfigError, match=r"^init='xavier' is not one of normal_small, normal_large, glorot, he$"):
        from_dict(WeightInitConfig, {"init": "xavier"})
    for key, value in (("weight_init", "he"), ("init_sigma", 0.5)):
        with pytest.raises(ConfigError, match=f"^{key}: set by init in this study"):
            from_dict(WeightInitConfig, {key: value})


def test_layer_statistics_plain_and_population_agree():
    """A population's per-replica statistics are those of its replicas built as separate models (same seeds), and
    the textbook picture holds: N(0, 0.01^2) shrinks tanh's activations ~10x per layer, Glorot keeps them."""
    x, y = torch.randn(300, 1, 28, 28), torch.randint(0, 10, (300,))
    config = classify_config({"init": "glorot", "activation": "tanh"})
    pop = build_population(lambda: build_classifier(config), [3, 4])
    stats, hist = layer_statistics(pop, x, y, bins=10, seeds=[3, 4])
    assert list(stats.columns) == ["replica", "seed", "layer", "act_mean", "act_std", "zero_frac", "sat_frac",
                                   "grad_norm"]
    assert len(stats) == 2 * 5 and len(hist) == 5 * 10
    assert hist["lo"].min() == -1.0 and hist["hi"].max() == 1.0  # tanh's fixed range
    for seed in (3, 4):
        alone, alone_hist = layer_statistics(_model("glorot", "tanh", seed), x, y, bins=10)
        mine = stats[stats["seed"] == seed].reset_index(drop=True)
        for col in ("act_mean", "act_std", "grad_norm"):
            assert mine[col].to_numpy() == pytest.approx(alone[col].to_numpy(), rel=1e-4, abs=1e-7), col
    small, _ = layer_statistics(_model("normal_small", "tanh"), x, y)
    assert (small["act_std"].diff().dropna() < 0).all() and small["act_std"].iloc[-1] < 1e-3
    glorot = stats[stats["seed"] == 3]["act_std"]
    assert glorot.iloc[-1] / glorot.iloc[0] > 0.2
    assert (stats["sat_frac"] < 0.2).all()
    large, _ = layer_statistics(_model("normal_large", "tanh"), x, y)
    assert (large["sat_frac"] > 0.5).all()  # N(0, 1): tanh's units stuck at +-1
    relu, relu_hist = layer_statistics(_model("he", "relu"), x, y, bins=8)
    assert relu["zero_frac"].between(0.3, 0.7).all()  # ReLU zeroes about half its inputs
    assert relu_hist["count"].sum() == pytest.approx(300 * 100 * 5 * (1 - relu["zero_frac"].mean()), rel=1e-6)


FIGURES = ["histograms_init.png", "histograms_trained.png", "layer_stats.png", "test_accuracy.png"]


@pytest.mark.slow
def test_smoke_sweep_end_to_end(tmp_path, clean_env, monkeypatch, capsys):
    from conftest import run_script
    from sweeps import weight_init
    from sweeps.runner import main

    monkeypatch.chdir(tmp_path)
    make_mnist(tmp_path / "data", "MNIST", n_train=512, n_test=256, learnable=True)
    results = tmp_path / "res"
    argv = ["--preset", "smoke", "--results-dir", str(results), "--data-dir", str(tmp_path / "data")]
    assert main(weight_init.STUDY, argv) == 0
    printed = capsys.readouterr().out

    uri = f"sqlite:///{results / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("weight_init")
    parent = client.search_runs([experiment.experiment_id], "tags.`sweep.parent` = '1'")[0]
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    configs = {(c.data.params["activation"], c.data.params["init"]): c for c in children}
    assert len(children) == 12 and set(configs) == {(a, i) for a in STUDY_ACTIVATIONS for i in INITS}

    from analysis.records import trial_artifact

    for (activation, init), run in configs.items():
        params = run.data.params
        assert params["seeds"] == "2" and params["weight_init"] == INITS[init]["weight_init"]  # one population trial
        stats = trial_artifact(uri, run.info.run_id, LAYER_STATS)
        hist = trial_artifact(uri, run.info.run_id, HISTOGRAMS)
        assert list(stats.columns) == ["phase", "replica", "seed", "layer", "act_mean", "act_std", "zero_frac",
                                       "sat_frac", "grad_norm"]
        assert sorted(stats["seed"].unique()) == [0, 1] and sorted(stats["layer"].unique()) == [1, 2, 3, 4, 5]
        assert len(stats[stats["phase"] == "init"]) == 10
        assert set(stats["phase"]) == {"init", "trained"}, (activation, init)  # diverged trials too
        assert (hist.groupby(["phase", "layer"]).size() == 20).all()
        if run.data.tags["trial_status"] == "finished":
            assert len(client.get_metric_history(run.info.run_id, "test/accuracy")) == 2
    # the learnable fake MNIST is learned by the good inits (chance: 0.1)
    assert configs[("tanh", "glorot")].data.metrics["test/accuracy"] > 0.3
    assert configs[("relu", "he")].data.metrics["test/accuracy"] > 0.3

    out = results / "weight_init"
    table = pd.read_csv(out / "configs.csv")
    assert len(table) == 12 and (table["seeds"] == 2).all()
    rows = table.set_index(["activation", "init"])
    # at init N(0, 0.01^2) shrinks tanh's and ReLU's activations layer after layer; Glorot/He keep them
    assert rows.loc[("tanh", "normal_small"), "std_ratio"] < 1e-2 < 0.2 < rows.loc[("tanh", "glorot"), "std_ratio"]
    assert rows.loc[("relu", "normal_small"), "std_ratio"] < 1e-2 < 0.2 < rows.loc[("relu", "he"), "std_ratio"]
    assert rows.loc[("tanh", "normal_large"), "saturated"] > 0.5 > rows.loc[("tanh", "glorot"), "saturated"]
    tanh = next(line for line in printed.splitlines() if line.startswith("tanh: the activation std is steadiest"))
    assert "saturated at init, left out: normal_large" in tanh
    assert "relu: the activation std is steadiest across layers at init with he" in printed

    first = {name: (out / name).stat().st_size for name in FIGURES}
    for name in FIGURES:
        assert first[name] > 10_000, name
        (out / name).unlink()
    (out / "configs.csv").unlink()
    regen = run_script(["-m", "analysis", "weight_init", "--results-dir", str(results)], cwd=tmp_path)
    assert regen.returncode == 0, regen.stderr[-2000:]
    assert "relu: the activation std is steadiest across layers at init with he" in regen.stdout
    for name in FIGURES:
        assert (out / name).stat().st_size > 10_000, name
    pd.testing.assert_frame_equal(pd.read_csv(out / "configs.csv"), table)
