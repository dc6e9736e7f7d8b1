"""Batch augmentation: ResNet-44 on CIFAR-10 with cutout, M augmented copies of every sample per step.

    python sweeps/batch_augment.py                          # quick: M in {1,2,4}, 1280 images, 8 epochs, ~10 min on 2 CPUs
    python sweeps/batch_augment.py --preset paper                     # M in {1,...,32}, up to 100 epochs, 94% target
    python sweeps/batch_augment.py --preset paper --set lr_scaling=sqrt  # lr x sqrt(M) (or linear: lr x M)
    python sweeps/batch_augment.py --scheduler asha --asha-time passes   # ASHA on test error, time = data passes

Recipe (Hoffer et al. 2019 on He et al. 2015): base batch B = 64 distinct samples; each appears M
times per step with its own 4-pixel-pad crop, flip and 16x16 cutout, so a step sees M*B samples
with repeated labels, and an epoch keeps N/B steps for every M. SGD momentum 0.9, weight decay
1e-4, lr 0.1 divided by 10 at He et al.'s 32k and 48k iterations of batch 128, converted to
epochs on 50k images: epochs 82 and 123 (`he_milestones` below); the lr is
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

import math
from dataclasses import dataclass

from sweeps.runner import main
from sweeps.study import Preset, Study, image_trial
from trainables.config import ConfigError
from trainables.image.config import ClassifyConfig, ImageTrial, loop_config
from trainables.image.probes import BestAccuracy

LR_SCALINGS = ("none", "linear", "sqrt")
HE_ITERATIONS = (32_000, 48_000)  # He et al. 2015, Sec. 4.2: lr / 10 at these iterations of batch 128
HE_BATCH = 128


def he_milestones(train_size: int = 50_000) -> tuple[int, ...]:
    """He et al.'s LR drops converted to epochs (samples seen / training-set size, rounded): 50,000 images (the
    full CIFAR-10 train set) -> (82, 123); 45,000 (He et al.'s 45k/5k split) -> (91, 137). In epochs the batch
    size drops out, so the same milestones hold for B = 64 (twice as many steps per epoch)."""
    return tuple(round(it * HE_BATCH / train_size) for it in HE_ITERATIONS)


@dataclass(frozen=True)
class BatchAugmentConfig(ClassifyConfig):
    # Defaults: the paper-scale recipe (ResNet-44, B = 64, crop+flip+cutout 16, He et al.'s schedule in epochs).
    dataset: str = "cifar10"
    model: str = "resnet44"
    epochs: int = 100  # at most; a trial stops at target_accuracy
    batch_size: int = 64  # B distinct samples per step; the step sees batch_m * B
    lr: float = 0.1  # per step, before lr_scaling
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_policy: str = "multistep"  # lr x lr_gamma at each of lr_milestones
    lr_milestones: tuple[int, ...] = he_milestones(50_000)  # epochs
    crop_flip: bool = True
    cutout: int = 16
    target_accuracy: float = 0.94  # on the test set (original images)
    lr_scaling: str = "none"  # none | linear (lr x M) | sqrt (lr x sqrt(M))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lr_scaling not in LR_SCALINGS:
            raise ConfigError(f"lr_scaling={self.lr_scaling!r} is not one of {', '.join(LR_SCALINGS)}")
        if not 0.0 <= self.target_accuracy <= 1.0:
            raise ConfigError(f"target_accuracy={self.target_accuracy} must be a fraction in [0, 1] (e.g. 0.94)")


def to_loop(cfg: BatchAugmentConfig) -> ImageTrial:
    """The lr scaled for M (if asked); every report also carries the test error and the best accuracy so far."""
    lr = cfg.lr * {"none": 1.0, "linear": float(cfg.batch_m), "sqrt": math.sqrt(cfg.batch_m)}[cfg.lr_scaling]
    return ImageTrial(loop=loop_config(cfg, lr=lr), probes=(BestAccuracy(),), params={"lr_effective": lr})


STUDY = Study(
    name="batch_augment",
    doc=__doc__,
    config=BatchAugmentConfig,
    trial=image_trial(to_loop, asha_times={"passes": ("train/passes", lambda config: int(config.batch_m))}),
    presets={
        "smoke": Preset("M in {1, 2}, tiny data, B = 16, 3 epochs (seconds; the tests' fake CIFAR-10)",
                        config={"batch_size": 16, "epochs": 3, "lr": 0.05, "lr_milestones": (2,),
                                "target_accuracy": 0.9},
                        space={"batch_m": [1, 2]}, num_samples=2, asha_grace_period=1),
        "quick": Preset("M in {1, 2, 4}, 1280 training images, 8 epochs, 35% target (~10 min on a 2-core CPU)",
                        config={"train_subset": 1280, "test_subset": 1000, "epochs": 8, "lr_milestones": (6,),
                                "target_accuracy": 0.35},
                        space={"batch_m": [1, 2, 4]}, num_samples=3, asha_grace_period=2),
        "paper": Preset("M in {1, 2, 4, 8, 16, 32}, all 50k images, up to 100 epochs, 94% target (a GPU each)",
                        gpus_per_trial=1,
                        config={"epochs": 100, "target_accuracy": 0.94},
                        space={"batch_m": [1, 2, 4, 8, 16, 32]}, num_samples=6, asha_grace_period=5),
    },
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
