"""Strong and weak scaling of data-parallel training, and all-reduce variants (every trial a DDP job).

    python sweeps/scaling.py                    # quick: ResNet-20, 2048 images, N in {1, 2}, CPU (Gloo), minutes
    python sweeps/scaling.py --preset paper --address auto --gpus-per-worker 1 --cpus-per-worker 8
    python sweeps/scaling.py --set gpu_hour_price=2.5   # price the GPU-hours yourself

Paper: ResNet-50 on FashionMNIST (1 channel in, 10 classes), 10 epochs, N in {1, 2, 4, 8, 16}
workers; strong scaling splits a global batch of 256 over N, weak scaling gives each worker 64
(10 jobs); the all-reduce comparison runs DDP communication hooks (fp16, bf16, PowerSGD; the
default all-reduce is the weak job) for N in {1, 2, 4, 8} on one node, and the NCCL and Gloo
backends with the workers spread over nodes for N in {2, 4, 8}. A variant the machine cannot run
(NCCL without GPUs) is recorded as skipped and marked in the figure and summary.
Smoke and quick run on a CPU: N in {1, 2}, LeNet-5 (smoke) or ResNet-20 (quick) instead of
ResNet-50, a few hundred / two thousand images. Figures: throughput, training time (and iteration
time per worker), cost and efficiency vs learners, and the all-reduce comparison
(analysis/studies/scaling.py, which also defines the metrics).
"""

from dataclasses import dataclass
from typing import Any

from sweeps.runner import main
from sweeps.study import Preset, Study, image_trial
from trainables.config import ConfigError
from trainables.image.config import ClassifyConfig, ImageTrial, loop_config

REFERENCE_BATCH = 256  # `lr` is given for this global batch
COMM_HOOKS = ("allreduce", "fp16", "bf16", "powersgd")  # = trainables.runtime.ddp.COMM_HOOKS (tested)
BACKENDS = ("nccl", "gloo")


@dataclass(frozen=True)
class ScalingConfig(ClassifyConfig):
    job: str = "strong-1"  # strong-N | weak-N | hook-{fp16,bf16,powersgd}-N | backend-{nccl,gloo}-N (see `parse_job`)
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
    """A job is one string, so that a grid over jobs is the study's exact list of runs (not a cross product):
    `strong-N`: N workers share the global batch (`global_batch` // N per worker); `weak-N`: N workers of
    `worker_batch` each (the global batch grows with N); `hook-H-N`: weak-N with DDP communication hook H;
    `backend-B-N`: weak-N with process-group backend B, the workers spread over nodes."""

    mode: str  # strong | weak | hook | backend
    workers: int
    variant: str  # allreduce | fp16 | bf16 | powersgd | nccl | gloo

    def batch_per_worker(self, cfg: ScalingConfig) -> int:
        return max(1, cfg.global_batch // self.workers) if self.mode == "strong" else cfg.worker_batch


def parse_job(job: str) -> Job:
    parts = job.split("-")
    try:
        workers = int(parts[-1])
    except ValueError:
        workers = 0
    valid = {"strong": ("auto",), "weak": ("auto",), "hook": COMM_HOOKS, "backend": BACKENDS}
    mode = parts[0]
    variant = parts[1] if len(parts) == 3 else "auto"
    if workers < 1 or mode not in valid or variant not in valid[mode] or len(parts) != (3 if mode in ("hook", "backend") else 2):
        raise ConfigError(f"job={job!r} is not strong-N, weak-N, hook-{{{','.join(COMM_HOOKS)}}}-N or "
                          f"backend-{{nccl,gloo}}-N with N >= 1")
    return Job(mode, workers, variant if mode in ("hook", "backend") else "allreduce")


def job_ddp(cfg: ScalingConfig) -> dict[str, Any]:
    """The job's DDP settings: its workers, and its hook or backend (spread over nodes where there are several)."""
    job = parse_job(cfg.job)
    out: dict[str, Any] = {"workers": job.workers}
    if job.mode == "hook":
        out["comm_hook"] = job.variant
    if job.mode == "backend":
        out.update(backend=job.variant, placement="SPREAD")
    return out


def to_loop(cfg: ScalingConfig) -> ImageTrial:
    """The job's per-worker batch, and the learning rate scaled linearly with its global batch (Goyal et al. 2017),
    so every job trains the same recipe; the run records the job's shape and the price of its GPU-hours."""
    from trainables.prices import resolve_price

    job = parse_job(cfg.job)
    batch = job.batch_per_worker(cfg)
    lr = cfg.lr * batch * job.workers / REFERENCE_BATCH
    instance, price = resolve_price(cfg.instance_type, cfg.gpu_hour_price)
    return ImageTrial(loop=loop_config(cfg, batch_size=batch, lr=lr), params={
        "mode": job.mode, "workers": job.workers, "variant": job.variant, "batch_per_worker": batch,
        "global_batch_run": batch * job.workers, "lr_run": lr, "priced_instance": instance,
        "price_per_gpu_hour": price})


def scaling_jobs(workers: list[int]) -> list[str]:
    return [f"{mode}-{n}" for mode in ("strong", "weak") for n in workers]


PAPER_JOBS = (scaling_jobs([1, 2, 4, 8, 16])
              + [f"hook-{h}-{n}" for h in ("fp16", "bf16", "powersgd") for n in (1, 2, 4, 8)]
              + [f"backend-{b}-{n}" for b in ("nccl", "gloo") for n in (2, 4, 8)])

STUDY = Study(
    name="scaling",
    doc=__doc__,
    config=ScalingConfig,
    trial=image_trial(to_loop, ddp=job_ddp),  # every trial a DDP job of its job's workers
    presets={
        # strong-1 doubles as weak-1 here (global batch = batch per worker), saving a ~20 s DDP start
        "smoke": Preset("LeNet-5, 256 images, 2 epochs; strong 1-2, weak 2, PowerSGD hook, NCCL (skipped on CPU) "
                        "(about 2 min on 2 CPUs)",
                        config={"model": "lenet5", "train_subset": 256, "test_subset": 128, "epochs": 2,
                                "global_batch": 32, "worker_batch": 32, "lr": 0.4},
                        space={"job": ["strong-1", "strong-2", "weak-2", "hook-powersgd-2", "backend-nccl-2"]}),
        "quick": Preset("ResNet-20, 2048 images, 3 epochs; strong and weak 1-2, every hook and backend at 2 "
                        "(minutes on a 2-core CPU)",
                        config={"model": "resnet20", "train_subset": 2048, "test_subset": 512, "epochs": 3,
                                "global_batch": 128, "worker_batch": 64, "lr": 0.2},
                        space={"job": scaling_jobs([1, 2]) + [f"hook-{h}-2" for h in ("fp16", "bf16", "powersgd")]
                               + ["backend-nccl-2", "backend-gloo-2"]}),
        "paper": Preset("ResNet-50, FashionMNIST, 10 epochs; N in 1..16: 10 scaling jobs + 18 all-reduce variants "
                        "(a GPU cluster)",
                        # Goyal et al.'s linear scaling rule comes with a gradual warm-up (global batch up to 1024)
                        config={"model": "resnet50", "epochs": 10, "global_batch": 256, "worker_batch": 64,
                                "lr": 0.1, "warmup_epochs": 1},
                        space={"job": PAPER_JOBS}),
    },
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
