"""Import layers point one way: sweeps -> analysis -> trainables.

- trainables/ (the training core and its Ray wrappers) imports neither analysis/ nor sweeps/;
- analysis/ may import trainables/; only analysis/__main__.py may import sweeps/ (the study registry);
- sweeps/ may import analysis/ and trainables/;
- nothing imports bench/; bench/ uses of sweeps/ only the entry points a benchmark needs.

Every import counts, at any depth (inside functions, under `if TYPE_CHECKING:`), in all its forms
(`import x.y`, `from x import y`, `from x.y import z`, relative, `importlib.import_module("x")`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OURS = ("sweeps", "analysis", "trainables", "bench")
MAY_IMPORT = {"trainables": set(), "analysis": {"trainables"}, "sweeps": {"analysis", "trainables"}}
EXCEPTIONS: set[tuple[str, str]] = set()  # none: `python -m analysis` finds figures in analysis/studies/

# What bench/ may take from sweeps/: run a study (its STUDY, the runner's main, a Preset for a bench preset),
# and MLflowRecorder, which bench/depth_width.py wraps to time the cost of recording.
BENCH_FROM_SWEEPS = {"sweeps.runner": {"main"}, "sweeps.study": {"Preset", "Study"}, "sweeps.registry": {"STUDIES"},
                     "sweeps.recording": {"MLflowRecorder"}}


def imports(source: str, module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in `source`, the text of `module`
    (dotted, e.g. 'analysis.records' or 'analysis.__init__' for a package), relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[:-node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((name, [a.name for a in node.names], node.lineno))
        elif (isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module", "__import__")
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.args[0].value, [], node.lineno))
    return found


def _files(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def test_import_parser_sees_every_form():
    source = """
import os, sweeps.runner
from analysis import records
from trainables.models.registry import build_model as bm

def f():
    from sweeps.study import Study
    if True:
        import analysis.report
    return importlib.import_module("sweeps.registry")

class C:
    def g(self):
        from . import config
        from ..sweeps import runner
"""
    got = [(name, line) for name, _, line in imports(source, "trainables.sub.mod")]
    assert got == [("os", 2), ("sweeps.runner", 2), ("analysis", 3), ("trainables.models.registry", 4), ("sweeps.study", 7),
                   ("analysis.report", 9), ("sweeps.registry", 10), ("trainables.sub", 14), ("trainables.sweeps", 15)]


def _layer_violations() -> list[str]:
    bad = []
    for package, allowed in MAY_IMPORT.items():
        for path in _files(package):
            rel = path.relative_to(REPO).as_posix()
            for name, _, line in imports(path.read_text(), _module_name(path)):
                top = name.split(".")[0]
                if top in OURS and top != package and top not in allowed and (rel, top) not in EXCEPTIONS:
                    bad.append(f"{rel}:{line}: imports {name} ({package}/ may import {sorted(allowed) or 'none of ours'})")
    return bad


def test_layers_point_one_way():
    bad = _layer_violations()
    assert not bad, "imports against the layers (sweeps -> analysis -> trainables):\n" + "\n".join(bad)


def test_the_checked_packages_exist():
    for package in MAY_IMPORT:  # a renamed package would make the layer test pass vacuously
        assert len(_files(package)) > 3, package


@pytest.mark.parametrize("path", _files("bench"), ids=lambda p: p.name)
def test_bench_uses_only_sweeps_entry_points(path):
    study_modules = {p.stem for p in _files("sweeps") if "\nSTUDY = " in p.read_text()}
    bad = []
    for name, names, line in imports(path.read_text(), _module_name(path)):
        if name == "sweeps":  # from sweeps import depth_width, recording
            extra = [n for n in names if n not in study_modules and f"sweeps.{n}" not in BENCH_FROM_SWEEPS]
        elif name in BENCH_FROM_SWEEPS:
            extra = [n for n in names if n not in BENCH_FROM_SWEEPS[name]] or ([] if names else [name])
        elif name.startswith("sweeps."):
            extra = [] if name.split(".")[1] in study_modules and set(names) <= {"STUDY"} else [name]
        else:
            continue
        bad += [f"{path.relative_to(REPO)}:{line}: {name}: {n}" for n in extra]
    assert not bad, "bench/ reaches into sweeps/ beyond a study's entry points:\n" + "\n".join(bad)
