"""The optimizers study's part of its trial: the methods it compares, their default learning rates, and the small
per-method learning-rate search that may precede the sweep (run in the driver's process, no Ray).

    >>> found = search_learning_rates(run_config, {"adam": 1e-3, "adagrad": 1e-2}, data, ["l2", "dropout"], trials=8)

The study's config (`OptimizersConfig`: regularization l2|dropout, a learning rate per method `lr_<method>`) and
its mapping to the image trial's config are declared in sweeps/optimizers.py.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:  # the search imports the image trial (torch) when it runs: the names above stay cheap to import
    from trainables.data.vision import VisionData
    from trainables.image.config import ClassifyConfig

METHODS = ("adagrad", "rmsprop", "rmsprop_nesterov", "adadelta", "adam")
# Default learning rates: Adagrad 0.01 (torch's default), RMSProp 0.001 (Hinton's lecture 6e; Keras' default),
# RMSProp-Nesterov 0.001 (as RMSProp), AdaDelta 1.0 (Zeiler 2012 has no global rate: 1.0 is his update),
# Adam 0.001 (Kingma & Ba 2015).
METHOD_LRS = {"adagrad": 0.01, "rmsprop": 0.001, "rmsprop_nesterov": 0.001, "adadelta": 1.0, "adam": 0.001}
REGULARIZATIONS = ("l2", "dropout")
# The image trial's keys this study sets from `regularization` (given directly they would be overwritten).
DERIVED = ("weight_decay", "dropout_input", "dropout_hidden")


# --- the per-method learning-rate search ----------------------------------------------------------

def validation_split(data: VisionData, fraction: float = 1 / 6, seed: int = 0) -> VisionData:
    """`data` with a seeded `fraction` of its training images held out as the validation split (the test
    split is left alone: the search never looks at it)."""
    from trainables.data.vision import Split

    n = len(data.train.labels)
    perm = np.random.default_rng(seed).permutation(n)
    held = max(1, int(n * fraction))
    val_idx, train_idx = np.sort(perm[:held]), np.sort(perm[held:])
    pick = lambda idx: Split(data.train.images[idx], data.train.labels[idx])  # noqa: E731
    return dataclasses.replace(data, train=pick(train_idx), val=pick(val_idx))


def search_learning_rates(run_config: Callable[[str, str, float], ClassifyConfig], centers: dict[str, float],
                          data: VisionData, regularizations: list[str], trials: int, seed: int = 0, data_seed: int = 0,
                          progress: Callable[[str], None] = print) -> dict[str, dict[str, float]]:
    """Each method's learning rate by Optuna (TPE after a third of the trials at random, seeded): `trials` trials
    per method, each training the method
    for `lr_search_epochs` epochs under every regularization of the sweep, scored by the mean final validation
    loss (a diverged run scores 1e3). The range searched is log-uniform over 1/30 to 30 times the method's
    configured lr (`centers[method]`). `run_config(method, regularization, lr)` is the image trial's config of one
    search run. Runs in this process (no Ray), one trial after another. Returns method -> {"lr", "val_loss"}."""
    import optuna

    from trainables.image.trial import train_classifier
    from trainables.runtime.session import LocalSession

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    split = validation_split(data, seed=data_seed)
    found = {}
    for index, (method, center) in enumerate(centers.items()):

        def objective(trial) -> float:
            lr = trial.suggest_float("lr", center / 30, center * 30, log=True)
            losses = []
            for regularization in regularizations:
                run = run_config(method, regularization, lr)
                session = LocalSession(epochs=run.epochs)
                train_classifier(run, split, session)
                last = session.history[-1] if session.history else {}
                loss = last.get("val/loss", math.nan)
                losses.append(loss if math.isfinite(loss) else 1e3)
            return float(np.mean(losses))

        # a third of the trials random, then TPE; each method its own seed (not the same draws around each default)
        sampler = optuna.samplers.TPESampler(seed=seed * 1000 + index, n_startup_trials=max(2, trials // 3))
        study = optuna.create_study(direction="minimize", sampler=sampler)
        study.optimize(objective, n_trials=trials)
        found[method] = {"lr": study.best_params["lr"], "val_loss": study.best_value}
        progress(f"lr search {method}: lr {found[method]['lr']:.3g} (validation loss {study.best_value:.4f}, "
                 f"{trials} trials, default {center:g})")
    return found
