"""Bias-variance: polynomials of degree 1 to 15 fitted to 100 noisy samples of x + sin(1.5x); which degree is best?

    python sweeps/bias_variance.py                     # quick: degrees 1 .. 15, ridge alpha 1e-2 (15 one-shot trials)
    python sweeps/bias_variance.py --preset smoke      # degrees 1, 3, 10 (3 trials, seconds)
    python sweeps/bias_variance.py --preset paper      # quick + degree 10 at ridge alpha 1e-4, 1e-3, 1e-1, 1
    python sweeps/bias_variance.py --set n_test=1000   # a larger fixed test set than the 10 points of 80/20

Classic exercise (shared/REFERENCES.md): y = x + sin(1.5x) + N(0, 0.3), x uniform on [0, 10]. One data set
of 20 points fitted by degrees 1, 3 and 10; then 100 data sets of 50 points split 80/20 (40 training points
drawn afresh per set, ONE test set of 10 points drawn once and shared; trainables/studies/bias_variance.py), degrees
1 to 15: squared bias, variance and test MSE per degree, on the fixed test set and over x ~ U[0, 10] (a
dense grid: the population values, free of the ten test points' noise); and degree 10 with L2 (ridge on
standardized polynomial features) against unregularized. One trial per degree, each fitting all 100 sets in
one batched solve and reporting once; the ridge numbers at `ridge_alpha` come with every degree.
Figures (analysis/studies/bias_variance.py): the 20-point illustration, bias^2/variance/MSE vs degree with the best
degree marked, ridge vs none at degree 10, and 20 of the fits per degree with their mean.

Measured, quick preset (2-core CPU shared with other jobs; 49.5 s of sweep, 94 s wall with start-up; seed 0):
best degree 5 on the fixed 10-point test set (test MSE 0.338: those ten labels' noise is 0.288 and their
cross term pulls low degrees below 0.3), 6 over x ~ U[0, 10] (expected test MSE 0.674: bias^2 0.094,
variance 0.280). Degree 1: bias^2 0.50, variance 0.04; degree 3: 0.42, 0.08 (both under-fit: sin(1.5x)
has ~2.4 periods on [0, 10]); degree 10: 0.22, 13.2 (over-fits: extrapolation at the ends of [0, 10],
where a set of 40 points may have no point); degree 15: 163, 2.4e4. Degree 10 with ridge alpha 1e-2:
bias^2 0.074, variance 0.42, MSE 0.79 over x ~ U[0, 10] (unregularized 13.7); on the 10 test points 0.306
vs 0.402. The 20-point illustration: training MSE 0.457 / 0.350 / 0.061 for degrees 1 / 3 / 10.
"""

from sweeps.runner import main
from sweeps.study import Preset, Study, Trial
from trainables.studies.bias_variance import BiasVarianceConfig

DEGREES = list(range(1, 16))

STUDY = Study(
    name="bias_variance",
    doc=__doc__,
    config=BiasVarianceConfig,
    trial=Trial(run="trainables.studies.bias_variance:train_bias_variance",
                # each trial draws its (identical, seeded) data itself: microseconds; one-shot: fits once, reports once
                data="trainables.studies.bias_variance:no_shared_data", epochs=None),
    presets={
        "smoke": Preset("degrees 1, 3, 10 (3 trials, seconds)", space={"degree": [1, 3, 10]}),
        "quick": Preset("degrees 1 to 15, ridge alpha 1e-2 (15 one-shot trials)", space={"degree": DEGREES}),
        "paper": Preset("degrees 1 to 15 at ridge alpha 1e-2, and degree 10 at alpha 1e-4, 1e-3, 1e-1, 1",
                        points=tuple([{"degree": d, "ridge_alpha": 1e-2} for d in DEGREES]
                                     + [{"degree": 10, "ridge_alpha": a} for a in (1e-4, 1e-3, 1e-1, 1.0)])),
    },
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
