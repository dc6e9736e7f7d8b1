"""Captured training steps (trainables/training/capture.py) on the CPU, where CI runs.

CUDA graphs need a GPU, so these tests run the capture machinery under `emulate_on_cpu()`, where a graph replay
calls the captured function again: the static index buffer, the warm-up that is undone, the learning-rate
factors, the eager tail step and the accumulation are checked against the eager loops (the same losses bit for
bit where the lr is baked; to float rounding where it is held in a factor table). The capture itself, and the
speed, are checked on a GPU by bench/gpu.py. Also here: the `capture` switch, refused with one line where it
cannot apply.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from trainables.config import ConfigError
from trainables.image.config import ClassifyConfig
from trainables.image.trial import make_data as image_data, train_classifier
from trainables.runtime.session import LocalSession
from trainables.studies.depth_width.config import RegressionConfig
from trainables.studies.depth_width.trial import make_data as regression_data, train_regression
from trainables.studies.dying_relu.config import DyingReluConfig
from trainables.studies.dying_relu.trial import make_data as dying_data, train_dying_relu
from trainables.training.capture import StepGraph, emulate_on_cpu, use_capture
from trainables.training.classify import CapturedEpochs, train_one_epoch
from trainables.data.vision import TensorSplit
from trainables.models.registry import build_model

CPU = torch.device("cpu")


def _history(run, cfg, data, emulate: bool, session=None):
    session = session or LocalSession(epochs=cfg.epochs)
    if emulate:
        with emulate_on_cpu():
            run(cfg, data, session, CPU)
    else:
        run(cfg, data, session, CPU)
    return session


def _losses(session, key="train/loss"):
    return [h[key] for h in session.history]


# --- the switch -----------------------------------------------------------------------------------------------

def test_the_switch_captures_on_a_gpu_where_shapes_are_static_and_refuses_on_with_one_line():
    cuda = torch.device("cuda", 0)
    assert use_capture("auto", cuda) and use_capture("on", cuda)
    assert not use_capture("off", cuda) and not use_capture("auto", CPU) and not use_capture("off", CPU)
    assert not use_capture("auto", cuda, not_static="batch_policy=cyclic changes the batch size")
    with pytest.raises(ConfigError) as cpu:
        use_capture("on", CPU)
    with pytest.raises(ConfigError) as shapes:
        use_capture("on", cuda, not_static="batch_policy=cyclic changes the batch size")
    with pytest.raises(ConfigError, match="capture='sometimes' is not one of auto, on, off"):
        use_capture("sometimes", cuda)
    for error in (cpu.value, shapes.value):
        message = str(error)
        assert "\n" not in message and "capture=auto" in message and "capture=off" in message  # names the fix
    assert "holds no GPU" in str(cpu.value) and "batch_policy=cyclic" in str(shapes.value)


@pytest.mark.parametrize("make", [lambda: RegressionConfig(capture="always"), lambda: DyingReluConfig(capture="yes"),
                                  lambda: ClassifyConfig(dataset="digits", capture="1")], ids=["regression", "dying",
                                                                                                "classify"])
def test_configs_check_the_capture_value(make):
    with pytest.raises(ConfigError, match="capture"):
        make()


def test_capture_on_for_a_cpu_trial_is_refused_at_trial_start():
    cfg = RegressionConfig(widths=(8,), epochs=1, n_points=200, capture="on")
    with pytest.raises(ConfigError, match="CUDA graphs need a GPU"):
        train_regression(cfg, regression_data(cfg), LocalSession(epochs=1), CPU)
    cfg = DyingReluConfig(simulations=3, epochs=1, n_points=100, capture="on")
    with pytest.raises(ConfigError, match="CUDA graphs need a GPU"):
        train_dying_relu(cfg, dying_data(cfg), LocalSession(epochs=1), CPU)
    cfg = ClassifyConfig(dataset="digits", model="mlp", widths=(8,), epochs=1, train_subset=64, capture="on")
    with pytest.raises(ConfigError, match="CUDA graphs need a GPU"):
        train_classifier(cfg, image_data(cfg), LocalSession(epochs=1), CPU)


@pytest.mark.parametrize("changes, why", [
    (dict(batch_policy="cyclic", batch_min=32, batch_max=128), "batch_policy=cyclic changes the batch size"),
    (dict(lr_policy="range", lr_min=1e-4, lr_max=1.0, lr_stages=2, interval=2), "LR range test"),
    (dict(optimizer="adagrad"), "Adagrad keeps its step count on the host"),
])
def test_capture_on_where_the_step_is_not_static_is_refused_naming_the_fix(changes, why):
    cfg = ClassifyConfig(dataset="digits", model="mlp", widths=(8,), epochs=2, train_subset=64, capture="on", **changes)
    with emulate_on_cpu(), pytest.raises(ConfigError) as error:  # as on a GPU: only the shapes are in the way
        train_classifier(cfg, image_data(cfg), LocalSession(epochs=cfg.stages), CPU)
    assert why in str(error.value) and "capture=auto" in str(error.value)
    # capture=auto trains such a config eagerly
    auto = dataclasses.replace(cfg, capture="auto")
    with emulate_on_cpu():
        train_classifier(auto, image_data(auto), LocalSession(epochs=auto.stages), CPU)


# --- the captured loops equal the eager ones -------------------------------------------------------------------

@pytest.mark.parametrize("kw", [dict(widths=(32, 16), lr_schedule="constant"),
                                dict(widths=(16,), seeds=3, lr_schedule="constant", n_points=2600)],
                         ids=["one net", "population with a tail batch"])
def test_captured_depth_width_with_a_constant_lr_is_the_eager_run_bit_for_bit(kw):
    cfg = RegressionConfig(**{"epochs": 3, "n_points": 3000, **kw})
    data = regression_data(cfg)
    eager = _history(train_regression, dataclasses.replace(cfg, capture="off"), data, emulate=False)
    captured = _history(train_regression, dataclasses.replace(cfg, capture="on"), data, emulate=True)
    for key in ("train/loss", "test/rmse", "train/lr"):
        assert _losses(eager, key) == _losses(captured, key)


def test_captured_depth_width_with_cosine_lr_in_a_device_tensor_matches_to_float_rounding(monkeypatch):
    from trainables.training import capture

    cfg = RegressionConfig(widths=(64, 32), epochs=4, n_points=3000, lr=0.05)  # cosine: the lr changes every epoch
    data = regression_data(cfg)
    eager = _losses(_history(train_regression, dataclasses.replace(cfg, capture="off"), data, emulate=False))
    for mode in ("tensor", "recapture"):
        monkeypatch.setattr(capture, "SCHEDULED_LR_MODE", mode)
        got = _losses(_history(train_regression, dataclasses.replace(cfg, capture="on"), data, emulate=True))
        assert got == pytest.approx(eager, rel=1e-5), mode
        if mode == "recapture":  # the lr baked and captured again each epoch: the eager arithmetic exactly
            assert got == eager


def test_captured_dying_relu_is_the_eager_run_bit_for_bit():
    cfg = DyingReluConfig(simulations=12, depth=4, epochs=2, n_points=700)  # 10 full batches and a tail of 60
    data = dying_data(cfg)
    eager = _history(train_dying_relu, dataclasses.replace(cfg, capture="off"), data, emulate=False)
    captured = _history(train_dying_relu, dataclasses.replace(cfg, capture="on"), data, emulate=True)
    for key in ("train/loss", "collapse/count", "train/mse_alive"):
        assert _losses(eager, key) == _losses(captured, key)
    assert eager.artifacts["simulations.csv"].equals(captured.artifacts["simulations.csv"])


@pytest.mark.parametrize("kw, exact", [
    (dict(model="lenet5", crop_flip=True, cutout=8, batch_m=2), True),  # augmentation drawn inside the step
    (dict(model="mlp", widths=(32,), seeds=3, dropout_hidden=0.3, optimizer="adam", lr=1e-3), True),  # dropout masks
    (dict(model="mlp", widths=(16,), seeds=2, optimizers=("adam", "sgd"), lrs=(1e-3, 0.05), lr_policy="cosine"),
     False),  # per-step cosine, two optimizer groups: the lr factor table
    (dict(model="mlp", widths=(16,), optimizer="rmsprop_nesterov", lr=1e-3, lr_policy="cosine", warmup_epochs=1),
     False),
], ids=["augmentation", "population with dropout", "optimizer groups, cosine", "warm-up then cosine"])
def test_captured_image_epochs_match_the_eager_loop(kw, exact):
    cfg = ClassifyConfig(dataset="digits", epochs=2, train_subset=300, batch_size=64, **kw)
    data = image_data(cfg)
    eager = _history(train_classifier, dataclasses.replace(cfg, capture="off"), data, emulate=False)
    captured = _history(train_classifier, dataclasses.replace(cfg, capture="on"), data, emulate=True)
    for key in ("train/iterations", "train/samples_seen", "train/lr"):
        assert _losses(eager, key) == _losses(captured, key)
    for key in ("train/loss", "test/loss", "train/accuracy"):
        if exact:
            assert _losses(eager, key) == _losses(captured, key), key
        else:
            assert _losses(captured, key) == pytest.approx(_losses(eager, key), rel=1e-4), key


def test_a_captured_trial_resumes_from_its_checkpoint_as_if_never_stopped():
    cfg = RegressionConfig(widths=(16, 16), epochs=4, n_points=3000, lr_schedule="constant", capture="on")
    data = regression_data(cfg)
    straight = _history(train_regression, cfg, data, emulate=True)

    class StopAfterTwo(LocalSession):
        def report(self, metrics, epoch, state_fn=None, artifacts=None):
            return super().report(metrics, epoch, state_fn, artifacts) and epoch < 2

    first = _history(train_regression, cfg, data, emulate=True, session=StopAfterTwo(epochs=4, checkpoint_every=1))
    resumed = _history(train_regression, cfg, data, emulate=True, session=LocalSession(epochs=4, state=first.state))
    assert _losses(first)[:2] + _losses(resumed) == _losses(straight)


# --- the StepGraph itself --------------------------------------------------------------------------------------

def _mlp_problem(n=200, seed=0):
    torch.manual_seed(seed)
    model = build_model("mlp", num_classes=3, in_features=5, widths=(16,), batch_norm=True, dropout_hidden=0.0)
    x, y = torch.randn(n, 5), torch.randint(0, 3, (n,))
    return model, x, y


def _forward_backward(model, optimizer, x, y):
    def step(idx):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        loss.backward()
        return (loss.detach() * idx.shape[-1],)
    return step


@pytest.mark.parametrize("steps_per_graph", [None, 1, 3])
@pytest.mark.parametrize("make_opt", [lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True),
                                      lambda p: torch.optim.Adam(p, lr=1e-2)], ids=["sgd", "adam"])
def test_steps_replayed_in_graphs_of_any_length_equal_eager_steps(steps_per_graph, make_opt):
    """12 full batches of 16 and a tail of 8: whole-epoch graphs (static slices), one step per graph and three
    (the device-side batch counter), each against the plain eager loop, over two epochs."""
    results = []
    for captured in (False, True):
        model, x, y = _mlp_problem()
        optimizer = make_opt(model.parameters())
        step = _forward_backward(model, optimizer, x, y)
        g = torch.Generator().manual_seed(3)
        total = []
        if captured:
            with emulate_on_cpu():
                graph = StepGraph(step, optimizer, model, order_shape=(200,), batch_size=16, device=CPU,
                                  steps_per_graph=steps_per_graph, lr="recapture")
                assert graph.full == 12 and graph.k == (steps_per_graph or 12)
                for _ in range(2):
                    (loss,), steps = graph.epoch(torch.randperm(200, generator=g))
                    total.append(loss.item())
                    assert steps == 13
        else:
            for _ in range(2):
                perm, loss = torch.randperm(200, generator=g), torch.zeros(())
                for i in range(0, 200, 16):
                    (value,) = step(perm[i:i + 16])
                    optimizer.step()
                    loss += value
                total.append(loss.item())
        results.append((total, [p.detach().clone() for p in model.parameters()]))
    assert results[0][0] == results[1][0]
    assert all(torch.equal(a, b) for a, b in zip(results[0][1], results[1][1]))


def test_the_warm_up_before_a_capture_leaves_no_trace():
    model, x, y = _mlp_problem()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    with emulate_on_cpu():
        graph = StepGraph(_forward_backward(model, optimizer, x, y), optimizer, model, order_shape=(200,),
                          batch_size=16, device=CPU)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BN statistics included
    assert torch.equal(rng, torch.get_rng_state())
    for state in optimizer.state.values():  # created by the warm-up, zeroed: a fresh Adam's state
        assert all(not torch.is_tensor(v) or not v.any() for v in state.values())
    assert graph.sums[0].item() == 0.0


def test_a_partial_batch_smaller_than_min_tail_is_skipped_as_the_eager_image_loop_does():
    model, x, y = _mlp_problem(n=33)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with emulate_on_cpu():
        graph = StepGraph(_forward_backward(model, optimizer, x, y), optimizer, model, order_shape=(33,),
                          batch_size=16, device=CPU, min_tail=2)
        _, steps = graph.epoch(torch.arange(33))
    assert steps == 2  # 2 full batches; the last sample alone is no batch (batch norm needs 2)


def test_captured_epochs_report_what_train_one_epoch_reports():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (100, 1, 28, 28), dtype=torch.uint8)
    data = TensorSplit(images, torch.randint(0, 10, (100,)))
    stats = []
    for captured in (False, True):
        torch.manual_seed(1)
        model = build_model("lenet5", num_classes=10, in_channels=1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
        g = torch.Generator().manual_seed(0)
        if captured:
            with emulate_on_cpu():
                epochs = CapturedEpochs(model, optimizer, data, 32, g, scheduler=scheduler, constant_lr=True)
                stats.append(epochs.epoch(g))
        else:
            stats.append(train_one_epoch(model, optimizer, data, 32, g, scheduler=scheduler))
    eager, captured = stats
    assert {k: v for k, v in eager.items() if k != "seconds"} == {k: v for k, v in captured.items() if k != "seconds"}
    assert captured["steps"] == 4 and captured["samples"] == 100 and math.isfinite(captured["loss"])
