"""Dying ReLU: what fraction of 1000 deep, narrow ReLU nets collapse to a constant, and does Leaky ReLU help?

    python sweeps/dying_relu.py                          # quick: ReLU and Leaky ReLU at width 2 and 3, depth 10,
                                                         # 1000 simulations each (4 population trials)
    python sweeps/dying_relu.py --preset paper           # widths 2, 3, 4, 5, 10 at depth 10
    python sweeps/dying_relu.py --preset paper_depth     # depths 2 .. 20 at width 2
    python sweeps/dying_relu.py --set target=xsin5x      # x sin(5x) instead of |x|

Lu, Shin, Su & Karniadakis 2019 ("Dying ReLU and Initialization"): a 10-layer ReLU net of width 2 trained
on |x| collapses to a constant function (the target's mean) in over 90% of 1000 runs. Each configuration
here is ONE population trial of `simulations` (1000) independent trainings (trainables/studies/dying_relu.py:
fused networks, seeds 0..999, each with its own He initialization and data order), so `--set seeds` does
not apply. Data: 3000 points uniform on [-sqrt(7), sqrt(7)], minibatch 64, Adam. A network counts as
collapsed when the std of its output over a 1001-point grid is below 1e-3 of the target's; "born dead"
when at initialization some hidden layer is inactive for every grid input. Figures: collapse fraction vs
width (95% Wilson band, Lu et al.'s value beside ours), vs depth (paper_depth), the distribution of the
networks' output std, and a few collapsed and non-collapsed fits of the target.

Measured, quick preset (2-core CPU shared with other jobs, load 6-7; 10 epochs, Adam lr 1e-2; 99 s of sweep,
128 s wall with start-up): collapsed ReLU width 2 95.7% [94.3, 96.8] (born dead 91.7%), width 3 79.6%
[77.0, 82.0] (62.2%); Leaky ReLU width 2 29.5% [26.8, 32.4] (62.3%), width 3 14.4% [12.4, 16.7] (43.3%)
(95% Wilson intervals over 1000 trainings). Lu et al. 2019: over 90% at depth 10, width 2 (ReLU).
"""

from sweeps.runner import main
from sweeps.study import Preset, Study, Trial
from trainables.studies.dying_relu.config import DyingReluConfig

TRIAL = "trainables.studies.dying_relu.trial"

STUDY = Study(
    name="dying_relu",
    doc=__doc__,
    config=DyingReluConfig,
    # no `population`: the population (`simulations`) is built into every trial, seeds do not apply
    trial=Trial(run=f"{TRIAL}:train_dying_relu", data=f"{TRIAL}:make_data", params=f"{TRIAL}:network_params"),
    presets={
        "smoke": Preset("50 simulations, 2 epochs, ReLU and Leaky ReLU at width 2 (seconds)",
                        config={"simulations": 50, "epochs": 2},
                        space={"activation": ["relu", "leaky_relu"], "width": [2]}),
        "quick": Preset("1000 simulations, ReLU and Leaky ReLU, widths 2 and 3 at depth 10 (minutes on 2 CPUs)",
                        config={"simulations": 1000, "epochs": 10},
                        space={"activation": ["relu", "leaky_relu"], "width": [2, 3]}),
        "paper": Preset("1000 simulations, ReLU and Leaky ReLU, widths 2, 3, 4, 5, 10 at depth 10 (8 trials per GPU)",
                        gpus_per_trial=0.125,
                        config={"simulations": 1000, "epochs": 100},
                        space={"activation": ["relu", "leaky_relu"], "width": [2, 3, 4, 5, 10]}),
        "paper_depth": Preset("1000 simulations, ReLU and Leaky ReLU, depths 2 to 20 at width 2 (8 trials per GPU)",
                              gpus_per_trial=0.125,
                              config={"simulations": 1000, "epochs": 100},
                              space={"activation": ["relu", "leaky_relu"], "depth": [2, 4, 6, 8, 10, 15, 20]}),
    },
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
