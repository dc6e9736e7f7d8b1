"""Batch augmentation: ResNet-44 on CIFAR-10 with cutout, M augmented copies of every sample per step.

    python sweeps/batch_augment.py                          # quick: M in {1,2,4}, 1280 images, 8 epochs, ~10 min on 2 CPUs
    python sweeps/batch_augment.py --preset paper --gpus-per-trial 1   # M in {1,...,32}, up to 100 epochs, 94% target
    python sweeps/batch_augment.py --preset paper --set lr_scaling=sqrt  # lr x sqrt(M) (or linear: lr x M)
    python sweeps/batch_augment.py --scheduler asha --asha-time passes   # ASHA on test error, time = data passes

Recipe (Hoffer et al. 2019 on He et al. 2015): base batch B = 64 distinct samples; each appears M
times per step with its own 4-pixel-pad crop, flip and 16x16 cutout, so a step sees M*B samples
with repeated labels, and an epoch keeps N/B steps for every M. SGD momentum 0.9, weight decay
1e-4, lr 0.1 divided by 10 at He et al.'s 32k and 48k iterations of batch 128, converted to
epochs on 50k images: epochs 82 and 123 (`trainables.batch_augmentation.he_milestones`); the lr is
per step and not scaled with M unless `--set lr_scaling=linear|sqrt`. Testing on the original
test images; a trial stops at the target accuracy (94%) or after 100 epochs. Per epoch: test
error, training loss, training time; per M: epochs and time to the target. On a GPU data, batched
augmentation, AMP (bf16) and channels_last all stay on the device; `--set chunks=K` splits an
M*B step into K micro-batches (accumulated gradients) when it does not fit in memory.

ASHA: with `--asha-time epoch` (default) rungs compare trials after equal epochs, where a large-M
trial has done M times the work (favouring it); with `--asha-time passes` (samples seen / N) they
compare after equal work, where a large-M trial has taken M times fewer optimizer steps, and early
in training the step count, not the variance of each step, limits progress: large M looks worse
at the first rungs than it ends, so ASHA may stop it unfairly. Neither is fair for this question;
the study's answer comes from full (fifo) runs.
"""

from analysis.studies import batch_augment as figures
from sweeps.runner import main
from sweeps.study import Preset, Study
from trainables.batch_augmentation import BatchAugmentConfig, derived_params, train_batch_augment
from trainables.image.trial import make_data, supports_population

STUDY = Study(
    name="batch_augment",
    description=__doc__.split("\n")[0],
    config_cls=BatchAugmentConfig,
    trial_fn=train_batch_augment,
    data_parallel=True,
    make_data=make_data,
    presets={
        "smoke": Preset("M in {1, 2}, tiny data, B = 16, 3 epochs (seconds; the tests' fake CIFAR-10)",
                        config={"batch_size": 16, "epochs": 3, "lr": 0.05, "lr_milestones": (2,),
                                "target_accuracy": 0.9},
                        space={"batch_m": [1, 2]}, num_samples=2, asha_grace_period=1),
        "quick": Preset("M in {1, 2, 4}, 1280 training images, 8 epochs, 35% target (~10 min on a 2-core CPU)",
                        config={"train_subset": 1280, "test_subset": 1000, "epochs": 8, "lr_milestones": (6,),
                                "target_accuracy": 0.35},
                        space={"batch_m": [1, 2, 4]}, num_samples=3, asha_grace_period=2),
        "paper": Preset("M in {1, 2, 4, 8, 16, 32}, all 50k images, up to 100 epochs, 94% target (GPUs)",
                        config={"epochs": 100, "target_accuracy": 0.94},
                        space={"batch_m": [1, 2, 4, 8, 16, 32]}, num_samples=6, asha_grace_period=5),
    },
    metric="test/error",
    mode="min",
    figures=figures.figures,
    summary=figures.summary,
    derived_params=derived_params,
    population=supports_population,  # --set seeds=N with model=mlp|lenet5: one population trial
    asha_times={"passes": ("train/passes", lambda config: int(config["batch_m"]))},
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
