"""Why naive initializations make a deep MLP's activations and gradients vanish or explode, and how Glorot and He fix it.

    python sweeps/weight_init.py                      # quick: 10k/2k MNIST images, 3 epochs, 3 seeds per config
    python sweeps/weight_init.py --set dataset=digits # the same on scikit-learn's digits (no download)
    python sweeps/weight_init.py --preset paper --gpus-per-trial 1   # all of MNIST, 10 epochs, 10 seeds
    python -m analysis weight_init                    # redraw the figures and summary from MLflow

An MLP of 5 hidden layers of 100 units (A. Perunicic, "Understand neural network weight initialization") on
standardized MNIST; activation tanh, sigmoid or ReLU x initialization N(0, 0.01^2), N(0, 1), Glorot normal
(Var = 2/(n_in + n_out)) or He normal (Var = 2/n_in) (trainables/studies/weight_init.py): 12 configurations, each
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

from analysis.studies import weight_init as figures
from sweeps.runner import main
from sweeps.study import Preset, Study
from trainables.image.trial import make_data, supports_population
from trainables.studies.weight_init import INITS, STUDY_ACTIVATIONS, WeightInitConfig, derived_params, train_weight_init

GRID = {"activation": list(STUDY_ACTIVATIONS), "init": list(INITS)}  # 3 x 4 = 12 configurations

STUDY = Study(
    name="weight_init",
    description=__doc__.split("\n")[0],
    config_cls=WeightInitConfig,
    trial_fn=train_weight_init,
    data_parallel=True,
    make_data=make_data,
    presets={
        "smoke": Preset("12 configs x 2 seeds, at most 512/256 images, 2 epochs of batch 32, 256 stats images "
                        "(seconds; tests: fake MNIST)",
                        config={"train_subset": 512, "test_subset": 256, "epochs": 2, "batch_size": 32,
                                "stats_samples": 256, "bins": 20, "seeds": 2},
                        space=GRID, num_samples=12),
        "quick": Preset("12 configs x 3 seeds, 10k training / 2k test MNIST images, 3 epochs (minutes on 2 CPUs)",
                        config={"train_subset": 10_000, "test_subset": 2_000, "epochs": 3, "seeds": 3},
                        space=GRID, num_samples=12),
        "paper": Preset("12 configs x 10 seeds, all 60k/10k MNIST images, 10 epochs",
                        config={"epochs": 10, "seeds": 10},
                        space=GRID, num_samples=12),
    },
    metric="test/accuracy",
    mode="max",
    figures=figures.figures,
    summary=figures.summary,
    derived_params=derived_params,
    population=supports_population,  # the seeds of a config train as one fused population trial
    population_on_cpu=True,  # 100-unit layers: fusing wins on a CPU too
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
