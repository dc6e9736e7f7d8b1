"""Benchmark: is a fused population faster than separate models, for the image studies' small models?

    PYTHONPATH=. python bench/population_models.py                  # CPU, ~1 min
    PYTHONPATH=. python bench/population_models.py --device cuda    # on a GPU
    PYTHONPATH=. python bench/population_models.py --smoke          # seconds: a functional check

For LeNet-5 (batch norm) and the optimizers study's MLP (784-1000-1000-10, dropout 0.2/0.5), P replicas
(default 5: the five methods of a regularization setting) take `--steps` training steps of batch 128 with
Adam, (a) as P separate models one after another in this process, (b) as one `trainables.training.population`
population (one batched matmul / grouped convolution per layer). Timed: the steps only, after 3 warm-up
steps, synchronized on a GPU. The ratio separate / fused is what `--population auto` (sweeps/runner.py,
`fuse_population`) acts on: fuse where it is > 1.

Measured on the 2-core CPU of the development machine (torch 2.14.1, P = 5, 20 steps):
  1 thread:  LeNet-5 separate 1.92 s, fused 2.85 s (0.67x); MLP 2x1000 dropout separate 2.74 s, fused 3.26 s (0.84x)
  2 threads: LeNet-5 1.48 s vs 2.14 s (0.69x); MLP 1.83 s vs 2.40 s (0.76x)
so on a CPU separate trials are faster for these models (and they run in parallel, one per core). On a GPU
one such model leaves the device idle and fusing them is the point (HFTA, Wang et al. 2021); no GPU was lent
when this was written: run it there and compare.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from trainables.models.registry import build_model
from trainables.training.population import build_population, per_replica_cross_entropy

MODELS = {
    "LeNet-5 (batch norm)": (lambda: build_model("lenet5", num_classes=10, in_channels=1, image_size=28,
                                                 batch_norm=True), (1, 28, 28)),
    "MLP 2x1000 (dropout 0.2/0.5)": (lambda: build_model("mlp", num_classes=10, in_features=784, widths=(1000, 1000),
                                                          dropout_input=0.2, dropout_hidden=0.5), (784,)),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def separate(build, shape, replicas: int, steps: int, batch: int, device: torch.device) -> float:
    models = [build().to(device) for _ in range(replicas)]
    optimizers = [torch.optim.Adam(m.parameters(), 1e-3) for m in models]
    x, y = torch.randn(batch, *shape, device=device), torch.randint(0, 10, (batch,), device=device)

    def step():
        for model, optimizer in zip(models, optimizers):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()

    return _timed(step, steps, device)


def fused(build, shape, replicas: int, steps: int, batch: int, device: torch.device) -> float:
    population = build_population(build, range(replicas), device)
    optimizer = torch.optim.Adam(population.parameters(), 1e-3)
    x = torch.randn(replicas, batch, *shape, device=device)
    y = torch.randint(0, 10, (replicas, batch), device=device)

    def step():
        optimizer.zero_grad()
        per_replica_cross_entropy(population(x), y).sum().backward()
        optimizer.step()

    return _timed(step, steps, device)


def _timed(step, steps: int, device: torch.device) -> float:
    for _ in range(3):
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--replicas", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    parser.add_argument("--smoke", action="store_true", help="2 replicas, 2 steps, batch 8")
    args = parser.parse_args(argv)
    if args.smoke:
        args.replicas, args.steps, args.batch = 2, 2, 8
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")
    if args.threads:
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    lines = [f"{args.replicas} replicas, {args.steps} steps of batch {args.batch}, Adam; {where}"]
    for name, (build, shape) in MODELS.items():
        a = separate(build, shape, args.replicas, args.steps, args.batch, device)
        b = fused(build, shape, args.replicas, args.steps, args.batch, device)
        lines.append(f"{name:<30} separate {a:7.2f} s   fused {b:7.2f} s   separate/fused {a / b:5.2f}x")
    print("\n".join(lines))
    return lines


if __name__ == "__main__":
    main()
