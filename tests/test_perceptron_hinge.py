"""The perceptron-vs-hinge study: SGD on hand-checkable separable sets (the perceptron separates, the hinge
reaches margin 1), disagreement, determinism, the config's errors, and the smoke sweep end to end (real Ray,
MLflow) with its figures redrawn from MLflow alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainables.config import ConfigError, from_dict
from trainables.studies.perceptron_hinge import (PerceptronHingeConfig, disagreement, label, max_margin_angles,
                                         train_perceptron_hinge, train_sgd)
from trainables.runtime.session import LocalSession

FIGURES = ["decision_lines.png", "accuracy.png", "disagreement.png", "angles.png"]
# two tiny separable sets (labelled by x1 > x2), trained as one batch of two weight vectors
TINY = np.array([[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.5]],
                 [[0.5, 0.45], [0.45, 0.5], [0.9, 0.2], [0.1, 0.7]]])


def test_perceptron_converges_and_separates_a_tiny_set():
    y = label(TINY)
    assert y.tolist() == [[1, -1, 1, -1], [1, -1, 1, -1]]
    fit = train_sgd(TINY, y, 0.0, 1.0, 100, np.random.default_rng(0))
    assert fit["converged"].all()
    assert (np.einsum("rnd,rd->rn", TINY, fit["w"]) * y > 0).all()  # every training point on its side
    # first epoch from w = 0: the first sample always updates (y w.x = 0 <= 0)
    one = train_sgd(TINY[:1, :1], y[:1, :1], 0.0, 1.0, 1, np.random.default_rng(0))
    assert one["w"][0] == pytest.approx(TINY[0, 0]) and one["epochs"][0] == 1


def test_hinge_reaches_margin_one_when_converged():
    y = label(TINY)
    fit = train_sgd(TINY, y, 1.0, 1.0, 10_000, np.random.default_rng(0))
    assert fit["converged"].all()
    assert (np.einsum("rnd,rd->rn", TINY, fit["w"]) * y >= 1).all()
    # the max-margin direction of set 0: its normal lies between the support points' constraints
    angle = max_margin_angles(TINY, y)
    w = np.stack([np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))], axis=1)
    margins = (np.einsum("rnd,rd->rn", TINY, w) * y).min(axis=1)
    for r in range(2):  # no direction on a fine grid does better
        theta = np.deg2rad(np.linspace(-89.99, -0.01, 20_000))
        grid = (y[r, :, None] * (TINY[r] @ np.stack([np.cos(theta), np.sin(theta)]))).min(axis=0).max()
        assert margins[r] >= grid - 1e-6


def test_disagreement_is_the_minority_fraction():
    pred = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [1, 0, 1]], dtype=bool)  # p = (1, .5, .5)
    assert disagreement(pred).tolist() == [0.0, 0.5, 0.5]


def test_trial_is_deterministic_and_records_every_repetition():
    runs = []
    for _ in range(2):
        s = LocalSession(epochs=1)
        train_perceptron_hinge(PerceptronHingeConfig(margin=1.0, repetitions=50, max_epochs=300), None, s)
        runs.append(s)
    a, b = (r.history[-1] for r in runs)
    assert {k: v for k, v in a.items() if not k.startswith("time/")} == \
           {k: v for k, v in b.items() if not k.startswith("time/")}
    reps, pred = runs[0].artifacts["repetitions.csv"], runs[0].artifacts["predictions.npy"]
    assert pred.shape == (50, 1000) and len(reps) == 50
    assert a["test/acc_mean"] == pytest.approx(reps["test_acc"].mean())
    assert (reps.loc[reps["converged"], "functional_margin"] >= 1 - 1e-12).all()
    assert a["train/converged_fraction"] == pytest.approx(reps["converged"].mean())


@pytest.mark.parametrize("bad,message", [({"margin": -1.0}, "margin"), ({"lr": 0.0}, "lr"),
                                         ({"init": "ones"}, "init"), ({"repetitions": 0}, "repetitions"),
                                         ({"max_epochs": "many"}, "max_epochs"), ({"bogus": 1}, "bogus")])
def test_bad_config_values_are_one_line_errors(bad, message):
    with pytest.raises(ConfigError, match=message) as e:
        from_dict(PerceptronHingeConfig, bad)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_smoke_sweep_end_to_end_and_figures_from_mlflow(tmp_path, clean_env, monkeypatch):
    from conftest import latest_sweep, run_script
    from sweeps import perceptron_hinge
    from sweeps.runner import main

    monkeypatch.chdir(tmp_path)
    results = tmp_path / "res"
    assert main(perceptron_hinge.STUDY, ["--preset", "smoke", "--results-dir", str(results)]) == 0

    client, parent, children = latest_sweep(results, "perceptron_hinge")
    assert sorted(float(c.data.params["margin"]) for c in children) == [0.0, 1.0]
    for child in children:
        assert child.data.params["repetitions"] == "100" and child.data.tags["trial_status"] == "finished"
        assert 0.5 < child.data.metrics["test/acc_mean"] <= 1

    figures = results / "perceptron_hinge"
    for name in FIGURES:
        (figures / name).unlink()
    regen = run_script(["-m", "analysis", "perceptron_hinge", "--results-dir", str(results)], cwd=tmp_path)
    assert regen.returncode == 0, regen.stderr[-2000:]
    assert "more stable:" in regen.stdout
    for name in FIGURES:
        assert (figures / name).stat().st_size > 5000, name
    table = pd.read_csv(figures / "perceptron_hinge.csv").set_index("margin")
    for child in children:
        row = table.loc[float(child.data.params["margin"])]
        assert row["acc_mean"] == pytest.approx(child.data.metrics["test/acc_mean"])
