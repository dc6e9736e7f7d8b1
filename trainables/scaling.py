"""The scaling study's trial: the shared image-classification trial, as a DDP job named by `job`.

A job is one string, so that a grid over jobs is the study's exact list of runs (not a cross product):
- `strong-N`: N workers share the global batch (`global_batch` // N per worker);
- `weak-N`: N workers of `worker_batch` each (the global batch grows with N);
- `hook-H-N`: weak-N with DDP communication hook H (fp16, bf16, powersgd; allreduce = weak-N);
- `backend-B-N`: weak-N with process-group backend B (nccl, gloo), workers spread over nodes.

The learning rate `lr` is the one for a global batch of 256 and is scaled linearly with the job's
global batch (Goyal et al. 2017), so every job trains the same recipe.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from trainables.config import ConfigError, from_dict
from trainables.runtime.ddp import BACKENDS, COMM_HOOKS
from trainables.prices import resolve_price
from trainables.image import trial as ic

REFERENCE_BATCH = 256  # `lr` is given for this global batch


@dataclass(frozen=True)
class ScalingConfig(ic.ClassifyConfig):
    job: str = "strong-1"  # see the module docstring
    global_batch: int = 256  # images per step over all workers, strong scaling
    worker_batch: int = 64  # images per step per worker, weak scaling (and the comparison jobs)
    instance_type: str = ""  # prices the GPU-hours; default: cluster.yaml's worker type, else p3.2xlarge
    gpu_hour_price: float = 0.0  # USD per GPU-hour; 0 = from the instance type's price (trainables.prices.PRICES)

    def __post_init__(self) -> None:
        super().__post_init__()
        parse_job(self.job)
        if self.global_batch <= 0 or self.worker_batch <= 0 or self.gpu_hour_price < 0:
            raise ConfigError("global_batch and worker_batch must be positive, gpu_hour_price >= 0")


@dataclass(frozen=True)
class Job:
    mode: str  # strong | weak | hook | backend
    workers: int
    variant: str  # allreduce | fp16 | bf16 | powersgd | nccl | gloo | auto

    def batch_per_worker(self, cfg: ScalingConfig) -> int:
        return max(1, cfg.global_batch // self.workers) if self.mode == "strong" else cfg.worker_batch

    def ddp_overrides(self) -> dict[str, Any]:
        out: dict[str, Any] = {"workers": self.workers}
        if self.mode == "hook":
            out["comm_hook"] = self.variant
        if self.mode == "backend":
            out.update(backend=self.variant, placement="SPREAD")  # across nodes where there are several
        return out


def parse_job(job: str) -> Job:
    parts = job.split("-")
    try:
        workers = int(parts[-1])
    except ValueError:
        workers = 0
    valid = {"strong": ("auto",), "weak": ("auto",), "hook": COMM_HOOKS, "backend": BACKENDS[1:]}
    mode = parts[0]
    variant = parts[1] if len(parts) == 3 else "auto"
    if workers < 1 or mode not in valid or variant not in valid[mode] or len(parts) != (3 if mode in ("hook", "backend") else 2):
        raise ConfigError(f"job={job!r} is not strong-N, weak-N, hook-{{{','.join(COMM_HOOKS)}}}-N or "
                          f"backend-{{nccl,gloo}}-N with N >= 1")
    return Job(mode, workers, variant if mode in ("hook", "backend") else "allreduce")


def ddp_overrides(config: dict[str, Any]) -> dict[str, Any]:
    return parse_job(str(config["job"])).ddp_overrides()


def classify_config(config: dict[str, Any]) -> dict[str, Any]:
    """The job's ClassifyConfig: its per-worker batch and linearly scaled learning rate."""
    cfg = from_dict(ScalingConfig, config)
    job = parse_job(cfg.job)
    batch = job.batch_per_worker(cfg)
    names = {f.name for f in fields(ic.ClassifyConfig)}
    out = {k: v for k, v in config.items() if k in names}
    out.update(batch_size=batch, lr=cfg.lr * batch * job.workers / REFERENCE_BATCH)
    return out


def train_scaling(config: dict[str, Any], data, session) -> None:
    ic.train_classifier(classify_config(config), data, session)


def derived_params(config: dict[str, Any]) -> dict[str, Any]:
    """MLflow params of a job: the model's size, the job's shape and the price of its GPU-hours."""
    cfg = from_dict(ScalingConfig, config)
    job = parse_job(cfg.job)
    instance, price = resolve_price(cfg.instance_type, cfg.gpu_hour_price)
    batch = job.batch_per_worker(cfg)
    return {**ic.derived_params(classify_config(config)), "mode": job.mode, "workers": job.workers,
            "variant": job.variant, "batch_per_worker": batch, "global_batch_run": batch * job.workers,
            "lr_run": cfg.lr * batch * job.workers / REFERENCE_BATCH, "priced_instance": instance,
            "price_per_gpu_hour": price}
