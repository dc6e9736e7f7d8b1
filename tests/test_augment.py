"""Batched augmentations checked by their properties."""

from __future__ import annotations

import torch

from trainables.training.augment import (augment, batch_augment, cutout, eval_transform, normalize, random_crop, random_crop_flip,
                                random_flip, resize)

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(n: int = 16, seed: int = 1) -> torch.Tensor:
    return torch.randint(1, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen(seed))  # no zero pixels


def test_normalize():
    x = images()
    y = normalize(x, MEAN, STD)
    assert y.dtype == torch.float32 and y.shape == x.shape
    expected = (x[:, 1].float() / 255 - MEAN[1]) / STD[1]
    torch.testing.assert_close(y[:, 1], expected)
    torch.testing.assert_close(normalize(x.float() / 255, MEAN, STD), y)


def test_crop_is_a_shifted_window_with_zero_border():
    x = images()
    y = random_crop(x, 4, gen())
    assert y.shape == x.shape and y.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    shifts = set()
    for i in range(len(x)):  # each output is exactly one 32x32 window of the padded image
        matches = [(dy, dx) for dy in range(9) for dx in range(9)
                   if torch.equal(padded[i, :, dy:dy + 32, dx:dx + 32], y[i])]
        assert len(matches) == 1
        shifts.add(matches[0])
    assert len(shifts) > 4  # offsets differ between samples
    assert torch.equal(random_crop(x, 0, gen()), x)


def test_flip():
    x = images(64)
    y = random_flip(x, gen())
    flipped = [torch.equal(y[i], x[i].flip(2)) for i in range(64)]
    kept = [torch.equal(y[i], x[i]) for i in range(64)]
    assert all(f or k for f, k in zip(flipped, kept)) and 15 < sum(flipped) < 49


def test_fused_crop_flip_equals_crop_then_flip():
    x = images(32)
    for padding, p in ((4, 0.5), (0, 0.5), (2, 1.0), (4, 0.0)):
        g1, g2 = gen(5), gen(5)
        expected = random_crop(x, padding, g1)
        if p > 0:
            expected = random_flip(expected, g1, p)
        assert torch.equal(random_crop_flip(x, padding, g2, p), expected)


def test_cutout_square_and_border_clipping():
    x = torch.ones(512, 3, 32, 32)
    y = cutout(x, 16, gen())
    zeros = (y == 0).all(dim=1)  # (N, H, W), same mask on every channel
    assert torch.equal((y == 0).any(dim=1), zeros)
    counts = zeros.sum(dim=(1, 2))
    assert counts.max() == 256 and counts.min() >= 8 * 8  # a clipped corner square keeps >= 8x8
    assert (counts < 256).any()  # some squares hit the border
    for i in range(len(x)):  # the zeros form one axis-aligned rectangle of sides <= 16
        rows = zeros[i].any(1).nonzero().flatten()
        cols = zeros[i].any(0).nonzero().flatten()
        assert rows.max() - rows.min() + 1 == len(rows) <= 16 and cols.max() - cols.min() + 1 == len(cols) <= 16
        assert counts[i] == len(rows) * len(cols)
        if 0 < rows.min() and rows.max() < 31:
            assert len(rows) == 16  # unclipped rows span the full side


def test_reproducible_and_seed_dependent():
    x, labels = images(), torch.arange(16)
    a = batch_augment(x, labels, 4, gen(7), mean=MEAN, std=STD, cutout=16)
    b = batch_augment(x, labels, 4, gen(7), mean=MEAN, std=STD, cutout=16)
    c = batch_augment(x, labels, 4, gen(8), mean=MEAN, std=STD, cutout=16)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


def test_batch_augment_copies_differ_and_labels_repeat():
    x, labels = images(8), torch.arange(8)
    y, ylab = batch_augment(x, labels, 4, gen(), mean=MEAN, std=STD, cutout=16)
    assert y.shape == (32, 3, 32, 32) and y.dtype == torch.float32
    assert torch.equal(ylab, labels.repeat(4))
    for i in range(8):
        copies = y[i::8]
        distinct = {copies[k].numpy().tobytes() for k in range(4)}
        assert len(distinct) > 1
        masks = {(copies[k] == 0).all(0).numpy().tobytes() for k in range(4)}
        assert len(masks) > 1  # independent cutout squares


def test_m1_is_plain_pipeline():
    x, labels = images(), torch.arange(16)
    y, ylab = batch_augment(x, labels, 1, gen(3), mean=MEAN, std=STD, cutout=8)
    g = gen(3)
    manual = cutout(normalize(random_flip(random_crop(x, 4, g), g), MEAN, STD), 8, g)
    assert torch.equal(y, manual) and torch.equal(ylab, labels)
    torch.testing.assert_close(augment(x, gen(3), mean=MEAN, std=STD, cutout_size=8), manual)


def test_resize_and_eval():
    x = images(2)
    assert resize(normalize(x, MEAN, STD), 64).shape == (2, 3, 64, 64)
    e = eval_transform(x, mean=MEAN, std=STD, size=40)
    assert e.shape == (2, 3, 40, 40) and torch.isfinite(e).all()
