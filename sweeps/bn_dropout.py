"""Batch norm or dropout on LeNet-5 / MNIST, and do their benefits add up? Five setups, one trial each (per seed).

    python sweeps/bn_dropout.py                       # quick: 10k/2k MNIST images, 8 epochs, ~1.5 min on 2 CPUs
    python sweeps/bn_dropout.py --set seeds=3         # 3 seeds per setup (~4 min): spread bars, verdicts
    python sweeps/bn_dropout.py --preset paper --set seeds=5   # 4 trials per GPU, all of MNIST, 40 epochs
    python -m analysis bn_dropout                     # redraw the figures and summary from MLflow

Setups (`SETUPS` below; every input standardized with the training set's mean and std):
(a) `bn` batch norm in the hidden layers, (b) `bn_input` batch norm on the input too, (c) `dropout`
0.2 on the input and 0.5 after the hidden FC layers, (d) `bn_dropout` (a) and (c) together, (e)
`baseline` neither. Adam, lr 1e-3 cosine-annealed to 0, batch 128, for all five. Each trial with batch
norm records its learned gammas and betas (every BN layer, the input's included) as the artifact
batchnorm.csv. At the end the sweep prints, from the numbers, whether batch norm on the input lowered
the test error (bn_input vs bn) and whether batch norm and dropout add up (bn_dropout vs the better of
bn and dropout vs baseline), each difference beside its spread over seeds, and LeNet-5's published
0.95% test error (LeCun et al. 1998) beside our best. Figures: analysis/studies/bn_dropout.py.
"""

from dataclasses import dataclass, fields
from typing import Any

from sweeps.runner import main
from sweeps.study import Preset, Study, image_trial
from trainables.config import ConfigError
from trainables.image.config import ClassifyConfig, ImageTrial, ModelOptions, loop_config

# setup -> the model options it sets, (a)..(e) of the study; dict order is the order the figures use
# (analysis/studies/bn_dropout.py labels them).
SETUPS: dict[str, dict[str, Any]] = {
    "bn": {"batch_norm": True},
    "bn_input": {"batch_norm": True, "input_batch_norm": True},
    "dropout": {"dropout_input": 0.2, "dropout_hidden": 0.5},
    "bn_dropout": {"batch_norm": True, "dropout_input": 0.2, "dropout_hidden": 0.5},
    "baseline": {},
}
OWNED = ("input_batch_norm", "batch_norm", "dropout_input", "dropout_hidden")  # what a setup sets
ALL_SETUPS = {"setup": list(SETUPS)}
OFF = {f.name: f.default for f in fields(ModelOptions) if f.name in OWNED}


@dataclass(frozen=True)
class BNDropoutConfig(ClassifyConfig):
    # Defaults: the paper-scale recipe (all of MNIST, 40 epochs); presets shrink it.
    dataset: str = "mnist"
    model: str = "lenet5"
    optimizer: str = "adam"
    lr: float = 1e-3  # per step, at the start of the cosine schedule
    lr_policy: str = "cosine"  # annealed to 0 at the last step of the trial
    batch_size: int = 128
    epochs: int = 40
    setup: str = "bn"  # bn | bn_input | dropout | bn_dropout | baseline: the model's batch norm and dropout

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.setup not in SETUPS:
            raise ConfigError(f"setup={self.setup!r} is not one of {', '.join(SETUPS)}")
        given = [key for key in OWNED if getattr(self, key) != OFF[key]]
        if given:
            raise ConfigError(f"{', '.join(given)}: set by the setup in this study; choose one of "
                              f"setup={'|'.join(SETUPS)} instead")


def to_loop(cfg: BNDropoutConfig) -> ImageTrial:
    """The setup's four model options on the loop's config; the run records them in place of the unset ones."""
    options = {**OFF, **SETUPS[cfg.setup]}
    return ImageTrial(loop=loop_config(cfg, **options), params=options)


STUDY = Study(
    name="bn_dropout",
    doc=__doc__,
    config=BNDropoutConfig,
    trial=image_trial(to_loop),  # --set seeds=N: one population trial of the seeds on a GPU (--population)
    presets={
        "smoke": Preset("5 setups, at most 512/256 images, 5 epochs of batch 16, lr 2e-3 (seconds; tests: fake MNIST)",
                        config={"train_subset": 512, "test_subset": 256, "epochs": 5, "batch_size": 16, "lr": 2e-3},
                        space=ALL_SETUPS, num_samples=5),
        "quick": Preset("5 setups, 10k training / 2k test MNIST images, 8 epochs (~1.5 min on 2 CPUs, x3 per seed)",
                        config={"train_subset": 10_000, "test_subset": 2_000, "epochs": 8},
                        space=ALL_SETUPS, num_samples=5, asha_grace_period=2),
        "paper": Preset("5 setups, all 60k/10k MNIST images, 40 epochs (4 trials per GPU; add --set seeds=5)",
                        gpus_per_trial=0.25,
                        config={"epochs": 40},
                        space=ALL_SETUPS, num_samples=5, asha_grace_period=5),
    },
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
