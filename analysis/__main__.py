"""The analysis command line: a study's figures, tables and HTML report from its records alone (no training),
the list of sweeps, and scheduler replays.

    python -m analysis                                  # this help: the commands and the studies
    python -m analysis depth_width                      # redraw the latest sweep of the study
    python -m analysis depth_width --parent-run RUN_ID  # a given sweep
    python -m analysis list [STUDY]                     # every sweep in the store, newest first (analysis/listing.py)
    python -m analysis replay STUDY --scheduler asha    # what a scheduler would have saved (analysis/replay_cli.py)

The help is printed before mlflow, pandas or matplotlib are imported, so it takes a fraction of a second.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.studies import names  # each study's figures, found without importing them or the sweeps

COMMANDS = {
    "STUDY": "redraw a sweep's figures, tables and HTML report from its records "
             "([--parent-run ID] [--results-dir DIR])",
    "list": "the sweeps in the store, newest first, with their cost ([STUDY] [--results-dir DIR])",
    "replay": "replay a scheduler (asha, optimus, hyperband) over a finished fifo sweep's curves "
              "(STUDY --scheduler NAME [options]; replay --help)",
}


def usage() -> str:
    lines = ["usage: python -m analysis {STUDY,list,replay} ...", "", "commands:"]
    lines += [f"  {name:<8} {text}" for name, text in COMMANDS.items()]
    lines += ["", "studies:", "  " + " ".join(names())]
    return "\n".join(lines)


def redraw(argv: list[str]) -> int:
    """`python -m analysis STUDY`: the study's figures, CSV and HTML report from the sweep's records."""
    parser = argparse.ArgumentParser(prog="python -m analysis", description=COMMANDS["STUDY"])
    parser.add_argument("study", choices=names())
    parser.add_argument("--parent-run", default=None, help="the sweep's parent run id (default: the latest sweep)")
    parser.add_argument("--results-dir", default="results", help="where figures go and the default MLflow store is")
    args = parser.parse_args(argv)

    from analysis.overview import overview_notes
    from analysis.records import RecordsError, default_tracking_uri, load_sweep
    from analysis.report import publish_report, render, status_counts
    from analysis.studies import load

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
    if not sweep.runs.empty and sweep.parent.data.tags.get("analysis_only") != "1":
        for note in overview_notes(sweep, study.metric, study.mode):  # also on the HTML report
            print(f"note: {note}")
    report = publish_report(sweep, study, summary, paths, out_dir)
    print("wrote " + ", ".join(map(str, paths + ([report] if report is not None else []))))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] == "list":  # "list" and "replay" are no study names (sweeps/registry.py)
        from analysis.listing import list_sweeps

        return list_sweeps(argv[1:])
    if argv[0] == "replay":
        from analysis.replay_cli import main as replay

        return replay(argv[1:])
    return redraw(argv)


if __name__ == "__main__":
    sys.exit(main())
