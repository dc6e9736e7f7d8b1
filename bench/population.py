"""Benchmark: 1000 tiny networks trained as one fused population, one at a time, and as Ray Tune trials.

    PYTHONPATH=. python bench/population.py            # 1-3 min on a 2-core CPU (no GPU)
    PYTHONPATH=. python bench/population.py --smoke    # seconds: a functional check, numbers meaningless

The dying-ReLU study's size: 1000 networks of depth 10 and width 2 (input 1 -> 10 hidden ReLU layers of
width 2 -> 1 output: `build_model("mlp", num_classes=1, in_features=1, widths=(2,) * 10)`), network p
initialized under torch.manual_seed(p), regressing y = |x| with x uniform on [-sqrt(7), sqrt(7)] (3000
points), minibatches of 64 in a per-network random order, plain SGD (lr 0.01), 200 steps each. Measured
in this one process, on CPU:
(a) fused: the 1000 networks as one `trainables.training.population` population (one batched matmul per layer);
(b) loop: the same networks one after another in a Python loop (the first --loop-networks of them timed,
    extrapolated linearly to 1000); their final losses are checked against the population's;
(c) Ray Tune: --tune-trials function trials of one network each (local `ray.init(num_cpus=2)`, 1 CPU and
    1 thread per trial, so two at a time; `reuse_actors=True`), the wall time of `Tuner.fit` extrapolated
    linearly to 1000 trials. The fit's start-up and shut-down (several seconds) are scaled too, but Tune's
    per-trial cost grows with the trial count: the span from the first trial's start to the last one's
    end was 0.08 s per trial in a fit of 20 and 0.21 s in a fit of 200, whose whole-fit extrapolation
    (274 s) came close to the one from 20 (339 s) in the same session. The span-based figure (start-up
    counted once) is printed as a lower bound.
Timed scopes: (a) and (b) the training steps only (models built beforehand), after a warm-up run;
(c) the whole `Tuner.fit` call, after a warm-up fit of 2 trials. One run each (no repeats: the ratios are
large). The load average is printed, as other processes on the machine slow every row.
The table prints seconds and each row's ratio to the fused run; the side line counts networks that
collapsed to a constant function (the dying-ReLU result itself).

Measured (2-core CPU shared with other jobs, load average 1-7; torch 2.14.1; 200 steps, 1000 networks):
  --threads 1, 4 runs: fused 3.9-5.7 s, loop 132-268 s (34-47x), Ray Tune 339-1107 s (75-193x);
  --threads 2, the best run (load 2.0): fused 3.4 s, loop 197 s (58x), Ray Tune 385 s (114x).
With 2 threads on a busy machine every parallel kernel waits for a descheduled thread: the fused run took
3.4 to 46 s and the loop's tiny backward matmuls 1 ms instead of 4 us; use --threads 1 there. Fused and
loop agree exactly on the timed networks' final losses; 934 of the 1000 networks collapse to a constant.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trainables.models.registry import build_model  # noqa: E402
from trainables.training.population import (PopulationOptimizer, build_population, data_generators,  # noqa: E402
                                   per_replica_mse, replica_batch, replica_permutations)


@dataclass(frozen=True)
class BenchConfig:
    networks: int = 1000  # population size, and the count (b) and (c) are extrapolated to
    depth: int = 10  # hidden layers
    width: int = 2  # units per hidden layer
    n_points: int = 3000  # training points
    batch_size: int = 64
    steps: int = 200  # SGD steps per network
    lr: float = 0.01  # plain SGD, no momentum
    loop_networks: int = 50  # networks timed in (b)
    tune_trials: int = 20  # trials timed in (c); 0 skips it
    threads: int = 2  # torch threads of this process (a Ray trial uses 1)


SMOKE = dict(networks=20, steps=10, loop_networks=3, tune_trials=0)


def make_data(n_points: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x uniform on [-sqrt(7), sqrt(7)] (fixed seed), y = |x|; both [n, 1]."""
    half = math.sqrt(7)
    x = (torch.rand(n_points, 1, generator=torch.Generator().manual_seed(12345)) * 2 - 1) * half
    return x, x.abs()


def build_network(cfg: BenchConfig) -> torch.nn.Module:
    return build_model("mlp", num_classes=1, in_features=1, widths=(cfg.width,) * cfg.depth)


# --- (b) and (c): one network ---------------------------------------------------------------------

def make_run(seed: int, cfg: BenchConfig):
    """A separate run's model, optimizer and data-order generator, as trainables/studies/depth_width.py makes them."""
    torch.manual_seed(seed)
    model = build_network(cfg)
    return model, torch.optim.SGD(model.parameters(), lr=cfg.lr), torch.Generator().manual_seed(seed)


def train_network(model, optimizer, order, x, y, cfg: BenchConfig) -> torch.Tensor:
    """cfg.steps SGD steps in per-epoch random order; returns the last step's loss (on the device)."""
    step, loss = 0, torch.zeros(())
    while step < cfg.steps:
        perm = torch.randperm(len(x), generator=order)
        for start in range(0, len(x), cfg.batch_size):
            if step == cfg.steps:
                break
            idx = perm[start:start + cfg.batch_size]
            loss = F.mse_loss(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
    return loss.detach()


def loop(cfg: BenchConfig, x, y, networks: int) -> tuple[float, torch.Tensor]:
    """Seconds spent training networks 0..networks-1 one at a time, and their final losses."""
    seconds, losses = 0.0, []
    for seed in range(networks):
        model, optimizer, order = make_run(seed, cfg)
        started = time.perf_counter()
        losses.append(train_network(model, optimizer, order, x, y, cfg))
        seconds += time.perf_counter() - started
    return seconds, torch.stack(losses)


# --- (a): the population ----------------------------------------------------------------------------

def train_population(pop, optimizer, orders, x, y, cfg: BenchConfig) -> torch.Tensor:
    """cfg.steps steps of every replica at once; returns the last step's per-replica losses [P]."""
    step, losses = 0, torch.zeros(pop.size)
    while step < cfg.steps:
        perms = replica_permutations(len(x), orders)  # [P, n]: P randperms per epoch
        for start in range(0, len(x), cfg.batch_size):
            if step == cfg.steps:
                break
            losses = per_replica_mse(pop(replica_batch(x, perms, start, cfg.batch_size)),
                                     replica_batch(y, perms, start, cfg.batch_size))
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()  # the sum: each replica gets its own run's gradient
            optimizer.step()
            step += 1
    return losses.detach()


def fused(cfg: BenchConfig, x, y) -> tuple[float, torch.Tensor, int]:
    """Seconds to train the population of cfg.networks, their final losses, and how many collapsed."""
    seeds = range(cfg.networks)
    pop = build_population(lambda: build_network(cfg), seeds)
    optimizer = PopulationOptimizer(pop.parameters(), torch.optim.SGD, lr=cfg.lr)
    orders = data_generators(seeds)
    started = time.perf_counter()
    losses = train_population(pop, optimizer, orders, x, y, cfg)
    seconds = time.perf_counter() - started
    with torch.no_grad():
        out = pop.eval()(x.expand(pop.size, *x.shape))  # [P, n, 1]
    collapsed = int((out.std(dim=1) < 1e-6).sum())
    return seconds, losses, collapsed


# --- (c): Ray Tune ------------------------------------------------------------------------------------

def tune_trial(config: dict) -> None:
    from ray import tune

    torch.set_num_threads(1)  # the trial holds 1 CPU
    cfg = BenchConfig(**config["bench"])
    x, y = make_data(cfg.n_points)
    started = time.time()  # wall clock, comparable across this machine's processes
    model, optimizer, order = make_run(config["seed"], cfg)
    loss = float(train_network(model, optimizer, order, x, y, cfg))
    tune.report({"loss": loss, "started": started, "ended": time.time()})


def tune_fit(cfg: BenchConfig, trials: int, storage: str, name: str) -> tuple[float, float]:
    """Wall seconds of one Tuner.fit of `trials` one-network trials, and of the span from the first
    trial's start to the last one's end (the rest is the fit's fixed start-up and shut-down)."""
    from ray import tune

    tuner = tune.Tuner(
        tune_trial,
        param_space={"seed": tune.grid_search(list(range(trials))), "bench": dataclasses.asdict(cfg)},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(storage_path=storage, name=name, verbose=0),
    )
    started = time.perf_counter()
    results = tuner.fit()
    seconds = time.perf_counter() - started
    if results.errors:
        raise RuntimeError(f"{len(results.errors)} Tune trials failed: {results.errors[0]}")
    trial_times = results.get_dataframe()
    return seconds, trial_times["ended"].max() - trial_times["started"].min()


def ray_tune(cfg: BenchConfig) -> tuple[float, float]:
    """tune_fit of cfg.tune_trials trials, after a warm-up fit of 2."""
    import ray

    from trainables.runtime import ray_internals as ray_internals

    ray_internals.hide_token_auth_notice()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, configure_logging=True,
             log_to_driver=False)  # the trials print nothing useful; their errors come back in the results
    try:
        with tempfile.TemporaryDirectory() as storage:
            tune_fit(cfg, 2, storage, "warm_up")  # worker processes, imports
            return tune_fit(cfg, cfg.tune_trials, storage, "timed")
    finally:
        ray.shutdown()


# --- main -----------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> BenchConfig:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--smoke", action="store_true", help=f"tiny sizes for a functional check: {SMOKE}")
    defaults = BenchConfig()
    for key in ("networks", "steps", "loop_networks", "tune_trials", "threads"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, default=None,
                            help=f"default {getattr(defaults, key)}")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in vars(args).items() if k != "smoke" and v is not None}
    return BenchConfig(**{**(SMOKE if args.smoke else {}), **overrides})


def main(argv: list[str] | None = None) -> list[str]:
    cfg = parse_args(argv)
    torch.set_num_threads(cfg.threads)
    x, y = make_data(cfg.n_points)
    n, loop_n, trials = cfg.networks, min(cfg.loop_networks, cfg.networks), cfg.tune_trials
    load_before = os.getloadavg()[0]

    fused(dataclasses.replace(cfg, steps=5), x, y)  # warm-up
    fused_s, fused_losses, collapsed = fused(cfg, x, y)
    loop(dataclasses.replace(cfg, steps=20), x, y, 1)  # warm-up
    loop_s, loop_losses = loop(cfg, x, y, loop_n)
    mismatch = (loop_losses - fused_losses[:loop_n]).abs().max().item()
    rows = [("(a) fused population", f"{n} nets", fused_s, fused_s),
            ("(b) Python loop, one at a time", f"{loop_n} nets", loop_s, loop_s * n / loop_n)]
    notes = [f"(b) extrapolated linearly to {n} networks from the {loop_n} timed"]
    if trials:
        tune_s, span_s = ray_tune(cfg)
        rows.append(("(c) Ray Tune, 1 net per trial", f"{trials} trials", tune_s, tune_s * n / trials))
        # lower bound: the fit's fixed part once, the trials' span scaled (per-trial cost grows with the count)
        low = (tune_s - span_s) + span_s * n / trials
        notes.append(f"(c) extrapolated linearly from the fit of {trials} trials, 2 at a time; of its {tune_s:.1f} s, "
                     f"{span_s:.1f} s went from the first trial's start to the last one's end, {tune_s - span_s:.1f} s "
                     f"to start-up and shut-down: counting those once gives {low:.0f} s for {n}, a lower bound")
    load_after = os.getloadavg()[0]

    lines = [f"{n} MLPs 1-{'-'.join([str(cfg.width)] * cfg.depth)}-1 (ReLU), y=|x|, {cfg.n_points} points, batch "
             f"{cfg.batch_size}, plain SGD lr {cfg.lr}, {cfg.steps} steps each; torch {torch.__version__}, "
             f"{cfg.threads} threads, {os.cpu_count()} CPUs, load average {load_before:.1f} -> {load_after:.1f}",
             f"{'method':<32} {'timed':>10} {'seconds':>9} {f'for {n} (s)':>13} {'vs fused':>9}"]
    lines += [f"{name:<32} {timed:>10} {seconds:>9.2f} {total:>13.1f} {total / fused_s:>8.0f}x"
              for name, timed, seconds, total in rows]
    lines += notes + [f"fused == loop on the {loop_n} networks timed: max |final loss difference| {mismatch:.1e}",
                      f"networks collapsed to a constant function (dying ReLU): {collapsed} of {n}"]
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
