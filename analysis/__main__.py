"""Regenerate a study's figures, tables and HTML report from its records alone (no training), or list the sweeps.

    python -m analysis depth_width                      # latest sweep of the study
    python -m analysis depth_width --parent-run RUN_ID  # a given sweep
    python -m analysis list                             # every sweep in the store, newest first
    python -m analysis list depth_width                 # the sweeps of one study

`list` prints one row per sweep: study, parent run ID, date, preset, search/scheduler, trials finished/
stopped/diverged/errored, the best value of the study's metric (from analysis/studies/<study>.py; "-" for a study
without figures there or a sweep without a finite value) and the folder of its figures. An empty store prints one line
and exits 0; a missing --results-dir (or store) exits 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from pathlib import Path

from analysis.records import PARENT_TAG, RecordsError, default_tracking_uri, load_sweep
from analysis.report import publish_report, render, status_counts
from analysis.studies import load, names  # each study's figures, found without importing the sweeps

STATUSES = ("finished", "stopped", "diverged", "error")


def _sweep_rows(tracking_uri: str, results_dir: Path, only: str | None) -> list[dict]:
    from mlflow.tracking import MlflowClient

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
                "best": best, "figures": f"{figures}/" if figures.is_dir() else "-",
            })
    rows.sort(key=lambda r: r["start"], reverse=True)
    return rows


def list_sweeps(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis list", description="the sweeps in the store, newest first")
    parser.add_argument("study", nargs="?", default=None, help="only this study's sweeps")
    parser.add_argument("--results-dir", default="results", help="where figures are and the default MLflow store is")
    args = parser.parse_args(argv)
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
        rows = _sweep_rows(tracking_uri, results_dir, args.study)
    except Exception as e:  # noqa: BLE001  (an unreachable or unreadable store)
        print(f"error: {tracking_uri}: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    if not rows:
        print(f"no sweeps{' of ' + args.study if args.study else ''} in {tracking_uri}")
        return 0
    columns = ["study", "parent run", "date", "preset", "search/scheduler", "fin/stop/div/err", "best", "figures"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns).rstrip())
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["list"]:  # "list" is no study name (sweeps/registry.py)
        return list_sweeps(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.split("\n")[1],
                                     epilog="python -m analysis list [STUDY]: the sweeps in the store")
    parser.add_argument("study", choices=names())
    parser.add_argument("--parent-run", default=None, help="the sweep's parent run id (default: the latest sweep)")
    parser.add_argument("--results-dir", default="results", help="where figures go and the default MLflow store is")
    args = parser.parse_args(argv)
    try:
        sweep = load_sweep(args.study, args.parent_run, default_tracking_uri(args.results_dir))
    except (RecordsError, Exception) as e:  # noqa: BLE001  (an unknown run id raises MlflowException)
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    study = load(args.study, question=sweep.parent.data.tags.get("sweep.question", ""))
    out_dir = Path(args.results_dir) / args.study
    paths = render(sweep, study.figures, out_dir, study.metric, study.mode)
    summary = f"{args.study}, sweep {sweep.parent_run_id}: {status_counts(sweep.runs)}\n{study.summary(sweep.runs)}"
    print(summary)  # the same string the HTML report shows
    report = publish_report(sweep, study, summary, paths, out_dir)
    print("wrote " + ", ".join(map(str, paths + ([report] if report is not None else []))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
