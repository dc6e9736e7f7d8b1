"""The README's commands are the ones CI and users run."""

from conftest import ROOT


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = next(line for line in readme.splitlines() if "pytest" in line and "python3 -m venv" in line)
    assert test_command in ci.splitlines()


def test_readme_main_command_runs_the_depth_width_study():
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e . && python sweeps/depth_width.py" in readme
    assert (ROOT / "sweeps" / "depth_width.py").exists()
