"""Benchmark: early stopping with Optimus's loss model (`--scheduler optimus`) against ASHA and against none.

    PYTHONPATH=. python bench/stoppers.py                                  # quick preset, 3 sweeps: minutes
    PYTHONPATH=. python bench/stoppers.py --stop-margin 0.05 0.2           # optimus at two margins
    PYTHONPATH=. python bench/stoppers.py --preset smoke --set epochs=9    # seconds: a functional check

Runs the depth-vs-width study's preset three times in this process, the same grid and seed each time, with
`--scheduler fifo` (every trial to the end), `asha` and `optimus` (once per `--stop-margin`), each into its own results directory
under a temporary folder, then reads each sweep back from MLflow and prints one row per scheduler:
trials; epochs trained in total (the sum over trials of the epoch each ended at: the `stopped_at_epoch` tag);
wall time (the runner's `main()` call: Ray start-up, trials, figures); the best config (lowest final
test/rmse) and its metric; its rank among fifo's trials (1: the same best config as no stopping).
One run each, no repeats: run it on a quiet machine (the load average is printed), since trials of the same
sweep share the 2 cores and a busy machine slows every row.

Then it replays ASHA and optimus (the same settings) over the fifo sweep's recorded curves
(`python -m analysis replay`, analysis/replay_cli.py) and prints the replay's tables: what the replay predicts
beside what the live sweeps did. A live sweep that runs trials side by side (the default) feeds the scheduler
results in an interleaved order, the replay in the order the trials started: with `--max-concurrent 1` the
two orders are the same, and so are the decisions.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.records import load_sweep  # noqa: E402


def run_sweep(study, scheduler: str, preset: str, overrides: list[str], results: Path,
              margin: float | None = None, max_concurrent: int | None = None) -> tuple[float, object]:
    """One sweep through the runner; its wall time and its MLflow records."""
    from sweeps.runner import main

    argv = ["--preset", preset, "--scheduler", scheduler, "--seed", "0", "--results-dir", str(results)]
    argv += ["--max-concurrent", str(max_concurrent)] if max_concurrent else []
    argv += ["--stop-margin", str(margin)] if margin is not None else []
    argv += [arg for item in overrides for arg in ("--set", item)]
    started = time.perf_counter()
    code = main(study, argv)
    wall = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"the {scheduler} sweep exited {code}")
    return wall, load_sweep(study.name, tracking_uri=f"sqlite:///{results / 'mlflow.db'}")


def table(rows: dict[str, tuple[float, object]]) -> list[str]:
    from analysis.studies import load

    figures = load("depth_width")
    metric, ascending = figures.metric, figures.mode == "min"
    fifo = rows["fifo"][1].runs.sort_values(metric, ascending=ascending)["widths"].astype(str).tolist()
    lines = [f"{'scheduler':<14} {'trials':>6} {'stopped':>7} {'epochs':>7} {'wall s':>7}  "
             f"{'best widths':<14} {metric:>10} {'fifo rank':>9}"]
    for scheduler, (wall, sweep) in rows.items():
        runs = sweep.runs
        epochs = runs["stopped_at_epoch"].astype(int).sum()
        stopped = int((runs["trial_status"] == "stopped").sum())
        best = runs.sort_values(metric, ascending=ascending).iloc[0]
        widths = str(best["widths"])
        rank = fifo.index(widths) + 1 if widths in fifo else "-"
        lines.append(f"{scheduler:<14} {len(runs):>6} {stopped:>7} {epochs:>7} {wall:>7.1f}  "
                     f"{widths:<14} {best[metric]:>10.3f} {rank:>9}")
    return lines


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="quick", help="the depth_width preset to sweep (default quick; smoke to check)")
    p.add_argument("--stop-margin", type=float, nargs="+", default=[0.2], metavar="FRACTION",
                   help="optimus margins to run, one sweep each (default 0.2, the runner's default)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="a config override passed to every sweep (repeatable), e.g. epochs=9")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="trials at once in every sweep (1: the order the replay assumes; default: as many as fit)")
    args = p.parse_args()
    from analysis.replay_cli import main as replay
    from sweeps import depth_width

    logging.getLogger("ray").setLevel(logging.WARNING)
    load = os.getloadavg()[0]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for scheduler in ("fifo", "asha"):
            rows[scheduler] = run_sweep(depth_width.STUDY, scheduler, args.preset, args.overrides,
                                        Path(tmp) / scheduler, max_concurrent=args.max_concurrent)
        for margin in args.stop_margin:
            rows[f"optimus {margin:g}"] = run_sweep(depth_width.STUDY, "optimus", args.preset, args.overrides,
                                                    Path(tmp) / f"optimus-{margin:g}", margin, args.max_concurrent)
        lines = table(rows)
        print(f"\n== depth_width, preset {args.preset}{''.join(' --set ' + o for o in args.overrides)}, grid, "
              f"seed 0, max concurrent {args.max_concurrent or 'as many as fit'}; load average {load:.1f} at the "
              f"start, {os.getloadavg()[0]:.1f} at the end\n== live sweeps")
        print("\n".join(lines))
        fifo = str(Path(tmp) / "fifo")
        print("\n== the same schedulers replayed on the fifo sweep's records (python -m analysis replay)")
        replay(["depth_width", "--scheduler", "asha", "--results-dir", fifo])
        replay(["depth_width", "--scheduler", "optimus", "--results-dir", fifo,
                "--margin", ",".join(f"{m:g}" for m in args.stop_margin)])


if __name__ == "__main__":
    main()
