"""LR range test (Smith 2017) on FashionMNIST with MiniGoogLeNet: where does the training loss start and stop falling?

    python sweeps/lr_range.py                         # quick: 10 LRs 1e-9..1e1, 2 epochs on 1000 images (~3 min, 2 CPUs)
    python sweeps/lr_range.py --preset paper          # 10 LRs, 5 epochs each on the full 60k training set
    python sweeps/lr_range.py --preset continuous     # Smith's continuous variant: one run, LR raised every step

Batch 64, SGD momentum 0.9, no augmentation. Discrete presets: one trial per learning rate (10 log-spaced
from 1e-9 to 1e1), a trial whose loss turns NaN/inf is recorded as diverged and drawn as a red cross.
Continuous presets: one trial whose LR grows exponentially from 1e-9 to 1e1 over all its steps, one point
per `interval` steps (stops once the loss exceeds 4x its best). Figure: training loss vs learning rate
(log x) with the picked lr_min and lr_max marked. Rule (analysis.curves.pick_bounds): lr_min = first LR
where the loss has fallen by 10% of its total drop, lr_max = first LR within 5% of the drop of the minimum
loss. They are printed and stored as tags lr_min/lr_max on the parent MLflow run (`lr_range_after`), where
sweeps/cyclic_lr.py and sweeps/batch_size.py read them (`fill_lr_bounds`).

The trial is the shared image trial (trainables/image/trial.py) with `RECIPE`, the recipe of the
four LR/batch-size studies; the continuous test is its `lr_policy=range`.
"""

import dataclasses

import numpy as np

from sweeps.runner import main
from sweeps.study import Context, Hooks, Preset, Study, image_trial
from trainables.config import ConfigError
from trainables.image.config import ClassifyConfig, plain_trial

# The LR/batch-size studies' recipe (Smith's setting): FashionMNIST, MiniGoogLeNet, SGD momentum 0.9, no augmentation.
RECIPE = {"dataset": "fashion_mnist", "model": "mini_googlenet", "optimizer": "sgd", "momentum": 0.9}
LRS = [float(f"{lr:.3g}") for lr in np.logspace(-9, 1, 10)]
CONTINUOUS = {**RECIPE, "lr_policy": "range", "lr_min": 1e-9, "lr_max": 10.0}


def fill_lr_bounds(base: ClassifyConfig, context: Context) -> ClassifyConfig:
    """Hooks.prepare of cyclic_lr and batch_size: lr_min/lr_max left at 0 come from the latest LR range test in the
    store, or the one --from-run names (its parent run's tags, stored by `lr_range_after`)."""
    if base.lr_min and base.lr_max:
        return base
    parent = context.sweep("lr_range", with_tag="lr_max")
    if parent is None:
        raise ConfigError(f"no LR range test with picked bounds in {context.tracking_uri}: run "
                          f"`python sweeps/lr_range.py` first or give --set lr_min=... --set lr_max=...")
    tags = parent.data.tags
    lo, hi = base.lr_min or float(tags["lr_min"]), base.lr_max or float(tags["lr_max"])
    if lo >= hi:
        raise ConfigError(f"lr_min={lo:g} must be below lr_max={hi:g}")
    print(f"lr_min={lo:.3g}, lr_max={hi:.3g} (LR range test run {parent.info.run_id})")
    return dataclasses.replace(base, lr_min=lo, lr_max=hi)


def prepare(base: ClassifyConfig, context: Context) -> ClassifyConfig:
    # The continuous test reports once per stage: its "epochs" (what the recorder counts) are its stages.
    return dataclasses.replace(base, epochs=base.stages)


def lr_range_after(sweep) -> str:
    """Hooks.after_sweep: store lr_min/lr_max on the parent run (tags), where cyclic_lr and batch_size read them."""
    from mlflow.tracking import MlflowClient

    from analysis.records import RecordsError
    from analysis.studies.lr_range import lr_bounds

    try:
        lo, hi = lr_bounds(sweep.runs)
    except RecordsError as e:
        return f"lr_min/lr_max not stored: {e}"
    client = MlflowClient(sweep.tracking_uri)
    for key, value in (("lr_min", lo), ("lr_max", hi)):
        client.set_tag(sweep.parent_run_id, key, repr(float(value)))
    client.set_tag(sweep.parent_run_id, "bounds_rule", "first 10% of the loss drop / within 5% of the minimum")
    return f"stored on the parent run: lr_min={lo:.3g} lr_max={hi:.3g} (read by sweeps/cyclic_lr.py, sweeps/batch_size.py)"


STUDY = Study(
    name="lr_range",
    doc=__doc__,
    config=ClassifyConfig,
    trial=image_trial(plain_trial),  # --set seeds=N with model=mlp|lenet5: one population trial
    presets={
        "smoke": Preset("4 LRs, 2 epochs, batch 16 on whatever tiny data set data_dir holds (seconds)",
                        config={**RECIPE, "epochs": 2, "batch_size": 16, "test_subset": 0},
                        space={"lr": [1e-5, 1e-3, 0.1, 10.0]}),
        "quick": Preset("10 LRs 1e-9..1e1, 2 epochs on 1000 training images (minutes)",
                        config={**RECIPE, "epochs": 2, "train_subset": 1000, "test_subset": 500}, space={"lr": LRS}),
        "paper": Preset("10 LRs 1e-9..1e1, 5 epochs on the full training set (2 trials per GPU)", gpus_per_trial=0.5,
                        config={**RECIPE, "epochs": 5}, space={"lr": LRS}),
        "continuous-smoke": Preset("continuous: 8 stages of 2 steps, batch 16 (seconds)",
                                   config={**CONTINUOUS, "lr_min": 1e-5, "lr_stages": 8, "interval": 2,
                                           "batch_size": 16}),
        "continuous": Preset("continuous: 30 stages of 4 steps on 2000 images (minutes)",
                             config={**CONTINUOUS, "lr_stages": 30, "interval": 4, "train_subset": 2000}),
        "continuous-paper": Preset("continuous: 100 stages of 50 steps (~5 epochs) on the full set",
                                   config={**CONTINUOUS, "lr_stages": 100, "interval": 50}),
    },
    hooks=Hooks(prepare=prepare, after_sweep=lr_range_after),
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
