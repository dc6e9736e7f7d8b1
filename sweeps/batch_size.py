"""Batch-size range test and cyclical batch size (Smith et al., "Don't decay the LR, increase the batch size").

    python sweeps/batch_size.py                       # quick: batch 32 doubling to 1024 every 5 iterations, lr_max
    python sweeps/batch_size.py --set fixed_lr=min    # the same at lr_min
    python sweeps/batch_size.py --preset paper        # 32 doubling to 16384 every 50 iterations
    python sweeps/batch_size.py --preset cyclic       # cyclical batch size between b_min and b_max, fixed lr_min

Range presets: one run at a fixed learning rate (lr_max of the latest LR range test unless --set lr_max or
lr), the batch doubling from batch_min to batch_max every `interval` iterations; a batch above
max_micro_batch is split into micro-batches whose gradients accumulate to the full batch's. Figures:
training loss vs batch size (log x) with b_min/b_max marked (same rule as the LR bounds:
analysis.curves.pick_bounds), and its final test accuracy beside the latest cyclic_lr sweep's. b_min/b_max
are stored as tags on the parent run (`batch_size_after`).
Cyclic presets: the batch size cycles between b_min and b_max (read from the latest range test unless
given, `fill_batch_bounds`) with an increasing trend (trainables.training.schedules.cyclic_batch_size), at a fixed
lr_min. Figures (analysis/studies/batch_size.py): loss and accuracy vs epoch, batch size vs epoch, and a table/figure
of the best accuracy of the cyclical-batch and the cyclical-LR runs. The trial is the shared image trial
(trainables/image/trial.py, `batch_policy`) with the LR/batch studies' recipe (sweeps/lr_range.py).
"""

import dataclasses

from sweeps.lr_range import RECIPE, fill_lr_bounds
from sweeps.runner import main
from sweeps.study import Context, Hooks, Preset, Study, image_trial
from trainables.config import ConfigError
from trainables.image.config import ClassifyConfig, plain_trial


def fill_batch_bounds(base: ClassifyConfig, context: Context) -> ClassifyConfig:
    """Hooks.prepare of the cyclic presets: batch_min/batch_max left at 0 come from the latest batch-size range
    test in the store (its parent run's tags b_min/b_max, stored by `batch_size_after`)."""
    if base.batch_policy != "cyclic" or (base.batch_min and base.batch_max):
        return base
    parent = context.sweep("batch_size", with_tag="b_max")
    if parent is None:
        raise ConfigError(f"no batch-size range test with picked bounds in {context.tracking_uri}: "
                          f"run `python sweeps/batch_size.py` first or give --set batch_min=... --set batch_max=...")
    tags = parent.data.tags
    print(f"b_min={tags['b_min']}, b_max={tags['b_max']} (batch-size range test run {parent.info.run_id})")
    return dataclasses.replace(base, batch_min=base.batch_min or int(tags["b_min"]),
                               batch_max=base.batch_max or int(tags["b_max"]))


def prepare(base: ClassifyConfig, context: Context) -> ClassifyConfig:
    base = fill_batch_bounds(fill_lr_bounds(base, context), context)
    return dataclasses.replace(base, epochs=base.stages)  # the range test reports per batch size


def batch_size_after(sweep) -> str:
    """Hooks.after_sweep of the range test: store b_min/b_max on the parent run (tags) for the cyclic presets."""
    from mlflow.tracking import MlflowClient

    from analysis.records import RecordsError
    from analysis.studies.batch_size import batch_bounds

    if "batch_policy" not in sweep.runs or not (sweep.runs["batch_policy"] == "range").any():
        return ""
    try:
        lo, hi = batch_bounds(sweep.runs)
    except RecordsError as e:
        return f"b_min/b_max not stored: {e}"
    client = MlflowClient(sweep.tracking_uri)
    client.set_tag(sweep.parent_run_id, "b_min", str(lo))
    client.set_tag(sweep.parent_run_id, "b_max", str(hi))
    return f"stored on the parent run: b_min={lo} b_max={hi} (read by the cyclic presets of sweeps/batch_size.py)"


# The range test runs at a fixed LR: lr 0 = the LR range test's lr_max (--set fixed_lr=min: lr_min).
RANGE = {**RECIPE, "lr": 0.0, "batch_policy": "range", "batch_min": 32}
CYCLIC = {**RECIPE, "lr": 0.0, "batch_policy": "cyclic", "batch_min": 0, "batch_max": 0, "fixed_lr": "min"}

STUDY = Study(
    name="batch_size",
    doc=__doc__,
    config=ClassifyConfig,
    trial=image_trial(plain_trial),  # --set seeds=N with model=mlp|lenet5: one population trial
    presets={
        "smoke": Preset("range test 32..128, 2 iterations each, micro-batches of 64 (seconds)",
                        config={**RANGE, "batch_max": 128, "interval": 2, "max_micro_batch": 64}),
        "quick": Preset("range test 32..1024, 5 iterations each, on 2000 images (minutes)",
                        config={**RANGE, "batch_max": 1024, "interval": 5, "max_micro_batch": 256,
                                "train_subset": 2500, "val_size": 500, "test_subset": 1000}),
        "paper": Preset("range test 32..16384, 50 iterations each, micro-batches of 2048 (a GPU)", gpus_per_trial=1,
                        config={**RANGE, "batch_max": 16384, "interval": 50, "max_micro_batch": 2048}),
        "cyclic-smoke": Preset("cyclical batch size, 3 epochs (seconds)",
                               config={**CYCLIC, "epochs": 3, "batch_stepsize": 1, "val_size": 32,
                                       "max_micro_batch": 64}),
        "cyclic": Preset("cyclical batch size, 4 epochs on 2000 images (minutes)",
                         config={**CYCLIC, "epochs": 4, "batch_stepsize": 1, "max_micro_batch": 256,
                                 "train_subset": 2500, "val_size": 500, "test_subset": 1000}),
        "cyclic-paper": Preset("cyclical batch size, 40 epochs, half cycle 4 epochs (a GPU)",
                               config={**CYCLIC, "epochs": 40, "batch_stepsize": 4, "val_size": 5000,
                                       "max_micro_batch": 2048}),
    },
    hooks=Hooks(prepare=prepare, after_sweep=batch_size_after, reads="lr_range (and, for cyclic presets, batch_size)"),
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
