"""`python -m analysis list [STUDY] [--results-dir DIR]`: every sweep in the store, newest first.

One row per sweep: study, parent run ID, date, preset, search/scheduler, trials finished/stopped/diverged/errored,
the best value of the study's metric (from analysis/studies/<study>.py; "-" for a study without figures there or a
sweep without a finite value), its cost (analysis/costs.py `sweep_cost`: device-hours as GPU-h or CPU-h, dollars
when priced, wall-clock minutes; "-" for each the sweep did not record, as in stores written before the cost keys)
and the folder of its figures. An empty store prints one line and exits 0; a missing --results-dir (or an
unreadable store) exits 2 with one `error: ...` line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from pathlib import Path

STATUSES = ("finished", "stopped", "diverged", "error")
COLUMNS = ["study", "parent run", "date", "preset", "search/scheduler", "fin/stop/div/err", "best", "device-h",
           "usd", "wall min", "figures"]


def sweep_rows(tracking_uri: str, results_dir: Path, only: str | None) -> list[dict]:
    """One dict per sweep (COLUMNS, plus its start time), newest first."""
    from mlflow.tracking import MlflowClient

    from analysis.costs import sweep_cost
    from analysis.records import PARENT_TAG
    from analysis.studies import load, names

    client = MlflowClient(tracking_uri)
    rows = []
    for experiment in client.search_experiments():
        study = experiment.name
        if only and study != only:
            continue
        metric, mode = None, None
        if study in names():
            found = load(study)
            metric, mode = found.metric, found.mode
        runs = client.search_runs([experiment.experiment_id], max_results=50_000)
        children: dict[str, list] = {}
        for run in runs:
            parent_id = run.data.tags.get("mlflow.parentRunId")
            if parent_id:
                children.setdefault(parent_id, []).append(run)
        for parent in runs:
            tags = parent.data.tags
            if tags.get(PARENT_TAG) != "1":
                continue
            trials = children.get(parent.info.run_id, [])
            counts = {s: sum(1 for t in trials if t.data.tags.get("trial_status") == s) for s in STATUSES}
            best = "-"
            if metric:
                values = [t.data.metrics[metric] for t in trials
                          if metric in t.data.metrics and math.isfinite(t.data.metrics[metric])
                          and abs(t.data.metrics[metric]) < 1e308]  # MLflow stores inf as the largest float
                if values:
                    best = f"{metric} {(max if mode == 'max' else min)(values):.4g} ({mode})"
            figures = results_dir / study
            rows.append({
                "study": study, "parent run": parent.info.run_id, "start": parent.info.start_time,
                "date": dt.datetime.fromtimestamp(parent.info.start_time / 1000).strftime("%Y-%m-%d %H:%M"),
                "preset": tags.get("preset", "-"),
                "search/scheduler": ("analysis only" if tags.get("analysis_only") == "1"
                                     else f"{tags.get('search', '-')}/{tags.get('scheduler', '-')}"),
                "fin/stop/div/err": "/".join(str(counts[s]) for s in STATUSES),
                "best": best, **sweep_cost(parent), "figures": f"{figures}/" if figures.is_dir() else "-",
            })
    rows.sort(key=lambda r: r["start"], reverse=True)
    return rows


def list_sweeps(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis list",
                                     description="the sweeps in the store, newest first")
    parser.add_argument("study", nargs="?", default=None, help="only this study's sweeps")
    parser.add_argument("--results-dir", default="results", help="where figures are and the default MLflow store is")
    args = parser.parse_args(argv)
    from analysis.records import default_tracking_uri

    results_dir = Path(args.results_dir)
    tracking_uri = default_tracking_uri(results_dir)
    if tracking_uri.startswith("sqlite:///"):
        if not results_dir.is_dir():
            print(f"error: no results directory {results_dir} (run a sweep first, or give --results-dir)",
                  file=sys.stderr)
            return 2
        if not Path(tracking_uri[len("sqlite:///"):]).exists():
            print(f"no sweeps in {tracking_uri} (no store yet)")
            return 0
    try:
        rows = sweep_rows(tracking_uri, results_dir, args.study)
    except Exception as e:  # noqa: BLE001  (an unreachable or unreadable store)
        print(f"error: {tracking_uri}: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    if not rows:
        print(f"no sweeps{' of ' + args.study if args.study else ''} in {tracking_uri}")
        return 0
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in COLUMNS}
    print("  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip())
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in COLUMNS).rstrip())
    return 0


__all__ = ["list_sweeps", "sweep_rows", "COLUMNS"]
