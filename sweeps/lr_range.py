"""LR range test (Smith 2017) on FashionMNIST with MiniGoogLeNet: where does the training loss start and stop falling?

    python sweeps/lr_range.py                         # quick: 10 LRs 1e-9..1e1, 2 epochs on 1000 images (~3 min, 2 CPUs)
    python sweeps/lr_range.py --preset paper          # 10 LRs, 5 epochs each on the full 60k training set
    python sweeps/lr_range.py --preset continuous     # Smith's continuous variant: one run, LR raised every step

Batch 64, SGD momentum 0.9, no augmentation. Discrete presets: one trial per learning rate (10 log-spaced
from 1e-9 to 1e1), a trial whose loss turns NaN/inf is recorded as diverged and drawn as a red cross.
Continuous presets: one trial whose LR grows exponentially from 1e-9 to 1e1 over all its steps, one point
per `interval` steps (stops once the loss exceeds 4x its best). Figure: training loss vs learning rate
(log x) with the picked lr_min and lr_max marked. Rule (analysis.lr_batch.pick_bounds): lr_min = first LR
where the loss has fallen by 10% of its total drop, lr_max = first LR within 5% of the drop of the minimum
loss. They are printed and stored as tags lr_min/lr_max on the parent MLflow run, where
sweeps/cyclic_lr.py and sweeps/batch_size.py read them.
"""

import numpy as np

from analysis import lr_batch as figures
from sweeps.runner import main
from sweeps.study import Preset, Study
from trainables.config import from_dict
from trainables.lr_batch import LRBatchConfig, derived_params, make_data, stages, train_lr_batch

LRS = [float(f"{lr:.3g}") for lr in np.logspace(-9, 1, 10)]
CONTINUOUS = {"lr_policy": "range", "lr_min": 1e-9, "lr_max": 10.0}


def prepare(base: dict, tracking_uri: str) -> dict:
    # The continuous test reports once per stage: its "epochs" (what the recorder counts) are its stages.
    return {**base, "epochs": stages(from_dict(LRBatchConfig, base))}


STUDY = Study(
    name="lr_range",
    description=__doc__.split("\n")[0],
    config_cls=LRBatchConfig,
    trial_fn=train_lr_batch,
    make_data=make_data,
    presets={
        "smoke": Preset("4 LRs, 2 epochs, batch 16 on whatever tiny data set data_dir holds (seconds)",
                        config={"epochs": 2, "batch_size": 16, "test_subset": 0},
                        space={"lr": [1e-5, 1e-3, 0.1, 10.0]}),
        "quick": Preset("10 LRs 1e-9..1e1, 2 epochs on 1000 training images (minutes)",
                        config={"epochs": 2, "train_subset": 1000, "test_subset": 500}, space={"lr": LRS}),
        "paper": Preset("10 LRs 1e-9..1e1, 5 epochs on the full training set (a GPU)",
                        config={"epochs": 5}, space={"lr": LRS}),
        "continuous-smoke": Preset("continuous: 8 stages of 2 steps, batch 16 (seconds)",
                                   config={**CONTINUOUS, "lr_min": 1e-5, "lr_stages": 8, "interval": 2,
                                           "batch_size": 16}),
        "continuous": Preset("continuous: 30 stages of 4 steps on 2000 images (minutes)",
                             config={**CONTINUOUS, "lr_stages": 30, "interval": 4, "train_subset": 2000}),
        "continuous-paper": Preset("continuous: 100 stages of 50 steps (~5 epochs) on the full set",
                                   config={**CONTINUOUS, "lr_stages": 100, "interval": 50}),
    },
    metric="train/loss",
    mode="min",
    figures=figures.lr_range_figures,
    summary=figures.lr_range_summary,
    derived_params=derived_params,
    after_sweep=figures.lr_range_after,
    prepare=prepare,
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
