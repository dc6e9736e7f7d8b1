"""Data-parallel trials: each Tune trial runs its training loop as a Ray Train `TorchTrainer` job.

    python sweeps/<study>.py --workers 2                    # every trial: 2 DDP workers (Gloo on CPUs)
    python sweeps/<study>.py --workers 4 --gpus-per-worker 1 --cpus-per-worker 4   # NCCL on GPUs

How (the pattern that works with Ray 2.60, whose Train V2 cannot be handed to a Tuner):
- the Tune trial is a function trainable holding a tiny CPU share (`DRIVER_CPU`); it builds a
  `TorchTrainer` whose `ray.train.RunConfig` carries `TuneReportCallback`, and calls `.fit()`;
- every worker runs the study's unchanged trial function `run(task, data, session, device)` with a
  `DDPSession` and the device Ray assigned the worker (trainables.runtime.devices):
  `session.distributed` tells the shared loop (trainables/image/trial.py) to wrap the
  model in DistributedDataParallel, train on its shard of each epoch (trainables/training/classify.py,
  `shard=`) and sum the epoch's statistics over ranks;
- every rank calls `ray.train.report` once per epoch with the same (all-reduced) metrics; rank 0
  adds the checkpoint. `TuneReportCallback` forwards rank 0's metrics to the Tune trial, so the
  runner's driver-side MLflow recorder writes exactly one child run per trial; workers never
  touch MLflow.
- a worker that raises or dies is restarted from the last checkpoint, up to `max_failures`
  times (`ray.train.FailureConfig`); the Train run lives under the Tune trial's folder, so a Tune
  retry of the trial resumes from it as well.

Resources: the trial's driver takes `DRIVER_CPU` CPUs and each worker `cpus_per_worker` less that
share, so N workers of C CPUs fit on N x C CPUs (2 workers on a 2-CPU machine, or one on each of
two 1-CPU nodes). The runner runs DDP trials one at a time unless --max-concurrent says otherwise
(they take the machine, and overlapping trials would distort each other's timings).

`REPORT_OBSERVERS` are called with (epoch, rank) after every report of a worker (the tests' fault injection,
tests/fault_injection.py).
"""

from __future__ import annotations

import functools
import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.distributed

from trainables.runtime import ray_internals as ray_internals
from trainables.artifacts import ARTIFACTS_KEY, encode_all
from trainables.config import ConfigError
from trainables.runtime.devices import assigned_device
from trainables.runtime.session import STATE_FILE, _checkpoint_due, is_diverged
from trainables.runtime.storage_outage import say_back, wait_for_storage

DRIVER_CPU = 0.01  # CPUs of the Tune trial that only waits on its TorchTrainer (0 is rejected by Tune)
BACKENDS = ("auto", "gloo", "nccl")
COMM_HOOKS = ("allreduce", "fp16", "bf16", "powersgd")
PLACEMENTS = ("PACK", "SPREAD")
# Called with (epoch, rank) after each report of a DDP worker (tests/fault_injection.py installs one).
REPORT_OBSERVERS: list[Callable[[int, int], None]] = []


@dataclass(frozen=True)
class DDPSettings:
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    backend: str = "auto"  # auto: nccl with GPUs, gloo without
    comm_hook: str = "allreduce"  # DDP communication hook: allreduce (none) | fp16 | bf16 | powersgd
    placement: str = "PACK"  # PACK: as few nodes as possible; SPREAD: one worker per node where possible
    max_failures: int = 0  # worker failures a trial survives (restart from its last checkpoint)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ConfigError(f"--workers {self.workers} must be at least 1")
        if self.cpus_per_worker <= DRIVER_CPU:
            raise ConfigError(f"--cpus-per-worker {self.cpus_per_worker} must be more than {DRIVER_CPU}")
        if self.gpus_per_worker < 0:
            raise ConfigError(f"--gpus-per-worker {self.gpus_per_worker} must be >= 0")
        if self.backend not in BACKENDS:
            raise ConfigError(f"--ddp-backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.comm_hook not in COMM_HOOKS:
            raise ConfigError(f"comm_hook={self.comm_hook!r} is not one of {', '.join(COMM_HOOKS)}")
        if self.placement not in PLACEMENTS:
            raise ConfigError(f"placement={self.placement!r} is not one of {', '.join(PLACEMENTS)}")

    @property
    def resolved_backend(self) -> str:
        if self.backend == "auto":
            return "nccl" if self.gpus_per_worker > 0 else "gloo"
        return self.backend

    @property
    def runnable(self) -> bool:
        """NCCL runs on GPUs only."""
        return self.resolved_backend != "nccl" or self.gpus_per_worker > 0


# ---------------------------------------------------------------- inside a worker

@dataclass(frozen=True)
class Distributed:
    """What the shared training loop needs to know in a DDP worker."""

    rank: int
    world: int
    device: torch.device
    comm_hook: str = "allreduce"

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world

    def wrap(self, model: torch.nn.Module, warmup_steps: int = 2) -> torch.nn.Module:
        """`model` in DistributedDataParallel with this run's communication hook. PowerSGD runs
        plain all-reduce for `warmup_steps` first: compressing from the first steps, while the
        gradients still change fast, costs accuracy (Vogels et al. 2019; torch's PowerSGD notes)."""
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[self.device] if self.device.type == "cuda" else None)
        if self.comm_hook == "fp16":
            ddp.register_comm_hook(None, default_hooks.fp16_compress_hook)
        elif self.comm_hook == "bf16":
            ddp.register_comm_hook(None, default_hooks.bf16_compress_hook)
        elif self.comm_hook == "powersgd":
            # rank 2: the PowerSGD paper's main setting for ResNet-18 on CIFAR-10 (rank 1 loses accuracy)
            # (its error feedback needs start_powerSGD_iter > 1)
            state = powerSGD_hook.PowerSGDState(process_group=None, matrix_approximation_rank=2,
                                                start_powerSGD_iter=max(2, warmup_steps))
            hook = powerSGD_hook.powerSGD_hook
            if torch.distributed.get_backend() == "gloo":
                hook = _one_bucket_at_a_time(hook)
            ddp.register_comm_hook(state, hook)
        return ddp

    def sync_buffers(self, model: torch.nn.Module) -> None:
        """Average the ranks' BatchNorm running statistics (integer buffers: rank 0's).

        DDP syncs buffers only at the start of a training forward, so after an epoch each rank's
        running stats carry its own last batches; averaging them before evaluation and checkpointing
        gives every rank the same model, with statistics from the whole epoch's data.
        """
        import torch.distributed as dist

        for buffer in model.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer)
                buffer.div_(self.world)
            else:
                dist.broadcast(buffer, src=0)

    def reduce_epoch(self, stats: dict[str, float]) -> dict[str, float]:
        """One epoch's statistics of all ranks: sums of samples and of loss/accuracy over them; the
        slowest rank's seconds and step time (the step waits for it)."""
        import torch.distributed as dist

        seen = stats["samples"]
        sums = torch.tensor([stats["loss"] * seen, stats["accuracy"] * seen, seen, stats["steps"]],
                            dtype=torch.float64, device=self.device)
        slowest = torch.tensor([stats["seconds"], stats["seconds"] / max(stats["steps"], 1)],
                               dtype=torch.float64, device=self.device)
        dist.all_reduce(sums)
        dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
        loss_sum, correct, samples, steps = sums.tolist()
        return {"loss": loss_sum / max(samples, 1), "accuracy": correct / max(samples, 1), "samples": int(samples),
                "steps": int(steps) // self.world, "seconds": slowest[0].item(), "iter_s": slowest[1].item()}

    def replicas_identical(self, model_state: dict[str, torch.Tensor]) -> bool:
        """True when every rank holds bit-identical weights and buffers (all-gathers a hash per rank)."""
        import torch.distributed as dist

        digest = hashlib.sha256()
        for name, tensor in sorted(model_state.items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        hashes: list[Any] = [None] * self.world
        dist.all_gather_object(hashes, digest.hexdigest())
        return len(set(hashes)) == 1


def _one_bucket_at_a_time(hook: Callable) -> Callable:
    """A comm hook that finishes each bucket before DDP hands it the next one.

    PowerSGD chains two all-reduces per bucket through future callbacks, which run on Gloo's own
    threads; with several buckets in flight the ranks can issue those all-reduces in different
    orders, and Gloo aborts the process on the mismatched messages. NCCL orders them on its stream.
    """

    @functools.wraps(hook)  # DDP checks the hook's signature (GradBucket in, Future out)
    def serialized(state: Any, bucket: Any) -> Any:
        future = hook(state, bucket)
        future.wait()
        return future

    return serialized


class DDPSession:
    """The trial-function session of one DDP worker: every rank reports, rank 0 checkpoints."""

    def __init__(self, distributed: Distributed, epochs: int, checkpoint_every: int, nodes: int = 1):
        self.distributed = distributed
        self.epochs = epochs
        self.checkpoint_every = checkpoint_every
        self.nodes = nodes  # distinct Ray nodes the workers run on
        self.resumed_at = 0  # the epoch of the checkpoint this worker group started from (0: none)

    def restore(self) -> dict | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()  # the latest one, also on every rank after a restart
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as folder:
            state = torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=False)
        self.resumed_at = int(state["epoch"])
        return state

    def report(self, metrics: dict[str, float], epoch: int, state_fn: Callable[[], dict] | None = None,
               artifacts: dict[str, Any] | None = None) -> bool:
        import ray.train

        diverged = is_diverged(metrics)  # the metrics are all-reduced: every rank decides the same
        metrics = {**metrics, "epoch": epoch, "diverged": int(diverged), "ddp/workers": self.distributed.world,
                   "ddp/nodes": self.nodes, "ddp/resumed_at": self.resumed_at}
        if artifacts and self.distributed.rank == 0:  # rank 0's report is the one Tune (and the recorder) sees
            metrics[ARTIFACTS_KEY] = encode_all(artifacts)
        if state_fn is not None and epoch == self.epochs:
            metrics["ddp/replicas_identical"] = float(self.distributed.replicas_identical(state_fn()["model"]))
        due = state_fn is not None and not diverged and _checkpoint_due(epoch, self.epochs, self.checkpoint_every)
        if due and self.distributed.rank == 0:
            # S3 down: wait for it before uploading (the other ranks wait in their report). A report is a
            # collective, so unlike a plain trial's it cannot be made again after a failed upload.
            probe = ray_internals.storage_probe(ray.train.get_context().get_storage())
            down_since = wait_for_storage(probe, f"DDP trial, rank 0, epoch {epoch}")
            with tempfile.TemporaryDirectory() as folder:
                torch.save(state_fn(), os.path.join(folder, STATE_FILE))
                ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder))
            say_back(f"DDP trial, rank 0, epoch {epoch}", down_since)
        else:
            ray.train.report(metrics)  # a collective: every rank reports every epoch
        for observe in REPORT_OBSERVERS:
            observe(epoch, self.distributed.rank)
        return not diverged


def _quiet_train_reports() -> None:
    """Tune's table shows the metrics that Ray Train's workers would log at every report."""
    ray_internals.quiet_train_report_logs()


def _worker_loop(loop_config: dict) -> None:
    import ray
    import ray.train
    import ray.train.torch

    _quiet_train_reports()

    settings: DDPSettings = loop_config["settings"]
    context = ray.train.get_context()
    torch.set_num_threads(max(1, round(settings.cpus_per_worker)))  # Ray sets OMP_NUM_THREADS=1
    device = assigned_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    distributed = Distributed(context.get_world_rank(), context.get_world_size(), device, settings.comm_hook)
    nodes: list[Any] = [None] * distributed.world
    torch.distributed.all_gather_object(nodes, ray.get_runtime_context().get_node_id())
    session = DDPSession(distributed, loop_config["epochs"], loop_config["checkpoint_every"], len(set(nodes)))
    data = ray.get(loop_config["data"])
    loop_config["run"](loop_config["task"], data, session, device)


# ---------------------------------------------------------------- the Tune trial

def run_ddp_trial(run: Callable, task: Any, epochs: int, settings: DDPSettings, data: Any, checkpoint_every: int,
                  metric: str | None = None) -> None:
    """In a Tune trial's process: run `run(task, data, session, device)` as a DDP job of `settings.workers`
    workers (a Ray Train `TorchTrainer` reporting to this trial); the trial itself holds `DRIVER_CPU`.

    A trial whose backend cannot run here (NCCL without GPUs) reports `ddp/skipped=1` once and ends: a documented
    skip, not a crash.
    """
    import ray
    import ray.train
    from ray import tune
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    s = settings
    if not s.runnable:
        # Tune insists on the sweep's metric in every result: NaN, as for a trial that measured nothing
        tune.report({"epoch": 1, "diverged": 0, "ddp/skipped": 1.0, "ddp/workers": s.workers,
                     **({metric: float("nan")} if metric else {})})
        return
    # the Train run lives in the Tune trial's folder (resumable with it)
    storage_path, storage_filesystem = ray_internals.trial_storage()
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"task": task, "data": ray.put(data), "run": run, "settings": s, "epochs": epochs,
                           "checkpoint_every": checkpoint_every},
        scaling_config=ray.train.ScalingConfig(
            num_workers=s.workers, use_gpu=s.gpus_per_worker > 0, placement_strategy=s.placement,
            resources_per_worker={"CPU": s.cpus_per_worker - DRIVER_CPU,
                                  **({"GPU": s.gpus_per_worker} if s.gpus_per_worker else {})}),
        torch_config=TorchConfig(backend=s.resolved_backend),
        run_config=ray.train.RunConfig(
            name="ddp", storage_path=storage_path, storage_filesystem=storage_filesystem,
            callbacks=[TuneReportCallback()], failure_config=ray.train.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            # Train logs every report of every rank at INFO; Tune's table already shows them
            logging_config=ray.train.LoggingConfig(log_level="WARNING")),
    )
    trainer.fit()
