"""The batch-norm-vs-dropout trial: the shared image-classification trial with the model options set by `setup`.

    >>> from trainables.bn_dropout import SETUPS, classify_config
    >>> classify_config({"setup": "bn_dropout"})["dropout_hidden"]
    0.5

Five setups of LeNet-5 on MNIST (`SETUPS`). Every setup's input is standardized with the training
set's per-channel mean and std (`trainables.training.augment.eval_transform`, as in every image trial),
so setup (a)'s preprocessing holds for all five:

- `bn` (a): batch norm after every hidden conv/FC layer, before its ReLU;
- `bn_input` (b): (a) plus batch norm on the input (one gamma/beta per input channel);
- `dropout` (c): no batch norm; dropout 0.2 on the input, 0.5 after the hidden FC layers (LeNet-5's conv
  maps keep no dropout, Srivastava et al.'s usual setup);
- `bn_dropout` (d): (a)'s batch norm and (c)'s dropout together;
- `baseline` (e): neither.

The setup owns the four model options (input_batch_norm, batch_norm, dropout_input, dropout_hidden):
giving one of them directly is a ConfigError, so a trial's recorded options are always its setup's (the
study records the effective values as params through `derived_params`). Recipe, the same for all five:
Adam, lr 1e-3 cosine-annealed to 0 over the trial (stepped every step, so the last epoch's numbers are
not one noisy step of a constant-lr run), batch 128, no weight decay, no augmentation. For setups with
batch norm the trained gammas and betas are recorded by the shared trial as the artifact
`trainables.image.trial.BATCHNORM_TABLE` at its last report.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from trainables.image import trial as ic
from trainables.config import ConfigError, from_dict

# setup -> the model options it sets (a)..(e) of the study; dict order is the order figures use.
SETUPS: dict[str, dict[str, Any]] = {
    "bn": {"batch_norm": True},
    "bn_input": {"batch_norm": True, "input_batch_norm": True},
    "dropout": {"dropout_input": 0.2, "dropout_hidden": 0.5},
    "bn_dropout": {"batch_norm": True, "dropout_input": 0.2, "dropout_hidden": 0.5},
    "baseline": {},
}
LABELS = {"bn": "(a) batch norm", "bn_input": "(b) batch norm + on input", "dropout": "(c) dropout 0.2/0.5",
          "bn_dropout": "(d) batch norm + dropout", "baseline": "(e) neither"}
MODEL_OPTIONS = ("input_batch_norm", "batch_norm", "dropout_input", "dropout_hidden")  # what a setup owns
_DEFAULTS = {f.name: f.default for f in fields(ic.ClassifyConfig)}


@dataclass(frozen=True)
class BNDropoutConfig(ic.ClassifyConfig):
    # Defaults: the paper-scale recipe (all of MNIST, 40 epochs); presets shrink it.
    dataset: str = "mnist"
    model: str = "lenet5"
    optimizer: str = "adam"
    lr: float = 1e-3  # per step, at the start of the cosine schedule
    lr_policy: str = "cosine"  # annealed to 0 at the last step of the trial
    batch_size: int = 128
    epochs: int = 40
    setup: str = "bn"  # bn | bn_input | dropout | bn_dropout | baseline (SETUPS): the model's norm/dropout options

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.setup not in SETUPS:
            raise ConfigError(f"setup={self.setup!r} is not one of {', '.join(SETUPS)}")
        given = [key for key in MODEL_OPTIONS if getattr(self, key) != _DEFAULTS[key]]
        if given:
            raise ConfigError(f"{', '.join(given)}: set by the setup in this study; choose one of "
                              f"setup={'|'.join(SETUPS)} instead")

    def model_options(self) -> dict[str, Any]:
        """The four options of this config's setup (unset ones at ClassifyConfig's defaults: off)."""
        return {key: SETUPS[self.setup].get(key, _DEFAULTS[key]) for key in MODEL_OPTIONS}


def classify_config(config: dict[str, Any]) -> dict[str, Any]:
    """The shared trial's config: the setup's model options filled in, `setup` dropped."""
    cfg = from_dict(BNDropoutConfig, config)
    values = ic.classify_values(cfg)
    values.update(cfg.model_options())
    return values


def train_bn_dropout(config: dict[str, Any], data: Any, session) -> None:
    ic.train_classifier(classify_config(config), data, session)


def derived_params(config: dict[str, Any]) -> dict[str, Any]:
    """n_params, flops_per_sample, and the model options the setup gave (recorded in place of the config's
    unset ones, so a run's params say what was trained)."""
    values = classify_config(config)
    return {**ic.derived_params(values), **{key: values[key] for key in MODEL_OPTIONS}}
