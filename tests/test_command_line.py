"""The study command line a new user meets first: a fast, precise `--help`, refusals in one line, and the progress
lines of a sweep (sweeps/cli.py, sweeps/progress.py)."""

from __future__ import annotations

import io
import sys
from types import SimpleNamespace

import pytest

from conftest import ROOT, run_script
from sweeps.registry import STUDIES

HEAVY = ("torch", "ray", "mlflow", "pandas", "matplotlib", "sklearn")


def _help(study: str) -> tuple[str, list[str]]:
    """`python sweeps/STUDY.py --help`: its text, and which heavy packages it imported to print it."""
    code = ("import runpy, sys\nsys.argv = ['x', '--help']\ntry:\n    runpy.run_path(sys.argv_path, run_name='__main__')\n"
            "except SystemExit:\n    pass\nprint('IMPORTED', sorted(m for m in %r if m in sys.modules))" % (HEAVY,))
    code = code.replace("sys.argv_path", repr(str(ROOT / "sweeps" / f"{study}.py")))
    proc = run_script(["-c", code], cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    text, _, imported = proc.stdout.rpartition("IMPORTED ")
    return text, eval(imported)  # noqa: S307  (our own printed list)


@pytest.mark.parametrize("study", ["depth_width", "staleness", "lr_range", "weight_init", "scaling", "optimus"])
def test_help_imports_neither_ray_torch_nor_mlflow(study):
    text, imported = _help(study)
    assert not {"torch", "ray", "mlflow"} & set(imported), imported
    assert f"python sweeps/{study}.py" in text


def test_help_lists_what_the_study_takes_with_every_key_its_default_and_two_examples():
    from sweeps.depth_width import STUDY

    text, _ = _help("depth_width")
    assert "--workers" not in text and "--data-dir" not in text and "--ddp-backend" not in text
    assert "--population" in text and "--scheduler" in text and "--verbose" in text
    examples = text.split("examples:\n")[1].split("\n\n")[0].splitlines()
    assert len(examples) == 2 and all(line.strip().startswith("python sweeps/depth_width.py") for line in examples)
    keys = text.split("config keys")[1]
    for field in STUDY.config.__dataclass_fields__:
        assert f"\n  {field}=" in keys, field
    assert "widths=64 " in keys and "e.g. 64-32-16" in keys and "[integers joined by '-']" in keys
    assert "lr_schedule=cosine" in keys and "quick: 200" in keys  # the default preset's value beside the default
    image, _ = _help("lr_range")
    assert "--workers" in image and "--data-dir" in image and "--from-run" not in image
    assert "--from-run" in _help("cyclic_lr")[0]


@pytest.mark.parametrize("flags, message", [
    (["--workers", "2"], "--workers: depth_width's trials do not train data-parallel"),
    (["--data-dir", "/tmp"], "--data-dir: depth_width reads no data set from disk"),
    (["--from-run", "abc"], "--from-run: depth_width reads no earlier sweep"),
    (["--scheduler", "bogus"], "argument --scheduler: invalid choice"),
])
def test_options_the_study_does_not_take_are_one_line_refusals(tmp_path, flags, message):
    proc = run_script([str(ROOT / "sweeps" / "depth_width.py"), "--results-dir", "res", *flags], cwd=tmp_path,
                      timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and message in proc.stderr
    assert not (tmp_path / "res").exists()


def test_every_study_declares_two_examples():
    from sweeps.registry import load_study

    for name in STUDIES:
        assert len(load_study(name).examples) >= 2, name


def _trial(name: str, status: str = "RUNNING"):
    return SimpleNamespace(status=status, trial_id=name, swept=name)


def test_progress_lines_are_short_and_end_with_the_total():
    from sweeps.progress import WIDTH, ProgressLines

    out = io.StringIO()
    progress = ProgressLines(5, "test/rmse", "min", lambda t: t.swept, stream=out)
    trials = [_trial(f"widths={'256-' * 30}{i}") for i in range(5)]
    for i, trial in enumerate(trials):
        progress.on_trial_result(0, trials, trial, {"test/rmse": 10.0 - i})
        trial.status = "TERMINATED"
        progress.on_trial_complete(0, trials, trial)
    lines = out.getvalue().splitlines()
    assert lines and all(len(line) <= WIDTH for line in lines)
    assert lines[-1].lstrip().startswith("5/5 done") and "best test/rmse 6" in lines[-1]
    assert len(lines) < 5  # in a log, at most one line every 10 s (and the last one)


def test_progress_on_a_terminal_is_one_updating_line():
    from sweeps.progress import ProgressLines

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    out = Terminal()
    progress = ProgressLines(2, "val/accuracy", "max", lambda t: t.swept, stream=out)
    trials = [_trial("lr=0.1"), _trial("lr=0.01")]
    for i, trial in enumerate(trials):
        progress.on_trial_result(0, trials, trial, {"val/accuracy": 0.5 + i / 10})
        progress.on_trial_complete(0, trials, trial)
    progress.on_experiment_end(trials)
    text = out.getvalue()
    assert text.count("\r") == 2 and text.count("\n") == 1 and "best val/accuracy 0.6 (lr=0.01)" in text


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
