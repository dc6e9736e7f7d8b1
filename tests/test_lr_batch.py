"""Unit tests of the LR/batch-size policies of the image trial: schedules against Smith's formulas, the
batch-size schedules, gradient accumulation, the bound-picking rule on synthetic curves, bad configs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from analysis.curves import pick_bounds
from analysis.records import RecordsError
from trainables.training.classify import accumulate_gradients
from trainables.config import ConfigError
from trainables.image.trial import ClassifyConfig
from trainables.models.registry import build_model
from trainables.training.schedules import batch_range, cyclic_batch_size, lr_schedule, range_factor


def smith(it: int, base: float, top: float, stepsize: int, mode: str, gamma: float = 1.0) -> float:
    """Smith (arXiv 1506.01186), Sec. 3.1, written out independently of torch."""
    cycle = math.floor(1 + it / (2 * stepsize))
    x = abs(it / stepsize - 2 * cycle + 1)
    amplitude = (top - base) * max(0.0, 1 - x)
    if mode == "triangular2":
        amplitude /= 2 ** (cycle - 1)
    elif mode == "exp_range":
        amplitude *= gamma**it
    return base + amplitude


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_schedules_follow_smiths_formula(mode):
    cfg = ClassifyConfig(lr_policy=mode, lr_min=1e-3, lr_max=0.1, stepsize=7, stepsize_unit="iterations", gamma=0.97)
    lrs = lr_schedule(cfg, 60, steps_per_epoch=5)
    expected = [smith(i, 1e-3, 0.1, 7, mode, 0.97) for i in range(60)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-9, atol=1e-12)
    assert lrs[0] == pytest.approx(1e-3) and lrs[7] == pytest.approx(expected[7])
    if mode == "triangular":
        assert lrs[7] == pytest.approx(0.1) and lrs[21] == pytest.approx(0.1)  # peaks every 2*stepsize
    if mode == "triangular2":
        assert lrs[21] - 1e-3 == pytest.approx((0.1 - 1e-3) / 2)  # second cycle at half amplitude
    if mode == "exp_range":  # the gamma really acts: the second peak is gamma**21 of the amplitude
        assert lrs[21] - 1e-3 == pytest.approx((0.1 - 1e-3) * 0.97**21)
        assert lrs[21] < lrs[7]


def test_stepsize_in_epochs_is_converted_to_iterations():
    by_epochs = ClassifyConfig(lr_policy="triangular", lr_min=0.01, lr_max=0.1, stepsize=2, stepsize_unit="epochs")
    by_iters = ClassifyConfig(lr_policy="triangular", lr_min=0.01, lr_max=0.1, stepsize=20, stepsize_unit="iterations")
    assert lr_schedule(by_epochs, 80, steps_per_epoch=10) == lr_schedule(by_iters, 80, steps_per_epoch=999)


def test_continuous_range_goes_from_lr_min_to_lr_max_exponentially():
    cfg = ClassifyConfig(lr_policy="range", lr_min=1e-6, lr_max=1.0, lr_stages=10, interval=5)
    lrs = lr_schedule(cfg, 50, steps_per_epoch=1)
    assert lrs[0] == pytest.approx(1e-6) and lrs[-1] == pytest.approx(1.0)
    ratios = np.array(lrs[1:]) / np.array(lrs[:-1])
    np.testing.assert_allclose(ratios, range_factor(cfg))


def test_batch_range_doubles_from_32_to_16384():
    assert batch_range(32, 16384) == [32 * 2**i for i in range(10)]
    assert batch_range(32, 128) == [32, 64, 128]


def test_cyclic_batch_size_cycles_with_an_increasing_trend():
    epochs, b_min, b_max, step = 24, 32, 1024, 2
    sizes = [cyclic_batch_size(e, epochs, b_min, b_max, step) for e in range(epochs)]
    assert all(b_min <= b <= b_max and b & (b - 1) == 0 for b in sizes)  # powers of two within the bounds
    assert sizes[0] == b_min and sizes[step] == b_max and sizes[-1] == b_max
    cycles = [sizes[i:i + 2 * step] for i in range(0, epochs, 2 * step)]
    lows = [min(c) for c in cycles]
    assert lows == sorted(lows) and lows[-1] > lows[0]  # the trough rises cycle after cycle
    assert any(sizes[i + 1] < sizes[i] for i in range(epochs - 1))  # but it does cycle (goes down too)


@pytest.mark.parametrize("model_name", ["lenet5", "mini_googlenet"])
def test_accumulated_gradient_equals_full_batch_gradient(model_name):
    torch.manual_seed(0)
    kw = {"image_size": 28} if model_name == "lenet5" else {}
    model = build_model(model_name, num_classes=10, in_channels=1, **kw).double()
    model.eval()  # batch norm with running statistics and no dropout: the gradient is a pure sum over samples
    x, y = torch.randn(9, 1, 28, 28, dtype=torch.float64), torch.randint(0, 10, (9,))
    grads = []
    for chunks in (1, 2, 4):  # 2 gives unequal micro-batches (5 and 4 samples), 4 gives 3 x 3
        model.zero_grad()
        loss_sum, _, seen = accumulate_gradients(model, x, y, chunks)
        grads.append([p.grad.clone() for p in model.parameters()])
        assert (loss_sum / seen).item() == pytest.approx(torch.nn.functional.cross_entropy(model(x), y).item())
    for other in grads[1:]:
        for a, b in zip(grads[0], other):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_chunks_follow_max_micro_batch():
    cfg = ClassifyConfig(max_micro_batch=256)
    assert [cfg.micro_batches(b) for b in (32, 256, 257, 1024, 16384)] == [1, 1, 2, 4, 64]


def test_pick_bounds_on_a_synthetic_lr_curve():
    lrs = np.logspace(-9, 1, 11)  # decades
    # Flat until 1e-5, falls through 1e-4..1e-2, flat minimum at 1e-2..1e-1, then diverges
    loss = [2.30, 2.30, 2.30, 2.30, 2.30, 2.10, 1.20, 0.50, 0.49, math.nan, math.nan]
    assert pick_bounds(lrs, loss) == pytest.approx((1e-4, 1e-2))


def test_pick_bounds_when_the_drop_is_one_step_and_on_a_batch_curve():
    assert pick_bounds([1e-3, 1e-2, 1e-1], [2.3, 0.5, 0.6]) == (1e-3, 1e-2)  # x_min is the point before x_max
    batches = [32, 64, 128, 256, 512, 1024]
    assert pick_bounds(batches, [1.9, 1.7, 1.2, 0.9, 0.82, 0.81]) == (64, 512)


def test_pick_bounds_refuses_a_curve_that_never_falls():
    with pytest.raises(RecordsError, match="never fell"):
        pick_bounds([1e-3, 1e-2, 1e-1], [2.30, 2.30, 2.31])
    with pytest.raises(RecordsError, match="fewer than two"):
        pick_bounds([1e-3, 1e-2, 1e-1], [2.3, math.nan, math.inf])


@pytest.mark.parametrize("values, message", [
    ({"lr_min": 0.1, "lr_max": 0.01}, "lr_min=0.1 must be below lr_max=0.01"),
    ({"lr_min": 0.1, "lr_max": 0.1}, "must be below"),
    ({"batch_policy": "cyclic", "batch_min": 48, "batch_max": 512}, "batch_min=48 must be a power of two"),
    ({"batch_policy": "range", "batch_min": 32, "batch_max": 1000}, "batch_max=1000 must be a power of two"),
    ({"batch_policy": "range", "batch_min": 64, "batch_max": 32}, "batch_min=64 must be below"),
    ({"lr_policy": "sawtooth"}, "lr_policy='sawtooth' is not one of"),  # (cosine is a policy of the shared trial)
    ({"stepsize_unit": "steps"}, "stepsize_unit='steps'"),
])
def test_bad_configs_are_refused(values, message):
    with pytest.raises(ConfigError, match=message):
        ClassifyConfig(**values)
    ClassifyConfig(batch_policy="fixed", batch_min=48)  # a non-power of two only matters to the policies using it
