"""Label smoothing on LeNet-5: does a softened target help on a small real MNIST subset? (a test-only image study)

    python tests/toy_image_study.py                       # smoke: two smoothing values, mnist5k, 2 epochs
    python tests/toy_image_study.py --set smoothing=0.2   # one value

This file is what README's "Adding a study" walks through for sweeps/<study>.py: a study on the shared image loop
declares its config (the loop's `ClassifyConfig` with the study's defaults and keys) and how that maps to the
loop's (`to_loop`), then its presets; nothing else. Its figures are tests/toy_image_figures.py (what would be
analysis/studies/<study>.py). The loop has no label smoothing, so the mapping turns it into something the loop has:
here, a weight decay that grows with it, a stand-in a real study would replace by a loop option.
"""

from dataclasses import dataclass

from sweeps.runner import main
from sweeps.study import Preset, Study, image_trial
from trainables.config import ConfigError
from trainables.image.config import ClassifyConfig, ImageTrial, loop_config


@dataclass(frozen=True)
class SmoothingConfig(ClassifyConfig):
    dataset: str = "mnist5k"  # real MNIST images, offline
    model: str = "lenet5"
    optimizer: str = "adam"
    lr: float = 1e-3
    smoothing: float = 0.0  # the study's key: how much of the target is spread over the other classes

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.smoothing < 1:
            raise ConfigError(f"smoothing={self.smoothing} must be in [0, 1)")


def to_loop(cfg: SmoothingConfig) -> ImageTrial:
    decay = 1e-3 * cfg.smoothing
    return ImageTrial(loop=loop_config(cfg, weight_decay=decay), params={"decay_from_smoothing": decay})


STUDY = Study(
    name="toy_image",
    doc=__doc__,
    config=SmoothingConfig,
    trial=image_trial(to_loop),
    presets={"smoke": Preset("two smoothing values, 512/256 images, 2 epochs (seconds)",
                             config={"train_subset": 512, "test_subset": 256, "epochs": 2, "batch_size": 32},
                             space={"smoothing": [0.0, 0.1]})},
    default_preset="smoke",
    figures="toy_image_figures",
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
