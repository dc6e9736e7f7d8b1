"""Benchmark: the in-memory batched augmentation pipeline vs torchvision's DataLoader.

    PYTHONPATH=. python bench/vision_pipeline.py [--images 10000] [--steps 15] [--threads 2] [--device cpu]

On CIFAR-10-shaped random uint8 data (the pixel values do not change the cost), measures
  1. images/s of augmentation alone: random crop (4-px zero padding) + horizontal flip +
     normalize + cutout 16, batch 128;
     - ours: index slices of a randperm over one uint8 tensor, whole-batch tensor ops;
     - baseline: DataLoader(num_workers=2, persistent workers) over PIL images with
       RandomCrop/RandomHorizontalFlip/ToTensor/Normalize and a per-sample cutout;
  2. one CIFAR ResNet-20 SGD training step at batch 128 fed by each pipeline, and fed by a
     batch already in memory (the compute-only bound: a pipeline that matches it is not input-bound).
Timed scope: wall clock of whole epochs (augmentation) or of `--steps` steps after 3 warm-up
steps (training), means over `--repeats`; ratios are against the DataLoader measured in the
same process. On CUDA every timed region ends with a synchronize.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from trainables.training.augment import batch_augment
from trainables.models.registry import build_model

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
BATCH = 128


class Cutout:
    """Per-sample cutout on a normalized CHW tensor (the usual DataLoader-style implementation)."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[1:]
        cy, cx = np.random.randint(h), np.random.randint(w)
        y0, y1 = max(cy - self.size // 2, 0), min(cy - self.size // 2 + self.size, h)
        x0, x1 = max(cx - self.size // 2, 0), min(cx - self.size // 2 + self.size, w)
        x = x.clone()
        x[:, y0:y1, x0:x1] = 0
        return x


class PILDataset(Dataset):
    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images_hwc, labels
        self.transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                                    T.Normalize(MEAN, STD), Cutout(16)])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def ours_batches(images: torch.Tensor, labels: torch.Tensor, gen: torch.Generator):
    perm = torch.randperm(len(labels), device=images.device, generator=gen)
    for i in range(0, len(labels), BATCH):
        idx = perm[i : i + BATCH]
        yield batch_augment(images[idx], labels[idx], 1, gen, mean=MEAN, std=STD, padding=4, cutout=16)


def loader_batches(loader: DataLoader, device: torch.device):
    for x, y in loader:
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def time_epoch(batches, device: torch.device) -> float:
    start, n = time.perf_counter(), 0
    for x, _ in batches:
        n += len(x)
    sync(device)
    return n / (time.perf_counter() - start)


def time_training(batch_iter, model, opt, steps: int, device: torch.device) -> float:
    """images/s of `steps` SGD steps after 3 warm-up steps, batches drawn from `batch_iter`."""
    def step(x, y):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step(*next(batch_iter))
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(*next(batch_iter))
    sync(device)
    return steps * BATCH / (time.perf_counter() - start)


def forever(make):
    while True:
        yield from make()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=10000)
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads of the main process")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images_hwc = rng.integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, args.images)
    images_dev = torch.tensor(images_hwc.transpose(0, 3, 1, 2).copy(), device=device)
    labels_dev = torch.tensor(labels, device=device)
    gen = torch.Generator(device=device).manual_seed(0)
    loader = DataLoader(PILDataset(images_hwc, labels), batch_size=BATCH, shuffle=True, num_workers=2,
                        persistent_workers=True, pin_memory=device.type == "cuda")
    print(f"device {device}, torch threads {torch.get_num_threads()}, {args.images} images, batch {BATCH}, "
          f"load average before {os.getloadavg()[0]:.2f}")

    # 1. augmentation throughput (one warm-up epoch each, then the mean of `repeats` epochs)
    time_epoch(ours_batches(images_dev, labels_dev, gen), device)
    time_epoch(loader_batches(loader, device), device)
    ours = np.mean([time_epoch(ours_batches(images_dev, labels_dev, gen), device) for _ in range(args.repeats)])
    base = np.mean([time_epoch(loader_batches(loader, device), device) for _ in range(args.repeats)])
    print(f"augmentation  DataLoader(PIL, 2 workers): {base:9.0f} img/s  (1.00x)")
    print(f"augmentation  in-memory batched:          {ours:9.0f} img/s  ({ours / base:.2f}x)")

    # 2. ResNet-20 training step at batch 128
    model = build_model("resnet20", num_classes=10, in_channels=3).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    fixed = next(ours_batches(images_dev, labels_dev, gen))
    results = {}
    for name, make in (("DataLoader(PIL, 2 workers)", lambda: loader_batches(loader, device)),
                       ("in-memory batched", lambda: ours_batches(images_dev, labels_dev, gen)),
                       ("pre-made batch (compute only)", lambda: iter([fixed]))):
        it = forever(make)
        results[name] = np.mean([time_training(it, model, opt, args.steps, device) for _ in range(args.repeats)])
    base_step = results["DataLoader(PIL, 2 workers)"]
    for name, r in results.items():
        print(f"resnet20 step {name + ':':31s} {r:7.1f} img/s  {BATCH / r * 1e3:7.1f} ms/step  ({r / base_step:.2f}x)")


    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
