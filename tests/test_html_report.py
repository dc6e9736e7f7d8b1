"""The HTML report of a sweep (analysis/html_report.py): escaping, the trials table's columns and a report that
fails to write (tiny MLflow stores written with MlflowClient), then one real staleness smoke sweep whose
report.html is opened in headless Chromium (file:// URL): every figure decodes, the summary the terminal printed
and the study's question are on the page, a copy with one corrupted image reports it, the report is logged to
the parent run and `python -m analysis staleness` writes it again.

Needs /usr/bin/chromium (Debian package `chromium`); without it the browser test fails and says how to install it.
"""

from __future__ import annotations

import html
import json
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from analysis.html_report import command_line, table_columns, write_report
from analysis.overview import overview_notes
from analysis.records import load_sweep
from analysis.report import publish_report

CHROMIUM = "/usr/bin/chromium"
STUDY = SimpleNamespace(name="tiny", question="Does <b>lr</b> & width matter?", metric="test/rmse", mode="min")


def write_tiny_sweep(uri: str) -> str:
    """A parent run (argv, versions, base and space params) with three trials; returns its run ID."""
    client = MlflowClient(uri)
    experiment = client.create_experiment("tiny", artifact_location=uri.replace("sqlite:///", "file://")[:-9] + "art")
    tags = {"sweep.parent": "1", "preset": "smoke", "search": "grid", "scheduler": "fifo",
            "sweep.argv": json.dumps(["--preset", "smoke", "--set", "note=a b<c>"]),
            "git_commit": "abc123", "version.python": "3.11.9", "version.torch": "2.5.0"}
    parent = client.create_run(experiment, tags=tags).info.run_id
    client.log_batch(parent, params=[Param("base.lr", "0.1"), Param("base.width", "8"), Param("base.epochs", "3"),
                                     Param("space.lr", "[0.01, 0.1]"), Param("space.width", "[8, 16]"),
                                     Param("space.points", json.dumps([{"mode": "a", "lr": 0.1}]))])
    for i, (lr, width, rmse, status) in enumerate([(0.01, 8, 0.5, "finished"), (0.1, 16, 0.25, "stopped"),
                                                   (0.1, 8, float("nan"), "diverged")]):
        run = client.create_run(experiment, run_name=f"trial_{i}",
                                tags={"mlflow.parentRunId": parent, "trial_status": status,
                                      "stopped_at_epoch": str(i + 1)}).info.run_id
        client.log_batch(run, params=[Param("lr", str(lr)), Param("width", str(width)), Param("epochs", "3"),
                                      Param("mode", "a")],
                         metrics=[Metric("test/rmse", rmse, 0, 1), Metric("train/loss", 1.0, 0, 1)])
        client.set_terminated(run)
    client.set_terminated(parent)
    return parent


@pytest.fixture
def tiny(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return load_sweep("tiny", write_tiny_sweep(uri), uri)


def test_text_is_escaped_and_the_command_is_shell_quoted(tiny, tmp_path):
    summary = "best: lr 0.1 <script>alert(1)</script> & more"
    page = write_report(tiny, STUDY, summary, [], tmp_path / "out").read_text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    assert "Does &lt;b&gt;lr&lt;/b&gt; &amp; width matter?" in page
    assert command_line("tiny", tiny.parent.data.tags) == "python sweeps/tiny.py --preset smoke --set 'note=a b<c>'"
    assert html.escape("python sweeps/tiny.py --preset smoke --set 'note=a b<c>'") in page
    assert "abc123" in page and "3.11.9" in page  # versions from the provenance tags
    assert page.count("<script>") == 1  # only the page's own image check


def test_table_has_the_swept_keys_the_metric_and_status_best_first(tiny, tmp_path):
    columns = table_columns(tiny.runs, tiny.parent.data.params, "test/rmse")
    assert columns == ["run_name", "lr", "width", "mode", "test/rmse", "trial_status", "stopped_at_epoch"]
    page = write_report(tiny, STUDY, "s", [], tmp_path / "out").read_text()
    table = page[page.index("<table>"):]
    assert "<th>epochs</th>" not in table and "<th>train/loss</th>" not in table  # not every param or metric
    assert table.index("trial_1") < table.index("trial_0") < table.index("trial_2")  # 0.25, 0.5, then NaN
    assert 'href="trials.csv"' in page


def test_figures_not_drawn_are_explained_and_the_front_is_listed(tiny, tmp_path):
    page = write_report(tiny, STUDY, "s", [], tmp_path / "out").read_text()
    notes = re.search(r'<ul id="figure-notes">(.*?)</ul>', page, re.S).group(1)
    items = [html.unescape(n) for n in re.findall(r"<li>(.*?)</li>", notes)]
    assert items == overview_notes(tiny, "test/rmse", "min") and len(items) == 2
    assert items[0].startswith("No importance figure: only 2 trial(s)")  # 1 finished + 1 stopped have values
    assert items[1].startswith("No cost figure: 1 finished trial(s)")
    assert "pareto-front" not in page  # one finished trial: no front to list

    client = MlflowClient(tiny.tracking_uri)  # a second finished trial, cheaper and worse: both on the front
    run = client.create_run(tiny.parent.info.experiment_id, run_name="trial_3",
                            tags={"mlflow.parentRunId": tiny.parent_run_id, "trial_status": "finished"}).info.run_id
    client.log_batch(run, params=[Param("lr", "0.01"), Param("width", "16"), Param("mode", "a")],
                     metrics=[Metric("test/rmse", 0.75, 0, 1), Metric("time/train_s", 1.0, 0, 1)])
    client.log_batch(tiny.runs.set_index("run_name").loc["trial_0", "run_id"],
                     metrics=[Metric("time/train_s", 2.0, 0, 1)])
    sweep = load_sweep("tiny", tiny.parent_run_id, tiny.tracking_uri)
    page = write_report(sweep, STUDY, "s", [], tmp_path / "out").read_text()
    front = page[page.index('<div id="pareto-front">'):]
    front = front[:front.index("</table>")]
    assert front.index("trial_3") < front.index("trial_0")  # cheapest first
    assert "lr=0.01 width=16" in front and "lr=0.01 width=8" in front


def test_an_analysis_only_step_without_trials(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("tiny", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(experiment, tags={"sweep.parent": "1", "analysis_only": "1"}).info.run_id
    client.set_terminated(parent)
    sweep = load_sweep("tiny", parent, uri)
    path = publish_report(sweep, STUDY, "fitted 2 values", [], tmp_path / "out")
    page = path.read_text()
    assert "No trials" in page and "analysis only" in page and "(arguments not recorded)" in page
    assert [a.path for a in client.list_artifacts(parent, "report")] == ["report/report.html"]


def test_a_report_that_cannot_be_written_is_one_warning_line(tiny, tmp_path, capsys):
    assert publish_report(tiny, STUDY, "s", [tmp_path / "missing.png"], tmp_path / "out") is None
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("warning: HTML report not written: FileNotFoundError")


def chromium_dom(page: Path, profile: Path, screenshot: Path | None = None) -> str:
    """The DOM of `page` after load (and its scripts) in headless Chromium."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: the HTML report's browser test needs Chromium; install it with "
                    f"`apt-get install chromium` (or run tests/install_chromium.sh)")
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--virtual-time-budget=5000"]
    if screenshot is not None:
        cmd += [f"--screenshot={screenshot}", "--window-size=1200,2000"]
    proc = subprocess.run([*cmd, "--dump-dom", page.resolve().as_uri()], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def body_attr(dom: str, name: str) -> str | None:
    match = re.search(r"<body[^>]*\s" + re.escape(name) + r'="([^"]*)"', dom)
    return match.group(1) if match else None


@pytest.mark.slow
def test_smoke_sweep_report_in_a_browser(tmp_path, clean_env, monkeypatch, capsys):
    from conftest import run_script
    from sweeps import staleness
    from sweeps.runner import main

    monkeypatch.chdir(tmp_path)
    results = tmp_path / "res"
    assert main(staleness.STUDY, ["--preset", "smoke", "--results-dir", str(results)]) == 0
    stdout = capsys.readouterr().out
    printed = stdout[stdout.index("== staleness"):stdout.index("\nfigures and table")]
    assert "report: res/staleness/report.html (" in stdout

    report = results / "staleness" / "report.html"
    figures = sorted(p.name for p in report.parent.glob("*.png"))
    assert len(figures) >= 4  # the study's own and the three overview figures
    client = MlflowClient(f"sqlite:///{results / 'mlflow.db'}")
    parent = load_sweep("staleness", tracking_uri=client.tracking_uri).parent
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "report")] == ["report/report.html"]

    dom = chromium_dom(report, tmp_path / "profile", screenshot=tmp_path / "report.png")
    assert body_attr(dom, "data-images") == str(len(figures)), "the page's script did not run"
    assert body_attr(dom, "data-broken-images") == "0"
    assert dom.count("<img ") == len(figures)
    summary = re.search(r'<pre id="summary">(.*?)</pre>', dom, re.S).group(1)
    assert html.unescape(summary) == printed  # the very text the terminal showed
    question = re.search(r'<p class="question">(.*?)</p>', dom, re.S).group(1)
    assert html.unescape(question) == staleness.STUDY.question
    command = html.unescape(re.search(r'<pre id="command">(.*?)</pre>', dom, re.S).group(1))
    assert command == f"python sweeps/staleness.py --preset smoke --results-dir {results}"
    assert (tmp_path / "report.png").stat().st_size > 20_000  # a rendered page, not a blank one

    # one corrupted figure: the page says so (so this test can fail)
    page = report.read_text()
    start = page.index("data:image/png;base64,") + len("data:image/png;base64,")
    broken = tmp_path / "broken.html"
    broken.write_text(page[:start] + "AAAAnotapng" + page[start + 200:])
    dom = chromium_dom(broken, tmp_path / "profile2")
    assert body_attr(dom, "data-broken-images") == "1" and "did not load" in dom

    report.unlink()
    regen = run_script(["-m", "analysis", "staleness", "--results-dir", str(results)], cwd=tmp_path)
    assert regen.returncode == 0, regen.stderr[-2000:]
    page = report.read_text()
    assert page.count("<img ") == len(figures)
    shown = html.unescape(re.search(r'<pre id="summary">(.*?)</pre>', page, re.S).group(1))
    assert shown in regen.stdout and shown.startswith("staleness, sweep ")
