"""ROC, precision-recall and precision-recall-gain curves of two scikit-learn classifiers on a real binary data set.

    >>> from trainables.studies.roc_pr import RocPrConfig, make_data, train_roc_pr
    >>> from trainables.runtime.session import LocalSession
    >>> cfg = RocPrConfig(classifier="adaboost")
    >>> s = LocalSession(epochs=1); train_roc_pr(vars(cfg), make_data(cfg), s)
    >>> s.history[-1]["test/auprg"], s.artifacts["prg.csv"]

One trial = one classifier fitted once on a stratified train split and scored on the test split (one-shot:
it reports once). Classifiers: "adaboost" (AdaBoostClassifier, depth-1 stumps) and "logistic"
(StandardScaler + LogisticRegression, L2, in one pipeline so the scaler sees only the training split).
The score of an example is the classifier's decision_function (higher = more positive).

Data (built once on the driver, `make_data`):
- "breast_cancer" (default, offline): scikit-learn's bundled Wisconsin diagnostic set, 569 examples, 30
  numeric features; positive class "malignant" (212 of 569, pi = 0.373; scikit-learn codes it 0, we code it 1).
- "openml:NAME": `sklearn.datasets.fetch_openml(name=NAME, data_home=<data_dir>/openml parent)`, i.e.
  scikit-learn's own loader and cache (<data_dir>/openml/openml.org/...: gzipped JSON API answers and the
  gzipped ARFF). With internet it downloads into the cache; offline it reads the cache; offline without a
  cache it raises DatasetUnavailableError (one line, exit 2). `data_dir` defaults to $DLSWEEPS_DATA_DIR
  (the runner's --data-dir), else ~/.cache/dlsweeps/data. Nominal features are one-hot encoded over the
  categories the data set declares (so the encoding uses no sample statistics); missing numeric values are
  refused. Default positive class: "bad" for credit-g (the usual choice: 300 of 1000), the minority class
  for any other OpenML set; `positive_label` picks another one of the two classes.

Curves (vectorized, from the test scores; tied scores are ONE threshold, i.e. one operating point):
- operating points: for every distinct score t, TP(t), FP(t) = positives/negatives with score >= t, plus
  the origin (threshold +inf: nothing predicted positive). roc: FPR = FP/N, TPR = TP/P. pr: recall = TP/P,
  precision = TP/(TP+FP) (undefined at the origin). pi = P/(P+N), the positives' share of the TEST set.
- AUROC: trapezoid under the ROC points (sklearn roc_auc_score; linear interpolation is right in ROC space).
- AUPR: average precision, sum_k (R_k - R_{k-1}) P_k (sklearn average_precision_score): step-wise, NOT the
  trapezoid over PR points, which Davis & Goadrich (ICML 2006) show is wrong (precision does not vary
  linearly between operating points); the trapezoid value is recorded as test/aupr_trapezoid for contrast.
- PRG (Flach & Kull, NIPS 2015): precision gain = (prec - pi) / ((1 - pi) prec) = 1 - (P/N)(FP/TP),
  recall gain = (rec - pi) / ((1 - pi) rec) = 1 - (P/N)(FN/TP). As in the authors' reference implementation
  (the `prg` package): (1) gains at every operating point (the origin has recall gain -inf); (2) where the
  curve enters recall gain 0 between points j-1 and j (rg_{j-1} < 0 < rg_j), a crossing point is added:
  TP = P^2/(P+N) (recall = pi), FP linearly interpolated along the ROC segment, its precision gain from those
  counts; this IS linear interpolation in PRG space (along a ROC segment TP = TP0 + a t, FP = FP0 + b t, both
  gains are affine in 1/TP, so precision gain is affine in recall gain) and it also works from the origin,
  where rg = -inf; (3) where precision gain changes sign between two points of recall gain >= 0, the crossing
  at precision gain 0 is added (linear in PRG space; it changes no area, it marks where the curve leaves the
  unit square for the figure); (4) points with recall gain < 0 are dropped; (5) AUPRG = trapezoid rule in
  PRG space over the remaining points (ordered by recall gain, then precision gain descending), where
  negative precision gains count as negative area (as the reference's calc_auprg does). The all-positive
  classifier is PRG point (1, 0); a perfect classifier has AUPRG 1.

Metrics: test/auroc, test/aupr (average precision), test/auprg, test/aupr_trapezoid, test/pi, data/n_train,
data/n_test, data/n_features, time/fit_s. Artifacts: points.csv (every operating point: threshold, tp, fp,
fpr, tpr, recall, precision, precision_gain, recall_gain), prg.csv (the PRG curve of step 5:
recall_gain, precision_gain, crossing), scores.csv (test label and score).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trainables.config import ConfigError
from trainables.artifacts import PARAMS_KEY

CLASSIFIERS = ("adaboost", "logistic")
# The positive class per data set when positive_label is "" (documented above).
DEFAULT_POSITIVE = {"breast_cancer": "malignant", "openml:credit-g": "bad"}
OPENML_RETRIES = 2  # fetch_openml's n_retries (delay 0.5 s): offline, the error comes after ~1 s
POINTS_TABLE, PRG_TABLE, SCORES_TABLE = "points.csv", "prg.csv", "scores.csv"


@dataclass(frozen=True)
class RocPrConfig:
    dataset: str = "breast_cancer"  # "breast_cancer" (sklearn's bundled copy) or "openml:NAME" (e.g. openml:credit-g)
    positive_label: str = ""  # the class counted positive; "": the data set's default (DEFAULT_POSITIVE / minority)
    data_dir: str = ""  # OpenML cache root (data_home's parent): default $DLSWEEPS_DATA_DIR or ~/.cache/dlsweeps/data
    test_size: float = 0.3  # fraction of the examples held out for the curves (stratified split)
    split_seed: int = 0  # seed of the stratified train/test split
    classifier: str = "logistic"  # "adaboost" (AdaBoostClassifier) | "logistic" (StandardScaler + LogisticRegression)
    n_estimators: int = 100  # adaboost: boosting rounds (depth-1 decision stumps)
    learning_rate: float = 1.0  # adaboost: shrinkage of each stump's weight
    C: float = 1.0  # logistic: inverse L2 regularization strength
    seed: int = 0  # adaboost's random_state (logistic regression with lbfgs is deterministic)

    def __post_init__(self) -> None:
        if self.dataset != "breast_cancer" and not (self.dataset.startswith("openml:") and len(self.dataset) > 7):
            raise ConfigError(f"dataset={self.dataset!r} must be 'breast_cancer' or 'openml:NAME', e.g. openml:credit-g")
        if self.classifier not in CLASSIFIERS:
            raise ConfigError(f"classifier={self.classifier!r} must be one of {', '.join(map(repr, CLASSIFIERS))}")
        if not 0 < self.test_size < 1:
            raise ConfigError(f"test_size={self.test_size} must be a fraction in (0, 1), e.g. 0.3")
        if self.n_estimators <= 0:
            raise ConfigError(f"n_estimators={self.n_estimators} must be a positive integer")
        if self.learning_rate <= 0 or self.C <= 0:
            raise ConfigError(f"learning_rate={self.learning_rate} and C={self.C} must be positive")


# --- data -----------------------------------------------------------------------------------------------------------

def _openml_frame(name: str, data_dir: str) -> tuple[pd.DataFrame, pd.Series]:
    """fetch_openml through scikit-learn's cache under <data_dir>/openml; DatasetUnavailableError when it is not
    cached and openml.org cannot be reached."""
    from urllib.error import URLError

    from sklearn.datasets import fetch_openml

    from trainables.data.vision import DatasetUnavailableError, resolve_data_dir

    home = resolve_data_dir(data_dir or None)
    try:
        with warnings.catch_warnings():  # its "network error ... Retrying" per retry: the error below says it
            warnings.filterwarnings("ignore", message="A network error occurred", category=UserWarning)
            X, y = fetch_openml(name=name, data_home=str(home), as_frame=True, return_X_y=True, parser="pandas",
                                n_retries=OPENML_RETRIES, delay=0.5)
    except (URLError, TimeoutError, ConnectionError) as e:
        reason = getattr(e, "reason", e)
        raise DatasetUnavailableError(
            f"OpenML data set {name!r} is not cached under {home / 'openml'} and openml.org is unreachable "
            f"({reason}); run once with internet (it is cached there), or copy a scikit-learn OpenML cache "
            f"(data_home/openml/openml.org/...) there, or point --data-dir / --set data_dir at one") from None
    except ValueError as e:  # e.g. OpenMLError (no such data set), a target with missing values
        raise ConfigError(f"dataset=openml:{name}: {str(e).splitlines()[0]}") from None
    if isinstance(y, pd.DataFrame):
        raise ConfigError(f"dataset=openml:{name} has {y.shape[1]} target columns; a binary target is needed")
    return X, y


def _encode_features(X: pd.DataFrame, dataset: str) -> tuple[np.ndarray, list[str]]:
    """Numbers as they are, nominal columns one-hot over their declared categories (float64 matrix)."""
    nominal = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    numeric = [c for c in X.columns if c not in nominal]
    missing = [c for c in numeric if X[c].isna().any()]
    if missing:
        raise ConfigError(f"dataset={dataset}: numeric columns with missing values ({', '.join(missing[:5])}) are "
                          f"not supported; pick another data set")
    for c in nominal:
        if not isinstance(X[c].dtype, pd.CategoricalDtype):
            X = X.assign(**{c: X[c].astype("category")})
    encoded = pd.get_dummies(X, columns=nominal, dtype=np.float64)  # a missing category: all its columns 0
    return encoded.to_numpy(dtype=np.float64), [str(c) for c in encoded.columns]


def make_data(cfg: RocPrConfig) -> dict[str, Any]:
    """The whole data set as arrays: X [n, d] float64, y [n] int (1 = positive), and what was chosen."""
    if cfg.dataset == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        bunch = load_breast_cancer()
        X, names = bunch.data.astype(np.float64), [str(n) for n in bunch.feature_names]
        labels = pd.Series(np.asarray(bunch.target_names)[bunch.target])
    else:
        frame, labels = _openml_frame(cfg.dataset.split(":", 1)[1], cfg.data_dir)
        X, names = _encode_features(frame, cfg.dataset)
        labels = labels.astype(str)
    classes = sorted(labels.unique())
    if len(classes) != 2:
        raise ConfigError(f"dataset={cfg.dataset} has {len(classes)} classes ({', '.join(classes[:5])}); "
                          f"a binary target is needed")
    counts = labels.value_counts()
    positive = cfg.positive_label or DEFAULT_POSITIVE.get(cfg.dataset) or min(classes, key=lambda c: counts[c])
    if positive not in classes:
        raise ConfigError(f"positive_label={positive!r} is not a class of {cfg.dataset}; its classes: "
                          f"{', '.join(map(repr, classes))}")
    y = (labels == positive).to_numpy().astype(np.int64)
    return {"X": X, "y": y, "feature_names": names, "dataset": cfg.dataset, "positive_label": positive,
            "negative_label": next(c for c in classes if c != positive)}


def split(data: dict[str, Any], test_size: float, seed: int) -> tuple[np.ndarray, ...]:
    """Stratified train/test split: X_train, X_test, y_train, y_test."""
    from sklearn.model_selection import train_test_split

    return train_test_split(data["X"], data["y"], test_size=test_size, random_state=seed, stratify=data["y"])


def build_classifier(cfg: RocPrConfig):
    from sklearn.ensemble import AdaBoostClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if cfg.classifier == "adaboost":
        return AdaBoostClassifier(n_estimators=cfg.n_estimators, learning_rate=cfg.learning_rate,
                                  random_state=cfg.seed)
    return make_pipeline(StandardScaler(), LogisticRegression(C=cfg.C, max_iter=5000))


# --- curves ---------------------------------------------------------------------------------------------------------

def operating_points(y: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """One row per distinct threshold, descending, after the origin (threshold +inf): threshold, tp, fp (counts
    of positives / negatives with score >= threshold). Tied scores form one threshold."""
    y, scores = np.asarray(y).astype(bool), np.asarray(scores, dtype=np.float64)
    order = np.argsort(-scores, kind="mergesort")
    s, yy = scores[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # the last index of every run of tied scores
    tp = np.cumsum(yy)[last]
    fp = (last + 1) - tp
    return pd.DataFrame({"threshold": np.r_[np.inf, s[last]], "tp": np.r_[0, tp].astype(np.int64),
                         "fp": np.r_[0, fp].astype(np.int64)})


def gains(tp, fp, n_pos: int, n_neg: int) -> tuple[np.ndarray, np.ndarray]:
    """(precision gain, recall gain) = (1 - (P/N) FP/TP, 1 - (P/N) FN/TP), i.e. (prec - pi)/((1 - pi) prec)
    and (rec - pi)/((1 - pi) rec); at TP = 0 they are -inf or nan (recall gain -inf)."""
    tp, fp = np.asarray(tp, dtype=np.float64), np.asarray(fp, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pg = 1.0 - (n_pos / n_neg) * (fp / tp)
        rg = 1.0 - (n_pos / n_neg) * ((n_pos - tp) / tp)
    return pg, rg


def curve_points(y: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """Every operating point with its ROC, PR and PRG coordinates."""
    pts = operating_points(y, scores)
    n_pos, n_neg = int(np.sum(y)), int(len(y) - np.sum(y))
    tp, fp = pts["tp"].to_numpy(), pts["fp"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = tp / (tp + fp)
    pg, rg = gains(tp, fp, n_pos, n_neg)
    return pts.assign(fpr=fp / n_neg, tpr=tp / n_pos, recall=tp / n_pos, precision=precision,
                      precision_gain=pg, recall_gain=rg)


def prg_curve(y: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """The PRG curve over recall gain >= 0 (steps 2-4 of the module docstring): recall_gain, precision_gain,
    crossing (1 for an added crossing point)."""
    y = np.asarray(y)
    n_pos, n_neg = int(np.sum(y)), int(len(y) - np.sum(y))
    pts = operating_points(y, scores)
    tp, fp = pts["tp"].to_numpy(np.float64), pts["fp"].to_numpy(np.float64)
    pg, rg = gains(tp, fp, n_pos, n_neg)
    crossing = np.zeros(len(tp), dtype=np.int64)
    j = int(np.argmax(rg >= 0))  # rg is non-decreasing and 1 at the last point (all positive): j exists, j >= 1
    if rg[j] > 0:  # the curve crosses recall gain 0 inside the segment (j-1, j): TP = P^2/n on the ROC segment
        alpha = (n_pos * n_pos / (n_pos + n_neg) - tp[j - 1]) / (tp[j] - tp[j - 1])
        cross_fp = fp[j - 1] + alpha * (fp[j] - fp[j - 1])
        cross_pg, _ = gains(n_pos * n_pos / (n_pos + n_neg), cross_fp, n_pos, n_neg)
        pg, rg, crossing = np.insert(pg, j, cross_pg), np.insert(rg, j, 0.0), np.insert(crossing, j, 1)
    keep = rg >= 0
    pg, rg, crossing = pg[keep], rg[keep], crossing[keep]
    # precision gain changes sign between consecutive points: add the crossing of precision gain 0 (linear in PRG)
    flips = np.flatnonzero(pg[:-1] * pg[1:] < 0)
    if len(flips):
        at = rg[flips] + (-pg[flips]) / (pg[flips + 1] - pg[flips]) * (rg[flips + 1] - rg[flips])
        pg, rg = np.insert(pg, flips + 1, 0.0), np.insert(rg, flips + 1, at)
        crossing = np.insert(crossing, flips + 1, 1)
    return pd.DataFrame({"recall_gain": rg, "precision_gain": pg, "crossing": crossing})


def auprg(curve: pd.DataFrame) -> float:
    """Trapezoid rule in PRG space over the curve of `prg_curve` (negative precision gain: negative area)."""
    rg, pg = curve["recall_gain"].to_numpy(), curve["precision_gain"].to_numpy()
    return float(np.sum(np.diff(rg) * (pg[1:] + pg[:-1]) / 2))


def areas(y: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """AUROC, AUPR (average precision, step-wise), AUPRG, and the (wrong) trapezoid AUPR for contrast."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

    precision, recall, _ = precision_recall_curve(y, scores)
    return {"auroc": float(roc_auc_score(y, scores)), "aupr": float(average_precision_score(y, scores)),
            "auprg": auprg(prg_curve(y, scores)), "aupr_trapezoid": float(auc(recall, precision))}


# --- the trial ------------------------------------------------------------------------------------------------------

def train_roc_pr(cfg: RocPrConfig, data: dict[str, Any], session, device: Any = None) -> None:
    chosen = cfg.positive_label or data["positive_label"]
    if data["dataset"] != cfg.dataset or chosen != data["positive_label"]:
        raise ConfigError("dataset and positive_label cannot be swept: the data is built once, from the base config")
    X_train, X_test, y_train, y_test = split(data, cfg.test_size, cfg.split_seed)
    if len(np.unique(y_test)) < 2 or len(np.unique(y_train)) < 2:
        raise ConfigError(f"test_size={cfg.test_size} leaves a split with one class; use a fraction nearer 0.3")
    t0 = time.perf_counter()
    model = build_classifier(cfg).fit(X_train, y_train)
    fit_s = time.perf_counter() - t0
    scores = model.decision_function(X_test)
    found = areas(y_test, scores)
    metrics = {f"test/{k}": v for k, v in found.items()}
    metrics[PARAMS_KEY] = {"positive_class": data["positive_label"], "negative_class": data["negative_label"]}
    metrics.update({"test/pi": float(np.mean(y_test)), "data/n_train": len(y_train), "data/n_test": len(y_test),
                    "data/n_features": X_train.shape[1], "time/fit_s": fit_s})
    artifacts = {POINTS_TABLE: curve_points(y_test, scores), PRG_TABLE: prg_curve(y_test, scores),
                 SCORES_TABLE: pd.DataFrame({"y": y_test, "score": scores})}
    session.report(metrics, 1, artifacts=artifacts)
