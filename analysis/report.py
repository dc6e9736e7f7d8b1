"""Turn a sweep's MLflow records into its figures and tables, and log them back.

Used at the end of every sweep and by `python -m analysis STUDY`, so the figures
a sweep shows are always the ones its records can regenerate. Given the study's metric
and mode, every sweep with trials also gets the overview figures of analysis/overview.py (parallel
coordinates, importances, best so far, and the metric against cost with its Pareto front, analysis/pareto.py;
a figure with nothing to say is replaced by a sentence, `overview_notes`). `publish_report` then writes the
sweep's self-contained HTML page (analysis/html_report.py) and logs it to the parent run as report/report.html.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from analysis.records import Sweep, log_artifacts


def render(sweep: Sweep, figures: Callable[[pd.DataFrame, Path], list[Path]], out_dir: str | Path,
           metric: str | None = None, mode: str = "min") -> list[Path]:
    """Write the study's PNGs and a CSV of all trials to `out_dir`, and log them to the parent run. With the
    study's `metric` (and `mode`), the overview figures follow the study's own; a failure there prints one
    warning line and the sweep goes on. Analysis-only steps (no trials) get no overview."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in figures(sweep.runs, out_dir)]
    if metric and not sweep.runs.empty and sweep.parent.data.tags.get("analysis_only") != "1":
        try:
            from analysis.overview import draw_overview

            paths += draw_overview(sweep, metric, mode, out_dir)
        except Exception as e:  # noqa: BLE001  (an overview must never fail a sweep)
            print(f"warning: overview figures not drawn: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    table = out_dir / "trials.csv"
    sweep.runs.to_csv(table, index=False)
    log_artifacts(sweep.tracking_uri, sweep.parent_run_id, paths, "figures")
    log_artifacts(sweep.tracking_uri, sweep.parent_run_id, [table], "tables")
    return paths + [table]


def publish_report(sweep: Sweep, study, summary_text: str, paths: list[Path], out_dir: str | Path) -> Path | None:
    """Write `out_dir/report.html` (analysis/html_report.py: the figures among `paths`, the trials, `summary_text`
    as printed) and log it to the parent run under report/. A failure prints one warning line and returns None:
    a finished sweep never fails for its report."""
    try:
        from analysis.html_report import write_report

        path = write_report(sweep, study, summary_text, paths, out_dir)
        log_artifacts(sweep.tracking_uri, sweep.parent_run_id, [path], "report")
        return path
    except Exception as e:  # noqa: BLE001  (a report must never fail a sweep)
        print(f"warning: HTML report not written: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
        return None


def status_counts(runs: pd.DataFrame) -> str:
    if runs.empty or "trial_status" not in runs:
        return "0 trials"
    counts = runs["trial_status"].value_counts()
    parts = [f"{counts.get(k, 0)} {k}" for k in ("finished", "stopped", "diverged", "error") if counts.get(k, 0)]
    return f"{len(runs)} trials ({', '.join(parts) or 'none ended'})"
