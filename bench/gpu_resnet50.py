"""Benchmark: single-device training throughput of the scaling study's ResNet-50, plain fp32 vs AMP + channels_last.

    python bench/gpu_resnet50.py                 # on a GPU: batch 256, 50 steps per repeat
    python bench/gpu_resnet50.py --device cpu --steps 2 --batch 32   # a CPU sanity run
    python bench/gpu_resnet50.py --size 224 --steps 10    # the same network at ImageNet's resolution (4.0G MACs/image)

What the scaling study's paper preset trains per worker: torchvision ResNet-50 with a 1-channel stem
and 10 classes on 28x28 FashionMNIST-shaped images (random uint8 pixels: values do not change the
cost), SGD with momentum, through the trial's own loop (`trainables.training.classify.train_one_epoch`, data
as one tensor on the device, index-sliced batches). Two variants in the same process:
  - baseline: fp32, contiguous (NCHW) tensors;
  - project default on CUDA: bf16 autocast (AMP) + channels_last.
Timed scope: `--steps` optimizer steps after one warm-up pass of the same length, device-synced;
median over `--repeats`. Printed per variant: images/s, the ratio to the baseline, achieved TFLOP/s
(3 x forward MACs x 2 FLOP per image) and PPP, the fraction of the device's peak (tensor-core peak
with AMP, fp32 peak without; trainables.models.paleo.gpu_peak: the table, or DLSWEEPS_PEAK_TFLOPS).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from trainables.models.stats import model_summary  # noqa: E402
from trainables.models.paleo import achieved_flops  # noqa: E402
from trainables.training.classify import train_one_epoch  # noqa: E402
from trainables.image.trial import device_peak  # noqa: E402
from trainables.models.registry import build_model  # noqa: E402
from trainables.data.vision import TensorSplit  # noqa: E402

SHAPE = (1, 28, 28)  # FashionMNIST (--size changes the side)


def measure(device: torch.device, batch: int, steps: int, repeats: int, amp: bool, channels_last: bool,
            shape: tuple[int, int, int] = SHAPE) -> float:
    """Median training images/s of ResNet-50 over `repeats` timed passes of `steps` steps."""
    torch.manual_seed(0)
    model = build_model("resnet50", num_classes=10, in_channels=1).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    n = batch * steps
    images = torch.randint(0, 256, (n, *shape), dtype=torch.uint8, device=device)
    data = TensorSplit(images, torch.randint(0, 10, (n,), device=device))
    generator = torch.Generator(device=device).manual_seed(0)
    rates = []
    for i in range(repeats + 1):  # the first pass warms up cuDNN's algorithm choice and the allocator
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        stats = train_one_epoch(model, optimizer, data, batch, generator, amp=amp, channels_last=channels_last)
        seconds = time.perf_counter() - start  # train_one_epoch ends with a host sync
        if i:
            rates.append(stats["samples"] / seconds)
    return statistics.median(rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--size", type=int, default=SHAPE[1], help="image side in pixels (default 28; 224: ImageNet's)")
    args = p.parse_args()
    shape = (SHAPE[0], args.size, args.size)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA device is visible; use --device cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    macs = model_summary("resnet50", shape, num_classes=10, in_channels=1)["macs_per_sample"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"ResNet-50, 1x{args.size}x{args.size} input, {macs / 1e6:.1f}M MACs/image forward, batch {args.batch}, "
          f"{args.steps} steps x {args.repeats} repeats on {name}")
    variants = [("fp32, NCHW (baseline)", False, False), ("bf16 AMP + channels_last", True, True)]
    baseline = None
    print(f"  {'variant':<26} {'images/s':>10} {'vs baseline':>11} {'TFLOP/s':>8} {'PPP':>6}")
    for label, amp, channels_last in variants:
        rate = measure(device, args.batch, args.steps, args.repeats, amp, channels_last, shape)
        baseline = baseline or rate
        tflops = achieved_flops(macs, rate) / 1e12
        peak = device_peak(device, amp)
        ppp = f"{tflops * 1e12 / peak:.3f}" if peak else "n/a"
        print(f"  {label:<26} {rate:>10.0f} {rate / baseline:>10.2f}x {tflops:>8.2f} {ppp:>6}")


if __name__ == "__main__":
    main()
