"""Benchmark: the feature extractor's cached-features fast path against its plain path, and fine-tuning.

    PYTHONPATH=. python bench/transfer_features.py                      # CPU: ResNet-18 at 64 px, ~2 min
    PYTHONPATH=. python bench/transfer_features.py --device cuda --arch resnet50 --image-size 224 --train 1020
    PYTHONPATH=. python bench/transfer_features.py --smoke              # seconds: a functional check

Three runs of the real trial (`trainables.studies.transfer.train_transfer`, in this process, one after another) on
`--train` synthesized training images (Flowers102's 1,020 by default) and as many validation and test images,
stored at `--load-size`, with a randomly initialized backbone (the timing does not depend on the weights):

  (a) fine-tuning, augmentation off;
  (b) feature extractor, augmentation off: the frozen backbone runs forward on every batch of every epoch;
  (c) feature extractor with `cache_features=true`: the backbone runs once per image, then the head trains on
      the cached features.

(b) and (c) train the same head on the same features in the same order (tests/test_transfer.py checks
their losses agree), so the ratio (b) / (c) is the fast path's speed-up: per training epoch, for the whole
training of `--epochs` epochs (extraction included), and end to end (evaluation included).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from trainables.models.pretrained import ARCHS
from trainables.runtime.session import LocalSession
from trainables.config import from_dict
from trainables.studies.transfer.config import TransferConfig
from trainables.studies.transfer.trial import TransferData, train_transfer
from trainables.data.vision import Split, VisionData


def synthesized(n: int, size: int, classes: int, seed: int = 0) -> VisionData:
    rng = np.random.default_rng(seed)

    def split() -> Split:
        return Split(rng.integers(0, 256, (n, 3, size, size), dtype=np.uint8), rng.integers(0, classes, n))

    return VisionData("flowers102", classes, (0.5,) * 3, (0.25,) * 3, split(), split(), split())


def run(config: dict, data: TransferData, device: torch.device) -> dict[str, float]:
    session = LocalSession(epochs=config["epochs"])
    started = time.perf_counter()
    train_transfer(from_dict(TransferConfig, config), data, session, device)
    wall = time.perf_counter() - started
    history = session.history
    return {"epoch_s": float(np.median([h["time/epoch_s"] for h in history])),
            "train_s": history[-1]["time/train_s"], "features_s": history[-1].get("time/features_s", 0.0),
            "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--arch", default="resnet18", choices=list(ARCHS))
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--load-size", type=int, default=0, help="default: image size x 8/7")
    parser.add_argument("--train", type=int, default=1020, help="training (and validation, test) images")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="a few images at 32 px, 2 epochs")
    args = parser.parse_args()
    if args.smoke:
        args.arch, args.image_size, args.train, args.epochs = "resnet18", 32, 48, 2
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but torch sees no GPU; run on a GPU machine or use --device cpu")
    device = torch.device(args.device)  # what a trial gets from Ray's assignment (trainables.runtime.devices)
    load_size = args.load_size or round(args.image_size * 8 / 7)
    torch.manual_seed(0)
    data = TransferData(synthesized(args.train, load_size, 102), ARCHS[args.arch][0](weights=None).state_dict())
    base = {"arch": args.arch, "image_size": args.image_size, "load_size": load_size, "epochs": args.epochs,
            "augment": False, "lr": 0.01}
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{args.arch} at {args.image_size} px, {args.train} training images, {args.epochs} epochs, batch 64, "
          f"on {name}")
    results = {
        "fine-tuning": run({**base, "mode": "finetune"}, data, device),
        "feature extractor": run({**base, "mode": "feature_extractor"}, data, device),
        "feature extractor, cached": run({**base, "mode": "feature_extractor", "cache_features": True}, data, device),
    }
    print(f"{'path':28s} {'s/epoch':>9s} {'features s':>11s} {'train s':>9s} {'wall s':>8s}")
    for name, r in results.items():
        print(f"{name:28s} {r['epoch_s']:9.3f} {r['features_s']:11.2f} {r['train_s']:9.2f} {r['wall_s']:8.2f}")
    plain, cached = results["feature extractor"], results["feature extractor, cached"]
    print(f"cached features vs plain feature extractor: {plain['epoch_s'] / cached['epoch_s']:.0f}x per training "
          f"epoch, {plain['train_s'] / cached['train_s']:.1f}x for the {args.epochs} epochs' training (extraction "
          f"included), {plain['wall_s'] / cached['wall_s']:.1f}x end to end (evaluation included)")
    print(f"feature extractor vs fine-tuning: {results['fine-tuning']['epoch_s'] / plain['epoch_s']:.1f}x per "
          f"training epoch")


if __name__ == "__main__":
    main()
