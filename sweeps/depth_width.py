"""Depth vs width: how well do MLPs of 1, 2 and 3 hidden layers fit the Eggholder function?

    python sweeps/depth_width.py                   # quick preset: 22 networks, ~3 min on a 2-core CPU
    python sweeps/depth_width.py --preset paper    # all 143 networks, 2000 epochs, 100k points
    python sweeps/depth_width.py --set seeds=3     # each network with 3 seeds, trained together as one population
                                                   # trial (one MLflow run; mean and band in the figures)

Data: y = eggholder(x1, x2) + N(0, 0.3), (x1, x2) uniform on [-512, 512]^2, 80/20
split. Inputs are scaled by 1/512, targets standardized with the training mean and
std; RMSE is reported in the units of y. Networks: every 1-3 hidden-layer MLP with
widths from {16, ..., 512} and at most 512 hidden units (143), ReLU, batch norm in
the 2- and 3-layer nets. SGD with Nesterov momentum 0.9, batch 1000, lr 0.01 with a
cosine decay to 0 (both `--set`-able). Figures: test RMSE vs total hidden units and
vs parameters, and training time vs parameters, one curve per depth.
"""

from sweeps.runner import main
from sweeps.study import Preset, Study, Trial
from trainables.studies.depth_width.config import RegressionConfig, enumerate_networks, representative_networks

TRIAL = "trainables.studies.depth_width.trial"


def as_names(nets):
    return ["-".join(map(str, n)) for n in nets]


STUDY = Study(
    name="depth_width",
    doc=__doc__,
    config=RegressionConfig,
    trial=Trial(run=f"{TRIAL}:train_regression", data=f"{TRIAL}:make_data", params=f"{TRIAL}:network_params",
                # small MLPs: --set seeds=N trains the N seeds as one population trial, on a CPU too (55x faster
                # than separate trials: README, bench/population.py)
                population=lambda config: True, population_on_cpu=True),
    presets={
        "smoke": Preset("3 networks, 2k points, 3 epochs (seconds)",
                        config={"n_points": 2_000, "epochs": 3},
                        space={"widths": ["16", "32-16", "16-16-16"]}, num_samples=3, asha_grace_period=1),
        "quick": Preset("22 uniform and halving-width networks, 20k points, 200 epochs (minutes on a laptop)",
                        config={"n_points": 20_000, "epochs": 200},
                        space={"widths": as_names(representative_networks())}, num_samples=12, asha_grace_period=20),
        "paper": Preset("all 143 networks, 100k points, 2000 epochs (a GPU: 16 trials share it)", gpus_per_trial=1 / 16,
                        config={"n_points": 100_000, "epochs": 2000},
                        space={"widths": as_names(enumerate_networks())}, num_samples=40, asha_grace_period=100),
    },
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
