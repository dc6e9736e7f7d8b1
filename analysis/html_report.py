"""One self-contained HTML page per sweep: results/<study>/report.html, also logged to the parent run.

    from analysis.html_report import write_report
    path = write_report(sweep, study, summary_text, figure_paths, out_dir)   # -> out_dir / "report.html"

Written at the end of every sweep (sweeps/parent.py `finish`, analysis-only steps included) and by `python -m
analysis STUDY`, from the records alone: the study's question (recorded on the parent run as `sweep.question`), the
command line (`python sweeps/<study>.py` + the parent run's `sweep.argv` tag), the versions recorded on the parent
run (git commit, python/torch/ray/mlflow), the summary text the terminal printed (the caller passes the very string
it printed), every figure (with a sentence for each overview figure a sweep does not get, e.g. no importance figure
when one parameter is swept), the Pareto front of the metric against cost as a small table (analysis/pareto.py), and
the trials table (swept keys, the study's metric, trial_status, stopped_at_epoch; best first), with a link to the
full trials.csv next to the page.

Figures are embedded as base64 `data:image/png` URIs, so the one file opens anywhere: from disk, or in the
MLflow UI's artifact view (a sandboxed iframe that cannot resolve relative paths). No external CSS, JS or
fonts. All text is escaped. Expect about the size of the PNGs times 4/3 (a staleness smoke sweep, 6 figures:
0.33 MB).
On load, a small inline script counts the images that did not decode and writes `data-images="N"` and
`data-broken-images="K"` on <body>, with a visible warning when K > 0 (tests/test_html_report.py reads them).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import math
import shlex
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

REPORT_NAME = "report.html"
STATUS_COLUMNS = ("trial_status", "stopped_at_epoch")
VERSION_TAGS = ("git_commit", "git_dirty", "version.python", "version.torch", "version.ray", "version.mlflow", "host")
MAX_ROWS = 500  # the table shows at most this many trials; trials.csv has them all

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5em auto; max-width: 1150px;
       padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.15em; margin-top: 1.6em;
     border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.question { font-size: 1.1em; color: #333; }
pre, code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 0.88em; }
pre { background: #f6f8fa; padding: 0.7em; overflow-x: auto; white-space: pre-wrap; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ddd; padding: 0.2em 0.5em; text-align: right; }
th { background: #f0f0f0; position: sticky; top: 0; } td.text { text-align: left; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.1em 1em; font-size: 0.9em; }
dl.meta dt { color: #666; } dl.meta dd { margin: 0; font-family: ui-monospace, monospace; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #666; }
#broken { display: none; background: #b00020; color: white; padding: 0.6em; font-weight: bold; }
"""

# Counts images that did not decode (naturalWidth 0) once everything has loaded; a browser test reads the result.
_SCRIPT = """
window.addEventListener("load", function () {
  var images = document.images, broken = 0;
  for (var i = 0; i < images.length; i++) {
    if (!images[i].complete || images[i].naturalWidth === 0) broken++;
  }
  document.body.setAttribute("data-images", String(images.length));
  document.body.setAttribute("data-broken-images", String(broken));
  if (broken > 0) {
    var banner = document.getElementById("broken");
    banner.textContent = "warning: " + broken + " of " + images.length + " figures did not load";
    banner.style.display = "block";
  }
});
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def command_line(study_name: str, tags: dict[str, str]) -> str:
    """The command that ran the sweep, from its `sweep.argv` tag (a JSON list), shell-quoted."""
    try:
        argv = json.loads(tags["sweep.argv"])
    except (KeyError, ValueError):
        return f"python sweeps/{study_name}.py  (arguments not recorded)"
    return " ".join(["python", f"sweeps/{study_name}.py", *map(shlex.quote, map(str, argv))])


def swept_keys(params: dict[str, str]) -> list[str]:
    """The config keys a sweep varied: its parent's `space.*` params, and the keys of `space.points`."""
    keys = [k[len("space."):] for k in params if k.startswith("space.") and k != "space.points"]
    try:
        for point in json.loads(params.get("space.points", "[]")):
            keys += [k for k in point if k not in keys]
    except (ValueError, TypeError, AttributeError):  # truncated at 6000 characters: the keys we can still read
        pass
    return keys


def table_columns(runs: pd.DataFrame, params: dict[str, str], metric: str | None) -> list[str]:
    """The trials table's columns: the trial's name, the swept keys, the study's metric, then the status columns;
    only those present in `runs`."""
    wanted = ["run_name", *swept_keys(params), *([metric] if metric else []), *STATUS_COLUMNS]
    seen: list[str] = []
    for column in wanted:
        if column in runs.columns and column not in seen:
            seen.append(column)
    return seen


def _cell(value: Any) -> tuple[str, bool]:
    """(text, is_text) of one table cell: numbers to 4 significant digits, missing values as blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", False
    if isinstance(value, bool):
        return str(value), True
    if isinstance(value, float):
        if abs(value) >= 1e308:  # MLflow stores inf as the largest float
            value = math.copysign(math.inf, value)
        return f"{value:.4g}", False
    if isinstance(value, int):
        return str(value), False
    try:  # tags are strings: stopped_at_epoch "3" is still a number
        float(value)
        return str(value), False
    except (TypeError, ValueError):
        return str(value), True


def trials_table(runs: pd.DataFrame, params: dict[str, str], metric: str | None, mode: str = "min") -> str:
    """The trials as an HTML table (best first by the study's metric), or a line saying there are none."""
    if runs.empty:
        return "<p>No trials (an analysis-only step records its values on the parent run).</p>"
    columns = table_columns(runs, params, metric)
    shown = runs
    if metric and metric in runs.columns:
        shown = runs.sort_values(metric, ascending=(mode != "max"), na_position="last", kind="stable")
    note = ""
    if len(shown) > MAX_ROWS:
        note = f"<p>First {MAX_ROWS} of {len(shown)} trials; trials.csv has them all.</p>"
        shown = shown.head(MAX_ROWS)
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    rows = []
    for record in shown[columns].to_dict("records"):
        cells = []
        for column in columns:
            text, is_text = _cell(record[column])
            cells.append(f'<td class="text">{_e(text)}</td>' if is_text else f"<td>{_e(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"{note}<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _figure(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(path.name)}">'
            f"<figcaption>{_e(path.name)}</figcaption></figure>")


def _simple_table(table: pd.DataFrame) -> str:
    """A small DataFrame as an HTML table (cells as in the trials table)."""
    head = "".join(f"<th>{_e(c)}</th>" for c in table.columns)
    rows = []
    for record in table.to_dict("records"):
        cells = []
        for value in record.values():
            text, is_text = _cell(value)
            cells.append(f'<td class="text">{_e(text)}</td>' if is_text else f"<td>{_e(text)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def overview_sections(sweep, metric: str | None, mode: str) -> tuple[str, str]:
    """(notes, front) HTML: a list of the sentences saying why an overview figure was not drawn
    (analysis.overview.overview_notes), and the Pareto front of accuracy against cost as a small table
    (analysis.pareto.front_table). Empty strings for an analysis-only step or a study without a metric; a part
    that fails says so in one line instead of failing the page."""
    if not metric or sweep.runs.empty or sweep.parent.data.tags.get("analysis_only") == "1":
        return "", ""
    try:
        from analysis.overview import overview_notes

        notes = overview_notes(sweep, metric, mode)
        notes_html = ('<ul id="figure-notes">' + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>"
                      if notes else "")
    except Exception as e:  # noqa: BLE001  (the page is still written)
        notes_html = f"<p>Notes on the figures not available: {_e(type(e).__name__)}</p>"
    try:
        from analysis.pareto import front_table

        front = front_table(sweep, metric, mode)
        front_html = ("" if front.empty else
                      f'<h2>Accuracy against cost: the Pareto front ({len(front)})</h2>\n'
                      f"<p>The finished trials no other finished trial beats on both {_e(metric)} and cost, "
                      f'cheapest first (overview_pareto.png).</p>\n<div id="pareto-front">{_simple_table(front)}</div>')
    except Exception as e:  # noqa: BLE001
        front_html = f"<p>Pareto front not available: {_e(type(e).__name__)}</p>"
    return notes_html, front_html


def write_report(sweep, study, summary_text: str, figure_paths: Iterable[str | Path], out_dir: str | Path) -> Path:
    """Write `out_dir/report.html` for `sweep` (analysis.records.Sweep) of `study`
    (analysis.studies.StudyFigures) and return its path. `summary_text` is shown as given (the caller prints the same string); `figure_paths` are PNGs,
    embedded in order (anything not ending in .png is skipped)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parent = sweep.parent
    tags, params = parent.data.tags, parent.data.params
    figures = [Path(p) for p in figure_paths if str(p).lower().endswith(".png")]
    started = dt.datetime.fromtimestamp(parent.info.start_time / 1000).strftime("%Y-%m-%d %H:%M:%S")
    meta = {"parent run": parent.info.run_id, "started": started, "preset": tags.get("preset", "-"),
            "search / scheduler": ("analysis only" if tags.get("analysis_only") == "1"
                                   else f"{tags.get('search', '-')} / {tags.get('scheduler', '-')}"),
            "tracking store": sweep.tracking_uri}
    meta.update({key: tags[key] for key in VERSION_TAGS if key in tags})
    meta.update({key: value for key, value in sorted(tags.items())
                 if key.startswith("version.") and key not in meta})
    meta_html = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in meta.items())
    metric = study.metric
    figures_html = "".join(_figure(p) for p in figures) or "<p>No figures.</p>"
    notes_html, front_html = overview_sections(sweep, metric, study.mode)
    page = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{_e(study.name)}: sweep {_e(parent.info.run_id)}</title>
<style>{_CSS}</style>
<script>{_SCRIPT}</script>
</head>
<body data-images="" data-broken-images="">
<div id="broken"></div>
<h1>{_e(study.name)}</h1>
<p class="question">{_e(study.question)}</p>
<h2>Command</h2>
<pre id="command">{_e(command_line(study.name, tags))}</pre>
<dl class="meta">{meta_html}</dl>
<h2>Summary</h2>
<pre id="summary">{_e(summary_text)}</pre>
<h2>Figures ({len(figures)})</h2>
{notes_html}
{figures_html}
{front_html}
<h2>Trials</h2>
<p>Swept keys, {_e(metric or "the metric")} ({_e(study.mode)}; best first) and status.
All columns: <a href="trials.csv">trials.csv</a> next to this page (in MLflow: the parent run's artifact
tables/trials.csv).</p>
{trials_table(sweep.runs, params, metric, study.mode)}
</body>
</html>
"""
    path = out_dir / REPORT_NAME
    path.write_text(page, encoding="utf-8")
    return path


__all__ = ["write_report", "overview_sections", "command_line", "swept_keys", "table_columns", "trials_table",
           "REPORT_NAME"]
