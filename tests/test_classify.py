"""The plain-PyTorch training core: it learns, it is reproducible, it reports NaN instead of raising."""

from __future__ import annotations

import functools
import math

import torch

from trainables.training.augment import batch_augment, eval_transform
from trainables.training.classify import evaluate, train_one_epoch
from trainables.models.registry import build_model
from trainables.data.vision import TensorSplit

MEAN, STD = (0.5,), (0.25,)


def toy_data(n: int = 256, seed: int = 0) -> TensorSplit:
    """Class = which half of a 28x28 image is bright: easy, so one model learns it in a few epochs."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    images = torch.randint(0, 60, (n, 1, 28, 28), dtype=torch.uint8, generator=g)
    images[labels == 0, :, :14] += 150
    images[labels == 1, :, 14:] += 150
    return TensorSplit(images, labels)


def run(epochs: int, seed: int = 0, **kw) -> tuple[list[dict], dict, torch.nn.Module]:
    torch.manual_seed(seed)
    data = toy_data()
    model = build_model("lenet5", num_classes=2, in_channels=1, batch_norm=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    aug = functools.partial(batch_augment, m=2, mean=MEAN, std=STD, padding=2, flip=False)
    hist = [train_one_epoch(model, opt, data, 32, gen, augment=aug, **kw) for _ in range(epochs)]
    test = evaluate(model, data.images, data.labels, 100, transform=functools.partial(eval_transform, mean=MEAN, std=STD))
    return hist, test, model


def test_learns_and_reports():
    hist, test, _ = run(4)
    assert hist[0]["samples"] == 2 * 256 and hist[0]["steps"] == 8 and hist[0]["seconds"] > 0
    assert hist[-1]["loss"] < hist[0]["loss"] and hist[-1]["accuracy"] > 0.9
    assert test["accuracy"] > 0.9 and test["loss"] < 0.5


def test_reproducible():
    a, ta, _ = run(2, seed=1)
    b, tb, _ = run(2, seed=1)
    assert a[-1]["loss"] == b[-1]["loss"] and ta == tb


def test_chunks_match_full_batch():
    # Gradient accumulation over 4 micro-batches gives the same step as one batch (no BN/dropout).
    data = toy_data(64)
    losses = []
    for chunks in (1, 4):
        torch.manual_seed(0)
        model = build_model("mlp", num_classes=2, image_size=28, widths=(32,))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        train_one_epoch(model, opt, data, 64, torch.Generator().manual_seed(0), chunks=chunks)
        losses.append(evaluate(model, data.images, data.labels)["loss"])
    assert math.isclose(losses[0], losses[1], rel_tol=1e-5)


def test_scheduler_steps_per_step_and_amp_runs():
    data = toy_data(128)
    model = build_model("mlp", num_classes=2, image_size=28, widths=(16,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0 / (1 + step))
    out = train_one_epoch(model, opt, data, 32, torch.Generator(), scheduler=sched, amp=True, channels_last=True)
    assert sched.last_epoch == out["steps"] == 4 and math.isfinite(out["loss"])


def test_nan_loss_is_reported_not_raised():
    data = toy_data(64)
    model = build_model("mlp", num_classes=2, image_size=28, widths=(16,))
    opt = torch.optim.SGD(model.parameters(), lr=1e30)  # diverges within the epoch
    out = train_one_epoch(model, opt, data, 8, torch.Generator())
    assert math.isnan(out["loss"])
    assert math.isnan(evaluate(model, data.images, data.labels)["loss"])
