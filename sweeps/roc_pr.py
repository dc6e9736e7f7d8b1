"""ROC, PR and PR-gain curves of AdaBoost and logistic regression on a real binary data set.

    python sweeps/roc_pr.py                                   # quick (= paper): both classifiers, breast cancer
    python sweeps/roc_pr.py --set dataset=openml:credit-g     # German credit via fetch_openml (positive: "bad");
                                                              # offline it needs scikit-learn's OpenML cache
                                                              # under --data-dir (exit 2 with the fix otherwise)
    python sweeps/roc_pr.py --set positive_label=benign       # the other class as positive

One child run per classifier (trainables/studies/roc_pr.py): AdaBoost (100 stumps) and StandardScaler + L2 logistic
regression, fitted on a stratified 70/30 split (split_seed 0) and scored on the test part by
decision_function. Default data: scikit-learn's bundled breast-cancer set, positive class "malignant"
(212 of 569). Per classifier: AUROC, AUPR = average precision (step-wise; the trapezoid over PR points,
which Davis & Goadrich 2006 show is wrong, is recorded only for contrast) and AUPRG (Flach & Kull 2015:
precision gain (prec - pi)/((1 - pi) prec), recall gain (rec - pi)/((1 - pi) rec), pi the test set's share of
positives; area over recall gain in [0, 1], trapezoid rule in PRG space). Figures: roc.png, pr.png, prg.png
and the table roc_pr.csv (analysis/studies/roc_pr.py).

Measured, quick preset (2-core CPU shared with another job; 2 trials, 34 s of sweep, 74 s wall with Ray start-up
and imports; the fits themselves take 0.1-0.6 s): breast cancer,
test set of 171, pi = 0.3743: AdaBoost AUROC 0.9882, AUPR 0.9865, AUPRG 0.9925; logistic regression AUROC
0.9917, AUPR 0.9887, AUPRG 0.9946.
"""

from sweeps.runner import main
from sweeps.study import Preset, Study, Trial
from trainables.studies.roc_pr import RocPrConfig

CLASSIFIERS = {"classifier": ["adaboost", "logistic"]}

STUDY = Study(
    name="roc_pr",
    doc=__doc__,
    config=RocPrConfig,
    # one-shot: each classifier is fitted once and reports once
    trial=Trial(run="trainables.studies.roc_pr:train_roc_pr", data="trainables.studies.roc_pr:make_data",
                epochs=None),
    presets={
        "smoke": Preset("both classifiers on breast cancer, AdaBoost with 20 stumps (seconds)",
                        config={"n_estimators": 20}, space=CLASSIFIERS),
        "quick": Preset("both classifiers on breast cancer, AdaBoost with 100 stumps (seconds; = paper)",
                        space=CLASSIFIERS),
        "paper": Preset("both classifiers on breast cancer, AdaBoost with 100 stumps (cheap: = quick)",
                        space=CLASSIFIERS),
    },
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
