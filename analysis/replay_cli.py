"""`python -m analysis replay`: what an early-stopping scheduler would have saved on a finished fifo sweep.

    python -m analysis replay depth_width --scheduler asha                      # the sweep's own ASHA settings
    python -m analysis replay depth_width --scheduler asha --reduction-factor 2,3,4 --grace-period 1,5,20
    python -m analysis replay depth_width --scheduler optimus --margin 0.05,0.1,0.2
    python -m analysis replay depth_width --scheduler hyperband --reduction-factor 2,3
    python -m analysis replay STUDY --parent-run ID --results-dir DIR ...       # another sweep or store

Reads the sweep's recorded per-epoch curves of the study's metric (analysis/recorded_curves.py: the latest
sweep of the study unless --parent-run; every trial must have run to its end) and feeds them to the scheduler's
decision rule, once per setting (analysis/replay.py: Ray Tune's own ASHAScheduler and HyperBandScheduler, the
project's OptimusScheduler, called as Tune calls them). One row per setting:

- stopped: the trials it stops, and at which epoch (`widths=32-16@3`);
- epochs: the epochs the trials would have trained, against the full sweep's, and the share saved;
- device-s: the same in device-seconds, from each trial's per-epoch `cost/device_s` increments (else its
  `time/epoch_s`);
- best kept: the best trial among those it lets finish, its rank in the full sweep (1: the true best) and its
  gap to the true best, relative (0: it keeps the best).

Options give lists (comma-separated) and each combination is one setting. ASHA: --grace-period and
--reduction-factor (default: the sweep's own, from the parent run's `asha.grace_period` and
`asha.reduction_factor` params, else 1 and 3; max_t is the sweep's epochs); optimus: --margin (default
analysis.schedulers.DEFAULT_MARGIN); hyperband: --reduction-factor (default 3). A grace period beyond the
sweep's epochs is skipped with a note.

Writes the table to stdout and, under RESULTS_DIR/<study>/, `replay_<scheduler>.csv` (every row in full) and
`replay_<scheduler>.png` (epochs saved against the gap to the best, one labelled point per setting).
Bad input (no such sweep, a sweep with early-stopped or failed trials, a study whose trials are one-shot, an
unknown scheduler or study, a malformed option) prints one line `error: ...` on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

SCHEDULERS = ("asha", "optimus", "hyperband")
DEFAULT_GRACE, DEFAULT_REDUCTION = 1, 3  # ASHA's, when the sweep recorded none (Ray Tune's reduction factor)


class UsageError(ValueError):
    """Bad input on the command line: one line for stderr."""


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one `error: ...` line on stderr (exit 2), not usage plus a message."""

    def error(self, message: str):  # noqa: D401  (argparse's hook)
        raise UsageError(message)


def _list(cast: Callable, what: str) -> Callable[[str], list]:
    def parse(text: str) -> list:
        try:
            return [cast(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be comma-separated numbers, got {text!r}") from None
    return parse


def build_parser(studies: list[str]) -> argparse.ArgumentParser:
    p = _Parser(prog="python -m analysis replay",
                description="Replay an early-stopping scheduler over a finished fifo sweep's recorded curves.")
    p.add_argument("study", choices=studies, metavar="STUDY", help=f"one of: {', '.join(studies)}")
    p.add_argument("--scheduler", required=True, choices=SCHEDULERS)
    p.add_argument("--parent-run", default=None, help="the sweep's parent run ID (default: the study's latest)")
    p.add_argument("--results-dir", default="results", help="the default MLflow store and where output goes")
    p.add_argument("--grace-period", type=_list(int, "--grace-period"), default=None,
                   help="asha: epochs before a trial can be stopped, e.g. 1,5,20")
    p.add_argument("--reduction-factor", type=_list(float, "--reduction-factor"), default=None,
                   help="asha, hyperband: e.g. 2,3,4")
    p.add_argument("--margin", type=_list(float, "--margin"), default=None, help="optimus: e.g. 0.05,0.1,0.2")
    return p


@dataclass
class Setting:
    label: str  # e.g. "grace 1, rf 3"
    make: Callable  # () -> a fresh scheduler
    synchronous: bool  # HyperBand: pauses trials


def _number_text(x: float) -> str:
    return f"{x:g}"


def settings(args, sweep) -> tuple[list[Setting], list[str]]:
    """The settings to replay, and notes on those skipped."""
    from ray.tune.schedulers import ASHAScheduler, HyperBandScheduler

    from analysis.schedulers import DEFAULT_MARGIN, OptimusScheduler

    metric, mode, max_t = sweep.metric, sweep.mode, sweep.max_t
    notes: list[str] = []
    if args.scheduler == "asha":
        graces = args.grace_period or [int(float(sweep.params.get("asha.grace_period", DEFAULT_GRACE)))]
        factors = args.reduction_factor or [float(sweep.params.get("asha.reduction_factor", DEFAULT_REDUCTION))]
        notes = [f"grace period {g} skipped: the sweep's trials train {max_t} epochs" for g in graces if g > max_t]
        return [Setting(f"grace {grace}, rf {_number_text(factor)}",
                        lambda g=grace, f=factor: ASHAScheduler(time_attr="epoch", metric=metric, mode=mode,
                                                                max_t=max_t, grace_period=g, reduction_factor=f),
                        False)
                for grace, factor in itertools.product(graces, factors) if grace <= max_t], notes
    if args.scheduler == "optimus":
        return [Setting(f"margin {_number_text(m)}",
                        lambda m=m: OptimusScheduler(metric, mode, time_attr="epoch", max_t=max_t, margin=m), False)
                for m in (args.margin or [DEFAULT_MARGIN])], notes
    return [Setting(f"rf {_number_text(f)}",
                    lambda f=f: HyperBandScheduler(time_attr="epoch", metric=metric, mode=mode, max_t=max_t,
                                                   reduction_factor=f), True)
            for f in (args.reduction_factor or [DEFAULT_REDUCTION])], notes


def check_options(args) -> None:
    """UsageError for options that do not belong to the scheduler or are out of range."""
    if args.scheduler != "asha" and args.grace_period:
        raise UsageError("--grace-period is an asha option")
    if args.scheduler != "optimus" and args.margin:
        raise UsageError("--margin is an optimus option")
    if args.scheduler == "optimus" and args.reduction_factor:
        raise UsageError("--reduction-factor is an asha or hyperband option")
    if any(f <= 1 for f in args.reduction_factor or []):
        raise UsageError(f"--reduction-factor must be > 1, got {','.join(map(_number_text, args.reduction_factor))}")
    if any(g < 1 for g in args.grace_period or []):
        raise UsageError(f"--grace-period must be >= 1, got {','.join(map(str, args.grace_period))}")
    if any(m < 0 for m in args.margin or []):
        raise UsageError(f"--margin must be >= 0, got {','.join(map(_number_text, args.margin))}")


def _better(a: float, b: float, mode: str) -> bool:
    return a < b if mode == "min" else a > b


def epochs_trained(trial, stopped_at: int | None) -> int:
    """Epochs a trial trains under the scheduler: all of its curve, or up to the epoch it is stopped at (0 when
    it is stopped before its first)."""
    if stopped_at is None:
        return len(trial.epochs)
    return sum(1 for epoch in trial.epochs if epoch <= stopped_at)


def outcome(sweep, setting: Setting, stops: dict, names: dict[str, str]) -> dict:
    """One row of the table: what the setting stops, saves and keeps."""
    from analysis.recorded_curves import device_seconds

    trials, mode = sweep.trials, sweep.mode
    full_epochs = sum(len(t.epochs) for t in trials)
    ran = {t.run_id: epochs_trained(t, stops[t.run_id]) for t in trials}
    used_epochs = sum(ran.values())
    full_s = sum(device_seconds(t, len(t.epochs)) for t in trials)
    used_s = sum(device_seconds(t, ran[t.run_id]) for t in trials)
    stopped = [t for t in trials if stops[t.run_id] is not None]
    finals = {t.run_id: t.final for t in trials}
    finite = {k: v for k, v in finals.items() if not math.isnan(v)}
    kept = {k: v for k, v in finite.items() if stops[k] is None}
    row = {"setting": setting.label, "stopped": len(stopped), "trials": len(trials),
           "stopped_at": " ".join(f"{names[t.run_id]}@{stops[t.run_id]}" for t in stopped),
           "epochs_used": used_epochs, "epochs_full": full_epochs,
           "epochs_saved": 1 - used_epochs / full_epochs if full_epochs else math.nan,
           "device_s_used": used_s, "device_s_full": full_s,
           "best_kept": "-", "best_kept_metric": math.nan, "rank": math.nan, "gap": math.nan}
    if kept and finite:
        best_id = min(kept, key=lambda k: kept[k] if mode == "min" else -kept[k])
        true_best = min(finite.values()) if mode == "min" else max(finite.values())
        value = kept[best_id]
        row.update(best_kept=names[best_id], best_kept_metric=value,
                   rank=1 + sum(1 for v in finite.values() if _better(v, value, mode)),
                   gap=((value - true_best) if mode == "min" else (true_best - value)) / abs(true_best)
                   if true_best else math.nan)
    return row


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def print_table(rows: list[dict], metric: str) -> None:
    def num(x: float, spec: str) -> str:
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)

    table = [{"setting": r["setting"], "stopped": f"{r['stopped']}/{r['trials']}",
              "stopped at (epoch)": _short(r["stopped_at"] or "-", 48),
              "epochs used/full": f"{r['epochs_used']}/{r['epochs_full']} (-{r['epochs_saved']:.0%})",
              "device-s used/full": f"{num(r['device_s_used'], '.4g')}/{num(r['device_s_full'], '.4g')}",
              "best kept": r["best_kept"], metric: num(r["best_kept_metric"], ".4g"),
              "rank": num(r["rank"], ".0f"), "gap to best": num(r["gap"], ".2%")} for r in rows]
    columns = list(table[0])
    widths = {c: max(len(c), *(len(row[c]) for row in table)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in table:
        print("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())


def draw(rows: list[dict], sweep, scheduler: str, path: Path) -> Path:
    """Epochs saved against the gap to the true best, one numbered point per setting (settings that land on the
    same point share it), the settings listed beside the plot."""
    from analysis.plotting import plt, save_figure

    fig, (ax, key) = plt.subplots(1, 2, figsize=(11.0, 5.0), gridspec_kw={"width_ratios": [2.0, 1]})
    points: dict[tuple[float, float], list[int]] = {}
    lines = []
    for n, row in enumerate(rows, start=1):
        kept = not math.isnan(row["gap"])
        x, y = round(100 * row["epochs_saved"], 6), round(100 * row["gap"], 6) + 0.0 if kept else 0.0
        points.setdefault((x, y), []).append(n)
        ax.scatter([x], [y], s=45, zorder=3, color="tab:blue" if kept else "none",
                   edgecolors="tab:blue" if kept else "tab:red")
        gap = f"gap {100 * row['gap']:.2f}%" if kept else "no finished trial kept"
        lines.append(f"{n}. {row['setting']}: {row['stopped']}/{row['trials']} stopped,\n"
                     f"    {100 * row['epochs_saved']:.0f}% epochs saved, {gap}")
    for (x, y), numbers in points.items():
        ax.annotate(",".join(map(str, numbers)), (x, y), xytext=(5, 5), textcoords="offset points", fontsize=9,
                    fontweight="bold")
    ys = [y for _, y in points]
    ax.set_ylim(min(-0.5, min(ys) - 0.5), max(0.5, max(ys)) * 1.2 + 0.5)
    ax.set_xlim(min(-2.0, min(x for x, _ in points) - 2), max(10.0, max(x for x, _ in points) * 1.1 + 2))
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_xlabel("epochs saved against the full sweep (%)")
    ax.set_ylabel(f"gap of the best kept {sweep.metric}\nto the true best (%, relative; 0 = kept the best)")
    ax.set_title(f"{sweep.study}: {scheduler} replayed on sweep {sweep.parent_run_id[:8]} "
                 f"({len(sweep.trials)} trials, {sweep.max_t} epochs)", fontsize=10)
    ax.grid(True, alpha=0.3)
    key.axis("off")
    key.set_title("settings", fontsize=9, loc="left")
    key.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=8, family="monospace",
             transform=key.transAxes)
    return save_figure(fig, path)


CSV_COLUMNS = ["setting", "stopped", "trials", "stopped_at", "epochs_used", "epochs_full", "epochs_saved",
               "device_s_used", "device_s_full", "best_kept", "best_kept_metric", "rank", "gap"]


def run(args) -> int:
    """Replay the settings of `args` (parsed by `build_parser`); raises UsageError or ReplayError on bad input."""
    import pandas as pd

    from analysis.html_report import swept_keys
    from analysis.pareto import short_config
    from analysis.recorded_curves import read_curves
    from analysis.records import default_tracking_uri
    from analysis.replay import replay, replay_synchronous
    from analysis.studies import load

    check_options(args)
    study = load(args.study)
    results_dir = Path(args.results_dir)
    store = default_tracking_uri(results_dir)
    if store.startswith("sqlite:///") and not Path(store[len("sqlite:///"):]).is_file():
        raise UsageError(f"no MLflow store at {store} (run a sweep first, or give --results-dir)")
    sweep = read_curves(store, args.study, study.metric, study.mode, args.parent_run)
    chosen, notes = settings(args, sweep)
    if not chosen:
        raise UsageError("; ".join(notes) or "no setting to replay")
    keys = [k for k in swept_keys(sweep.params) if len({str(t.config.get(k)) for t in sweep.trials}) > 1]
    labels = {t.run_id: short_config({**t.config, "run_name": t.name}, keys).replace(" ", ",")
              for t in sweep.trials}
    rows = []
    for setting in chosen:
        play = replay_synchronous if setting.synchronous else replay
        rows.append(outcome(sweep, setting, play(setting.make(), sweep.trials, sweep.metric), labels))
    order = ("every trial added first, then run one at a time in the order HyperBand chooses"
             if args.scheduler == "hyperband" else "the trials one at a time in the order they ran")
    print(f"{args.study} sweep {sweep.parent_run_id}: {len(sweep.trials)} trials, {sweep.max_t} epochs, "
          f"{study.metric} ({study.mode}); {args.scheduler} replayed on {order}; device-s from {sweep.device_source}")
    for note in notes:
        print(f"note: {note}")
    print_table(rows, study.metric)
    out_dir = results_dir / args.study
    out_dir.mkdir(parents=True, exist_ok=True)
    table = out_dir / f"replay_{args.scheduler}.csv"
    pd.DataFrame(rows, columns=CSV_COLUMNS).to_csv(table, index=False)
    figure = draw(rows, sweep, args.scheduler, out_dir / f"replay_{args.scheduler}.png")
    print(f"wrote {table}, {figure}")
    return 0


def main(argv: list[str]) -> int:
    """The `replay` command: 0, or 2 with one `error: ...` line on stderr for bad input."""
    from analysis.studies import names

    try:
        args = build_parser(names()).parse_args(argv)  # before the heavy imports: --help stays quick
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from analysis.recorded_curves import ReplayError

    try:
        return run(args)
    except (UsageError, ReplayError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


__all__ = ["main", "run", "settings", "outcome", "build_parser", "SCHEDULERS"]
