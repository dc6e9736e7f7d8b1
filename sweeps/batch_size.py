"""Batch-size range test and cyclical batch size (Smith et al., "Don't decay the LR, increase the batch size").

    python sweeps/batch_size.py                       # quick: batch 32 doubling to 1024 every 5 iterations, lr_max
    python sweeps/batch_size.py --set fixed_lr=min    # the same at lr_min
    python sweeps/batch_size.py --preset paper        # 32 doubling to 16384 every 50 iterations
    python sweeps/batch_size.py --preset cyclic       # cyclical batch size between b_min and b_max, fixed lr_min

Range presets: one run at a fixed learning rate (lr_max of the latest LR range test unless --set lr_max or
lr), the batch doubling from batch_min to batch_max every `interval` iterations; a batch above
max_micro_batch is split into micro-batches whose gradients accumulate to the full batch's. Figures:
training loss vs batch size (log x) with b_min/b_max marked (same rule as the LR bounds:
analysis.lr_batch.pick_bounds), and its final test accuracy beside the latest cyclic_lr sweep's. b_min/b_max
are stored as tags on the parent run.
Cyclic presets: the batch size cycles between b_min and b_max (read from the latest range test unless
given) with an increasing trend (trainables.lr_batch.cyclic_batch_size), at a fixed lr_min. Figures: loss
and accuracy vs epoch, batch size vs epoch, and a table/figure of the best accuracy of the cyclical-batch
and the cyclical-LR runs.
"""

from analysis import lr_batch as figures
from sweeps.runner import main
from sweeps.study import Preset, Study
from trainables.config import from_dict
from trainables.lr_batch import LRBatchConfig, derived_params, make_data, stages, train_lr_batch


def prepare(base: dict, tracking_uri: str) -> dict:
    base = figures.fill_batch_bounds(figures.fill_lr_bounds(base, tracking_uri), tracking_uri)
    return {**base, "epochs": stages(from_dict(LRBatchConfig, base))}  # the range test reports per batch size


RANGE = {"batch_policy": "range", "batch_min": 32}
CYCLIC = {"batch_policy": "cyclic", "batch_min": 0, "batch_max": 0, "fixed_lr": "min"}

STUDY = Study(
    name="batch_size",
    description=__doc__.split("\n")[0],
    config_cls=LRBatchConfig,
    trial_fn=train_lr_batch,
    make_data=make_data,
    presets={
        "smoke": Preset("range test 32..128, 2 iterations each, micro-batches of 64 (seconds)",
                        config={**RANGE, "batch_max": 128, "interval": 2, "max_micro_batch": 64}),
        "quick": Preset("range test 32..1024, 5 iterations each, on 2000 images (minutes)",
                        config={**RANGE, "batch_max": 1024, "interval": 5, "max_micro_batch": 256,
                                "train_subset": 2500, "val_size": 500, "test_subset": 1000}),
        "paper": Preset("range test 32..16384, 50 iterations each, micro-batches of 2048 (a GPU)",
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
    metric="test/accuracy",
    mode="max",
    figures=figures.batch_size_figures,
    summary=figures.batch_size_summary,
    derived_params=derived_params,
    after_sweep=figures.batch_size_after,
    prepare=prepare,
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
