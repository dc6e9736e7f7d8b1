"""Cyclical learning rates (Smith, arXiv 1506.01186) vs a constant LR on FashionMNIST with MiniGoogLeNet.

    python sweeps/cyclic_lr.py                        # quick: constant vs exp_range, 4 epochs on 2000 images
    python sweeps/cyclic_lr.py --preset paper         # constant, triangular, triangular2, exp_range; 40 epochs
    python sweeps/cyclic_lr.py --set lr_min=1e-3 --set lr_max=0.1 --set stepsize=500 --set stepsize_unit=iterations

Batch 64, SGD momentum 0.9. The LR cycles between lr_min and lr_max (torch's CyclicLR, stepped every
iteration; half cycle `stepsize` epochs or iterations; exp_range multiplies the amplitude by
gamma**iteration). lr_min/lr_max come from the latest LR range test in the MLflow store
(sweeps/lr_range.py) unless given; with neither, exit 2. The constant baseline trains at lr_max (or lr_min
with --set fixed_lr=min, or --set lr=...). Figures (analysis/studies/cyclic_lr.py): training and validation loss and
accuracy vs epoch, the learning rate vs iteration. The trial is the shared image trial
(trainables/image/trial.py, `lr_policy`) with the LR/batch studies' recipe (sweeps/lr_range.py).
"""

from sweeps.lr_range import RECIPE, fill_lr_bounds
from sweeps.runner import main
from sweeps.study import Hooks, Preset, Study, image_trial
from trainables.image.config import ClassifyConfig, plain_trial

BASE = {**RECIPE, "lr": 0.0}  # lr 0: the constant baseline trains at the range test's bound (fixed_lr, default max)

STUDY = Study(
    name="cyclic_lr",
    doc=__doc__,
    config=ClassifyConfig,
    trial=image_trial(plain_trial),  # --set seeds=N with model=mlp|lenet5: one population trial
    presets={
        "smoke": Preset("constant vs exp_range, 3 epochs, batch 16 on tiny data (seconds)",
                        config={**BASE, "epochs": 3, "batch_size": 16, "val_size": 32, "stepsize": 1, "gamma": 0.99},
                        space={"lr_policy": ["constant", "exp_range"]}),
        "quick": Preset("constant vs exp_range, 4 epochs on 2000 images, stepsize 1 epoch (minutes)",
                        config={**BASE, "epochs": 4, "train_subset": 2500, "val_size": 500, "test_subset": 1000,
                                "stepsize": 1, "gamma": 0.995},
                        space={"lr_policy": ["constant", "exp_range"]}),
        "paper": Preset("constant and the three cyclical modes, 40 epochs, stepsize 4 epochs (2 trials per GPU)",
                        gpus_per_trial=0.5,
                        config={**BASE, "epochs": 40, "val_size": 5000, "stepsize": 4},
                        space={"lr_policy": ["constant", "triangular", "triangular2", "exp_range"]}),
    },
    hooks=Hooks(prepare=fill_lr_bounds, reads="lr_range"),
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
