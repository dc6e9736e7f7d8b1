"""The ROC / PR / PR-gain study: hand-computed PRG cases, ties, scikit-learn's OpenML loader reading a cache this
test writes (offline), the config's errors, and the smoke sweep end to end with its figures redrawn from MLflow."""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from trainables.config import ConfigError, from_dict
from trainables.studies.roc_pr import (RocPrConfig, auprg, curve_points, gains, make_data, operating_points, prg_curve,
                               train_roc_pr)
from trainables.runtime.session import LocalSession
from trainables.data.vision import DatasetUnavailableError

FIGURES = ["roc.png", "pr.png", "prg.png"]

# y and scores with ties: 0.8 is one positive and one negative, 0.3 two negatives. P = N = 3, pi = 1/2, P/N = 1.
Y = np.array([1, 1, 0, 1, 0, 0])
S = np.array([0.9, 0.8, 0.8, 0.5, 0.3, 0.3])


def test_tied_scores_are_one_threshold_and_match_sklearn():
    pts = operating_points(Y, S)
    assert pts["threshold"].tolist() == [np.inf, 0.9, 0.8, 0.5, 0.3]
    assert pts["tp"].tolist() == [0, 1, 2, 3, 3] and pts["fp"].tolist() == [0, 0, 1, 1, 3]
    fpr, tpr, _ = roc_curve(Y, S, drop_intermediate=False)
    assert np.allclose(pts["fp"] / 3, fpr) and np.allclose(pts["tp"] / 3, tpr)
    rng = np.random.default_rng(0)  # many ties: scores on a coarse grid
    y, s = rng.integers(0, 2, 300), rng.integers(0, 12, 300) / 4
    table = curve_points(y, s)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    assert np.allclose(table["fpr"], fpr) and np.allclose(table["tpr"], tpr)
    precision, recall, _ = precision_recall_curve(y, s)  # ascending thresholds, then the (recall 0, precision 1) end
    assert np.allclose(table["precision"].iloc[1:], precision[:-1][::-1])
    assert np.allclose(table["recall"].iloc[1:], recall[:-1][::-1])


def test_gains_by_hand_on_tied_scores():
    # thresholds 0.9, 0.8, 0.5, 0.3: (TP, FP) = (1, 0), (2, 1), (3, 1), (3, 3); prec = 1, 2/3, 3/4, 1/2;
    # rec = 1/3, 2/3, 1, 1. precision gain (prec - 1/2)/(1/2 prec) = 2 - 1/prec; recall gain 2 - 1/rec:
    table = curve_points(Y, S).iloc[1:]
    assert table["precision_gain"].tolist() == pytest.approx([1, 1 / 2, 2 / 3, 0])
    assert table["recall_gain"].tolist() == pytest.approx([-1, 1 / 2, 1, 1])
    # the shortcut (prec - pi)/(1 - pi) the issue forbids: 1, 1/3, 1/2, 0 -- different at 0.8 and 0.5
    shortcut = (table["precision"] - 0.5) / 0.5
    assert shortcut.tolist() == pytest.approx([1, 1 / 3, 1 / 2, 0])
    assert not np.allclose(shortcut, table["precision_gain"])
    # the curve: the segment (rg, pg) = (-1, 1) -> (1/2, 1/2) crosses rg = 0 at TP = P^2/n = 3/2, FP = 1/2, i.e.
    # pg = 1 - 0.5/1.5 = 2/3, the same as linear interpolation in PRG space (1 + (2/3)(1/2 - 1) = 2/3)
    curve = prg_curve(Y, S)
    assert curve["recall_gain"].tolist() == pytest.approx([0, 1 / 2, 1, 1])
    assert curve["precision_gain"].tolist() == pytest.approx([2 / 3, 1 / 2, 2 / 3, 0])
    assert curve["crossing"].tolist() == [1, 0, 0, 0]
    # trapezoids: 1/2 (2/3 + 1/2)/2 + 1/2 (1/2 + 2/3)/2 + 0 (vertical drop) = 7/12
    assert auprg(curve) == pytest.approx(7 / 12)
    assert average_precision_score(Y, S) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)


def test_perfect_classifier_has_auprg_one_and_the_all_positive_point_is_1_0():
    y = np.array([0, 1, 0, 1, 1, 0, 0, 0])
    curve = prg_curve(y, y * 2.0 - 1)  # every positive above every negative
    assert auprg(curve) == pytest.approx(1.0)
    assert curve.iloc[0].tolist() == pytest.approx([0, 1, 1])  # crossing at recall gain 0, precision gain 1
    assert curve.iloc[-1][["recall_gain", "precision_gain"]].tolist() == pytest.approx([1, 0])  # all positive
    pg, rg = gains(3, 5, 3, 5)  # the all-positive classifier: prec = pi, rec = 1
    assert (float(pg), float(rg)) == (0.0, 1.0)


def test_negative_precision_gain_counts_as_negative_area_with_the_x_axis_crossing():
    # P = 2, N = 3 (P/N = 2/3, P^2/n = 0.8), ranked neg, neg, pos, neg, pos: (TP, FP) = (0, 1), (0, 2), (1, 2),
    # (1, 3), (2, 3); at TP = 1: rg = 1 - (2/3)(1/1) = 1/3, pg = 1 - (2/3)(2/1) = -1/3 and (FP = 3) -1; at (2, 3):
    # rg = 1, pg = 1 - (2/3)(3/2) = 0. Recall gain 0 is crossed on the ROC segment (0, 2) -> (1, 2) (rg = -inf at
    # its start): TP = 0.8, FP = 2, pg = 1 - (2/3)(2/0.8) = -2/3. Area: (1/3)(-2/3 - 1/3)/2 + 0 + (2/3)(-1 + 0)/2
    y, s = np.array([0, 0, 1, 0, 1]), np.array([5.0, 4.0, 3.0, 2.0, 1.0])
    curve = prg_curve(y, s)
    assert curve["recall_gain"].tolist() == pytest.approx([0, 1 / 3, 1 / 3, 1])
    assert curve["precision_gain"].tolist() == pytest.approx([-2 / 3, -1 / 3, -1, 0])
    assert curve["crossing"].tolist() == [1, 0, 0, 0]
    assert auprg(curve) == pytest.approx(-1 / 6 - 1 / 3)
    # P = N = 2 (P^2/n = 1): ranked pos, neg, neg (tied), pos: (1, 0) has rg exactly 0 (no crossing needed), pg 1;
    # (1, 2): rg 0, pg -1; (2, 2): (1, 0). Precision gain flips sign at rg 0: the crossing (0, 0) is added.
    curve = prg_curve(np.array([1, 0, 0, 1]), np.array([4.0, 3.0, 3.0, 1.0]))
    assert curve["recall_gain"].tolist() == pytest.approx([0, 0, 0, 1])
    assert curve["precision_gain"].tolist() == pytest.approx([1, 0, -1, 0])
    assert curve["crossing"].tolist() == [0, 1, 0, 0]
    assert auprg(curve) == pytest.approx(-0.5)
    # P = 2, N = 3, ranked pos, neg, neg, pos, neg: (TP, FP) = (1, 0), (1, 1), (1, 2), (2, 2), (2, 3); at TP = 1
    # rg = 1/3 and pg = 1, 1/3, -1/3; at TP = 2 rg = 1, pg = 1/3, 0. Added: (0, 1) (ROC segment from the origin,
    # TP = 0.8, FP = 0), (1/3, 0) between (1/3, 1/3) and (1/3, -1/3), and (2/3, 0) on (1/3, -1/3) -> (1, 1/3).
    # Area: (1/3)(1 + 1)/2 + (1/3)(-1/3 + 0)/2 + (1/3)(0 + 1/3)/2 = 1/3 (the crossings change no area).
    curve = prg_curve(np.array([1, 0, 0, 1, 0]), np.array([5.0, 4.0, 3.0, 2.0, 1.0]))
    assert curve["recall_gain"].tolist() == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1, 1])
    assert curve["precision_gain"].tolist() == pytest.approx([1, 1, 1 / 3, 0, -1 / 3, 0, 1 / 3, 0])
    assert curve["crossing"].tolist() == [1, 0, 0, 1, 0, 1, 0, 0]
    assert auprg(curve) == pytest.approx(1 / 3)
    x_axis = (curve["crossing"] == 1) & (curve["precision_gain"] == 0)
    assert auprg(curve[~x_axis]) == pytest.approx(1 / 3)  # the x-axis crossings change no area
    assert auprg(curve.iloc[1:]) == pytest.approx(0)  # the recall-gain-0 crossing does: (1/3) wide, height 1


def test_auprg_matches_the_paper_formulas_on_random_scores():
    """The curve's non-crossing points are exactly the operating points with recall gain >= 0, with gains from the
    paper's formulas in terms of precision, recall and pi."""
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    s = y + rng.normal(0, 1.0, 200)
    pts = curve_points(y, s).iloc[1:]
    pi = y.mean()
    prec, rec = pts["precision"].to_numpy(), pts["recall"].to_numpy()
    with np.errstate(divide="ignore"):  # the thresholds above the first positive: recall 0, gains -inf
        assert np.allclose(pts["precision_gain"], (prec - pi) / ((1 - pi) * prec))
        assert np.allclose(pts["recall_gain"], (rec - pi) / ((1 - pi) * rec))
    curve = prg_curve(y, s)
    kept = pts[pts["recall_gain"] >= 0]
    plain = curve[curve["crossing"] == 0]
    assert np.allclose(plain["recall_gain"], kept["recall_gain"]) and np.allclose(plain["precision_gain"],
                                                                                 kept["precision_gain"])
    assert 0 < auprg(curve) < 1 and roc_auc_score(y, s) > 0.7


def _write_openml_cache(home: Path, name: str = "credit-g", did: int = 31, file_id: int = 31) -> pd.DataFrame:
    """A tiny synthetic data set named `name`, written where fetch_openml(name=..., data_home=home/'openml'...)
    looks: <home>/openml/openml.org/ + the API URL's path + '.gz' (sklearn/datasets/_openml.py, _get_local_path):
    the name search, description, features and qualities as gzipped JSON, the ARFF gzipped (md5 of the ARFF text).
    Columns follow credit-g's kinds: a nominal feature, two numeric ones, a nominal target "class" good/bad."""
    rng = np.random.default_rng(0)
    n = 60
    bad = np.r_[np.ones(20, bool), np.zeros(40, bool)]
    rng.shuffle(bad)
    frame = pd.DataFrame({"checking_status": rng.choice(["<0", "0<=X<200", "no checking"], n),
                          "duration": rng.integers(6, 48, n) + 12 * bad,
                          "credit_amount": np.round(rng.lognormal(8, 0.5, n), 1),
                          "class": np.where(bad, "bad", "good")})
    arff = "\n".join([f"@RELATION {name}", "@ATTRIBUTE checking_status {'<0','0<=X<200','no checking'}",
                      "@ATTRIBUTE duration NUMERIC", "@ATTRIBUTE credit_amount NUMERIC",
                      "@ATTRIBUTE class {good,bad}", "@DATA"]
                     + [f"'{r.checking_status}',{r.duration},{r.credit_amount},{r._4}"
                        for r in frame.itertuples()]) + "\n"
    root = home / "openml" / "openml.org"
    url = f"https://www.openml.org/data/v1/download/{file_id}/{name}.arff"
    features = [{"index": str(i), "name": c, "data_type": "nominal" if c in ("checking_status", "class") else "numeric",
                 "is_target": str(c == "class").lower(), "is_ignore": "false", "is_row_identifier": "false",
                 "number_of_missing_values": "0"} for i, c in enumerate(frame.columns)]
    docs = {
        f"api/v1/json/data/list/data_name/{name}/limit/2/status/active/": {
            "data": {"dataset": [{"did": did, "name": name, "version": 1, "status": "active", "format": "ARFF"}]}},
        f"api/v1/json/data/{did}": {"data_set_description": {
            "id": str(did), "name": name, "version": "1", "status": "active", "format": "ARFF", "url": url,
            "md5_checksum": hashlib.md5(arff.encode()).hexdigest(), "description": "tiny synthetic stand-in",
            "default_target_attribute": "class"}},
        f"api/v1/json/data/features/{did}": {"data_features": {"feature": features}},
        f"api/v1/json/data/qualities/{did}": {"data_qualities": {"quality": [
            {"name": "NumberOfInstances", "value": f"{n}.0"}, {"name": "NumberOfFeatures", "value": "4.0"}]}},
        f"data/v1/download/{file_id}/{name}.arff": arff,
    }
    for path, content in docs.items():
        target = root / (path + ".gz")
        target.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(target, "wb") as f:
            f.write((content if isinstance(content, str) else json.dumps(content)).encode())
    return frame


def test_openml_data_read_offline_from_sklearns_cache_with_one_hot_and_bad_as_positive(tmp_path):
    frame = _write_openml_cache(tmp_path)
    cfg = RocPrConfig(dataset="openml:credit-g", data_dir=str(tmp_path), classifier="adaboost", n_estimators=10)
    data = make_data(cfg)
    assert data["positive_label"] == "bad" and data["negative_label"] == "good"
    assert data["y"].tolist() == (frame["class"] == "bad").astype(int).tolist()
    assert data["X"].shape == (60, 2 + 3)  # 2 numeric + 3 one-hot columns of checking_status
    assert data["feature_names"][:2] == ["duration", "credit_amount"]
    assert np.array_equal(data["X"][:, 2:].sum(axis=1), np.ones(60))
    session = LocalSession(epochs=1)
    train_roc_pr(cfg, data, session)
    assert session.history[-1]["run_params"]["positive_class"] == "bad"
    assert session.history[-1]["test/pi"] == pytest.approx(6 / 18)  # stratified 30% of 60: 6 bad of 18
    assert make_data(RocPrConfig(dataset="openml:credit-g", data_dir=str(tmp_path),
                                 positive_label="good"))["y"].sum() == 40
    with pytest.raises(ConfigError, match="positive_label='ugly'"):
        make_data(RocPrConfig(dataset="openml:credit-g", data_dir=str(tmp_path), positive_label="ugly"))


def test_openml_offline_without_cache_is_a_one_line_error_naming_the_fix(tmp_path, monkeypatch, recwarn):
    for key in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):  # offline whatever the machine has
        monkeypatch.setenv(key, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with pytest.raises(DatasetUnavailableError, match="not cached under .*--data-dir") as e:
        make_data(RocPrConfig(dataset="openml:credit-g", data_dir=str(tmp_path / "empty")))
    assert "\n" not in str(e.value)
    assert not [w for w in recwarn if "network error" in str(w.message)]  # scikit-learn's per-retry warnings


def test_breast_cancer_positive_class_is_malignant():
    data = make_data(RocPrConfig())
    assert data["positive_label"] == "malignant" and data["y"].sum() == 212 and len(data["y"]) == 569


@pytest.mark.parametrize("bad,message", [({"classifier": "svm"}, "classifier"), ({"dataset": "iris"}, "dataset"),
                                         ({"test_size": 1.5}, "test_size"), ({"n_estimators": 0}, "n_estimators"),
                                         ({"C": -1}, "C="), ({"bogus": 1}, "bogus")])
def test_bad_config_values_are_one_line_errors(bad, message):
    with pytest.raises(ConfigError, match=message) as e:
        from_dict(RocPrConfig, bad)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_smoke_sweep_end_to_end_and_figures_from_mlflow(tmp_path, clean_env, monkeypatch):
    from conftest import latest_sweep, run_script
    from sweeps import roc_pr
    from sweeps.runner import main

    monkeypatch.chdir(tmp_path)
    results = tmp_path / "res"
    assert main(roc_pr.STUDY, ["--preset", "smoke", "--results-dir", str(results)]) == 0

    client, parent, children = latest_sweep(results, "roc_pr")
    assert sorted(c.data.params["classifier"] for c in children) == ["adaboost", "logistic"]
    for child in children:
        assert child.data.tags["trial_status"] == "finished" and child.data.params["positive_class"] == "malignant"
        assert child.data.params["n_estimators"] == "20"
        m = child.data.metrics
        assert m["test/pi"] == pytest.approx(64 / 171) and m["data/n_test"] == 171
        assert 0.9 < m["test/auroc"] <= 1 and 0.9 < m["test/aupr"] <= 1 and 0.9 < m["test/auprg"] <= 1

    figures = results / "roc_pr"
    for name in FIGURES + ["roc_pr.csv"]:
        (figures / name).unlink()
    regen = run_script(["-m", "analysis", "roc_pr", "--results-dir", str(results)], cwd=tmp_path)
    assert regen.returncode == 0, regen.stderr[-2000:]
    assert "Flach & Kull" in regen.stdout and "AUPRG" in regen.stdout
    for name in FIGURES:
        assert (figures / name).stat().st_size > 5000, name
    table = pd.read_csv(figures / "roc_pr.csv").set_index("classifier")
    for child in children:
        row = table.loc[child.data.params["classifier"]]
        for key in ("auroc", "aupr", "auprg"):
            assert row[key] == pytest.approx(child.data.metrics[f"test/{key}"])
