"""The depth-vs-width analysis on a hand-made table of runs (what MLflow hands back)."""

import pandas as pd
import pytest

from analysis.studies import depth_width


def runs_table() -> pd.DataFrame:
    rows = []
    for widths, layers, total, params, rmse in [("64", 1, 64, 257, 200.0), ("32-32", 2, 64, 1249, 150.0),
                                                ("16-16-16", 3, 48, 657, 140.0), ("32-16", 2, 48, 705, 170.0)]:
        for seed, noise in ((0, -5.0), (1, 5.0)):
            rows.append({"widths": widths, "n_layers": layers, "total_units": total, "n_params": params, "seed": seed,
                         "test/rmse": rmse + noise, "time/train_s": 1.0 + params / 1000, "trial_status": "finished"})
    rows.append({"widths": "512", "n_layers": 1, "total_units": 512, "n_params": 2049, "seed": 0,
                 "test/rmse": float("nan"), "time/train_s": 0.1, "trial_status": "diverged"})
    rows.append({"widths": "16", "n_layers": 1, "total_units": 16, "n_params": 65, "seed": 0,
                 "test/rmse": 290.0, "time/train_s": 0.5, "trial_status": "stopped"})
    return pd.DataFrame(rows)


def test_per_network_averages_seeds_and_drops_diverged():
    nets = depth_width.per_network(runs_table())
    assert "512" not in set(nets["widths"])  # diverged: left out
    row = nets[nets["widths"] == "32-32"].iloc[0]
    assert row["rmse"] == pytest.approx(150.0) and row["seeds"] == 2 and row["rmse_std"] == pytest.approx(7.0711, 1e-3)
    assert bool(nets[nets["widths"] == "16"].iloc[0]["stopped"])


def test_figures_and_summary(tmp_path):
    paths = depth_width.figures(runs_table(), tmp_path)
    assert [p.name for p in paths] == ["rmse_vs_hidden_units.png", "rmse_vs_params.png", "train_time_vs_params.png"]
    assert all(p.stat().st_size > 5000 for p in paths)
    text = depth_width.summary(runs_table())
    assert "16-16-16" in text and "32-32" in text  # best of depth 3 and of depth 2


def test_figures_with_nothing_finished(tmp_path):
    table = runs_table().assign(trial_status="diverged")
    paths = depth_width.figures(table, tmp_path)
    assert all(p.exists() for p in paths)
    assert depth_width.summary(table) == "no finished trials"
