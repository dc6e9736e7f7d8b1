"""The bias-variance study: the decomposition identity, the batched fits against numpy/sklearn, the config's
errors, determinism, and the smoke sweep end to end (real Ray, MLflow) with its figures redrawn from MLflow."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trainables.studies.bias_variance import (BiasVarianceConfig, decomposition, fit_polynomial, fit_ridge, make_data,
                                      predict_polynomial, predict_ridge, scaled, target, train_bias_variance)
from trainables.config import ConfigError, from_dict
from trainables.runtime.session import LocalSession

FIGURES = ["illustration.png", "bias_variance.png", "ridge.png", "fits_spread.png"]


def test_decomposition_on_a_hand_checkable_case():
    # two data sets, two test points; f = 0, y = (1, -1) (noise +-1)
    pred = np.array([[1.0, 0.0], [3.0, 2.0]])  # means (2, 1): bias (2, 1); variances (1, 1)
    d = decomposition(pred, np.zeros(2), np.array([1.0, -1.0]))
    assert d["bias2"] == pytest.approx((4 + 1) / 2)
    assert d["variance"] == pytest.approx(1.0)
    assert d["noise"] == pytest.approx(1.0)
    assert d["cross"] == pytest.approx(-2 * (2 * 1 + 1 * -1) / 2)
    mse = np.mean((pred - np.array([1.0, -1.0])) ** 2)
    assert d["mse"] == pytest.approx(mse)
    assert d["mse"] == pytest.approx(d["bias2"] + d["variance"] + d["noise"] + d["cross"])  # exact identity


@pytest.mark.parametrize("degree", [1, 4, 12])
def test_bias2_plus_variance_plus_noise_is_the_expected_test_mse(degree):
    """With many test points the test MSE ~ bias^2 + variance + 0.3; with the 10 of the exercise the
    identity holds exactly once the test labels' own noise and cross term are counted."""
    s = LocalSession(epochs=1)
    train_bias_variance(BiasVarianceConfig(degree=degree, n_test=20_000), None, s)
    m = s.history[-1]
    assert m["test/mse"] == pytest.approx(m["bv/sum"], rel=0.03)
    assert m["test/noise"] == pytest.approx(0.3, rel=0.03)
    train_bias_variance(BiasVarianceConfig(degree=degree), None, s)  # n_test 10
    m = s.history[-1]
    assert m["test/mse"] == pytest.approx(m["bv/bias2"] + m["bv/variance"] + m["test/noise"] + m["test/cross"])
    assert m["grid/mse"] == pytest.approx(m["grid/bias2"] + m["grid/variance"] + 0.3)


def test_batched_fits_match_numpy_and_sklearn():
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    d = make_data(BiasVarianceConfig(n_sets=3))
    x_new = np.linspace(0.5, 9.5, 17)
    coef = fit_polynomial(d["x_train"], d["y_train"], 3)
    ridge = fit_ridge(scaled(d["x_train"]), d["y_train"], 10, 0.01)
    for i in range(3):
        ref = np.polyval(np.polyfit(d["x_train"][i], d["y_train"][i], 3), x_new)
        assert predict_polynomial(coef[i], x_new) == pytest.approx(ref, abs=1e-9)
        pipe = make_pipeline(PolynomialFeatures(10, include_bias=False), StandardScaler(), Ridge(alpha=0.01))
        pipe.fit(scaled(d["x_train"][i])[:, None], d["y_train"][i])
        assert predict_ridge(ridge, scaled(x_new))[i] == pytest.approx(pipe.predict(scaled(x_new)[:, None]), abs=1e-8)
    # an exact polynomial is recovered at degree 15, x in [0, 10] (the Legendre basis on [-1, 1] is well conditioned)
    x = np.linspace(0, 10, 40)
    exact = 1 + 0.5 * x - 0.01 * x**5
    assert predict_polynomial(fit_polynomial(x, exact, 15), x) == pytest.approx(exact, abs=1e-8)


def test_ridge_trades_variance_for_bias_and_the_trial_is_deterministic():
    runs = []
    for alpha in (1e-4, 1.0, 1e-4):
        s = LocalSession(epochs=1)
        train_bias_variance(BiasVarianceConfig(degree=10, ridge_alpha=alpha), None, s)
        runs.append(s.history[-1])
    weak, strong, again = runs
    assert strong["ridge/grid/bias2"] > weak["ridge/grid/bias2"]
    assert strong["ridge/grid/variance"] < weak["ridge/grid/variance"]
    assert {k: v for k, v in weak.items() if not k.startswith("time/")} == \
           {k: v for k, v in again.items() if not k.startswith("time/")}
    assert target(np.array([0.0])) == pytest.approx(0.0)


@pytest.mark.parametrize("bad,message", [({"degree": 0}, "degree"), ({"ridge_alpha": 0.0}, "ridge_alpha"),
                                         ({"noise_var": -1.0}, "noise_var"), ({"n_sets": 1}, "n_sets"),
                                         ({"degree": 15, "n_train": 10}, "n_train"), ({"degree": "ten"}, "degree"),
                                         ({"bogus": 1}, "bogus")])
def test_bad_config_values_are_one_line_errors(bad, message):
    with pytest.raises(ConfigError, match=message) as e:
        from_dict(BiasVarianceConfig, bad)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_smoke_sweep_end_to_end_and_figures_from_mlflow(tmp_path, clean_env, monkeypatch):
    from conftest import latest_sweep, run_script
    from sweeps import bias_variance
    from sweeps.runner import main

    monkeypatch.chdir(tmp_path)
    results = tmp_path / "res"
    assert main(bias_variance.STUDY, ["--preset", "smoke", "--results-dir", str(results)]) == 0

    client, parent, children = latest_sweep(results, "bias_variance")
    assert sorted(int(c.data.params["degree"]) for c in children) == [1, 3, 10]
    for child in children:
        assert child.data.tags["trial_status"] == "finished"
        m = child.data.metrics
        assert m["test/mse"] == pytest.approx(m["bv/bias2"] + m["bv/variance"] + m["test/noise"] + m["test/cross"])

    figures = results / "bias_variance"
    overview = ["overview_parallel.png", "overview_pareto.png", "overview_progress.png"]  # every sweep's too
    for name in FIGURES + overview:
        (figures / name).unlink()
    regen = run_script(["-m", "analysis", "bias_variance", "--results-dir", str(results)], cwd=tmp_path)
    assert regen.returncode == 0, regen.stderr[-2000:]
    assert "degree 1 under-fits" in regen.stdout and "degree 10 over-fits" in regen.stdout
    for name in FIGURES + overview:  # redrawn from the MLflow records alone
        assert (figures / name).stat().st_size > 5000, name
    table = pd.read_csv(figures / "bias_variance.csv").set_index("degree")
    for child in children:
        row = table.loc[int(child.data.params["degree"])]
        assert row["test_mse"] == pytest.approx(child.data.metrics["test/mse"])
