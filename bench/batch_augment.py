"""Benchmark: ResNet-44 training with batch augmentation (M = 1 and 8), the project's pipeline vs a DataLoader.

    PYTHONPATH=. python bench/batch_augment.py                       # CPU, small counts: ~3-4 min on 2 cores
    PYTHONPATH=. python bench/batch_augment.py --device cuda --images 8192 --repeats 3   # GPU, AMP + channels_last
    PYTHONPATH=. python bench/batch_augment.py --capture on --skip-dataloader   # CPU: the captured path, emulated

Base batch B = 64 distinct CIFAR-10-shaped images (random uint8: pixel values do not change the
cost), each step trains on M*B augmented copies (4-px pad crop + flip + normalize + cutout 16):
  - project: `trainables.training.classify.train_one_epoch` over one uint8 tensor on the device, index slices
    of a randperm, `trainables.training.augment.batch_augment` on whole batches (the trial's own loop; on
    CUDA with bf16 autocast and channels_last, as the trial does by default);
  - project, captured (on CUDA, `--capture auto`, the trial's default there): the same epochs through
    `trainables.training.classify.CapturedEpochs`, each step (gather, augmentation, forward, backward, SGD)
    replayed from one CUDA graph. Why the eager pipeline lost to the DataLoader at M = 1 (0.83x on an H200):
    at B = 64 the eager ResNet-44 step is bound by launching its kernels from Python (22.8 ms per step for
    ~3 ms of GPU work), and the batched augmentation adds its ~20 launches to the same thread, while the
    DataLoader augments in worker processes beside it; captured, the augmentation costs no launches;
  - DataLoader: torchvision transforms on PIL images in 2 worker processes, each sample returning
    its M augmented copies (a per-sample cutout), batches of B samples reshaped to M*B, copied
    to the device; same model, optimizer and autocast.
Timed scope: whole epochs over `--images` images (training only, no evaluation) after one warm-up
epoch, wall clock with a device sync at the end; mean over `--repeats`. Printed: training images/s
(augmented copies counted), the time a full 50k-image epoch would take at that rate, and, for
M = 8, the figure the Hoffer et al. setup implies (PALEO: the FLOPs of ResNet-44 training on
8 x 50k images per epoch at 50% of the device's peak; the paper reports no per-epoch time).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from trainables.models.stats import model_summary
from trainables.models.paleo import paleo_estimate, peak_flops
from trainables.training.augment import batch_augment
from trainables.training.capture import emulate_on_cpu
from trainables.training.classify import CapturedEpochs, _autocast, train_one_epoch
from trainables.models.registry import build_model
from trainables.data.vision import TensorSplit

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
B = 64
CIFAR_TRAIN = 50_000


def cutout(x: torch.Tensor, size: int = 16) -> torch.Tensor:
    """The usual per-sample cutout on a normalized CHW tensor (centre uniform, square clipped)."""
    h, w = x.shape[1:]
    cy, cx = np.random.randint(h), np.random.randint(w)
    x = x.clone()
    x[:, max(cy - size // 2, 0):max(cy - size // 2 + size, 0), max(cx - size // 2, 0):max(cx - size // 2 + size, 0)] = 0
    return x


class RepeatedPIL(Dataset):
    """Each item: M independently augmented copies of one image, (M, C, H, W), and its label."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, m: int):
        self.images, self.labels, self.m = images_hwc, labels, m
        self.transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                                    T.Normalize(MEAN, STD), cutout])

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        image = Image.fromarray(self.images[i])
        return torch.stack([self.transform(image) for _ in range(self.m)]), int(self.labels[i])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def loader_epoch(loader: DataLoader, model, opt, device: torch.device, amp: bool, channels_last: bool) -> int:
    model.train()
    seen = 0
    for x, y in loader:
        m = x.shape[1]
        x = x.transpose(0, 1).reshape(-1, *x.shape[2:]).to(device, non_blocking=True)  # copy k of i at k*B + i
        y = y.repeat(m).to(device, non_blocking=True)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        with _autocast(device, amp):
            loss = F.cross_entropy(model(x).float(), y)
        loss.backward()
        opt.step()
        seen += len(y)
    return seen


def timed(fn, device: torch.device, repeats: int) -> float:
    """images/s: one warm-up call, then the mean rate over `repeats` calls (fn returns images trained)."""
    fn()
    rates = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        n = fn()
        sync(device)
        rates.append(n / (time.perf_counter() - start))
    return float(np.mean(rates))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=256, help="images per timed epoch (default 256: 4 steps of B=64)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--ms", default="1,8", help="values of M (default 1,8)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads of the main process")
    p.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--skip-dataloader", action="store_true", help="time only the project's pipeline")
    p.add_argument("--capture", choices=("auto", "on", "off"), default="auto",
                   help="also time the captured step (auto: on CUDA; on: also on the CPU, emulated)")
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA device is visible")
    amp = channels_last = device.type == "cuda"  # the trial's defaults: on with CUDA
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images_hwc = rng.integers(0, 256, (args.images, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, args.images)
    split = TensorSplit(torch.tensor(images_hwc.transpose(0, 3, 1, 2).copy(), device=device),
                        torch.tensor(labels, device=device))
    gen = torch.Generator(device=device).manual_seed(0)
    macs = model_summary("resnet44", (3, 32, 32), num_classes=10, in_channels=3)["macs_per_sample"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, amp {amp}, channels_last {channels_last}, torch threads {torch.get_num_threads()}, "
          f"{args.images} images per epoch, B = {B}, load average before {os.getloadavg()[0]:.2f}")
    print(f"{'M':>3}  {'pipeline':<28} {'img/s':>8} {'s per 50k epoch':>16} {'ratio':>6}")
    for m in [int(v) for v in args.ms.split(",")]:
        model = build_model("resnet44", num_classes=10, in_channels=3).to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        augment = functools.partial(batch_augment, m=m, mean=MEAN, std=STD, padding=4, flip=True, cutout=16)
        rates = {"project (in-memory, batched)": timed(
            lambda: train_one_epoch(model, opt, split, B, gen, augment=augment, amp=amp,
                                    channels_last=channels_last)["samples"], device, args.repeats)}
        if args.capture == "on" or (args.capture == "auto" and device.type == "cuda"):
            with emulate_on_cpu() if device.type != "cuda" else contextlib.nullcontext():
                epochs = CapturedEpochs(model, opt, split, B, gen, augment, amp=amp, channels_last=channels_last,
                                        constant_lr=True)
                rates["project, captured step"] = timed(lambda: epochs.epoch(gen)["samples"], device, args.repeats)
        if not args.skip_dataloader:
            loader = DataLoader(RepeatedPIL(images_hwc, labels, m), batch_size=B, shuffle=True, drop_last=True,
                                num_workers=args.workers, persistent_workers=args.workers > 0,
                                pin_memory=device.type == "cuda")
            rates[f"DataLoader (PIL, {args.workers} workers)"] = timed(
                lambda: loader_epoch(loader, model, opt, device, amp, channels_last), device, args.repeats)
        base = rates.get(f"DataLoader (PIL, {args.workers} workers)")
        for pipeline, rate in rates.items():
            ratio = f"{rate / base:.2f}x" if base else "-"
            print(f"{m:>3}  {pipeline:<28} {rate:8.1f} {CIFAR_TRAIN * m / rate:16.1f} {ratio:>6}")
        if m == 8:
            for device_name, precision in (("V100", "fp32"), ("V100", "tensor"), ("H100", "tensor")):
                est = paleo_estimate(macs, peak_flops(device_name, precision), ppp=0.5)
                print(f"     Hoffer et al. setup implied (PALEO, {device_name} {precision}, PPP 0.5): "
                      f"{CIFAR_TRAIN * m / est['train_images_per_s']:.1f} s per 50k epoch at M = 8")
    print(f"load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
