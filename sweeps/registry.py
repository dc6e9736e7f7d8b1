"""The study registry: every runnable study by name, one `sweeps/<name>.py` script each.

    >>> from sweeps.registry import STUDIES, load_study
    >>> load_study("depth_width").presets.keys()
    dict_keys(['smoke', 'quick', 'paper'])

`python -m analysis STUDY` and the preset tests read this list; a new study adds its name here.
Studies are imported on demand (each script imports its own trial and figure code).
"""

from __future__ import annotations

import importlib

from sweeps.study import Study

STUDIES = ("depth_width", "lr_range", "cyclic_lr", "batch_size", "joint_search", "batch_augment", "scaling",
           "optimizers", "bn_dropout", "weight_init", "dying_relu",
           "transfer", "optimus", "bias_variance", "perceptron_hinge", "roc_pr", "staleness")


def load_study(name: str) -> Study:
    if name not in STUDIES:
        raise KeyError(f"unknown study {name!r}; registered: {', '.join(STUDIES)}")
    return importlib.import_module(f"sweeps.{name}").STUDY
