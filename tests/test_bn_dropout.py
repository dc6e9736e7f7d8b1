"""The batch-norm-vs-dropout study: setups -> model options, the summary's verdicts from numbers, and the smoke
sweep end to end (real Ray, real MLflow SQLite, LeNet-5 on a fake MNIST written in the real idx format), its
figures redrawn from MLflow alone by `python -m analysis bn_dropout`."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from fake_datasets import make_mnist
from sweeps.bn_dropout import SETUPS, BNDropoutConfig, to_loop
from trainables.config import ConfigError, from_dict
from trainables.image.trial import BATCHNORM_TABLE, build_classifier, trial_params

# BN layers of LeNet-5 in model order and their channels (input: MNIST's one channel)
BN_LAYERS = {"input": 1, "conv1": 6, "conv2": 16, "fc1": 120, "fc2": 84}


def _layers(setup: str) -> tuple[int, list[float]]:
    model = build_classifier(to_loop(BNDropoutConfig(setup=setup)).loop)
    bn = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    return bn, [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]


def test_each_setup_builds_its_model():
    assert _layers("bn") == (4, [])
    assert _layers("bn_input") == (5, [])
    assert _layers("dropout") == (0, [0.2, 0.5, 0.5])  # input, then after fc1 and fc2
    assert _layers("bn_dropout") == (4, [0.2, 0.5, 0.5])
    assert _layers("baseline") == (0, [])
    cfg = BNDropoutConfig()
    assert (cfg.dataset, cfg.model, cfg.optimizer, cfg.lr, cfg.lr_policy, cfg.batch_size) == (
        "mnist", "lenet5", "adam", 1e-3, "cosine", 128)
    assert not hasattr(to_loop(BNDropoutConfig(setup="bn")).loop, "setup")
    # the recorded params are the setup's options (they replace the config's unset ones)
    params = {s: trial_params(to_loop(BNDropoutConfig(setup=s))) for s in SETUPS}
    assert params["bn_input"]["input_batch_norm"] is True and params["bn"]["input_batch_norm"] is False
    assert params["bn_dropout"]["dropout_hidden"] == 0.5 and params["baseline"]["batch_norm"] is False
    # BN replaces the conv/FC biases (6+16+120+84) with gamma and beta (2 each); the input's adds 2
    assert params["bn"]["n_params"] - params["baseline"]["n_params"] == 226
    assert params["bn_input"]["n_params"] - params["bn"]["n_params"] == 2


def test_setup_owns_the_model_options():
    with pytest.raises(ConfigError, match=r"^setup='bn_inptu' is not one of bn, bn_input"):
        from_dict(BNDropoutConfig, {"setup": "bn_inptu"})
    for key, value in (("batch_norm", True), ("input_batch_norm", True), ("dropout_hidden", 0.3)):
        with pytest.raises(ConfigError, match=f"^{key}: set by the setup"):
            from_dict(BNDropoutConfig, {key: value})


def _runs(errors: dict[str, list[float]]) -> pd.DataFrame:
    """Trial rows as load_sweep gives them: one per (setup, seed), final metrics; errors in %."""
    rows = [{"run_id": f"{setup}-{seed}", "setup": setup, "seed": seed, "trial_status": "finished",
             "dataset": "mnist", "train_subset": 10000, "epochs": 8, "train/loss": 0.05, "train/accuracy": 0.99,
             "test/loss": 0.04, "test/accuracy": 1 - error / 100}
            for setup, values in errors.items() for seed, error in enumerate(values)]
    return pd.DataFrame(rows)


def test_summary_answers_from_the_numbers_not_from_the_code():
    from analysis.studies.bn_dropout import summary

    base = {"bn": [1.00, 1.02, 0.98], "dropout": [1.10, 1.14, 1.06], "baseline": [1.40, 1.45, 1.35]}
    clear = summary(_runs({**base, "bn_input": [0.80, 0.82, 0.78], "bn_dropout": [0.99, 1.03, 0.97]}))
    line = next(l for l in clear.splitlines() if l.startswith("batch norm on the input"))
    assert "0.80% ± 0.02 (bn_input, 3 seeds) vs 1.00% ± 0.02 (bn, 3 seeds)" in line
    assert "0.20 points lower, 12.2x its standard error (0.02): better beyond the spread" in line
    add = next(l for l in clear.splitlines() if l.startswith("do they add up"))
    assert "vs the better alone, 1.00% ± 0.02 (bn, 3 seeds)" in add and add.endswith("no clear difference")
    assert "bn +0.40, dropout +0.30, together +0.40 points (the two alone sum to +0.70)" in clear
    assert "LeNet-5 reference (LeCun et al. 1998): 0.95% test error" in clear
    assert "ours, best: 0.80% ± 0.02 (bn_input, 3 seeds) [at most 10000 training images, 8 epochs]" in clear

    same = summary(_runs({**base, "bn_input": [1.03, 0.95, 1.05], "bn_dropout": [0.70, 0.71, 0.69]}))
    line = next(l for l in same.splitlines() if l.startswith("batch norm on the input"))
    assert "0.01 points higher" in line and line.endswith("no clear difference")
    assert "0.30 points lower" in same and "better beyond the spread" in same.split("do they add up")[1]

    worse = summary(_runs({"bn": [1.0, 1.01, 0.99], "bn_input": [1.5, 1.51, 1.49]}))
    assert "0.50 points higher" in worse and "worse beyond the spread" in worse
    assert "do they add up: n/a" in worse

    tie = summary(_runs({"bn": [0.0, 0.0], "bn_input": [0.0, 0.0]}))  # a test set learned perfectly by both
    assert ("0.00% ± 0.00 (bn_input, 2 seeds) vs 0.00% ± 0.00 (bn, 2 seeds): the same, in every seed: no difference"
            in tie)

    one = summary(_runs({"bn": [1.0], "bn_input": [0.9]}))
    assert "0.10 points lower with one seed: no spread to judge by" in one


def test_a_diverged_replica_is_counted_not_averaged():
    from analysis.studies.bn_dropout import final_values, per_setup, summary

    runs = _runs({"bn": [1.0, 1.2, 90.0], "bn_input": [1.1, 1.3]})
    runs.loc[2, "train/loss"] = float("nan")  # as a population trial's replicas table records a blown-up replica
    final = final_values(runs)
    assert final["diverged"].tolist() == [False, False, True, False, False]
    table = per_setup(final).set_index("setup")
    assert table.loc["bn", "seeds"] == 2 and table.loc["bn", "diverged"] == 1
    assert table.loc["bn", "test_error_pct"] == pytest.approx(1.1)
    assert "left out of the means: bn: 1 diverged replica" in summary(runs)


FIGURES = ["bn_params_violins.png", "curves.png", "test_error.png"]


@pytest.mark.slow
def test_smoke_sweep_end_to_end(tmp_path, clean_env, monkeypatch, capsys):
    from conftest import run_script
    from sweeps import bn_dropout
    from sweeps.runner import main

    monkeypatch.chdir(tmp_path)
    make_mnist(tmp_path / "data", "MNIST", n_train=512, n_test=128, learnable=True)
    results = tmp_path / "res"
    argv = ["--preset", "smoke", "--results-dir", str(results), "--data-dir", str(tmp_path / "data"),
            "--set", "seeds=2", "--population", "on"]
    assert main(bn_dropout.STUDY, argv) == 0
    printed = capsys.readouterr().out

    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("bn_dropout")
    parent = client.search_runs([experiment.experiment_id], "tags.`sweep.parent` = '1'")[0]
    children = client.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    by_setup: dict[str, list] = {}
    for child in children:
        by_setup.setdefault(child.data.params["setup"], []).append(child)
    assert sorted(by_setup) == sorted(SETUPS)
    accuracy = {}
    for setup, runs in by_setup.items():
        seeds = sorted(int(r.data.params.get("seeds", 1)) * 10 + int(r.data.params["seed"]) for r in runs)
        assert seeds in ([20], [10, 11]), seeds  # two seeds: one population trial or a trial each
        accuracy[setup] = sum(r.data.metrics["test/accuracy"] for r in runs) / len(runs)
        for run in runs:
            params = run.data.params
            assert run.data.tags["trial_status"] == "finished"
            assert params["batch_norm"] == str(SETUPS[setup].get("batch_norm", False))
            assert params["input_batch_norm"] == str(SETUPS[setup].get("input_batch_norm", False))
            assert float(params["dropout_input"]) == SETUPS[setup].get("dropout_input", 0.0)
            assert len(client.get_metric_history(run.info.run_id, "test/accuracy")) == 5
            assert run.data.metrics["test/accuracy"] > 0.5, setup  # learned (chance: 0.1)
            artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
            has_bn = bool(SETUPS[setup].get("batch_norm") or SETUPS[setup].get("input_batch_norm"))
            assert (BATCHNORM_TABLE in artifacts) == has_bn, setup

    # the learned gammas and betas: every BN layer in model order, every channel, both seeds, trained away from 1/0
    from analysis.records import trial_artifact

    uri = f"sqlite:///{results / 'mlflow.db'}"
    for setup in ("bn", "bn_input", "bn_dropout"):
        table = pd.concat([trial_artifact(uri, r.info.run_id, BATCHNORM_TABLE) for r in by_setup[setup]])
        layers = {k: v for k, v in BN_LAYERS.items() if k != "input" or setup == "bn_input"}
        assert list(pd.unique(table["layer"])) == list(layers), setup
        assert table.groupby("layer").size().to_dict() == {k: 2 * v for k, v in layers.items()}
        assert sorted(table["seed"].unique()) == [0, 1]
        assert (table["gamma"] - 1).abs().max() > 1e-3 and table["beta"].abs().max() > 1e-3

    out = results / "bn_dropout"
    table = pd.read_csv(out / "setups.csv")
    assert list(table["setup"]) == list(SETUPS) and (table["seeds"] == 2).all()
    for row in table.itertuples():  # the table's mean over seeds is the MLflow runs' mean
        assert row.test_error_pct == pytest.approx(100 * (1 - accuracy[row.setup]), abs=1e-4)
    assert (table["test_error_pct_std"] > 0).any()  # two seeds, two results

    # the summary's verdict lines quote the table's numbers
    match = re.search(r"batch norm on the input: test error ([\d.]+)% ± ([\d.]+) \(bn_input, 2 seeds\) vs "
                      r"([\d.]+)% ± [\d.]+ \(bn, 2 seeds\): ([\d.]+ points (lower|higher)|the same)", printed)
    assert match, printed[-3000:]
    rows = table.set_index("setup")
    assert float(match.group(1)) == pytest.approx(rows.loc["bn_input", "test_error_pct"], abs=0.006)
    assert float(match.group(3)) == pytest.approx(rows.loc["bn", "test_error_pct"], abs=0.006)
    assert "do they add up: bn_dropout" in printed
    assert "LeNet-5 reference (LeCun et al. 1998): 0.95% test error" in printed

    first = {name: (out / name).stat().st_size for name in FIGURES}
    for name in FIGURES:
        assert first[name] > 10_000, name
        (out / name).unlink()
    (out / "setups.csv").unlink()
    regen = run_script(["-m", "analysis", "bn_dropout", "--results-dir", str(results)], cwd=tmp_path)
    assert regen.returncode == 0, regen.stderr[-2000:]
    assert "LeNet-5 reference (LeCun et al. 1998)" in regen.stdout and match.group(0) in regen.stdout
    for name in FIGURES:
        assert (out / name).stat().st_size > 10_000, name
    import matplotlib.image

    violins = matplotlib.image.imread(out / "bn_params_violins.png")
    assert violins.shape[1] == round((3 * 3.6 + 0.6) * 120)  # one column per BN setup: bn, bn_input, bn_dropout
    assert (violins[..., :3].min(axis=-1) < 0.9).mean() > 0.03  # drawn on, not an empty canvas
    pd.testing.assert_frame_equal(pd.read_csv(out / "setups.csv"), table)
