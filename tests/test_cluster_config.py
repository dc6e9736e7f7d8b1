"""cluster.yaml: valid for the installed Ray autoscaler, consistent with pyproject.toml, no secrets or open ports."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import ROOT

CONFIG = yaml.safe_load((ROOT / "cluster.yaml").read_text())
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def test_valid_against_the_installed_autoscaler_schema():
    jsonschema.validate(CONFIG, _schema())
    # What `ray up` does before it talks to AWS: fill in the provider's defaults, then validate again
    # (this also checks head_node_type and that max_workers covers the min_workers).
    from ray.autoscaler._private.util import prepare_config, validate_config

    validate_config(prepare_config(copy.deepcopy(CONFIG)))


def test_an_invalid_config_is_rejected():  # the check above can fail
    bad = copy.deepcopy(CONFIG)
    bad["available_node_types"]["gpu_1x_spot"]["min_workers"] = "two"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, _schema())


def test_node_types_cover_cpu_head_and_1_and_8_gpu_workers_on_demand_and_spot():
    types = CONFIG["available_node_types"]
    assert CONFIG["provider"]["type"] == "aws" and CONFIG["provider"]["region"]
    assert CONFIG["idle_timeout_minutes"] > 0 and CONFIG["max_workers"] >= 1
    head = types[CONFIG["head_node_type"]]["node_config"]["InstanceType"]
    assert head.startswith(("m5", "m6", "m7", "c5", "c6", "c7", "r5"))  # a CPU instance
    workers = {name: t for name, t in types.items() if name != CONFIG["head_node_type"]}
    shapes = {(t["node_config"]["InstanceType"], "InstanceMarketOptions" in t["node_config"]) for t in workers.values()}
    assert shapes == {("g5.xlarge", False), ("g5.xlarge", True), ("p4d.24xlarge", False), ("p4d.24xlarge", True)}
    for t in workers.values():
        assert t["min_workers"] == 0 and t["max_workers"] >= 1  # nothing runs (or costs) until a sweep asks
        if "InstanceMarketOptions" in t["node_config"]:
            assert t["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"


def _requirement_pins(commands: list[str]) -> dict[str, str]:
    """'name' -> 'version spec' of every quoted requirement a `pip install` in the commands names."""
    pins = {}
    for command in commands:
        if "pip install" in command:
            for req in re.findall(r'"([^"]+)"', command):
                name, spec = re.match(r"([A-Za-z0-9_.\-]+(?:\[[^\]]*\])?)(.*)", req).groups()
                pins[name.lower()] = spec
    return pins


def test_setup_installs_the_pinned_stack_of_pyproject_and_the_mounted_checkout():
    setup = CONFIG["setup_commands"]
    declared = _requirement_pins([" ".join(f'"{d}"' for d in PYPROJECT["project"]["dependencies"]) + " pip install"])
    installed = _requirement_pins(setup)
    assert installed, "no pinned requirements in setup_commands"
    for name, spec in installed.items():
        assert declared.get(name) == spec, f"cluster.yaml installs {name}{spec}, pyproject.toml says {declared.get(name)}"
    for must in ("ray[default,tune,train]", "torch", "mlflow"):  # the versions the driver and workers must share
        assert must in installed
    # The project itself: the file-mounted checkout, installed editable (so the mount is what runs).
    (target, source), = [(t, s) for t, s in CONFIG["file_mounts"].items() if s == "."]
    assert any(f"pip install -q -e {target}" in c for c in setup)
    assert any("rev-parse HEAD" in c for c in setup)
    assert PYPROJECT["project"]["name"] == "dlsweeps"


def test_dashboard_and_mlflow_bound_to_localhost_and_no_credentials():
    head = " ".join(CONFIG["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head
    mlflow = next(c for c in CONFIG["head_start_ray_commands"] if "mlflow server" in c)
    assert "--host 127.0.0.1" in mlflow and "sqlite:///" in mlflow and "--artifacts-destination $DLSWEEPS_S3" in mlflow
    text = (ROOT / "cluster.yaml").read_text()
    assert not re.search(r"AKIA[0-9A-Z]{12,}|aws_secret_access_key|AWS_SECRET|ssh_private_key", text, re.I)
    assert "0.0.0.0" not in text


def test_token_authentication_explicit_and_the_same_on_every_node():
    """RAY_AUTH_MODE=token on every `ray start` (head and workers), one token file mounted on every node."""
    starts = [c for key in ("head_start_ray_commands", "worker_start_ray_commands")
              for c in CONFIG[key] if "ray start" in c]
    assert any("--head" in c for c in starts) and any("--address=" in c for c in starts)
    for command in starts:
        assert re.search(r"(^|[;&\s])(export )?RAY_AUTH_MODE=token ray start ", command), command
    assert "RAY_AUTH_MODE=disabled" not in (ROOT / "cluster.yaml").read_text()
    # The token generated on the user's machine (`ray get-auth-token --generate`), at Ray's default path.
    assert CONFIG["file_mounts"].get("~/.ray/auth_token") == "~/.ray/auth_token"
    # Shells on the nodes (job drivers, `ray status` after `ray attach`) use the same mode.
    assert any("export RAY_AUTH_MODE=token" in c for c in CONFIG["setup_commands"])
    # The token itself is never in the repository.
    text = (ROOT / "cluster.yaml").read_text()
    assert not re.search(r"RAY_AUTH_TOKEN=\S", text)
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout
    assert "auth_token" not in tracked
