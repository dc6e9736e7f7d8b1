"""Every preset of every study, paper scale included, builds valid trial configs (without training):
a typo in a preset that only a GPU cluster would run fails here, not hours into a cluster booking."""

from __future__ import annotations

import importlib

import pytest

from sweeps.registry import STUDIES
from sweeps.runner import _grid_configs, build_parser, resolve_plan
from trainables.config import from_dict

STUDY_MODULES = list(STUDIES)  # the one study registry (also `python -m analysis`'s); one sweeps/ script each


def _cases():
    for module in STUDY_MODULES:
        study = importlib.import_module(f"sweeps.{module}").STUDY
        for preset in study.presets:
            yield pytest.param(study, preset, id=f"{module}-{preset}")


@pytest.mark.parametrize("study,preset", list(_cases()))
def test_preset_configs_are_valid(study, preset):
    plan = resolve_plan(study, build_parser(study).parse_args(["--preset", preset]))
    configs = _grid_configs(plan)
    assert configs
    for config in configs:
        from_dict(study.config_cls, config)
        if study.derived_params:
            assert isinstance(study.derived_params(config), dict)
        if study.ddp_overrides:
            plan.ddp.for_trial(study.ddp_overrides, config)


def test_every_study_script_is_covered():
    from conftest import ROOT

    platform = {"__init__", "runner", "study", "recording", "storage", "registry", "stoppers"}
    scripts = {p.stem for p in (ROOT / "sweeps").glob("*.py")} - platform
    assert scripts == set(STUDY_MODULES)


@pytest.mark.parametrize("module", STUDY_MODULES)
def test_continuous_spaces_default_to_a_searcher(module):
    """A grid draws a continuous range once per grid point: `python sweeps/joint_search.py` would run 4
    trials at random learning rates instead of the preset's 12-trial search."""
    from ray.tune.search.sample import Domain

    study = importlib.import_module(f"sweeps.{module}").STUDY
    continuous = any(isinstance(v, Domain) for p in study.presets.values() for v in p.space.values())
    args = build_parser(study).parse_args([])
    assert (args.search != "grid") == continuous, module
