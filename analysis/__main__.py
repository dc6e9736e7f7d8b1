"""Regenerate a study's figures and tables from its MLflow records alone (no training).

    python -m analysis depth_width                      # latest sweep of the study
    python -m analysis depth_width --parent-run RUN_ID  # a given sweep
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from analysis.records import RecordsError, default_tracking_uri, load_sweep
from analysis.report import render, status_counts
from sweeps.registry import STUDIES, load_study  # the one study registry (each study names its figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.split("\n")[1])
    parser.add_argument("study", choices=sorted(STUDIES))
    parser.add_argument("--parent-run", default=None, help="the sweep's parent run id (default: the latest sweep)")
    parser.add_argument("--results-dir", default="results", help="where figures go and the default MLflow store is")
    args = parser.parse_args(argv)
    study = load_study(args.study)
    try:
        sweep = load_sweep(args.study, args.parent_run, default_tracking_uri(args.results_dir))
    except (RecordsError, Exception) as e:  # noqa: BLE001  (an unknown run id raises MlflowException)
        print(f"error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    paths = render(sweep, study.figures, Path(args.results_dir) / args.study)
    print(f"{args.study}, sweep {sweep.parent_run_id}: {status_counts(sweep.runs)}")
    print(study.summary(sweep.runs))
    print("wrote " + ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
