"""Why naive initializations make a deep MLP's activations and gradients vanish or explode, and how Glorot and He fix it.

    python sweeps/weight_init.py                      # quick: 10k/2k MNIST images, 3 epochs, 3 seeds per config
    python sweeps/weight_init.py --set dataset=digits # the same on scikit-learn's digits (no download)
    python sweeps/weight_init.py --preset paper   # 4 trials per GPU, all of MNIST, 10 epochs, 10 seeds
    python -m analysis weight_init                    # redraw the figures and summary from MLflow

An MLP of 5 hidden layers of 100 units (A. Perunicic, "Understand neural network weight initialization") on
standardized MNIST; activation tanh, sigmoid or ReLU x initialization N(0, 0.01^2), N(0, 1), Glorot normal
(Var = 2/(n_in + n_out)) or He normal (Var = 2/n_in) (`INITS` below): 12 configurations, each
ONE population trial of `seeds` replicas (seeds 0..N-1, fused). Plain SGD, momentum 0.9, lr 0.01, batch 64
for all (no per-weight rescaling that would hide a bad start, as Adam's would). Each trial records, per
replica and hidden layer, at initialization and after its last epoch, the activation mean/std, the fraction
of exact zeros and the gradient norm of the layer's weight (layer_stats.csv), and activation histograms
(histograms.csv), measured on a fixed batch of 1000 test images. The summary prints the test accuracy per
configuration and, per activation, which initialization keeps the activation std closest to constant over
the layers (last/first ratio at initialization; saturated tanh/sigmoid configurations left out). Figures:
analysis/studies/weight_init.py. Seeds come from the preset (smoke 2, quick 3, paper 10); --set seeds=N changes N.
Measured (quick, --set dataset=digits, 3 seeds, ~1 min on 2 CPUs): Glorot/He train tanh to 95-96% and ReLU to
91-93% test accuracy; N(0, 0.01^2) stays at chance for all three; N(0, 1) diverges for tanh and ReLU.
"""

from dataclasses import dataclass, fields

from sweeps.runner import main
from sweeps.study import Preset, Study, image_trial
from trainables.config import ConfigError
from trainables.image.config import ClassifyConfig, ImageTrial, ModelOptions, loop_config

# init -> the model options it sets, in the order the figures use (analysis/studies/weight_init.py labels them).
INITS = {
    "normal_small": {"weight_init": "normal", "init_sigma": 0.01},
    "normal_large": {"weight_init": "normal", "init_sigma": 1.0},
    "glorot": {"weight_init": "glorot"},
    "he": {"weight_init": "he"},
}
STUDY_ACTIVATIONS = ("tanh", "sigmoid", "relu")  # the study's axis (any activation of ClassifyConfig runs)
OWNED = ("weight_init", "init_sigma")  # what `init` sets
DEFAULTS = {f.name: f.default for f in fields(ModelOptions) if f.name in OWNED}
GRID = {"activation": list(STUDY_ACTIVATIONS), "init": list(INITS)}  # 3 x 4 = 12 configurations


@dataclass(frozen=True)
class WeightInitConfig(ClassifyConfig):
    # Defaults: the paper-scale recipe (all of MNIST); presets shrink it.
    dataset: str = "mnist"
    model: str = "mlp"
    widths: tuple[int, ...] = (100, 100, 100, 100, 100)  # 5 hidden layers of 100 units
    activation: str = "tanh"  # the study sweeps tanh | sigmoid | relu
    optimizer: str = "sgd"
    lr: float = 0.01  # per step, constant
    momentum: float = 0.9
    batch_size: int = 64
    epochs: int = 10
    init: str = "glorot"  # normal_small | normal_large | glorot | he: sets weight_init and init_sigma
    stats_samples: int = 1000  # test images of the fixed batch the layer statistics are measured on
    bins: int = 50  # histogram bins per layer

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.init not in INITS:
            raise ConfigError(f"init={self.init!r} is not one of {', '.join(INITS)}")
        given = [key for key in OWNED if getattr(self, key) != DEFAULTS[key]]
        if given:
            raise ConfigError(f"{', '.join(given)}: set by init in this study; choose one of "
                              f"init={'|'.join(INITS)} instead")
        if self.stats_samples <= 0 or self.bins <= 0:
            raise ConfigError(f"stats_samples={self.stats_samples} and bins={self.bins} must be positive")


def to_loop(cfg: WeightInitConfig) -> ImageTrial:
    """The init's weight_init/init_sigma on the loop's config, and the layer statistics as a probe."""
    from trainables.studies.weight_init import LayerStatistics

    options = {**DEFAULTS, **INITS[cfg.init]}
    return ImageTrial(loop=loop_config(cfg, **options), probes=(LayerStatistics(cfg.stats_samples, cfg.bins),),
                      params=options)


STUDY = Study(
    name="weight_init",
    doc=__doc__,
    config=WeightInitConfig,
    # the seeds of a config train as one fused population trial, on a CPU too (100-unit layers: fusing wins)
    trial=image_trial(to_loop, population_on_cpu=True),
    presets={
        "smoke": Preset("12 configs x 2 seeds, at most 512/256 images, 2 epochs of batch 32, 256 stats images "
                        "(seconds; tests: fake MNIST)",
                        config={"train_subset": 512, "test_subset": 256, "epochs": 2, "batch_size": 32,
                                "stats_samples": 256, "bins": 20, "seeds": 2},
                        space=GRID, num_samples=12),
        "quick": Preset("12 configs x 3 seeds, 10k training / 2k test MNIST images, 3 epochs (minutes on 2 CPUs)",
                        config={"train_subset": 10_000, "test_subset": 2_000, "epochs": 3, "seeds": 3},
                        space=GRID, num_samples=12),
        "paper": Preset("12 configs x 10 seeds, all 60k/10k MNIST images, 10 epochs (4 trials per GPU)",
                        gpus_per_trial=0.25,
                        config={"epochs": 10, "seeds": 10},
                        space=GRID, num_samples=12),
    },
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
