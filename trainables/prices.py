"""GPU prices for the cost of a trial: on-demand list prices per instance type, and which one a sweep uses.

    >>> from trainables.prices import resolve_price
    >>> resolve_price("p4d.24xlarge")      # (instance type, USD per GPU-hour)
    ('p4d.24xlarge', 4.09625)

An explicit price (`--set gpu_hour_price=USD`) wins; else the instance type (`--set instance_type=...`),
else the worker node type of the repository's cluster.yaml, else p3.2xlarge (one V100).
"""

from __future__ import annotations

from pathlib import Path

from trainables.config import ConfigError

# On-demand USD per hour, AWS us-east-1 list prices (2024), divided by the instance's GPUs.
PRICES = {  # instance type -> (USD per hour, GPUs)
    "p3.2xlarge": (3.06, 1), "p3.8xlarge": (12.24, 4), "p3.16xlarge": (24.48, 8),
    "p4d.24xlarge": (32.77, 8), "p5.48xlarge": (98.32, 8),
    "g4dn.xlarge": (0.526, 1), "g4dn.12xlarge": (3.912, 4), "g5.xlarge": (1.006, 1), "g5.12xlarge": (5.672, 4),
}
DEFAULT_INSTANCE = "p3.2xlarge"  # one V100, the GPU of the studies' reference cluster
CLUSTER_YAML = Path(__file__).resolve().parent.parent / "cluster.yaml"


def cluster_worker_instance(path: Path = CLUSTER_YAML) -> str | None:
    """The InstanceType of the first non-head node type of a Ray cluster.yaml, if there is one."""
    if not path.exists():
        return None
    import yaml

    spec = yaml.safe_load(path.read_text()) or {}
    head = spec.get("head_node_type")
    for name, node in (spec.get("available_node_types") or {}).items():
        if name != head:
            instance = (node.get("node_config") or {}).get("InstanceType")
            if instance:
                return str(instance)
    return None


def resolve_price(instance_type: str = "", price: float = 0.0) -> tuple[str, float]:
    """(instance type, USD per GPU-hour): an explicit price wins, then the instance's list price."""
    instance = instance_type or cluster_worker_instance() or DEFAULT_INSTANCE
    if price > 0:
        return instance, price
    if instance not in PRICES:
        raise ConfigError(f"instance_type={instance!r} has no price in trainables.prices.PRICES; "
                          f"give one with --set gpu_hour_price=USD")
    usd, gpus = PRICES[instance]
    return instance, usd / gpus
