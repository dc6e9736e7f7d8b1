"""The dying-ReLU study: the collapse and born-dead rules on hand-built networks, the config's errors, and the
smoke sweep end to end (real Ray, MLflow, training) with its figures redrawn from MLflow alone."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from trainables.config import ConfigError, from_dict
from trainables.studies.dying_relu.config import DyingReluConfig
from trainables.studies.dying_relu.trial import born_dead, collapsed, grid_outputs, make_data, train_dying_relu
from trainables.models.registry import build_model
from trainables.training.population import fuse
from trainables.runtime.session import LocalSession

FIGURES = ["collapse_vs_width.png", "output_std.png", "fits.png"]


def _hand_built() -> tuple:
    """Two width-2, depth-2 ReLU nets: one whose first layer is inactive for every input (constant output),
    one computing |x| = relu(x) + relu(-x)."""
    dead, alive = (build_model("mlp", num_classes=1, in_features=1, widths=(2, 2)) for _ in range(2))
    with torch.no_grad():
        first, second, out = [m for m in dead.modules() if isinstance(m, torch.nn.Linear)]
        first.weight.zero_(), first.bias.fill_(-1.0)  # pre-activation -1 everywhere
        second.weight.normal_(), second.bias.fill_(0.3)
        out.weight.normal_(), out.bias.fill_(0.5)
        first, second, out = [m for m in alive.modules() if isinstance(m, torch.nn.Linear)]
        first.weight.copy_(torch.tensor([[1.0], [-1.0]])), first.bias.zero_()
        second.weight.copy_(torch.eye(2)), second.bias.zero_()
        out.weight.copy_(torch.tensor([[1.0, 1.0]])), out.bias.zero_()
    return fuse([dead, alive])


def test_collapse_and_born_dead_rules_on_hand_built_networks():
    data = make_data(DyingReluConfig())
    grid, target = torch.tensor(data["x_grid"]), torch.tensor(data["y_grid_abs"])[:, 0]
    pop = _hand_built().eval()
    outputs = grid_outputs(pop, grid)
    assert torch.allclose(outputs[1], target, atol=1e-6)  # the alive net is |x|
    assert outputs[0].std() < 1e-6  # constant up to float rounding of the std
    assert collapsed(outputs, target, 1e-3).tolist() == [True, False]
    assert born_dead(pop, grid).tolist() == [True, False]
    # nearly constant but not quite: collapsed below the tolerance, alive above it
    ramp = torch.stack([0.5 + 1e-5 * grid[:, 0], 0.5 + 1e-2 * grid[:, 0]])
    assert collapsed(ramp, target, 1e-3).tolist() == [True, False]


@pytest.mark.parametrize("bad,message", [({"activation": "tanh"}, "activation"), ({"target": "sin"}, "target"),
                                         ({"width": 0}, "width"), ({"collapse_tol": 2.0}, "collapse_tol"),
                                         ({"bogus": 1}, "bogus")])
def test_bad_config_values_are_one_line_errors(bad, message):
    with pytest.raises(ConfigError, match=message) as e:
        from_dict(DyingReluConfig, bad)
    assert "\n" not in str(e.value)


def test_trial_without_ray_reports_and_records_every_simulation():
    cfg = DyingReluConfig(simulations=40, epochs=2, depth=10, width=2)
    session = LocalSession(epochs=2)
    train_dying_relu(cfg, make_data(cfg), session)
    assert [h["epoch"] for h in session.history] == [1, 2]
    last = session.history[-1]
    sims = session.artifacts["simulations.csv"]
    assert list(sims["seed"]) == list(range(40))
    assert last["collapse/count"] == sims["collapsed"].sum()
    assert last["born_dead/count"] == sims["born_dead"].sum()
    assert (sims["collapsed"] == (sims["output_std"] < 1e-3 * make_data(cfg)["y_grid_abs"].std(ddof=1))).all()
    assert not (sims["born_dead"] & ~sims["collapsed"]).any()  # a ReLU net born dead has a constant output
    fits = session.artifacts["fits.csv"]
    assert len(fits) == 1001 and list(fits.columns[:2]) == ["x", "target"]


@pytest.mark.slow
def test_smoke_sweep_end_to_end_and_figures_from_mlflow(tmp_path, clean_env, monkeypatch):
    from conftest import latest_sweep, run_script
    from sweeps import dying_relu
    from sweeps.runner import main

    monkeypatch.chdir(tmp_path)
    results = tmp_path / "res"
    assert main(dying_relu.STUDY, ["--preset", "smoke", "--results-dir", str(results)]) == 0

    client, parent, children = latest_sweep(results, "dying_relu")
    assert sorted(c.data.params["activation"] for c in children) == ["leaky_relu", "relu"]
    for child in children:
        assert child.data.params["simulations"] == "50" and child.data.tags["trial_status"] == "finished"
        history = client.get_metric_history(child.info.run_id, "collapse/fraction")
        assert sorted(m.step for m in history) == [1, 2]
        assert 0 <= child.data.metrics["collapse/fraction"] <= 1

    figures = results / "dying_relu"
    for name in FIGURES:
        (figures / name).unlink()
    (figures / "collapse.csv").unlink()
    regen = run_script(["-m", "analysis", "dying_relu", "--results-dir", str(results)], cwd=tmp_path)
    assert regen.returncode == 0, regen.stderr[-2000:]
    assert "Lu et al. 2019: over 90%" in regen.stdout
    for name in FIGURES:
        assert (figures / name).stat().st_size > 5000, name
    table = pd.read_csv(figures / "collapse.csv").set_index("activation")
    for child in children:
        row = table.loc[child.data.params["activation"]]
        assert row["collapsed"] == child.data.metrics["collapse/count"]
        assert row["collapse_fraction"] == pytest.approx(child.data.metrics["collapse/fraction"])
        assert row["ci_low"] <= row["collapse_fraction"] <= row["ci_high"]


def test_wilson_interval_matches_scipy():
    from scipy.stats import binomtest

    from analysis.studies.dying_relu import wilson

    for k, n in [(957, 1000), (0, 50), (50, 50), (13, 40)]:
        low, high = wilson([k], [n])
        ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert (low[0], high[0]) == pytest.approx((ci.low, ci.high), abs=1e-9)
