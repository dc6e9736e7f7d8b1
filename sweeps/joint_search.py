"""Joint search over learning rate, batch size and weight decay (FashionMNIST, MiniGoogLeNet).

    python sweeps/joint_search.py                      # quick: 12 Optuna (TPE) trials, ASHA, 4 epochs each at most
    python sweeps/joint_search.py --search random      # the same budget by random search
    python sweeps/joint_search.py --preset paper

Space: lr log-uniform in [1e-4, 1], batch size in {32, 64, 128, 256}, weight decay log-uniform in
[1e-6, 1e-2]; SGD momentum 0.9, constant LR. The budget is the number of trials (--num-samples, the
preset's by default); ASHA stops weak trials at its rungs (epochs 1, 3, 9, ...). Figure: the best
validation accuracy found vs trials and vs compute (training samples processed), for this sweep and the
latest sweep of the other search algorithm (optuna <-> random) in the same MLflow store, so running both
commands above gives the comparison (analysis/studies/joint_search.py). The trial is the shared image trial
(trainables/image/trial.py) with the LR/batch studies' recipe (sweeps/lr_range.py).
"""

from sweeps.lr_range import RECIPE
from sweeps.runner import main
from sweeps.study import LogUniform, Preset, Study, image_trial
from trainables.image.config import ClassifyConfig, plain_trial

SPACE = {"lr": LogUniform(1e-4, 1.0), "batch_size": [32, 64, 128, 256], "weight_decay": LogUniform(1e-6, 1e-2)}

STUDY = Study(
    name="joint_search",
    doc=__doc__,
    config=ClassifyConfig,
    trial=image_trial(plain_trial),  # --set seeds=N with model=mlp|lenet5: one population trial
    presets={
        "smoke": Preset("4 trials, 3 epochs, batch 16 or 32 on tiny data (seconds)",
                        config={**RECIPE, "epochs": 3, "val_size": 32, "lr": 0.01},
                        space={**SPACE, "batch_size": [16, 32]}, num_samples=4),
        "quick": Preset("12 trials, at most 4 epochs on 1000 images (minutes)",
                        config={**RECIPE, "epochs": 4, "train_subset": 1300, "val_size": 300, "test_subset": 500, "lr": 0.01},
                        space=SPACE, num_samples=12),
        "paper": Preset("60 trials, at most 27 epochs on the full set (2 trials per GPU)", gpus_per_trial=0.5,
                        config={**RECIPE, "epochs": 27, "val_size": 5000, "lr": 0.01}, space=SPACE, num_samples=60),
    },
    default_search="optuna",  # a grid would draw the continuous lr and weight decay once per batch size
    default_scheduler="asha",
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
