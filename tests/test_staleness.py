"""The staleness study: schedules worked out by hand (speeds 1 and 2.5, equal speeds, one learner), exact ties,
the long-run means, the config's errors, and the smoke sweep end to end with its figures redrawn from MLflow."""

from __future__ import annotations

import pandas as pd
import pytest

from trainables.config import ConfigError, from_dict
from trainables.runtime.session import LocalSession
from trainables.studies.staleness import StalenessConfig, expected_mean, learner_speeds, schedule, train_staleness

FIGURES = ["staleness_vs_ratio.png", "staleness_hist.png", "timeline.png"]


def _rows(table: pd.DataFrame) -> list[tuple]:
    return [(r.learner, round(r.read_time, 9), round(r.update_time, 9), r.staleness) for r in table.itertuples()]


def test_speeds_1_and_2_5_by_hand():
    # Learner 0 (speed 1) updates at 1, 2, 3, 4; learner 1 (speed 2.5, period 0.4) at 0.4, 0.8, ..., 4.0.
    # Server order (time, then learner index; each learner reads right after its own update):
    #   0.4 L1, 0.8 L1, 1.0 L0, 1.2 L1, 1.6 L1, 2.0 L0, 2.0 L1, 2.4 L1, 2.8 L1, 3.0 L0, 3.2 L1, 3.6 L1, 4.0 L0, 4.0 L1
    # L0 [0, 1]: L1 at 0.4, 0.8 -> 2.       L0 [1, 2]: L1 at 1.2, 1.6 (L1 at 2.0 comes after L0 at 2.0) -> 2.
    # L0 [2, 3]: L1 at 2.0 (served after L0's read at 2.0), 2.4, 2.8 -> 3.   L0 [3, 4]: L1 at 3.2, 3.6 -> 2.
    # L1 [0, .4] 0; [.4, .8] 0; [.8, 1.2]: L0 at 1.0 -> 1; [1.2, 1.6] 0; [1.6, 2.0]: L0 at 2.0 (lower index, first)
    # -> 1; [2.0, 2.4] 0 (L0 at 2.0 was before L1's read); [2.4, 2.8] 0; [2.8, 3.2]: L0 at 3.0 -> 1; [3.2, 3.6] 0;
    # [3.6, 4.0]: L0 at 4.0 first -> 1.
    expected = [(1, 0.0, 0.4, 0), (1, 0.4, 0.8, 0), (0, 0.0, 1.0, 2), (1, 0.8, 1.2, 1), (1, 1.2, 1.6, 0),
                (0, 1.0, 2.0, 2), (1, 1.6, 2.0, 1), (1, 2.0, 2.4, 0), (1, 2.4, 2.8, 0), (0, 2.0, 3.0, 3),
                (1, 2.8, 3.2, 1), (1, 3.2, 3.6, 0), (0, 3.0, 4.0, 2), (1, 3.6, 4.0, 1)]
    table = schedule((1, 2.5), 4)
    assert _rows(table) == expected
    assert table["update_tick"].tolist() == [2, 4, 5, 6, 8, 10, 10, 12, 14, 15, 16, 18, 20, 20]  # ticks of 1/5
    # a horizon between updates counts only the gradients applied by then
    assert _rows(schedule((1, 2.5), 3.9)) == expected[:-2]


def test_equal_speeds_every_gradient_after_the_first_has_staleness_one():
    # Both read at 0 and update at 1, 2, ...: at each instant L0 is served (update, read), then L1 (update, read).
    # L0's first gradient: nothing between its read at 0 and its update -> 0. Every later L0 gradient: L1's update
    # at its read instant comes after L0's read -> 1. Every L1 gradient: L0's update at the same instant -> 1.
    table = schedule((2.0, 2.0), 10)
    assert table["staleness"].tolist() == [0] + [1] * 39
    assert table["learner"].tolist() == [0, 1] * 20
    # n equal learners: learner i's first gradient i, every later one n - 1
    table = schedule((1, 1, 1, 1), 5)
    assert table["staleness"].tolist() == [0, 1, 2, 3] + [3] * 16


def test_single_learner_is_never_stale():
    table = schedule((0.7,), 100)
    assert len(table) == 70 and (table["staleness"] == 0).all()
    assert table["read_time"].iloc[1] == pytest.approx(1 / 0.7)


def test_ties_are_exact_where_floats_are_not():
    # periods 0.4 and 0.1: in floats 12 * 0.1 = 1.2000000000000002 but 3 * 0.4 = 1.2000000000000002 and
    # 3 * 0.1 = 0.30000000000000004 != 0.3; in integer ticks (1/10) the meetings at 0.4, 0.8, 1.2 are exact
    assert 3 * 0.1 != 0.3
    table = schedule((2.5, 10), 1.2)
    meet = table.groupby("update_tick")["learner"].nunique()
    assert meet[meet == 2].index.tolist() == [4, 8, 12]
    assert len(table) == 3 + 12
    # at a tie the lower-index learner is served first: L0's update, then L1's, which counts it
    at = table[table["update_tick"] == 4]
    assert at["learner"].tolist() == [0, 1] and at["staleness"].tolist() == [3, 1]


def test_long_run_means_are_the_others_speeds_over_ones_own():
    speeds = (1, 1.5, 4)
    table = schedule(speeds, 600)
    means = table.groupby("learner")["staleness"].mean()
    assert means.tolist() == pytest.approx(expected_mean(speeds), abs=0.01)
    assert expected_mean((1, 2.5)) == pytest.approx([2.5, 0.4])


def test_speeds_from_ratio_and_learners_and_the_trial_report():
    assert learner_speeds(StalenessConfig(ratio=2.5)) == (1.0, 2.5)
    assert learner_speeds(StalenessConfig(ratio=4, learners=4)) == (1.0, 2.0, 3.0, 4.0)
    assert learner_speeds(StalenessConfig(speeds=(3.0, 1.0))) == (3.0, 1.0)
    session = LocalSession(epochs=1)
    train_staleness(StalenessConfig(ratio=2.5, horizon=4.0), None, session)
    m = session.history[-1]
    assert m["gradients"] == 14 and m["speed_ratio"] == 2.5 and m["staleness/max"] == 3
    assert m["learner0/staleness_mean"] == pytest.approx(9 / 4) and m["learner1/staleness_mean"] == pytest.approx(0.4)
    assert m["learner0/expected_mean"] == pytest.approx(2.5) and m["learner1/gradients"] == 10
    counts = session.artifacts["staleness_counts.csv"]
    assert counts[counts["learner"] == 0].set_index("staleness")["count"].to_dict() == {2: 3, 3: 1}
    assert len(session.artifacts["gradients.csv"]) == 14


@pytest.mark.parametrize("bad,message", [({"ratio": 0.5}, "ratio"), ({"learners": 0}, "learners"),
                                         ({"speeds": (1.0, -2.0)}, "speeds"), ({"horizon": 0}, "horizon"),
                                         ({"speeds": "1,x"}, "speeds"), ({"bogus": 1}, "bogus")])
def test_bad_config_values_are_one_line_errors(bad, message):
    with pytest.raises(ConfigError, match=message) as e:
        from_dict(StalenessConfig, bad)
    assert "\n" not in str(e.value)


def test_too_many_gradients_or_too_fine_ticks_are_config_errors():
    with pytest.raises(ConfigError, match="shorten the horizon"):
        schedule((1000.0, 1000.0), 1e4)
    with pytest.raises(ConfigError, match="fewer decimals"):
        schedule((1.23456789123, 3.14159265358979), 1e6)


def test_evenly_spaced_speeds_are_exact_fractions():
    from fractions import Fraction

    speeds = learner_speeds(StalenessConfig(ratio=2.5, learners=8))  # 1 + 1.5 i / 7: floats would need 1e16 ticks
    assert speeds[1] == Fraction(17, 14) and speeds[-1] == Fraction(5, 2)
    table = schedule(speeds, 100)
    assert table.groupby("learner")["staleness"].mean().tolist() == pytest.approx(expected_mean(speeds), rel=0.01)


@pytest.mark.slow
def test_smoke_sweep_end_to_end_and_figures_from_mlflow(tmp_path, clean_env, monkeypatch):
    from conftest import latest_sweep, run_script
    from sweeps import staleness
    from sweeps.runner import main

    monkeypatch.chdir(tmp_path)
    results = tmp_path / "res"
    assert main(staleness.STUDY, ["--preset", "smoke", "--results-dir", str(results)]) == 0

    client, parent, children = latest_sweep(results, "staleness")
    assert sorted(float(c.data.params["ratio"]) for c in children) == [1.0, 2.5, 4.0]
    for child in children:
        assert child.data.tags["trial_status"] == "finished" and child.data.params["horizon"] == "20.0"
        r, m = float(child.data.params["ratio"]), child.data.metrics
        assert m["learner0/staleness_mean"] == pytest.approx(r, abs=0.1)  # the slow learner: r
        assert m["learner1/staleness_mean"] == pytest.approx(1 / r, abs=0.1)  # the fast one: 1/r
        assert m["learner1/staleness_max"] == 1

    figures = results / "staleness"
    for name in ("overview_parallel.png", "overview_pareto.png", "overview_progress.png"):  # every sweep's
        assert (figures / name).stat().st_size > 5000, name
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "figures")}
    assert "figures/overview_parallel.png" in logged
    for name in FIGURES + ["staleness.csv"]:
        (figures / name).unlink()
    regen = run_script(["-m", "analysis", "staleness", "--results-dir", str(results)], cwd=tmp_path)
    assert regen.returncode == 0, regen.stderr[-2000:]
    assert "2 learners, r = 2.5" in regen.stdout
    for name in FIGURES:
        assert (figures / name).stat().st_size > 5000, name
    table = pd.read_csv(figures / "staleness.csv")
    row = table[(table["ratio"] == 2.5) & (table["learner"] == 0)].iloc[0]
    assert row["staleness_max"] == 3 and row["expected_mean"] == pytest.approx(2.5)
