"""The image-classification trial of every image study: one config, one loop (runnable with or without Ray).

    >>> from trainables.image.config import ClassifyConfig, ImageTrial
    >>> from trainables.image.trial import make_data, train_classifier
    >>> from trainables.runtime.session import LocalSession
    >>> cfg = ClassifyConfig(dataset="fashion_mnist", model="lenet5", epochs=2, train_subset=2000)
    >>> session = LocalSession(epochs=2); train_classifier(cfg, make_data(cfg), session)   # on the CPU
    >>> train_classifier(cfg, make_data(cfg), LocalSession(epochs=2), torch.device("cuda"))

A study on this trial maps its own config to an `ImageTrial` (the loop's `ClassifyConfig` and the probes that add
to its reports, trainables/image/probes.py) in its declaration (sweeps/<study>.py); `train_image` runs it.

`ClassifyConfig` (trainables/image/config.py: every field a `--set` key, defaults and units in its comments,
in six parts) serves every image study (subclassed with a study's own keys, or as it is):

- model: any registered model; the small ones (mlp, lenet5) also take hidden widths (mlp), activation,
  weight initialization, batch norm on the input / hidden layers and dropout on the input / hidden layers;
  such options given to another model are a ConfigError;
- optimizer (trainables.training.optimizers): sgd, nesterov, adagrad, rmsprop, rmsprop_nesterov, adadelta, adam,
  adamw, with their hyperparameters; `weight_decay` is L2 through the optimizer;
- learning rate (`lr_policy`, stepped every optimizer step; trainables.training.schedules): constant, multistep,
  cosine (optionally after a linear warm-up), Smith's cyclical triangular / triangular2 / exp_range
  between lr_min and lr_max, and `range`, the continuous LR range test (LR raised every step);
- batch size (`batch_policy`): fixed; `cyclic` (one size per epoch, cycling between batch_min and
  batch_max with a rising trend); `range`, the batch-size range test (batch_min doubling to batch_max every
  `interval` steps). A step of more than `max_micro_batch` samples (or with `chunks` > 1) accumulates
  gradients over micro-batches weighted by their share, so the update equals the full batch's (exactly so
  without batch norm; with it each micro-batch normalizes itself, as ghost batch norm does).

The data set (uint8, in memory) is built once on the driver by `make_data` and moved to the trial's
device once; batches are index slices of a per-epoch permutation and augmentation runs batched on the
device (`trainables.training.augment`). On a GPU, AMP (bfloat16) and channels_last are on unless turned off,
and so is `capture` (`auto`): each full batch's step, augmentation included, is replayed from a CUDA graph
(`trainables.training.classify.CapturedEpochs`) where the step has static shapes: a fixed batch size, no range
test, no DDP, no adagrad; elsewhere the loop is eager, and `capture=on` there is a ConfigError at trial start.
A population on a GPU draws its augmentation from a CUDA generator seeded with its first seed (on the CPU, from
its first replica's data-order generator, as before); its state is checkpointed with the trial.

The trial reports once per epoch. The two range tests instead report once per stage of `interval` steps
drawn from an endless stream of samples (their `epochs` is their number of stages, `ClassifyConfig.stages`)
and keep no checkpoints (a short single run, restarted from scratch if its process dies).
Metrics: `train/loss`, `train/accuracy`, `train/lr` (the LR of the epoch's first step; for the continuous
range test, of the stage's last step), `train/batch_size`, `train/iterations` (optimizer steps so far),
`test/loss`, `test/accuracy` (and `val/*` with a validation split; the continuous LR range test evaluates
nothing), `time/epoch_s`, `time/train_s` (cumulative, training only), `perf/images_per_s`,
`train/samples_seen` and `train/passes` (cumulative, batch-augmented copies included; passes = epoch x
batch_m), `perf/tflops` (achieved, forward+backward = 3x forward) and, where the device's peak is known,
`perf/ppp` (fraction of peak, PALEO); `time/iter_s` (mean step time of a worker) and
`perf/steady_images_per_s` (over epochs 2.., i.e. after the warm-up epoch). The first report of a
process also carries the device's name as the run param "GPU type" (`trainables.runtime.session.PARAMS_KEY`).
Artifacts: a model with batch norm attaches `batchnorm.csv` (every layer's learned gamma and beta per
channel and replica) at its last report and with every replicas table.

Populations (mlp, lenet5; trainables.training.population): `seeds` = N trains N replicas with seeds seed..seed+N-1,
fused; `optimizers` = (a, b, ...) trains one group of N replicas per method (each with its lr from `lrs`,
`trainables.training.population.ReplicaGroupOptimizer`), every group on the same seeds, data orders and dropout
masks as its separate runs would use. The metrics are then means over the replicas (with `_std`,
`population/diverged`, `population/size`); each replica's values go to `replicas.csv` (columns seed and,
with optimizers, optimizer and lr) and, every epoch so far, `replica_history.csv`.

Divergence: an epoch whose mean training loss is NaN/inf or above 4 x ln(classes) (far worse than
guessing) reports `train/loss` = inf (the number itself as `train/loss_raw`), so the session records the
trial as diverged and stops it. The continuous LR range test stops once a stage's loss exceeds 4x its
best stage's (`range/blew_up` = 1).

Data-parallel (in a `trainables.runtime.ddp.DDPSession`, whose `distributed` is set): the same loop, with
the model wrapped in DistributedDataParallel, each rank training on its shard of every epoch and
the epoch's statistics summed over ranks (loss, accuracy and images/s are the whole epoch's).
"""

from __future__ import annotations

import functools
import math
import time
from typing import TYPE_CHECKING, Any

import torch

from trainables.config import ConfigError
from trainables.data.vision import DATASETS, VisionData, load_vision_data, to_device
from trainables.image.config import SMALL_MODELS, ClassifyConfig, ImageTrial
from trainables.image.probes import Probe
from trainables.models.paleo import achieved_flops, gpu_peak, perf_metrics
from trainables.models.registry import batchnorm_layers, build_model
from trainables.models.stats import model_summary
from trainables.runtime.devices import CPU, describe
from trainables.artifacts import PARAMS_KEY
from trainables.runtime.session import is_diverged, load_training_state, training_state
from trainables.training.augment import batch_augment, eval_transform
from trainables.training.capture import set_capturable, use_capture
from trainables.training.classify import CapturedEpochs, evaluate, train_one_epoch, train_steps
from trainables.training.optimizers import build_optimizer
from trainables.training.population import (Population, ReplicaGroupOptimizer, build_population, data_generators,
                                            replica_mean, replica_report)
from trainables.training.schedules import CYCLIC, IndexStream, build_schedule, initial_lr, range_factor

if TYPE_CHECKING:
    import pandas as pd

BATCHNORM_TABLE = "batchnorm.csv"  # a trial's learned batch-norm gamma and beta (batchnorm_table): run artifact
# An epoch whose mean training loss exceeds this many times that of guessing (ln classes) has diverged; the
# continuous LR range test stops once a stage's loss exceeds this many times its best stage's (fastai's rule).
DIVERGE_FACTOR = 4.0


def check_runnable(cfg: ClassifyConfig, distributed: Any = None) -> None:
    """What a trial needs beyond a valid config: values that study hooks fill in (the LR and batch bounds
    from earlier range tests) and a single process for the range tests."""
    if cfg.lr_policy in (*CYCLIC, "range") and not (cfg.lr_min and cfg.lr_max):
        raise ConfigError(f"lr_policy={cfg.lr_policy} needs lr_min and lr_max")
    if not initial_lr(cfg):
        raise ConfigError(f"lr_policy={cfg.lr_policy} needs lr (or lr_{cfg.fixed_lr} with lr=0)")
    if cfg.batch_policy == "cyclic" and not (cfg.batch_min and cfg.batch_max):
        raise ConfigError("batch_policy=cyclic needs batch_min and batch_max")
    if distributed is not None and cfg.range_test:
        raise ConfigError("the range tests (lr_policy=range, batch_policy=range) run in one process, not under DDP")
    if distributed is not None and (cfg.seeds > 1 or cfg.optimizers):
        raise ConfigError(f"seeds={cfg.seeds}, optimizers={cfg.optimizers}: a population trial runs in one process, "
                          "not under DDP")


def make_data(cfg: ClassifyConfig) -> VisionData:
    """Read the data set once on the driver (numpy, cheap to share through the object store)."""
    return load_vision_data(cfg.dataset, cfg.data_dir or None, val_size=cfg.val_size, split_seed=cfg.data_seed,
                            train_subset=cfg.train_subset or None, test_subset=cfg.test_subset or None,
                            subset_seed=cfg.data_seed)


def build_classifier(cfg: ClassifyConfig) -> torch.nn.Module:
    return build_model(cfg.model, num_classes=cfg.num_classes, in_channels=cfg.image_shape[0], **cfg.model_kwargs())


@functools.lru_cache(maxsize=64)
def _summary(model: str, dataset: str, model_kw: tuple[tuple[str, Any], ...] = ()) -> dict[str, int]:
    shape = DATASETS[dataset].shape
    return model_summary(model, shape, num_classes=DATASETS[dataset].num_classes, in_channels=shape[0],
                         **dict(model_kw))


def model_params(cfg: ClassifyConfig) -> dict[str, Any]:
    """Parameter count and forward multiply-accumulates per sample (`n_params`, `macs_per_sample`), for MLflow."""
    return _summary(cfg.model, cfg.dataset, tuple(sorted(cfg.model_kwargs().items())))


def make_optimizer(cfg: ClassifyConfig, params, name: str | None = None, lr: float | None = None) -> torch.optim.Optimizer:
    """The config's optimizer (or the method `name` at `lr`, with the config's hyperparameters), at the learning
    rate of the first step."""
    name = name or cfg.optimizer
    return build_optimizer(name, params, lr=lr or initial_lr(cfg),
                           momentum=cfg.rmsprop_momentum if name == "rmsprop" else cfg.momentum,
                           weight_decay=cfg.weight_decay, alpha=cfg.rmsprop_alpha, rho=cfg.adadelta_rho,
                           betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.eps)


def make_population_optimizer(cfg: ClassifyConfig, params, replicas_per_group: int) -> torch.optim.Optimizer:
    """The trial's optimizer: the config's one over all parameters (one model, or a population of one method), or
    one per replica group of `optimizers`."""
    groups = cfg.replica_groups()
    if len(groups) == 1:
        return make_optimizer(cfg, params)
    k = replicas_per_group
    return ReplicaGroupOptimizer(params, [(g * k, (g + 1) * k, functools.partial(make_optimizer, cfg, name=name, lr=lr))
                                          for g, (name, lr) in enumerate(groups)])


def batchnorm_table(model: torch.nn.Module, seeds: list[int]) -> "pd.DataFrame | None":
    """The learned scale (gamma) and shift (beta) of every channel of every batch-norm layer (labels from
    trainables.models.registry.batchnorm_layers: input, conv1, ..., fc1, ...), one row each, per replica; None without
    batch norm."""
    import pandas as pd

    replicas = [model.replica(p) for p in range(model.size)] if isinstance(model, Population) else [model]
    rows = [{"replica": p, "seed": seed, "layer": layer, "channel": c, "gamma": g, "beta": b}
            for p, (replica, seed) in enumerate(zip(replicas, seeds))
            for layer, bn in batchnorm_layers(replica) if bn.affine
            for c, (g, b) in enumerate(zip(bn.weight.detach().cpu().tolist(), bn.bias.detach().cpu().tolist()))]
    return pd.DataFrame(rows) if rows else None


def device_peak(device: torch.device, amp: bool) -> float | None:
    """The device's peak FLOP/s (tensor cores when AMP is on) from trainables.models.paleo.gpu_peak: the table
    (H200 before H100, ...) or DLSWEEPS_PEAK_TFLOPS; None on the CPU and, with one warning, for an unknown GPU."""
    if device.type != "cuda":
        return None
    return gpu_peak(torch.cuda.get_device_name(device), "tensor" if amp else "fp32")


def capture_blocker(cfg: ClassifyConfig, distributed: Any = None) -> str | None:
    """Why this config's training step cannot be captured as a CUDA graph (None: it can)."""
    if distributed is not None:
        return "a data-parallel (DDP) trial synchronizes its gradients between processes"
    if cfg.batch_policy != "fixed":
        return f"batch_policy={cfg.batch_policy} changes the batch size"
    if cfg.lr_policy == "range":
        return "the LR range test (lr_policy=range) is a short run over an endless stream of batches"
    if "adagrad" in (cfg.optimizer, *cfg.optimizers):
        return "torch's Adagrad keeps its step count on the host (optimizer adagrad)"
    return None


def _draw_from(augment, generator: torch.Generator, x: torch.Tensor, y: torch.Tensor,
               **kw) -> tuple[torch.Tensor, torch.Tensor]:
    """`augment(x, y)` drawing from `generator`, whatever generator the loop passes (a population's on a GPU)."""
    kw.pop("generator", None)
    return augment(x, y, generator=generator, **kw)


def train_image(trial: ImageTrial, data: VisionData, session, device: torch.device = CPU) -> None:
    """The trial entry of every study on the image loop (sweeps.study.image_trial)."""
    train_classifier(trial.loop, data, session, device, trial.probes)


def make_trial_data(trial: ImageTrial) -> VisionData:
    return make_data(trial.loop)


def trial_params(trial: ImageTrial) -> dict[str, Any]:
    """The run's params beside its config: the model's size and MACs per sample, and the study's own."""
    return {**model_params(trial.loop), **trial.params}


def train_classifier(cfg: ClassifyConfig, data: VisionData, session, device: torch.device = CPU,
                     probes: tuple[Probe, ...] = ()) -> None:
    """Train `cfg` on `device` (in a DDP worker: the worker's), reporting once per epoch (or range-test stage)."""
    dist = getattr(session, "distributed", None)  # set in a DDP worker (trainables.runtime.ddp)
    check_runnable(cfg, dist)
    captured = use_capture(cfg.capture, device, capture_blocker(cfg, dist))  # capture=on where it cannot: ConfigError
    amp = cfg.amp == "on" or (cfg.amp == "auto" and device.type == "cuda")
    channels_last = cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type == "cuda")
    torch.manual_seed(cfg.seed)
    on_device = to_device(data, device)
    evals = ([("val", on_device.val)] if len(on_device.val.labels) else []) + [("test", on_device.test)]
    eval_name = evals[0][0]  # what target_accuracy and ASHA look at

    groups = cfg.replica_groups()  # (optimizer, lr) per group of cfg.seeds replicas
    seeds = [cfg.seed + i for i in range(cfg.seeds)] * len(groups)  # every group: the same seeds, as separate runs
    population = len(seeds) > 1  # the replicas train fused, each with its own seed, init and data order
    if population:
        model = build_population(lambda: build_classifier(cfg), seeds, device)
        channels_last = False  # the fused convolutions run grouped over the replicas' channels
    else:
        model = build_classifier(cfg).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    train = on_device.train
    n = len(train.labels)
    steps_per_epoch = max(1, n // (dist.world if dist else 1) // cfg.batch_size)
    # `model` stays the plain module (checkpoints, evaluation); a compressing hook starts after epoch 1
    net = dist.wrap(model, warmup_steps=steps_per_epoch) if dist else model
    optimizer = make_population_optimizer(cfg, model.parameters(), cfg.seeds)
    scheduler = build_schedule(cfg, optimizer, steps_per_epoch)
    generator = data_generators(seeds) if population else torch.Generator(device=device).manual_seed(cfg.seed)
    transform = functools.partial(eval_transform, mean=on_device.mean, std=on_device.std)
    augmenting = bool(cfg.crop_flip or cfg.cutout or cfg.batch_m > 1)
    # The augmentation's generator: the trial's own (a population's first data-order generator, on the CPU; on a
    # GPU a population draws from a CUDA generator of its first seed, since CPU generators cannot draw there)
    augment_generator = generator[0] if population else generator
    if population and augmenting and device.type == "cuda":
        augment_generator = torch.Generator(device=device).manual_seed(seeds[0])
    if augmenting:
        augment = functools.partial(batch_augment, m=cfg.batch_m, mean=on_device.mean, std=on_device.std,
                                    padding=4 if cfg.crop_flip else 0, flip=cfg.crop_flip, cutout=cfg.cutout)
        if augment_generator is not (generator[0] if population else generator):
            augment = functools.partial(_draw_from, augment, augment_generator)
    else:  # no augmentation: normalize only (and draw nothing from the generator)
        augment = lambda x, y, generator=None: (transform(x), y)  # noqa: E731
    macs = model_params(cfg)["macs_per_sample"]
    peak = device_peak(device, amp)
    log_chance = math.log(cfg.num_classes)

    state = None
    if cfg.range_test:  # a short single run: no checkpoints, samples drawn from an endless stream
        start, train_s, samples_seen, stream = 0, 0.0, 0, IndexStream(n, generator, device)
    else:
        state = session.restore()
        start, train_s = load_training_state(state, model, optimizer, scheduler, generator)
        samples_seen = state.get("samples_seen", 0) if state else 0
        if state and "augment_generator" in state and augmenting and population and device.type == "cuda":
            augment_generator.set_state(state["augment_generator"])  # a GPU population's own (see above)
    set_capturable(optimizer, False)  # eager steps keep step counts on the host; CapturedEpochs sets what it needs
    epochs, capture_s = None, 0.0  # CapturedEpochs, built at the first epoch (and the seconds that took)
    for probe in probes:
        probe.start(cfg, model, on_device, (state or {}).get("probes", {}).get(probe.name))
    history = (state or {}).get("replica_history", []) if population and not cfg.range_test else None
    identity = {"seed": seeds, **({"optimizer": [name for name, _ in groups for _ in range(cfg.seeds)],
                                   "lr": [lr for _, lr in groups for _ in range(cfg.seeds)]} if cfg.optimizers else {})}
    iterations = scheduler.last_epoch  # optimizer steps so far
    steady = [0, 0.0]  # images and seconds of the epochs after the first (warm-up) one
    best_stage = math.inf  # continuous LR range test: the best stage loss so far

    for stage in range(start + 1, cfg.stages + 1):  # an epoch, or a stage of a range test
        batch = cfg.batch_at(stage)  # reported as scheduled; an epoch's steps hold at most the whole set
        step_batch = batch if cfg.range_test else min(batch, n)  # the range tests' stream serves any batch size
        lr = optimizer.param_groups[0]["lr"]
        if device.type == "cuda":
            torch.cuda.synchronize()
        common = dict(augment=augment, scheduler=scheduler, amp=amp, channels_last=channels_last,
                      chunks=cfg.micro_batches(step_batch))
        if cfg.range_test:
            stats = train_steps(net, optimizer, train, (stream.next(batch) for _ in range(cfg.interval)), generator,
                                **common)
        elif captured:  # the first epoch also captures the step (its warm-up included in the epoch's time)
            if epochs is None:
                t0 = time.perf_counter()
                epochs = CapturedEpochs(model, optimizer, train, step_batch, augment_generator, augment, scheduler,
                                        amp, channels_last, common["chunks"],
                                        constant_lr=cfg.lr_policy == "constant" and not cfg.warmup_epochs,
                                        steps_per_graph=None if cfg.model in SMALL_MODELS else 1)
                capture_s = time.perf_counter() - t0
            stats = epochs.epoch(generator)
            stats["seconds"] += capture_s
            capture_s = 0.0
        else:
            stats = train_one_epoch(net, optimizer, train, step_batch, generator,
                                    shard=dist.shard if dist else (0, 1), **common)
        if dist:
            stats = dist.reduce_epoch(stats)  # the whole epoch's loss/accuracy/samples; the slowest rank's time
            dist.sync_buffers(model)
        replicas: dict[str, list[float]] = {}  # a population's per-replica values; its metrics are their means
        if population:
            replicas = {"train/loss": [v if v <= DIVERGE_FACTOR * log_chance else math.nan for v in stats["loss"]],
                        "train/accuracy": stats["accuracy"]}
            stats = {**stats, "loss": replica_mean(replicas["train/loss"]),
                     "accuracy": replica_mean(replicas["train/accuracy"])}
        epoch_s = stats["seconds"]  # train_steps ends with a host sync, so this is the GPU's time too
        train_s += epoch_s
        iterations += stats["steps"]
        samples_seen += stats["samples"]
        if stage > 1 or cfg.stages == 1:
            steady = [steady[0] + stats["samples"], steady[1] + epoch_s]
        raw = loss = stats["loss"]
        if cfg.lr_policy == "range":
            lr = optimizer.param_groups[0]["lr"] / range_factor(cfg)  # the stage's last step's
        elif not cfg.range_test and raw > DIVERGE_FACTOR * log_chance:
            loss = math.inf  # far worse than guessing: it blew up (the session records the trial as diverged)
        metrics = {"train/loss": loss, "train/accuracy": stats["accuracy"], "train/lr": lr,
                   "train/batch_size": batch, "train/iterations": iterations,
                   "time/epoch_s": epoch_s, "time/train_s": train_s,
                   "perf/images_per_s": stats["samples"] / epoch_s,
                   "perf/steady_images_per_s": steady[0] / steady[1] if steady[1] else stats["samples"] / epoch_s,
                   "time/iter_s": stats.get("iter_s", epoch_s / max(stats["steps"], 1)),
                   # cumulative work, for ASHA's time (every epoch sees each sample batch_m times)
                   "train/samples_seen": samples_seen, "train/passes": stage * cfg.batch_m}
        if not cfg.range_test:
            metrics["train/loss_raw"] = raw
        metrics.update(perf_metrics(achieved_flops(macs, metrics["perf/images_per_s"]), peak))
        blew_up = cfg.lr_policy == "range" and math.isfinite(raw) and raw > DIVERGE_FACTOR * best_stage
        if blew_up:
            metrics["range/blew_up"] = 1
        best_stage = min(best_stage, raw) if math.isfinite(raw) else best_stage
        if math.isfinite(raw) and cfg.lr_policy != "range":
            for name, split in evals:
                result = evaluate(model, split.images, split.labels, 1000, transform=transform, amp=amp,
                                  channels_last=channels_last)
                if population:
                    replicas.update({f"{name}/loss": result["loss"], f"{name}/accuracy": result["accuracy"]})
                    result = {key: replica_mean(values) for key, values in result.items()}
                metrics[f"{name}/loss"], metrics[f"{name}/accuracy"] = result["loss"], result["accuracy"]
        elif cfg.lr_policy != "range":  # a NaN epoch is not evaluated; Tune needs the study's metric in every report
            for name, _ in evals:
                metrics[f"{name}/loss"] = metrics[f"{name}/accuracy"] = math.nan
        reached = cfg.target_accuracy > 0 and metrics.get(f"{eval_name}/accuracy", 0.0) >= cfg.target_accuracy
        if reached:
            metrics["target_reached"] = 1
        artifacts = None
        if population:
            spread, artifacts = replica_report(replicas, identity, stage, cfg.stages, history)
            metrics.update(spread, **{"population/size": len(seeds)})
        if stage == cfg.stages or reached or blew_up or artifacts is not None:  # the last report, or a table's
            table = batchnorm_table(model, seeds)  # the learned gamma and beta (a few hundred numbers)
            if table is not None:
                artifacts = {**(artifacts or {}), BATCHNORM_TABLE: table}
        last = stage == cfg.stages or reached or blew_up or is_diverged(metrics)
        for probe in probes:
            extra, files = probe.observe(stage, metrics, model, last)
            metrics.update(extra)
            artifacts = {**(artifacts or {}), **files} if files else artifacts
        state_fn = None if cfg.range_test else (  # noqa: E731
            lambda: {**training_state(model, optimizer, scheduler, generator, stage, train_s),
                     "samples_seen": samples_seen, **({"replica_history": history} if history is not None else {}),
                     **({"augment_generator": augment_generator.get_state()} if augmenting and population
                        and device.type == "cuda" else {}),
                     "probes": {probe.name: probe.state() for probe in probes}})
        if stage == start + 1:  # once per process: the device this trial (or a resumed part of it) runs on
            metrics[PARAMS_KEY] = {"GPU type": describe(device)}
        if not session.report(metrics, stage, state_fn, artifacts=artifacts) or reached or blew_up:
            return
