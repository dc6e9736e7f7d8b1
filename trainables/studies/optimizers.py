"""The optimizers study's trial: five adaptive methods on an MLP of two hidden layers of 1000 ReLU units, with
L2 regularization or with dropout, and the small per-method learning-rate search that may precede the sweep.

    >>> from trainables.studies.optimizers import OptimizersConfig, train_optimizers
    >>> config = {"optimizer": "rmsprop_nesterov", "regularization": "dropout", "epochs": 3, "train_subset": 2000}
    >>> train_optimizers(config, make_data(OptimizersConfig(**config)), LocalSession(epochs=3))

`OptimizersConfig` is the image trial's config (trainables.image.trial.ClassifyConfig) with the
study's defaults (MNIST, mlp 1000-1000, batch 128) and four kinds of study keys:
- `regularization`: l2 (weight decay `l2`, no dropout) or dropout (`p_drop_input` on the input,
  `p_drop_hidden` after every hidden layer, no weight decay). The image trial's own `weight_decay`,
  `dropout_input` and `dropout_hidden` are set from these and may not be given directly;
- a learning rate per method, `lr_<method>` (defaults in METHOD_LRS, with their sources); `lr` serves
  methods without their own key (sgd, nesterov, adamw);
- the methods' hyperparameters are the image trial's (`rmsprop_alpha`, `adadelta_rho`, `adam_beta1/2`,
  `momentum` of RMSProp-Nesterov, `eps`), with this study's defaults below;
- `lr_search`: Optuna trials per method for `search_learning_rates` (run by the study before the sweep).

A population of methods (`optimizers`, fused by the runner's --population from the study's optimizer axis)
takes each method's `lr_<method>`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from trainables.config import ConfigError, from_dict
from trainables.image.trial import (ClassifyConfig, classify_values, derived_params as classify_params,
                                              train_classifier)
from trainables.runtime.session import LocalSession
from trainables.data.vision import Split, VisionData

METHODS = ("adagrad", "rmsprop", "rmsprop_nesterov", "adadelta", "adam")
# Default learning rates: Adagrad 0.01 (torch's default), RMSProp 0.001 (Hinton's lecture 6e; Keras' default),
# RMSProp-Nesterov 0.001 (as RMSProp), AdaDelta 1.0 (Zeiler 2012 has no global rate: 1.0 is his update),
# Adam 0.001 (Kingma & Ba 2015).
METHOD_LRS = {"adagrad": 0.01, "rmsprop": 0.001, "rmsprop_nesterov": 0.001, "adadelta": 1.0, "adam": 0.001}
REGULARIZATIONS = ("l2", "dropout")
# The image trial's keys this study sets from `regularization` (given directly they would be overwritten).
DERIVED = ("weight_decay", "dropout_input", "dropout_hidden")


@dataclass(frozen=True)
class OptimizersConfig(ClassifyConfig):
    dataset: str = "mnist"
    model: str = "mlp"
    widths: tuple[int, ...] = (1000, 1000)
    batch_size: int = 128
    optimizer: str = "adam"
    rmsprop_alpha: float = 0.9  # RMSProp's decay rate rho (Hinton's 0.9; torch's default is 0.99)
    adadelta_rho: float = 0.95  # Zeiler's rho
    regularization: str = "l2"  # l2 | dropout
    l2: float = 1e-4  # regularization=l2: the weight decay lambda (gradient + lambda w; penalty lambda/2 |w|^2)
    p_drop_input: float = 0.2  # regularization=dropout: dropout probability on the input (Srivastava: keep 0.8)
    p_drop_hidden: float = 0.5  # ... and after every hidden layer (keep 0.5)
    lr_adagrad: float = METHOD_LRS["adagrad"]
    lr_rmsprop: float = METHOD_LRS["rmsprop"]
    lr_rmsprop_nesterov: float = METHOD_LRS["rmsprop_nesterov"]
    lr_adadelta: float = METHOD_LRS["adadelta"]
    lr_adam: float = METHOD_LRS["adam"]
    lr_search: int = 0  # Optuna trials per method before the sweep, picking each lr_<method> (0 = no search)
    lr_search_epochs: int = 2  # epochs of each search trial (on a validation split of the training set)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.regularization not in REGULARIZATIONS:
            raise ConfigError(f"regularization={self.regularization!r} is not one of {', '.join(REGULARIZATIONS)}")
        given = [key for key in DERIVED if getattr(self, key) != 0]
        if given:
            raise ConfigError(f"{', '.join(given)}: set by regularization=l2|dropout in this study; give l2, "
                              f"p_drop_input or p_drop_hidden instead")
        if self.l2 < 0 or not (0 <= self.p_drop_input < 1 and 0 <= self.p_drop_hidden < 1):
            raise ConfigError(f"l2={self.l2} must be >= 0 and p_drop_input={self.p_drop_input}, p_drop_hidden="
                              f"{self.p_drop_hidden} in [0, 1)")
        for method in METHODS:
            if getattr(self, f"lr_{method}") <= 0:
                raise ConfigError(f"lr_{method}={getattr(self, f'lr_{method}')} must be positive")
        if self.lr_search < 0 or self.lr_search_epochs < 1:
            raise ConfigError(f"lr_search={self.lr_search} must be >= 0 and lr_search_epochs="
                              f"{self.lr_search_epochs} >= 1")

    def method_lr(self, method: str) -> float:
        """The learning rate of `method`: its lr_<method>, else `lr`."""
        return getattr(self, f"lr_{method}", self.lr)


def classify_config(cfg: OptimizersConfig) -> dict[str, Any]:
    """The image trial's config of a study config: regularization and per-method learning rates applied."""
    values = classify_values(cfg)
    if cfg.regularization == "l2":
        values["weight_decay"] = cfg.l2
    else:
        values.update(dropout_input=cfg.p_drop_input, dropout_hidden=cfg.p_drop_hidden)
    if cfg.optimizers:
        values["lrs"] = tuple(cfg.method_lr(m) for m in cfg.optimizers)
    else:
        values["lr"] = cfg.method_lr(cfg.optimizer)
    return values


def train_optimizers(config: dict[str, Any], data: VisionData, session) -> None:
    train_classifier(classify_config(from_dict(OptimizersConfig, config)), data, session)


def derived_params(config: dict[str, Any]) -> dict[str, Any]:
    """Parameters and MACs per sample (of the image trial), and the learning rate the trial's method used."""
    cfg = from_dict(OptimizersConfig, config)
    extra = {} if cfg.optimizers else {"method_lr": cfg.method_lr(cfg.optimizer)}
    return {**classify_params(classify_config(cfg)), **extra}


# --- the per-method learning-rate search ----------------------------------------------------------

def validation_split(data: VisionData, fraction: float = 1 / 6, seed: int = 0) -> VisionData:
    """`data` with a seeded `fraction` of its training images held out as the validation split (the test
    split is left alone: the search never looks at it)."""
    n = len(data.train.labels)
    perm = np.random.default_rng(seed).permutation(n)
    held = max(1, int(n * fraction))
    val_idx, train_idx = np.sort(perm[:held]), np.sort(perm[held:])
    pick = lambda idx: Split(data.train.images[idx], data.train.labels[idx])  # noqa: E731
    return dataclasses.replace(data, train=pick(train_idx), val=pick(val_idx))


def search_learning_rates(cfg: OptimizersConfig, data: VisionData, methods: list[str], regularizations: list[str],
                          trials: int, progress: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Each method's learning rate by Optuna (TPE after a third of the trials at random, seeded): `trials` trials
    per method, each training the method
    for `lr_search_epochs` epochs under every regularization of the sweep, scored by the mean final validation
    loss (a diverged run scores 1e3). The range searched is log-uniform over 1/30 to 30 times the method's
    configured lr. Runs in this process (no Ray), one trial after another. Returns method -> {"lr", "val_loss"}."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    split = validation_split(data, seed=cfg.data_seed)
    found = {}
    for index, method in enumerate(methods):
        center = cfg.method_lr(method)

        def objective(trial) -> float:
            lr = trial.suggest_float("lr", center / 30, center * 30, log=True)
            losses = []
            for regularization in regularizations:
                run = dataclasses.replace(cfg, optimizer=method, regularization=regularization, optimizers=(),
                                          seeds=1, epochs=cfg.lr_search_epochs)
                session = LocalSession(epochs=cfg.lr_search_epochs)
                train_classifier({**classify_config(run), "lr": lr}, split, session)
                last = session.history[-1] if session.history else {}
                loss = last.get("val/loss", math.nan)
                losses.append(loss if math.isfinite(loss) else 1e3)
            return float(np.mean(losses))

        # a third of the trials random, then TPE; each method its own seed (not the same draws around each default)
        sampler = optuna.samplers.TPESampler(seed=cfg.seed * 1000 + index, n_startup_trials=max(2, trials // 3))
        study = optuna.create_study(direction="minimize", sampler=sampler)
        study.optimize(objective, n_trials=trials)
        found[method] = {"lr": study.best_params["lr"], "val_loss": study.best_value}
        progress(f"lr search {method}: lr {found[method]['lr']:.3g} (validation loss {study.best_value:.4f}, "
                 f"{trials} trials, default {center:g})")
    return found
