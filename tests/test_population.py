"""Population trials (trainables/training/population.py) equal their separate runs, replica by replica (CPU, a few seconds).

    pytest tests/test_population.py

A separate run is the ordinary loop: `torch.manual_seed(seed); model = build()`, data order from
`torch.Generator().manual_seed(seed)` (one randperm per epoch), dropout from the global RNG.
Several tests also check that they can fail: the same comparison with a deliberate mistake
(lr or weight decay left out, a mean over replicas) must not match.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trainables.models.registry import build_model
from trainables.training.population import (FusedConv2d, FusedLinear, PopulationOptimizer, build_population, data_generators,
                                   fuse, per_replica_cross_entropy, per_replica_loss, replica_batch,
                                   replica_permutations)

MLP_KW = dict(num_classes=3, in_features=5, widths=(8, 8), batch_norm=True, input_batch_norm=True,
              dropout_input=0.2, dropout_hidden=0.5)
LENET_KW = dict(num_classes=10, in_channels=1, image_size=28, batch_norm=True, dropout_hidden=0.5)
TOLS = {torch.float32: dict(rtol=1e-4, atol=1e-5), torch.float64: dict(rtol=1e-7, atol=1e-9)}
OUTPUT_TOLS = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: TOLS[torch.float64]}  # 5 layers of drift
SEEDS = (0, 1, 2)


@pytest.fixture(autouse=True)
def one_thread():
    """These nets are tiny: one thread is fastest, and far faster than two on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def default_dtype():
    """Sets torch's default dtype for one test (models and data follow it), then restores it."""
    before = torch.get_default_dtype()
    yield torch.set_default_dtype
    torch.set_default_dtype(before)


def build_mlp() -> nn.Module:
    return build_model("mlp", **MLP_KW)


def build_lenet() -> nn.Module:
    return build_model("lenet5", **LENET_KW)


def sgd(params, lr=0.1, weight_decay=0.0):
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)


def adam(params, lr=0.01, weight_decay=0.0):
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def adamw(params, lr=0.01, weight_decay=0.0):
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


OPTIMIZERS = {"sgd": (sgd, torch.optim.SGD, dict(momentum=0.9)), "adam": (adam, torch.optim.Adam, {}),
              "adamw": (adamw, torch.optim.AdamW, {})}


def tabular_data(n: int = 48) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return torch.randn(n, 5, generator=g), torch.randint(0, 3, (n,), generator=g)


def image_data(n: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)


def separate_run(build, seed, x, y, make_optimizer, epochs, batch_size):
    """The ordinary run replica `seed` must equal; returns the model and its per-step losses."""
    torch.manual_seed(seed)
    model = build()
    optimizer = make_optimizer(model.parameters())
    order = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=order)
        for start in range(0, len(x), batch_size):
            idx = perm[start:start + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
    return model, torch.stack(losses)


def train_population(pop, optimizer, order, x, y, epochs, batch_size, reduce=torch.sum):
    """The population loop; returns per-step losses [steps, P]."""
    losses = []
    for _ in range(epochs):
        perms = replica_permutations(len(x), order)
        for start in range(0, len(x), batch_size):
            loss = per_replica_cross_entropy(pop(replica_batch(x, perms, start, batch_size)),
                                             replica_batch(y, perms, start, batch_size))
            optimizer.zero_grad()
            reduce(loss).backward()
            optimizer.step()
            losses.append(loss.detach())
    return torch.stack(losses)


def population_run(build, seeds, x, y, optimizer_cls, lr, weight_decay=0.0, epochs=3, batch_size=16,
                   reduce=torch.sum, **kw):
    pop = build_population(build, seeds)
    optimizer = PopulationOptimizer(pop.parameters(), optimizer_cls, lr=lr, weight_decay=weight_decay, **kw)
    losses = train_population(pop, optimizer, data_generators(seeds), x, y, epochs, batch_size, reduce)
    return pop, losses


def assert_replicas_equal(pop, models):
    for p, model in enumerate(models):
        got, want = pop.replica(p).state_dict(), model.state_dict()
        assert got.keys() == want.keys()
        for key in want:
            torch.testing.assert_close(got[key], want[key], **TOLS.get(want[key].dtype, {}),
                                       msg=lambda m: f"replica {p} {key}: {m}")


def assert_same_state(replica: nn.Module, model: nn.Module) -> None:
    for key, value in model.state_dict().items():
        torch.testing.assert_close(replica.state_dict()[key], value, **TOLS.get(value.dtype, {}))


def matches(pop, models) -> bool:
    try:
        assert_replicas_equal(pop, models)
        return True
    except AssertionError:
        return False


# float64 makes the fused kernels' other summation order all but invisible (1e-15 to 1e-11), so a real
# discrepancy cannot hide in the tolerance; float32, the dtype of real runs, at rtol 1e-4 for SGD. (Adam in
# float32 amplifies rounding where a gradient is near zero: up to 5e-4 after 3 steps of LeNet-5, so it is
# checked in float64.)
EQUALITY_CASES = [("mlp", "sgd", torch.float32), ("lenet5", "sgd", torch.float32), ("mlp", "sgd", torch.float64),
                  ("mlp", "adam", torch.float64), ("lenet5", "sgd", torch.float64), ("lenet5", "adam", torch.float64)]


@pytest.mark.parametrize("arch, name, dtype", EQUALITY_CASES)
def test_population_equals_separate_runs(arch, name, dtype, default_dtype):
    default_dtype(dtype)
    build, (x, y) = (build_mlp, tabular_data()) if arch == "mlp" else (build_lenet, image_data())
    batch_size, epochs = (16, 3) if arch == "mlp" else (8, 2)
    make_opt, optimizer_cls, kw = OPTIMIZERS[name]
    lr = 0.1 if name == "sgd" else 0.01
    runs = [separate_run(build, s, x, y, lambda ps: make_opt(ps, lr=lr), epochs, batch_size) for s in SEEDS]
    models = [m for m, _ in runs]
    rng_before = torch.get_rng_state()
    pop, losses = population_run(build, SEEDS, x, y, optimizer_cls, lr, epochs=epochs, batch_size=batch_size, **kw)

    assert torch.equal(torch.get_rng_state(), rng_before)  # the population never touches the global RNG
    torch.testing.assert_close(losses, torch.stack([l for _, l in runs], dim=1), **TOLS[dtype])
    assert_replicas_equal(pop, models)  # parameters, running mean/var, num_batches_tracked (exactly)
    assert all(int(v) == len(losses) for p in range(3) for k, v in pop.replica(p).state_dict().items()
               if k.endswith("num_batches_tracked"))
    pop.eval()
    out = pop(x[:10].expand(3, *x[:10].shape))
    for p, model in enumerate(models):
        torch.testing.assert_close(out[p], model.eval()(x[:10]), **OUTPUT_TOLS[dtype])
    if name == "sgd" and arch == "mlp":  # the comparison can fail: a mean over replicas divides gradients by P
        wrong, _ = population_run(build, SEEDS, x, y, optimizer_cls, lr, reduce=torch.mean, **kw)
        assert not matches(wrong, models)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw"])
def test_per_replica_lr_and_weight_decay_equal_separate_runs(name, default_dtype):
    default_dtype(torch.float64)  # tight tolerance, so leaving out a weight decay of 1e-3 shows
    x, y = tabular_data()
    make_opt, optimizer_cls, kw = OPTIMIZERS[name]
    lrs, wds, seeds = (0.1, 0.01), (0.0, 1e-3), (0, 1)
    models = [separate_run(build_mlp, s, x, y, lambda ps, lr=lr, wd=wd: make_opt(ps, lr=lr, weight_decay=wd), 3, 16)[0]
              for s, lr, wd in zip(seeds, lrs, wds)]
    pop, _ = population_run(build_mlp, seeds, x, y, optimizer_cls, lrs, wds, **kw)
    assert_replicas_equal(pop, models)
    # the comparison can fail: without the per-replica lr or weight decay it does not match
    for wrong_lr, wrong_wd in ((lrs[0], wds), (lrs, 0.0)):
        wrong, _ = population_run(build_mlp, seeds, x, y, optimizer_cls, wrong_lr, wrong_wd, **kw)
        assert not matches(wrong, models)


def test_dropout_masks_are_torch_cpu_dropout_masks_from_each_replica_generator():
    for model in (nn.Sequential(nn.Dropout(0.3)), nn.Sequential(nn.MaxPool2d(1), nn.Dropout(0.3))):  # stacked, grouped
        generators = [torch.Generator().manual_seed(s) for s in (7, 8, 9)]
        states = [g.get_state() for g in generators]
        pop = fuse([model] * 3, generators)
        x = torch.randn(3, 4, 2, 5, 5) + 3  # no zeros, so every dropped entry shows
        out = pop(x)
        with torch.random.fork_rng(devices=[]):
            for p in range(3):
                torch.set_rng_state(states[p])  # where a separate run's dropout would draw from
                assert torch.equal(out[p], F.dropout(x[p], 0.3, training=True))
        assert not torch.equal(out[0] == 0, out[1] == 0)  # masks differ between replicas
        assert torch.equal(pop.eval()(x), x)  # eval mode: identity


def test_identical_replicas_differ_only_by_their_dropout_generators():
    torch.manual_seed(0)
    model = build_mlp()
    pop = fuse([model] * 3)
    x = torch.randn(3, 16, 5)
    x[:] = x[0]
    pop.eval()
    out = pop(x)
    torch.testing.assert_close(out[1], out[0], rtol=1e-6, atol=1e-7)  # the same net and data
    torch.testing.assert_close(out[2], out[0], rtol=1e-6, atol=1e-7)
    pop.train()
    out = pop(x)
    assert not torch.allclose(out[0], out[1]) and not torch.allclose(out[1], out[2])


def test_batch_norm_running_stats_are_per_replica():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 16, 4),
                          nn.BatchNorm1d(4))
    pop = fuse([model] * 3)
    x = torch.randn(3, 8, 2, 6, 6) * torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1, 1, 1)  # different data per replica
    pop(x)
    for p in range(3):
        separate = copy.deepcopy(model)
        separate(x[p])
        assert_same_state(pop.replica(p), separate)
    bn2d = pop.replica(0)[1].running_var, pop.replica(1)[1].running_var
    assert not torch.allclose(*bn2d)


def test_replica_round_trip():
    models = []
    for seed in SEEDS:
        torch.manual_seed(seed)
        models.append(build_lenet())
    pop = fuse(models)
    for p, model in enumerate(models):
        replica = pop.replica(p)
        assert type(replica) is type(model) and replica is not model
        for key, value in model.state_dict().items():
            assert torch.equal(replica.state_dict()[key], value), key
    x = image_data(6)[0]
    out = pop.eval()(x.expand(3, *x.shape))
    torch.testing.assert_close(out[2], models[2].eval()(x), **TOLS[torch.float32])
    again = fuse([pop.replica(p) for p in range(3)])
    for a, b in zip(again.state_dict().values(), pop.state_dict().values()):
        if isinstance(a, torch.Tensor):
            assert torch.equal(a, b)


def test_state_dict_round_trip_resumes_identically():
    x, y = tabular_data(32)  # 2 steps per epoch of 16

    def fresh(seeds):
        pop = build_population(build_mlp, seeds)
        return pop, PopulationOptimizer(pop.parameters(), torch.optim.SGD, lr=[0.1, 0.05, 0.02], momentum=0.9)

    pop, opt = fresh(SEEDS)
    order = data_generators(SEEDS)
    straight = train_population(pop, opt, order, x, y, epochs=2, batch_size=16)

    pop, opt = fresh(SEEDS)
    order = data_generators(SEEDS)
    train_population(pop, opt, order, x, y, epochs=1, batch_size=16)
    buffer = io.BytesIO()
    torch.save({"pop": pop.state_dict(), "opt": opt.state_dict(), "order": [g.get_state() for g in order]}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    pop, opt = fresh((10, 11, 12))  # other weights and dropout generators: the checkpoint must overwrite all
    pop.load_state_dict(saved["pop"])
    opt.load_state_dict(saved["opt"])
    order = data_generators((0, 0, 0))
    for g, state in zip(order, saved["order"]):
        g.set_state(state)
    resumed = train_population(pop, opt, order, x, y, epochs=1, batch_size=16)
    assert torch.equal(resumed, straight[2:])

    with pytest.raises(ValueError, match="lr="):
        PopulationOptimizer(pop.parameters(), torch.optim.SGD, lr=0.1).load_state_dict(saved["opt"])


@pytest.mark.parametrize("arch", ["mlp", "lenet5"])
def test_a_nan_in_one_replica_stays_there(arch):
    build, (x, y) = (build_mlp, tabular_data()) if arch == "mlp" else (build_lenet, image_data())

    def run(poison: bool):
        pop = build_population(build, SEEDS)
        if poison:
            first = next(m for m in pop.modules() if isinstance(m, (FusedLinear, FusedConv2d)))
            with torch.no_grad():
                first.weight[1, 0] = float("nan")
        opt = PopulationOptimizer(pop.parameters(), torch.optim.Adam, lr=[0.01, 0.02, 0.03])
        losses = train_population(pop, opt, data_generators(SEEDS), x, y, epochs=1, batch_size=8)
        return pop, losses

    clean, clean_losses = run(False)
    poisoned, losses = run(True)
    assert not torch.isfinite(losses[:, 1]).any()
    assert not all(torch.isfinite(t).all() for t in poisoned.replica(1).state_dict().values())
    torch.testing.assert_close(losses[:, [0, 2]], clean_losses[:, [0, 2]])
    for p in (0, 2):
        assert_same_state(poisoned.replica(p), clean.replica(p))
        assert all(torch.isfinite(t).all() for t in poisoned.replica(p).state_dict().values())


def test_unsupported_or_mismatched_layers_are_refused():
    with pytest.raises(ValueError, match="Conv1d"):
        fuse([nn.Sequential(nn.Linear(4, 4), nn.Conv1d(1, 1, 3))] * 2)
    with pytest.raises(ValueError, match="LSTM"):
        fuse([nn.LSTM(4, 4)])
    with pytest.raises(ValueError, match="differs between replica 0"):
        fuse([build_model("mlp", num_classes=2, in_features=3, widths=(w,)) for w in (4, 5)])
    with pytest.raises(ValueError, match="Rprop"):
        pop = fuse([build_mlp()] * 2)
        PopulationOptimizer(pop.parameters(), torch.optim.Rprop, lr=[0.1, 0.2])


def test_per_replica_loss_is_each_replicas_mean():
    out, target = torch.randn(3, 7, 2), torch.randn(3, 7, 2)
    losses = per_replica_loss(F.mse_loss, out, target)
    torch.testing.assert_close(losses, torch.stack([F.mse_loss(out[p], target[p]) for p in range(3)]))


def test_bench_smoke_runs_and_the_population_matches_the_loop(monkeypatch):
    import importlib.util
    import sys

    from conftest import ROOT

    spec = importlib.util.spec_from_file_location("bench_population", ROOT / "bench" / "population.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_population", bench)  # its dataclass looks its module up there
    spec.loader.exec_module(bench)
    lines = bench.main(["--smoke", "--threads", "1"])  # no Ray Tune part at smoke size
    assert any(line.startswith("(b) Python loop") for line in lines)
    mismatch = next(line for line in lines if line.startswith("fused == loop"))
    assert float(mismatch.rsplit(" ", 1)[1]) < 1e-5
