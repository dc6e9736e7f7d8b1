"""Optimizers: AdaGrad, RMSProp, RMSProp+Nesterov, AdaDelta and Adam on a 2x1000 ReLU MLP, with L2 or dropout.

    python sweeps/optimizers.py                            # quick: MNIST subset, 15 epochs, 10 trials (minutes)
    python sweeps/optimizers.py --set dataset=cifar10      # the CIFAR-10 variant
    python sweeps/optimizers.py --set lr_search=8          # first pick each method's lr: 8 Optuna trials per method
    python sweeps/optimizers.py --preset paper --set seeds=3   # 2 trials per GPU, 200 epochs, full data

Question: how do the five adaptive methods converge on an MLP with two hidden layers of 1000 ReLU units
(batch 128), first with L2 regularization (weight decay `l2` = 1e-4), then with dropout (0.2 on the input,
0.5 after each hidden layer)? Which reaches the lowest training loss, how much longer does training with
dropout take, and which gives the best test accuracy? Each method runs at its own learning rate
(`lr_<method>`, defaults and sources in trainables/studies/optimizers.py, METHOD_LRS); `--set lr_search=N` first
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

from dataclasses import dataclass, replace

from sweeps.runner import main
from sweeps.study import Context, Hooks, Preset, Study, image_trial
from trainables.config import ConfigError
from trainables.image.config import ClassifyConfig, ImageTrial, loop_config
from trainables.studies.optimizers import DERIVED, METHOD_LRS, METHODS, REGULARIZATIONS

SPACE = {"regularization": list(REGULARIZATIONS), "optimizer": list(METHODS)}


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


def to_loop(cfg: OptimizersConfig) -> ImageTrial:
    """The loop's config of a study config: its regularization and its method's learning rate (or each method's,
    for a population of methods)."""
    regularization = ({"weight_decay": cfg.l2} if cfg.regularization == "l2"
                      else {"dropout_input": cfg.p_drop_input, "dropout_hidden": cfg.p_drop_hidden})
    if cfg.optimizers:
        lrs = {"lrs": tuple(cfg.method_lr(m) for m in cfg.optimizers)}
        return ImageTrial(loop=loop_config(cfg, **regularization, **lrs))
    lr = cfg.method_lr(cfg.optimizer)
    return ImageTrial(loop=loop_config(cfg, **regularization, lr=lr), params={"method_lr": lr})


def search_lrs(base: OptimizersConfig, context: Context) -> OptimizersConfig:
    """With lr_search=N: each method's learning rate from a small Optuna search, before anything is created."""
    if not base.lr_search:
        return base
    from trainables.image.trial import make_data
    from trainables.studies.optimizers import search_learning_rates

    methods = list(base.optimizers or METHODS)
    print(f"lr search: {base.lr_search} Optuna trials for each of {len(methods)} methods, "
          f"{base.lr_search_epochs} epochs under {' and '.join(REGULARIZATIONS)} each")

    def run_config(method: str, regularization: str, lr: float) -> ClassifyConfig:
        one = replace(base, optimizer=method, regularization=regularization, optimizers=(), seeds=1,
                      epochs=base.lr_search_epochs)
        return replace(to_loop(one).loop, lr=lr)

    found = search_learning_rates(run_config, {m: base.method_lr(m) for m in methods}, make_data(to_loop(base).loop),
                                  list(REGULARIZATIONS), base.lr_search, seed=base.seed, data_seed=base.data_seed)
    return replace(base, **{f"lr_{method}": values["lr"] for method, values in found.items()})


STUDY = Study(
    name="optimizers",
    doc=__doc__,
    config=OptimizersConfig,
    # the methods of a setting (and seeds) as one population: --population
    trial=image_trial(to_loop, population_axes={"optimizer": "optimizers"}),
    presets={
        "smoke": Preset("5 methods x L2/dropout, MLP 64-64, 512 images, 2 epochs (seconds; the tests' fake data)",
                        config={"widths": (64, 64), "train_subset": 512, "test_subset": 256, "epochs": 2},
                        space=SPACE, num_samples=4, asha_grace_period=1),
        "quick": Preset("5 methods x L2/dropout, 10k training images, 15 epochs (minutes on a laptop CPU)",
                        config={"train_subset": 10_000, "test_subset": 2_000, "epochs": 15},
                        space=SPACE, num_samples=10, asha_grace_period=3),
        "paper": Preset("5 methods x L2/dropout, all 60k images, 200 epochs (2 trials per GPU)", gpus_per_trial=0.5,
                        config={"epochs": 200},
                        space=SPACE, num_samples=10, asha_grace_period=20),
    },
    hooks=Hooks(prepare=search_lrs),
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
