"""Staleness of gradients in asynchronous SGD with a parameter server, vs the learners' speed ratio.

    python sweeps/staleness.py                         # quick: 2 learners, speeds (1, r), r = 1 .. 10, 100 time units
    python sweeps/staleness.py --preset paper          # also 4 and 8 learners, speeds evenly spaced from 1 to r
    python sweeps/staleness.py --set speeds=1,1,3      # any speeds (then `ratio` and `learners` are ignored)

Learners push a gradient and pull the weights at the same instant, with no communication time; learner i
computes for 1/s_i time units per gradient. Staleness of a gradient = weight updates applied between its read
and its own update; simultaneous updates are served in learner-index order, each learner's push followed at
once by its read (trainables/studies/staleness.py; exact times as integer ticks). One child run per configuration
(one-shot: the schedule is computed, not trained). Figures (analysis/studies/staleness.py): mean and max staleness
per learner vs r with the long-run mean sum_{j!=i} s_j/s_i (r and 1/r for two learners), the staleness
distribution per r, and the timeline of the r = 2.5 schedule; table staleness.csv.

Measured, quick preset (2-core CPU shared with another job; 8 trials, 9.8 s of sweep, 36 s wall with Ray
start-up), horizon 100, mean / max staleness: r = 1: learner 0 0.99 / 1 (its first gradient 0), learner 1
1.00 / 1; r = 2.5: slow 2.49 / 3, fast 0.40 / 1; r = 10: slow 9.99 / 10, fast 0.10 / 1 (the long-run means
r and 1/r). Paper preset (24 trials, 25 s of sweep, 59 s wall): 4 learners at r = 2.5 (speeds 1, 1.5, 2, 2.5):
slowest 5.97 / 7 (long run 6), fastest 1.80 / 3; 8 learners at r = 10: slowest 42.96 / 46 (43), fastest 3.40 / 7.
"""

from sweeps.runner import main
from sweeps.study import Preset, Study, Trial, no_data
from trainables.studies.staleness import StalenessConfig

RATIOS = [1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 10.0]

STUDY = Study(
    name="staleness",
    doc=__doc__,
    config=StalenessConfig,
    # one-shot: the schedule is computed once and reported once; nothing shared between trials
    trial=Trial(run="trainables.studies.staleness:train_staleness", data=no_data, epochs=None),
    presets={
        "smoke": Preset("2 learners, r = 1, 2.5, 4, 20 time units (seconds)",
                        config={"horizon": 20.0}, space={"ratio": [1.0, 2.5, 4.0]}),
        "quick": Preset("2 learners, speeds (1, r), r = 1 .. 10, 100 time units (8 trials, seconds)",
                        config={"horizon": 100.0}, space={"ratio": RATIOS}),
        "paper": Preset("2, 4 and 8 learners, speeds evenly spaced from 1 to r, r = 1 .. 10, 100 time units (24 trials)",
                        config={"horizon": 100.0}, space={"ratio": RATIOS, "learners": [2, 4, 8]}),
    },
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
