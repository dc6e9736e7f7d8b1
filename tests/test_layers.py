"""Import layers point one way: sweeps -> analysis -> trainables.

- trainables/ (the training core and its Ray wrappers) imports neither analysis/ nor sweeps/;
- analysis/ may import trainables/; only analysis/__main__.py may import sweeps/ (the study registry);
- sweeps/ may import analysis/ and trainables/;
- nothing imports bench/; bench/ uses of sweeps/ only the entry points a benchmark needs.

Every import counts, at any depth (inside functions, under `if TYPE_CHECKING:`), in all its forms
(`import x.y`, `from x import y`, `from x.y import z`, relative, `importlib.import_module("x")`, a computed name
`importlib.import_module(f"x.{name}")` by its constant part, and a "x.y:function" reference a study declares).
An import whose name is computed with no constant part is allowed only where COMPUTED says why.

Beyond imports: what crosses into trainables/ from the driver is trainables' own types (a study's mapped config,
its probes, DDP settings), never the driver's (argparse's Namespace, sweeps' plans and declarations).
"""

from __future__ import annotations

import ast
import re
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


# Files that import a module whose name is computed entirely at run time, and why that is safe.
COMPUTED = {
    "sweeps/study.py": "resolve() imports a study's 'module:function' references, each checked below as a string",
    "analysis/studies/__init__.py": "load() imports a study's figures module by a name the caller gives (a test's)",
}
OUR_REFERENCE = re.compile(r"^(sweeps|analysis|trainables|bench)(\.\w+)+(:\w+)?$")


def _computed_prefix(node: ast.expr, module: str) -> str | None:
    """The constant leading part of a computed module name (f"sweeps.{name}" -> "sweeps."), None if it has none."""
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant):
            return first.value
        if isinstance(first, ast.FormattedValue) and ast.unparse(first.value) == "__name__":
            return module.removesuffix(".__init__") + "."
    return None


def imports(source: str, module: str) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for every import in `source`, the text of `module`
    (dotted, e.g. 'analysis.records' or 'analysis.__init__' for a package), relative imports resolved. A computed
    module name counts by its constant part ('?' when it has none); "pkg.module:function" strings count too."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and OUR_REFERENCE.match(node.value):
            found.append((node.value.partition(":")[0], [], node.lineno))
            continue
        if isinstance(node, ast.JoinedStr) and ":" in ast.unparse(node):
            prefix = _computed_prefix(node, module)
            if prefix and OUR_REFERENCE.match(prefix.rstrip(".") or "-"):
                found.append((prefix.rstrip("."), [], node.lineno))
        if (isinstance(node, ast.Call) and ast.unparse(node.func) in ("importlib.import_module", "__import__")
                and node.args and not isinstance(node.args[0], ast.Constant)):
            prefix = _computed_prefix(node.args[0], module)
            found.append((prefix.rstrip(".") if prefix else "?", [], node.lineno))
            continue
        if isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[:-node.level]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((name, [a.name for a in node.names], node.lineno))
    return found  # (an import_module("x.y") of a constant name: its string counts above)


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

def h(name, where):
    importlib.import_module(f"sweeps.{name}")
    importlib.import_module(f"{__name__}.{name}")
    importlib.import_module(where)
    return Trial(run="analysis.report:render", data=f"{name}:make_data")
"""
    got = sorted((line, name) for name, _, line in imports(source, "trainables.sub.mod"))
    assert got == [(2, "os"), (2, "sweeps.runner"), (3, "analysis"), (4, "trainables.models.registry"),
                   (7, "sweeps.study"), (9, "analysis.report"), (10, "sweeps.registry"), (14, "trainables.sub"),
                   (15, "trainables.sweeps"), (18, "sweeps"), (19, "trainables.sub.mod"), (20, "?"),
                   (21, "analysis.report")]


def _layer_violations() -> list[str]:
    bad = []
    for package, allowed in MAY_IMPORT.items():
        for path in _files(package):
            rel = path.relative_to(REPO).as_posix()
            for name, _, line in imports(path.read_text(), _module_name(path)):
                top = name.split(".")[0]
                if top == "?" and rel not in COMPUTED:
                    bad.append(f"{rel}:{line}: imports a module whose name is computed at run time (see COMPUTED)")
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


def test_what_reaches_trainables_is_trainables_own():
    """Every study's trial function gets what its declaration maps a config to (a trainables type, its parts too),
    never the driver's plan or declaration types; no trainables function takes an argparse Namespace."""
    import dataclasses

    from conftest import sweep_plan
    from sweeps.registry import STUDIES, load_study

    def ours(value) -> bool:
        module = type(value).__module__
        if module.startswith(("sweeps", "argparse")):
            return False
        if dataclasses.is_dataclass(value):
            return all(ours(getattr(value, f.name)) for f in dataclasses.fields(value))
        if isinstance(value, (tuple, list)):
            return all(ours(v) for v in value)
        return True

    for name in STUDIES:
        study = load_study(name)
        plan = sweep_plan(study, ["--preset", "smoke"] if "smoke" in study.presets else [])
        for config in plan.grid_configs()[:3]:
            trial = plan.trial({})  # the base trial; and each grid config mapped as a trial would be
            task = study.trial.to_trial(config) if study.trial.to_trial else config
            assert type(task).__module__.startswith("trainables.") and ours(task), (name, type(task))
            assert trial.ddp is None or type(trial.ddp).__module__.startswith("trainables."), name
    bad = [f"{path.relative_to(REPO)}: {node.name}({ast.unparse(node.args)})" for path in _files("trainables")
           for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.FunctionDef) and node.name != "main"
           and any(a.arg == "args" or "Namespace" in ast.unparse(a.annotation or ast.Constant(""))
                   for a in node.args.args)]
    assert not bad, "trainables functions taking the command line's arguments:\n" + "\n".join(bad)
