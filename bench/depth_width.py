"""Benchmark of the depth-vs-width machinery, in one run on one machine.

    python bench/depth_width.py            # ~4 min on a 2-core CPU

(a) epoch time of the project's loop (in-memory tensors, index slices of a
    per-epoch randperm, one host sync per epoch) against a plain PyTorch loop over
    `DataLoader(TensorDataset, batch_size=1000, shuffle=True)`, for three networks,
    80k training points, batch 1000, both in this process with the same threads;
(b) sweep overhead: wall time of a whole sweep minus the sum of its trials'
    training time, for sweeps of 2 and 32 trivial trials (one at a time), split into
    a fixed start-up part and a per-trial part;
(c) recording cost at the paper preset's rate (one report per epoch): the time a
    trial spends blocked in `tune.report` (and checkpointing) and the driver's time
    in the MLflow recorder, each as a share of the training time.
Timed scopes: (a) training epochs only, mean of 5 after 1 warm-up; (b) the runner's
`main()` call; (c) as measured inside the trials and around the recorder's hooks.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.records import load_sweep  # noqa: E402
from trainables.data.eggholder import make_dataset  # noqa: E402
from trainables.training.population import build_population, data_generators  # noqa: E402
from trainables.studies.depth_width.config import RegressionConfig  # noqa: E402
from trainables.studies.depth_width.trial import build_regressor, train_one_epoch  # noqa: E402

NETWORKS = [(16,), (128, 128), (256, 128, 64)]


def plain_dataloader_epoch(model, optimizer, loader) -> float:
    model.train()
    total = 0.0
    for xb, yb in loader:
        loss = torch.nn.functional.mse_loss(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * len(xb)
    return total


def time_epochs(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - started) / repeats


def bench_loop() -> list[str]:
    data = make_dataset(100_000)
    x, y = torch.tensor(data["x_train"]), torch.tensor(data["y_train"])
    lines = [f"(a) epoch time, 80k points, batch 1000, {torch.get_num_threads()} threads "
             f"(mean of 5 epochs after a warm-up)",
             f"    {'network':<12} {'ours ms':>8} {'DataLoader ms':>14} {'speed-up':>9}"]
    for widths in NETWORKS:
        # the trial's loop trains a population; one replica is the single network the DataLoader loop trains
        population = build_population(lambda: build_regressor(RegressionConfig(widths=widths)), [0])
        opt = torch.optim.SGD(population.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        gens = data_generators([0])
        ours = time_epochs(lambda: train_one_epoch(population, opt, x, y, 1000, gens))
        model = build_regressor(RegressionConfig(widths=widths))
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
        loader = DataLoader(TensorDataset(x, y), batch_size=1000, shuffle=True)
        plain = time_epochs(lambda: plain_dataloader_epoch(model, opt, loader))
        name = "-".join(map(str, widths))
        lines.append(f"    {name:<12} {ours * 1e3:>8.1f} {plain * 1e3:>14.1f} {plain / ours:>8.2f}x")
    return lines


def run_sweep(study, argv: list[str], results: Path) -> tuple[float, object]:
    from sweeps.runner import main

    started = time.perf_counter()
    assert main(study, [*argv, "--results-dir", str(results)]) == 0
    wall = time.perf_counter() - started
    return wall, load_sweep(study.name, tracking_uri=f"sqlite:///{results / 'mlflow.db'}")


def bench_overhead(tmp: Path) -> list[str]:
    from sweeps import depth_width

    overheads = {}
    study = depth_width.STUDY
    for trials in (2, 32):
        argv = ["--preset", "smoke", "--set", "widths=16", "--set", f"seeds={trials}", "--set", "epochs=2",
                "--max-concurrent", "1", "--checkpoint-every", "0",
                "--population", "off"]  # one trial per seed: what each trial costs
        wall, sweep = run_sweep(study, argv, tmp / f"overhead{trials}")
        assert len(sweep.runs) == trials
        overheads[trials] = wall - sweep.runs["time/train_s"].sum()
    per_trial = (overheads[32] - overheads[2]) / 30
    fixed = overheads[2] - 2 * per_trial
    return ["(b) sweep overhead (wall time minus training time; one trial at a time, 1 CPU each)",
            f"    fixed start-up: {fixed:.1f} s   per extra trial: {per_trial:.3f} s   "
            f"(sweeps of 2 and 32 trials: {overheads[2]:.1f} s and {overheads[32]:.1f} s)"]


def bench_recording(tmp: Path) -> list[str]:
    from sweeps import depth_width, recording

    spent = {"s": 0.0}
    original = recording.MLflowRecorder

    class TimedRecorder(original):
        def on_trial_result(self, *a, **k):
            t = time.perf_counter()
            super().on_trial_result(*a, **k)
            spent["s"] += time.perf_counter() - t

        def on_trial_complete(self, *a, **k):
            t = time.perf_counter()
            super().on_trial_complete(*a, **k)
            spent["s"] += time.perf_counter() - t

    recording.MLflowRecorder = TimedRecorder
    try:
        study = dataclasses.replace(depth_width.STUDY)
        argv = ["--preset", "paper", "--set", "epochs=200", "--max-concurrent", "1",
                "--set", "widths=16", "--checkpoint-every", "10"]
        _, sweep = run_sweep(study, argv, tmp / "recording")
    finally:
        recording.MLflowRecorder = original
    row = sweep.runs.iloc[0]
    train_s, report_s = row["time/train_s"], row["time/report_s"]
    return ["(c) recording cost, paper data (80k points), 1 report per epoch, checkpoint every 10 epochs, "
            "network 16 (the fastest epoch, so the worst case)",
            f"    epoch {train_s / 200 * 1e3:.1f} ms; blocked in tune.report + checkpoints: "
            f"{report_s / train_s:.2%} of training time; driver time in the MLflow recorder: "
            f"{spent['s'] / train_s:.2%}"]


def main() -> None:
    torch.set_num_threads(2)
    lines = bench_loop()
    with tempfile.TemporaryDirectory() as tmp:
        lines += bench_overhead(Path(tmp))
        lines += bench_recording(Path(tmp))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
