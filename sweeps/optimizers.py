"""Optimizers: AdaGrad, RMSProp, RMSProp+Nesterov, AdaDelta and Adam on a 2x1000 ReLU MLP, with L2 or dropout.

    python sweeps/optimizers.py                            # quick: MNIST subset, 15 epochs, 10 trials (minutes)
    python sweeps/optimizers.py --set dataset=cifar10      # the CIFAR-10 variant
    python sweeps/optimizers.py --set lr_search=8          # first pick each method's lr: 8 Optuna trials per method
    python sweeps/optimizers.py --preset paper --gpus-per-trial 0.5 --set seeds=3   # 200 epochs, full data

Question: how do the five adaptive methods converge on an MLP with two hidden layers of 1000 ReLU units
(batch 128), first with L2 regularization (weight decay `l2` = 1e-4), then with dropout (0.2 on the input,
0.5 after each hidden layer)? Which reaches the lowest training loss, how much longer does training with
dropout take, and which gives the best test accuracy? Each method runs at its own learning rate
(`lr_<method>`, defaults and sources in trainables/studies/optimizers.py); `--set lr_search=N` first
tunes each one (Optuna TPE, N trials per method, `lr_search_epochs` epochs under both regularizations,
scored on a validation split of the training set; in the driver process, before the sweep) and the
sweep then uses the values found (recorded as the parent run's base.lr_<method> params).

Population trials: the five methods of a regularization setting (and --set seeds=N) can train fused as one
population trial of 5N replicas (`--population on`, or auto on GPUs: one small MLP leaves a GPU idle); on
a CPU separate trials are faster (auto). The figures read per-replica records either way.
Figures: training loss vs epoch per method (L2 and dropout panels), training time per method (L2 vs
dropout bars), final test accuracy per method (figure and CSV); references: Srivastava et al. 2014 (dropout
MLP on MNIST: 1.25% test error) and Kingma & Ba 2015, Fig. 2 (Adam converges fastest with dropout).
"""

from analysis.studies import optimizers as figures
from sweeps.runner import main
from sweeps.study import Context, Preset, Study
from trainables.image.trial import make_data, supports_population
from trainables.studies.optimizers import (METHODS, REGULARIZATIONS, OptimizersConfig, derived_params,
                                             search_learning_rates, train_optimizers)
from trainables.config import from_dict

SPACE = {"regularization": list(REGULARIZATIONS), "optimizer": list(METHODS)}


def search_lrs(base: dict, context: Context) -> dict:
    """With lr_search=N: each method's learning rate from a small Optuna search, before anything is created."""
    cfg = from_dict(OptimizersConfig, base)
    if not cfg.lr_search:
        return base
    methods = list(cfg.optimizers or METHODS)
    print(f"lr search: {cfg.lr_search} Optuna trials for each of {len(methods)} methods, "
          f"{cfg.lr_search_epochs} epochs under {' and '.join(REGULARIZATIONS)} each")
    found = search_learning_rates(cfg, make_data(cfg), methods, list(REGULARIZATIONS), cfg.lr_search)
    return {**base, **{f"lr_{method}": values["lr"] for method, values in found.items()}}


STUDY = Study(
    name="optimizers",
    description=__doc__.split("\n")[0],
    config_cls=OptimizersConfig,
    trial_fn=train_optimizers,
    data_parallel=True,
    make_data=make_data,
    presets={
        "smoke": Preset("5 methods x L2/dropout, MLP 64-64, 512 images, 2 epochs (seconds; the tests' fake data)",
                        config={"widths": (64, 64), "train_subset": 512, "test_subset": 256, "epochs": 2},
                        space=SPACE, num_samples=4, asha_grace_period=1),
        "quick": Preset("5 methods x L2/dropout, 10k training images, 15 epochs (minutes on a laptop CPU)",
                        config={"train_subset": 10_000, "test_subset": 2_000, "epochs": 15},
                        space=SPACE, num_samples=10, asha_grace_period=3),
        "paper": Preset("5 methods x L2/dropout, all 60k images, 200 epochs (GPUs)",
                        config={"epochs": 200},
                        space=SPACE, num_samples=10, asha_grace_period=20),
    },
    metric="test/accuracy",
    mode="max",
    figures=figures.figures,
    summary=figures.summary,
    derived_params=derived_params,
    prepare=search_lrs,
    population=supports_population,  # the methods of a setting (and seeds) as one population: --population
    population_axes={"optimizer": "optimizers"},
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
