"""Batch norm or dropout on LeNet-5 / MNIST, and do their benefits add up? Five setups, one trial each (per seed).

    python sweeps/bn_dropout.py                       # quick: 10k/2k MNIST images, 8 epochs, ~1.5 min on 2 CPUs
    python sweeps/bn_dropout.py --set seeds=3         # 3 seeds per setup (~4 min): spread bars, verdicts
    python sweeps/bn_dropout.py --preset paper --set seeds=5 --gpus-per-trial 1   # all of MNIST, 40 epochs
    python -m analysis bn_dropout                     # redraw the figures and summary from MLflow

Setups (trainables/bn_dropout.py; every input standardized with the training set's mean and std):
(a) `bn` batch norm in the hidden layers, (b) `bn_input` batch norm on the input too, (c) `dropout`
0.2 on the input and 0.5 after the hidden FC layers, (d) `bn_dropout` (a) and (c) together, (e)
`baseline` neither. Adam, lr 1e-3 cosine-annealed to 0, batch 128, for all five. Each trial with batch
norm records its learned gammas and betas (every BN layer, the input's included) as the artifact
batchnorm.csv. At the end the sweep prints, from the numbers, whether batch norm on the input lowered
the test error (bn_input vs bn) and whether batch norm and dropout add up (bn_dropout vs the better of
bn and dropout vs baseline), each difference beside its spread over seeds, and LeNet-5's published
0.95% test error (LeCun et al. 1998) beside our best. Figures: analysis/studies/bn_dropout.py.
"""

from analysis.studies import bn_dropout as figures
from sweeps.runner import main
from sweeps.study import Preset, Study
from trainables.bn_dropout import SETUPS, BNDropoutConfig, derived_params, train_bn_dropout
from trainables.image.trial import make_data, supports_population

ALL_SETUPS = {"setup": list(SETUPS)}

STUDY = Study(
    name="bn_dropout",
    description=__doc__.split("\n")[0],
    config_cls=BNDropoutConfig,
    trial_fn=train_bn_dropout,
    data_parallel=True,
    make_data=make_data,
    presets={
        "smoke": Preset("5 setups, at most 512/256 images, 5 epochs of batch 16, lr 2e-3 (seconds; tests: fake MNIST)",
                        config={"train_subset": 512, "test_subset": 256, "epochs": 5, "batch_size": 16, "lr": 2e-3},
                        space=ALL_SETUPS, num_samples=5),
        "quick": Preset("5 setups, 10k training / 2k test MNIST images, 8 epochs (~1.5 min on 2 CPUs, x3 per seed)",
                        config={"train_subset": 10_000, "test_subset": 2_000, "epochs": 8},
                        space=ALL_SETUPS, num_samples=5, asha_grace_period=2),
        "paper": Preset("5 setups, all 60k/10k MNIST images, 40 epochs (GPUs; add --set seeds=5)",
                        config={"epochs": 40},
                        space=ALL_SETUPS, num_samples=5, asha_grace_period=5),
    },
    metric="test/accuracy",
    mode="max",
    figures=figures.figures,
    summary=figures.summary,
    derived_params=derived_params,
    population=supports_population,  # --set seeds=N: the seeds of a setup train fused where that is faster
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
