"""Every preset of every study, paper scale included, builds valid trial configs (without training):
a typo in a preset that only a GPU cluster would run fails here, not hours into a cluster booking."""

from __future__ import annotations

import importlib

import pytest

from conftest import sweep_plan
from sweeps.registry import STUDIES
from sweeps.study import LogUniform, resolve

STUDY_MODULES = list(STUDIES)  # the one study registry (also `python -m analysis`'s); one sweeps/ script each


def _cases():
    for module in STUDY_MODULES:
        study = importlib.import_module(f"sweeps.{module}").STUDY
        for preset in study.presets:
            yield pytest.param(study, preset, id=f"{module}-{preset}")


@pytest.mark.parametrize("study,preset", list(_cases()))
def test_preset_configs_are_valid(study, preset):
    plan = sweep_plan(study, ["--preset", preset])
    configs = plan.grid_configs()
    assert configs
    params = resolve(study.trial.params)
    for config in configs:
        task = study.trial.to_trial(config) if study.trial.to_trial else config
        if params:
            assert isinstance(params(task), dict)
        plan.trial_ddp(config)


def test_every_study_script_is_covered():
    from conftest import ROOT

    platform = {"__init__", "runner", "study", "recording", "storage", "registry", "cli", "plan", "checks", "tuning",
                "parent", "progress", "analysis_step", "costs"}
    scripts = {p.stem for p in (ROOT / "sweeps").glob("*.py")} - platform
    assert scripts == set(STUDY_MODULES)


@pytest.mark.parametrize("module", STUDY_MODULES)
def test_continuous_spaces_default_to_a_searcher(module):
    """A grid draws a continuous range once per grid point: `python sweeps/joint_search.py` would run 4
    trials at random learning rates instead of the preset's 12-trial search."""
    study = importlib.import_module(f"sweeps.{module}").STUDY
    continuous = any(isinstance(v, LogUniform) for p in study.presets.values() for v in p.space.values())
    assert (study.default_search != "grid") == continuous, module
