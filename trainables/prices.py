"""Prices for the cost of a trial: on-demand list prices per instance type, and which one a sweep uses.

    >>> from trainables.prices import device_hour_price, resolve_price
    >>> resolve_price("p4d.24xlarge")      # (instance type, USD per GPU-hour)
    ('p4d.24xlarge', 4.09625)
    >>> device_hour_price("cpu")           # (instance type, USD per CPU-core-hour: a vCPU of a c6i)
    ('c6i.xlarge', 0.0425)

Every sweep prices its trials' device-hours (GPU-hours, or CPU-core-hours where a trial holds no GPU): an
explicit price (`--device-hour-price USD`) wins; else the instance type (`--instance-type`), else the worker node
type of the repository's cluster.yaml (GPU trials), else p3.2xlarge (one V100) for GPUs and c6i.xlarge for CPU
cores. The scaling study prices its jobs' GPU-hours with its own keys (`--set gpu_hour_price=USD`,
`--set instance_type=...`) through `resolve_price`.
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
# CPU instances: USD per hour and vCPUs (AWS us-east-1 on-demand list prices, 2024): a CPU-core-hour is a vCPU's share.
CPU_PRICES = {"c6i.xlarge": (0.17, 4), "c6i.4xlarge": (0.68, 16), "m6i.xlarge": (0.192, 4), "m6i.4xlarge": (0.768, 16)}
DEFAULT_INSTANCE = "p3.2xlarge"  # one V100, the GPU of the studies' reference cluster
DEFAULT_CPU_INSTANCE = "c6i.xlarge"
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


def device_hour_price(device: str, instance_type: str = "", price: float = 0.0) -> tuple[str, float]:
    """(instance type, USD per device-hour) of a trial on `device` ("gpu": per GPU-hour, "cpu": per CPU-core-hour):
    an explicit price wins, then the instance type's list price, then the defaults (module docstring)."""
    if price < 0:
        raise ConfigError(f"--device-hour-price {price:g} must be >= 0")
    if device == "gpu":
        return resolve_price(instance_type, price)
    instance = instance_type or DEFAULT_CPU_INSTANCE
    if price > 0:
        return instance, price
    if instance not in CPU_PRICES:
        known = ", ".join(sorted(CPU_PRICES))
        raise ConfigError(f"--instance-type {instance!r} has no CPU price in trainables.prices.CPU_PRICES ({known}); "
                          f"give one with --device-hour-price USD")
    usd, vcpus = CPU_PRICES[instance]
    return instance, usd / vcpus
