"""Data-parallel trials (trainables/runtime/ddp.py) on real Ray: a two-node local cluster, worker failures.

Each DDP trial costs ~20 s of start-up on 2 CPUs (worker processes import torch, Gloo rendezvous).
"""

from __future__ import annotations


import pytest
from mlflow.tracking import MlflowClient

from analysis.records import load_sweep
from fake_datasets import make_mnist
from sweeps.study import Preset, Study, image_trial
from trainables.image.config import ClassifyConfig, plain_trial

# This module is also the test study's figures (Study.figures): its metric, and no figures.
METRIC, MODE = "test/accuracy", "max"


def figures(runs, out_dir) -> list:
    return []


def summary(runs) -> str:
    return ""


def _study(epochs: int) -> Study:
    return Study(
        name="ddp_test", doc="a DDP trial of LeNet-5 on fake FashionMNIST", config=ClassifyConfig,
        trial=image_trial(plain_trial), figures="test_ddp",
        presets={"smoke": Preset("one trial", config={"dataset": "fashion_mnist", "model": "lenet5",
                                                      "epochs": epochs, "batch_size": 16, "lr": 0.05})},
        default_preset="smoke",
    )


def _run(tmp_path, args: list[str], epochs: int):
    from sweeps.runner import main

    make_mnist(tmp_path / "data", "FashionMNIST", n_train=256, n_test=64, learnable=True)
    code = main(_study(epochs), ["--results-dir", str(tmp_path / "res"), "--set", f"data_dir={tmp_path / 'data'}",
                                 "--checkpoint-every", "1", *args])
    assert code == 0
    uri = f"sqlite:///{tmp_path / 'res' / 'mlflow.db'}"
    sweep = load_sweep("ddp_test", tracking_uri=uri)
    return sweep, MlflowClient(uri)


def _history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.mark.slow
def test_two_node_ddp_trial_keeps_replicas_identical(tmp_path, clean_env):
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        sweep, client = _run(tmp_path, ["--address", cluster.address, "--workers", "2"], epochs=3)
    finally:
        cluster.shutdown()
    assert len(sweep.runs) == 1  # one child run for the trial: no run from any worker
    run = sweep.runs.iloc[0]
    assert run["trial_status"] == "finished"
    assert str(run["ddp.workers"]) == "2" and run["ddp.backend"] == "gloo"
    assert run["ddp/nodes"] == 2  # rank 0 on the head, rank 1 on the added node
    assert run["ddp/replicas_identical"] == 1.0  # bit-identical weights on both ranks after training
    losses = _history(client, run["run_id"], "train/loss")
    assert [step for step, _ in losses] == [1, 2, 3]
    assert losses[-1][1] < losses[0][1]
    # the epoch's images are the whole epoch's (both shards), not rank 0's half
    images = run["perf/images_per_s"] * run["time/epoch_s"]
    assert images == pytest.approx(256, abs=1)


@pytest.mark.slow
def test_ddp_trial_killed_midway_resumes_from_its_checkpoint(tmp_path, clean_env, monkeypatch):
    from conftest import faults

    marker = tmp_path / "fault-fired"
    for key, value in faults(DLSWEEPS_DDP_FAULT=f"exit:2:1:{marker}").items():  # rank 1 dies after epoch 2
        monkeypatch.setenv(key, value)
    sweep, client = _run(tmp_path, ["--workers", "2", "--max-failures", "1"], epochs=4)
    assert marker.exists()
    assert len(sweep.runs) == 1
    run = sweep.runs.iloc[0]
    assert run["trial_status"] == "finished"
    # epochs 1-4 recorded once each (an epoch replayed after the restart is not written again)
    assert [step for step, _ in _history(client, run["run_id"], "train/loss")] == [1, 2, 3, 4]
    # The restarted workers resumed from the last checkpoint the controller had registered when rank 1
    # died: epoch 2's, or epoch 1's if rank 1 died before its epoch-2 report was collected (then epoch 2
    # itself was recorded from the restarted run). Either way, never from scratch, and no epoch before its
    # own checkpoint.
    resumed = dict(_history(client, run["run_id"], "ddp/resumed_at"))
    assert resumed[1] == 0 and resumed[4] in (1.0, 2.0)
    assert list(resumed.values()) == sorted(resumed.values()) and all(resumed[e] < e for e in resumed)
    assert run["ddp/replicas_identical"] == 1.0


def test_bad_ddp_flags_fail_before_anything_is_created(tmp_path, clean_env):
    from conftest import ROOT, run_script

    make_mnist(tmp_path / "data", "FashionMNIST")  # the data loads (before Ray starts), then the size check
    data = ["--set", f"data_dir={tmp_path / 'data'}"]
    for study, flags, message in (
            ("lr_range", ["--workers", "0", *data], "--workers 0 must be at least 1"),
            ("scaling", ["--workers", "2"], "--workers: scaling sets each trial's workers itself"),
            ("scaling", ["--ddp-backend", "nccl"], "nccl needs GPUs"),
            ("lr_range", ["--workers", "1000", *data], "a trial of 1000 DDP workers (1 CPU, 0 GPU each) needs 1000 CPUs"),
            ("transfer", ["--workers", "2"], "--workers: transfer's trials do not train data-parallel")):
        script = str(ROOT / "sweeps" / f"{study}.py")
        proc = run_script([script, "--preset", "smoke", "--results-dir", "res", *flags], cwd=tmp_path, timeout=60)
        assert proc.returncode == 2 and message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "res").exists()


def test_shards_are_distinct_and_cover_the_epoch():
    import torch

    from trainables.training.classify import train_one_epoch
    from trainables.data.vision import TensorSplit

    class Recorder(torch.nn.Module):  # each image's single pixel is its sample id: record what a rank sees
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))
            self.seen: list[int] = []

        def forward(self, x):
            self.seen += x.flatten().long().tolist()
            return torch.zeros(len(x), 10) + self.w

    n = 103
    split = TensorSplit(torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1), torch.arange(n) % 10)
    seen = []
    for epoch_seed in (5, 6):
        per_rank = []
        for rank in range(2):
            model = Recorder()
            stats = train_one_epoch(model, torch.optim.SGD(model.parameters(), lr=0.1), split, 8,
                                    torch.Generator().manual_seed(epoch_seed), augment=lambda x, y, generator: (x.float(), y),
                                    shard=(rank, 2))
            assert stats["samples"] == 51 and len(model.seen) == 51
            per_rank.append(model.seen)
        assert not set(per_rank[0]) & set(per_rank[1]) and len(set(per_rank[0]) | set(per_rank[1])) == 102
        seen.append(per_rank[0])
    assert seen[0] != seen[1]  # another permutation, another shard


def _hook_worker(rank: int, world: int, hook: str, port: int, out_dir: str) -> None:
    import os

    import torch
    import torch.distributed as dist

    from trainables.runtime.ddp import Distributed
    from trainables.models.registry import build_model

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model("resnet20", num_classes=10, in_channels=1)  # BatchNorm, and more than one DDP bucket
    distributed = Distributed(rank, world, torch.device("cpu"), hook)
    net = distributed.wrap(model)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    generator = torch.Generator().manual_seed(rank)  # each rank its own batches
    losses = []
    for _ in range(6):  # PowerSGD compresses from its third step on
        x, y = torch.randn(16, 1, 28, 28, generator=generator), torch.randint(0, 10, (16,), generator=generator)
        loss = torch.nn.functional.cross_entropy(net(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    params_same = distributed.replicas_identical(dict(model.named_parameters()))
    distributed.sync_buffers(model)
    state_same = distributed.replicas_identical(model.state_dict())
    torch.save({"params": params_same, "state": state_same, "losses": losses}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.parametrize("hook", ["allreduce", "fp16", "bf16", "powersgd"])
def test_comm_hooks_on_gloo_keep_replicas_identical(tmp_path, hook):
    """Every hook the scaling study compares runs on Gloo with several buckets in flight (PowerSGD's
    chained all-reduces used to cross between buckets and abort a rank), and after the epoch's
    BatchNorm statistics are averaged both ranks hold the same model, buffers included."""
    import socket

    import torch
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_hook_worker, args=(2, hook, port, str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for result in results:
        assert result["params"] and result["state"], (hook, result)
        assert all(map(torch.isfinite, torch.tensor(result["losses"])))


def test_the_studies_that_take_workers_are_those_the_readme_lists():
    """Only studies whose trials train data-parallel (the image-classification loop) take --workers."""
    from conftest import ROOT
    from sweeps.registry import STUDIES, load_study

    studies = [load_study(name) for name in STUDIES]
    flag_row = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `--workers N`"))
    listed = flag_row.split("image-classification loop take it (")[1].split(";")[0].split(", ")
    assert sorted(listed) == sorted(s.name for s in studies if s.trial.data_parallel)
