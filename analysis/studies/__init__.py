"""Each study's figures and summary, one module per study, named as the study (sweeps/registry.py).

    >>> from analysis.studies import load
    >>> depth_width = load("depth_width")         # its metric and mode, figures(runs, out_dir), summary(runs)
    >>> depth_width.metric, depth_width.mode
    ('test/rmse', 'min')

A study's module defines `METRIC` and `MODE` (what its trials are compared by: ASHA, the overview figures,
`python -m analysis list`), `figures(runs, out_dir) -> [paths]` and `summary(runs) -> str`, all read from the
MLflow records alone. The analysis command line finds them here without importing the sweeps.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class StudyFigures:
    """How a study's records are read: its metric and mode, its figures and its summary."""

    name: str
    question: str  # the study's question (its script's first docstring line), shown atop its HTML report
    metric: str
    mode: str  # "min" or "max"
    figures: Callable  # figures(runs, out_dir) -> [png and table paths]
    summary: Callable  # summary(runs) -> a few lines of text


def names() -> list[str]:
    """The studies that have figures here (a test keeps this in step with sweeps/registry.py)."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def load(name: str, question: str = "", module: str | None = None) -> StudyFigures:
    """The figures of study `name` (from `analysis.studies.<name>`, or the module `module` names: a test study's).
    `question` defaults to the module docstring's first line."""
    if module is None and name not in names():
        raise KeyError(f"no figures for study {name!r}; studies: {', '.join(names())}")
    mod = importlib.import_module(module or f"{__name__}.{name}")
    question = question or (mod.__doc__ or name).strip().splitlines()[0]
    return StudyFigures(name, question, mod.METRIC, mod.MODE, mod.figures, mod.summary)
