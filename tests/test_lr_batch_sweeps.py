"""The LR/batch-size studies end to end on a tiny learnable FashionMNIST in the real idx format: real Ray,
real MLflow (SQLite), real MiniGoogLeNet training. The studies chain through MLflow (the LR range test's
bounds feed the cyclical-LR and batch-size studies; the batch range test's bounds feed the cyclical batch
size), so one test runs the chain in one store and checks every link."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, run_script
from fake_datasets import make_mnist


def script(name: str) -> str:
    return str(ROOT / "sweeps" / f"{name}.py")


def _parent_id(stdout: str) -> str:
    line = next(l for l in stdout.splitlines() if l.startswith("regenerate the figures"))
    return line.split("--parent-run ")[1].split()[0]


def _children(client, parent_id):
    parent = client.get_run(parent_id)
    return parent, client.search_runs([parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent_id}'")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    make_mnist(root, "FashionMNIST", n_train=96, n_test=24, learnable=True)
    return str(root)


def sweep(name: str, cwd, data_dir: str, *flags: str):
    proc = run_script([script(name), *flags, "--data-dir", data_dir, "--results-dir", "res"], cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc, _parent_id(proc.stdout)


@pytest.mark.slow
def test_range_test_feeds_cyclic_lr_and_batch_studies(tmp_path, data_dir):
    res = tmp_path / "res"

    # Without a range test in the store, the studies needing lr bounds refuse to start (exit 2, nothing made).
    proc = run_script([script("cyclic_lr"), "--preset", "smoke", "--results-dir", "res"], cwd=tmp_path)
    assert proc.returncode == 2 and "no LR range test" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not res.exists()

    # 1. LR range test: lr=10 diverges and is recorded so; lr_min < lr_max picked, printed, stored as tags.
    proc, parent_id = sweep("lr_range", tmp_path, data_dir, "--preset", "smoke")
    client = MlflowClient(f"sqlite:///{res / 'mlflow.db'}")  # (opening a SQLite store creates it: only now)
    parent, children = _children(client, parent_id)
    status = {float(c.data.params["lr"]): c.data.tags["trial_status"] for c in children}
    assert status == {1e-5: "finished", 1e-3: "finished", 0.1: "finished", 10.0: "diverged"}
    lr_min, lr_max = float(parent.data.tags["lr_min"]), float(parent.data.tags["lr_max"])
    assert 1e-5 <= lr_min < lr_max <= 0.1
    assert f"picked: lr_min = {lr_min:.3g}, lr_max = {lr_max:.3g}" in proc.stdout
    assert "diverged" in proc.stdout
    assert (res / "lr_range" / "lr_range.png").stat().st_size > 5000

    # 2. Cyclical LR reads those bounds; constant vs exp_range in one sweep; LR per iteration follows the policy.
    proc, parent_id = sweep("cyclic_lr", tmp_path, data_dir, "--preset", "smoke")
    parent, children = _children(client, parent_id)
    assert parent.data.params["base.lr_min"] == repr(lr_min) and parent.data.params["base.lr_max"] == repr(lr_max)
    by_policy = {c.data.params["lr_policy"]: c for c in children}
    assert set(by_policy) == {"constant", "exp_range"}
    for child in children:
        assert child.data.tags["trial_status"] == "finished"
        for key in ("train/loss", "val/loss", "train/accuracy", "val/accuracy", "train/lr"):
            assert [m.step for m in client.get_metric_history(child.info.run_id, key)] == [1, 2, 3]
    const_lrs = {m.value for m in client.get_metric_history(by_policy["constant"].info.run_id, "train/lr")}
    cyc_lrs = [m.value for m in client.get_metric_history(by_policy["exp_range"].info.run_id, "train/lr")]
    assert len(const_lrs) == 1 and const_lrs.pop() == pytest.approx(lr_max)
    assert cyc_lrs[0] == pytest.approx(lr_min) and len(set(cyc_lrs)) > 1
    for name in ("cyclic_lr_curves.png", "lr_vs_iteration.png"):
        assert (res / "cyclic_lr" / name).stat().st_size > 5000

    # 3. Batch-size range test at lr_max: one point per batch size (32, 64, 128), 128 via 2 micro-batches of 64.
    proc, parent_id = sweep("batch_size", tmp_path, data_dir, "--preset", "smoke")
    parent, (child,) = _children(client, parent_id)
    assert float(child.data.params["lr_max"]) == lr_max and child.data.tags["trial_status"] == "finished"
    assert [m.value for m in sorted(client.get_metric_history(child.info.run_id, "train/batch_size"),
                                    key=lambda m: m.step)] == [32, 64, 128]
    b_min, b_max = int(parent.data.tags["b_min"]), int(parent.data.tags["b_max"])
    assert 32 <= b_min < b_max <= 128
    assert "cyclic_lr  exp_range" in proc.stdout  # the comparison with the cyclical-LR sweep
    for name in ("loss_vs_batch_size.png", "batch_range_vs_cyclic_lr.png"):
        assert (res / "batch_size" / name).stat().st_size > 5000

    # 4. Cyclical batch size between b_min and b_max at lr_min; table against the cyclical-LR run.
    proc, parent_id = sweep("batch_size", tmp_path, data_dir, "--preset", "cyclic-smoke")
    parent, (child,) = _children(client, parent_id)
    assert float(child.data.params["lr_min"]) == lr_min and child.data.params["fixed_lr"] == "min"
    sizes = [m.value for m in sorted(client.get_metric_history(child.info.run_id, "train/batch_size"),
                                     key=lambda m: m.step)]
    assert sizes[0] == b_min and sizes[1] == b_max and len(sizes) == 3
    table = (res / "batch_size" / "cyclic_batch_vs_cyclic_lr.csv").read_text()
    assert "cyclic_lr" in table and "cyclic" in table and "best_accuracy" in table
    for name in ("cyclic_batch_curves.png", "batch_size_vs_epoch.png", "cyclic_batch_vs_cyclic_lr.png"):
        assert (res / "batch_size" / name).stat().st_size > 5000

    # Every figure comes back from MLflow alone.
    (res / "cyclic_lr" / "lr_vs_iteration.png").unlink()
    regen = run_script(["-m", "analysis", "cyclic_lr", "--results-dir", "res"], cwd=tmp_path)
    assert regen.returncode == 0, regen.stderr[-2000:]
    assert (res / "cyclic_lr" / "lr_vs_iteration.png").stat().st_size > 5000


@pytest.mark.slow
def test_continuous_lr_range_test(tmp_path, data_dir):
    proc, parent_id = sweep("lr_range", tmp_path, data_dir, "--preset", "continuous-smoke")
    client = MlflowClient(f"sqlite:///{tmp_path / 'res' / 'mlflow.db'}")
    parent, (child,) = _children(client, parent_id)
    lrs = [m.value for m in sorted(client.get_metric_history(child.info.run_id, "train/lr"), key=lambda m: m.step)]
    assert len(lrs) >= 2 and all(b > a for a, b in zip(lrs, lrs[1:]))  # raised every stage
    assert lrs[0] == pytest.approx(1e-5 * (10 / 1e-5) ** (1 / 15))  # the last of the first stage's 2 steps
    assert (tmp_path / "res" / "lr_range" / "lr_range_continuous.png").stat().st_size > 5000
    assert "continuous LR range test" in proc.stdout


@pytest.mark.slow
def test_joint_search_optuna_asha_against_random(tmp_path, data_dir):
    sweep("joint_search", tmp_path, data_dir, "--preset", "smoke", "--search", "random", "--num-samples", "3")
    proc, parent_id = sweep("joint_search", tmp_path, data_dir, "--preset", "smoke", "--search", "optuna",
                            "--scheduler", "asha")
    client = MlflowClient(f"sqlite:///{tmp_path / 'res' / 'mlflow.db'}")
    parent, children = _children(client, parent_id)
    assert parent.data.tags["search"] == "optuna" and parent.data.tags["scheduler"] == "asha" and len(children) == 4
    lrs = {float(c.data.params["lr"]) for c in children}
    assert len(lrs) == 4 and all(1e-4 <= lr <= 1 for lr in lrs)  # sampled log-uniformly, not the base 0.01
    assert {int(c.data.params["batch_size"]) for c in children} <= {16, 32}
    assert all(1e-6 <= float(c.data.params["weight_decay"]) <= 1e-2 for c in children)
    assert "best validation accuracy" in proc.stdout
    assert (tmp_path / "res" / "joint_search" / "best_vs_budget.png").stat().st_size > 5000


@pytest.mark.parametrize("args, message", [
    (["cyclic_lr", "--set", "lr_min=0.1", "--set", "lr_max=0.01"], "lr_min=0.1 must be below lr_max=0.01"),
    (["batch_size", "--set", "lr_min=0.001", "--set", "lr_max=0.1", "--set", "batch_max=1000"],
     "batch_max=1000 must be a power of two"),
    (["batch_size", "--preset", "cyclic-smoke", "--set", "lr_min=0.001", "--set", "lr_max=0.1"],
     "no batch-size range test"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, args, message):
    proc = run_script([script(args[0]), *args[1:], "--results-dir", "res"], cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "res").exists()
