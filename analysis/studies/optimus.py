"""The Optimus study's analysis (sweeps/optimus.py): loss-curve fits, their regression on depth and device,
the predicted depth-50 curve, epochs and time to an accuracy goal, and its figures, from MLflow records only.

    python sweeps/optimus.py --preset fit     # record the results on a parent run of their own (fit_step)
    python -m analysis optimus                # the figures from the latest sweep (or fit step) in the store

Model forms (all fitted with numpy/scipy least squares):
- Loss (Peng et al. 2018, Eq. 1), per run: l(k) = 1 / (b0 k + b1) + b2 over epochs k (analysis.loss_curves).
- Regression, for each coefficient i: log(b_i + eps) = a_i + c_i * depth + g_i[device], one slope per
  coefficient shared by all devices, a per-device offset g (0 for the first device in name order), eps = 1e-3.
  The target model's runs (depth 50) are left out; its coefficients are predicted per device present and
  exp(.) - eps (floored at 0) gives the predicted curve, drawn against that device's real run. The error is
  the summed absolute error over the real run's epochs as a percentage of its summed loss (WAPE: unlike the
  mean of per-epoch percentages it is not dominated by the last epochs of a loss near 0), and the percentage
  error at its last epoch.
- Loss -> accuracy: the test accuracy as a non-increasing function of the training loss, an isotonic
  (pool-adjacent-violators) fit to every (train loss, test accuracy) epoch of the measured runs other than
  the target. The loss for a goal accuracy is where that step function first reaches it (linear in between
  its steps); if the measured runs never reach the goal it is undefined and the epochs are NaN.
- Speed (Eq. 4): f(p, w) = 1 / (t0 M / w + t1 + t2 w / p + t3 w + t4 p) steps per second of M samples. Time to
  the goal = predicted epochs x N / M / f, N the training-set size: the predicted epochs are assumed to carry
  over to the speed model's batch M.
- PALEO (`paleo=True`): MACs per 224x224 image of VGG16, GoogLeNet, ResNet-50 counted by forward hooks, the K80
  inference time per image = 2 MACs / (PPP x peak) with PALEO's K80 peak 5.6 TFLOP/s (its device table, fp32 at
  base clock) and PPP 0.49 (its MXNet-on-K80 measurement), VGG19's share of forward MACs in convolutions, and the
  measured PPP of our own training runs (where the trial knew the device's peak; none on a CPU).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from analysis.loss_curves import LossFit, fit_loss_curve, loss_model  # noqa: E402
from analysis.plotting import save_figure  # noqa: E402
from analysis.records import PARENT_TAG, RecordsError, load_sweep, trial_artifact  # noqa: E402

METRIC = "test/accuracy"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "max"

STUDY = "optimus"
EPS = 1e-3  # added to a coefficient before its log (a coefficient fitted at its bound 0 stays finite)
COEFFICIENTS = ("b0", "b1", "b2")
CIFAR10_TRAIN = 50_000
# The fit step's defaults (the study's config fields of the same names, sweeps/optimus.py).
TARGET_MODEL = "cifar_resnet50"  # predicted from the other depths and compared with its real runs
ACCURACY_GOAL = 0.92  # test accuracy whose epochs (and time, Eq. 4) are predicted
# Eq. 4 coefficients t0..t4 (seconds): the stand-in fitted to the authors' MXNet ResNet-50 speed trace
# (pengyanghua/DL2 config_speed.txt, 210 (p, w) points, R^2 0.94; ../shared/REFERENCES.md)
SPEED_T = (0.0045, 0.397, 0.543, 0.0, 0.0)
SPEED_BATCH = 32  # M, the global batch (samples per step) those coefficients were measured at
SPEED_PS = (2, 4)  # parameter servers p: one curve each
MAX_WORKERS = 32  # workers w from 1 to this
CURVE_COLUMNS = ["run_id", "sweep", "model", "depth", "device", "train_size", "epoch", "train_loss", "test_accuracy"]


def depth_of(model: str) -> int:
    """The depth in a model's name (resnet20 -> 20, cifar_resnet18 -> 18)."""
    found = re.search(r"(\d+)$", str(model))
    if not found:
        raise ValueError(f"no depth in model name {model!r}")
    return int(found.group(1))


# --- records -> curves -----------------------------------------------------------------------------------

def data_sweeps(tracking_uri: str, from_run: str | None = None) -> list:
    """The data-collection sweeps to analyse, latest first: the one `from_run` names, else the latest one
    and every earlier one of the same preset (sweeps run on other machines into the same store)."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[len("sqlite:///"):]).exists():
        return []  # an absent store is not created just to look
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(STUDY)
    if experiment is None:
        return []
    parents = [run for run in client.search_runs([experiment.experiment_id], f"tags.`{PARENT_TAG}` = '1'",
                                                 order_by=["attributes.start_time DESC"], max_results=10_000)
               if run.data.tags.get("analysis_only") != "1"]
    if from_run:
        return [run for run in parents if run.info.run_id == from_run]
    if not parents:
        return []
    preset = parents[0].data.tags.get("preset")
    return [run for run in parents if run.data.tags.get("preset") == preset]


def collect_curves(tracking_uri: str, from_run: str | None = None) -> pd.DataFrame:
    """One row per (run, epoch) of the data sweeps: model, depth, device ("GPU type"), training-set size,
    training loss and test accuracy. For a (model, device) recorded in several sweeps the latest one wins."""
    client = MlflowClient(tracking_uri)
    rows, seen = [], set()
    for parent in data_sweeps(tracking_uri, from_run):
        runs = load_sweep(STUDY, parent.info.run_id, tracking_uri).runs
        for _, run in runs.iterrows():
            device = str(run.get("GPU type", "unknown"))
            device = "unknown" if device == "nan" else device
            key = (run.get("model"), device)
            if key in seen or run.get("status") == "RUNNING":
                continue
            seen.add(key)
            subset = int(run.get("train_subset", 0) or 0)
            train_size = (subset or CIFAR10_TRAIN) - int(run.get("val_size", 0) or 0)
            steps: dict[int, dict] = {}
            for name, metric in (("train_loss", "train/loss"), ("test_accuracy", "test/accuracy")):
                for m in client.get_metric_history(run["run_id"], metric):
                    steps.setdefault(m.step, {})[name] = m.value
            for epoch, values in sorted(steps.items()):
                rows.append({"run_id": run["run_id"], "sweep": parent.info.run_id, "model": run["model"],
                             "depth": depth_of(run["model"]), "device": device, "train_size": train_size,
                             "epoch": epoch, **values})
    curves = pd.DataFrame(rows, columns=CURVE_COLUMNS)
    return curves.astype({"train_loss": float, "test_accuracy": float})


# --- fits, regression, prediction --------------------------------------------------------------------------

def fit_runs(curves: pd.DataFrame) -> pd.DataFrame:
    """Eq. 1 fitted to each run's training loss per epoch: one row per run (runs with < 3 finite points skipped)."""
    rows = []
    for (run_id, model, depth, device), run in curves.groupby(["run_id", "model", "depth", "device"], sort=False):
        run = run.sort_values("epoch")
        try:
            fit = fit_loss_curve(run["epoch"], run["train_loss"])
        except ValueError:
            continue
        rows.append({"run_id": run_id, "model": model, "depth": int(depth), "device": device, "b0": fit.b0,
                     "b1": fit.b1, "b2": fit.b2, "rmse": fit.rmse, "r2": fit.r2, "n": fit.n,
                     "final_loss": float(run["train_loss"].iloc[-1]),
                     "final_accuracy": float(run["test_accuracy"].iloc[-1])})
    columns = ["run_id", "model", "depth", "device", *COEFFICIENTS, "rmse", "r2", "n", "final_loss", "final_accuracy"]
    return pd.DataFrame(rows, columns=columns).sort_values(["device", "depth"], ignore_index=True)


@dataclass(frozen=True)
class Regression:
    """log(b_i + EPS) = intercept_i + slope_i * depth + offset_i[device], least squares per coefficient."""
    devices: tuple[str, ...]  # the first is the reference (offset 0)
    intercept: dict[str, float]
    slope: dict[str, float]
    offset: dict[str, dict[str, float]]  # coefficient -> device -> offset
    rmse: dict[str, float]  # of the fitted log(b + EPS)

    def predict(self, depth: float, device: str) -> dict[str, float]:
        if device not in self.devices:
            raise KeyError(f"device {device!r} has no measured runs to regress on; have {', '.join(self.devices)}")
        return {c: max(0.0, math.exp(self.intercept[c] + self.slope[c] * depth + self.offset[c][device]) - EPS)
                for c in COEFFICIENTS}

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"coefficient": c, "term": term, "value": value, "rmse_log": self.rmse[c]}
                             for c in COEFFICIENTS
                             for term, value in [("intercept", self.intercept[c]), ("depth", self.slope[c]),
                                                 *((f"device:{d}", self.offset[c][d]) for d in self.devices)]])


def regress(fits: pd.DataFrame) -> Regression:
    """The regression of the fitted coefficients on depth and device (see the module docstring). Needs at least
    two distinct depths; a device offset is fitted only for devices with a run (the design's extra columns)."""
    if fits["depth"].nunique() < 2:
        raise ValueError(f"regressing on depth needs runs at 2 depths or more, got {sorted(fits['depth'].unique())}")
    devices = tuple(sorted(fits["device"].unique()))
    design = np.column_stack([np.ones(len(fits)), fits["depth"].to_numpy(float)]
                             + [(fits["device"] == d).to_numpy(float) for d in devices[1:]])
    intercept, slope, offset, rmse = {}, {}, {}, {}
    for c in COEFFICIENTS:
        y = np.log(fits[c].to_numpy(float) + EPS)
        beta, *_ = np.linalg.lstsq(design, y, rcond=None)
        intercept[c], slope[c] = float(beta[0]), float(beta[1])
        offset[c] = {devices[0]: 0.0, **{d: float(b) for d, b in zip(devices[1:], beta[2:])}}
        rmse[c] = float(np.sqrt(np.mean((design @ beta - y) ** 2)))
    return Regression(devices, intercept, slope, offset, rmse)


def isotonic_decreasing(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The least-squares non-increasing step function of y on x (pool adjacent violators): sorted x, fitted y."""
    order = np.argsort(x, kind="stable")
    x, y = np.asarray(x, float)[order], np.asarray(y, float)[order]
    blocks: list[list[float]] = []  # [sum, count] of each pooled block
    for v in y:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            s, n = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += n
    fitted = np.concatenate([np.full(int(n), s / n) for s, n in blocks])
    return x, fitted


def loss_for_accuracy(loss: np.ndarray, accuracy: np.ndarray, goal: float) -> float:
    """The largest training loss at which the isotonic fit reaches `goal` (interpolated between its points);
    NaN when no measured epoch's fit reaches it."""
    reached = np.nonzero(accuracy >= goal)[0]
    if len(reached) == 0:
        return math.nan
    i = reached[-1]  # accuracy is non-increasing in loss: the last point still at or above the goal
    if i + 1 >= len(loss) or accuracy[i] == accuracy[i + 1]:
        return float(loss[i])
    share = (accuracy[i] - goal) / (accuracy[i] - accuracy[i + 1])
    return float(loss[i] + share * (loss[i + 1] - loss[i]))


def speed(p: float, w: np.ndarray | float, t: tuple[float, ...], batch: float) -> np.ndarray:
    """Optimus Eq. 4: steps per second with w workers and p parameter servers at global batch `batch`."""
    w = np.asarray(w, float)
    t0, t1, t2, t3, t4 = t
    return 1.0 / (t0 * batch / w + t1 + t2 * w / p + t3 * w + t4 * p)


SPEED_TRACE_COLUMNS = ("p", "w", "steps_per_s")
MIN_SPEED_POINTS = 8  # (p, w) points needed to fit Eq. 4's five coefficients (and have residual degrees left)


def fit_speed_model(trace: pd.DataFrame, batch: float) -> tuple[tuple[float, ...], float]:
    """Eq. 4's t0..t4 (>= 0) fitted to measured (p, w, steps_per_s) points at global batch `batch`: least
    squares on the speed itself (not its inverse, which would weight the slow configurations most), from
    t = 0.01 s each; -> (t, R^2 of the speeds). ValueError with fewer than MIN_SPEED_POINTS finite points."""
    from scipy.optimize import least_squares

    missing = [c for c in SPEED_TRACE_COLUMNS if c not in trace.columns]
    if missing:
        raise ValueError(f"a speed trace needs the columns {', '.join(SPEED_TRACE_COLUMNS)}; missing {missing}")
    rows = trace[list(SPEED_TRACE_COLUMNS)].astype(float)
    rows = rows[np.isfinite(rows).all(axis=1) & (rows["p"] > 0) & (rows["w"] > 0) & (rows["steps_per_s"] > 0)]
    if len(rows) < MIN_SPEED_POINTS:
        raise ValueError(f"fitting Eq. 4 needs {MIN_SPEED_POINTS} or more measured (p, w) points, got {len(rows)}")
    p, w, measured = (rows[c].to_numpy() for c in SPEED_TRACE_COLUMNS)
    result = least_squares(lambda t: speed(p, w, tuple(t), batch) - measured, np.full(5, 0.01),
                           bounds=(0.0, np.inf), method="trf")
    fitted = speed(p, w, tuple(result.x), batch)
    r2 = 1 - float(((fitted - measured) ** 2).sum()) / float(((measured - measured.mean()) ** 2).sum())
    return tuple(float(v) for v in result.x), r2


@dataclass
class Result:
    """Everything the fit step finds: scalar values for the parent run, tables for its artifacts."""
    values: dict
    tables: dict[str, pd.DataFrame]


def run_analysis(curves: pd.DataFrame, target_model: str = TARGET_MODEL, goal: float = ACCURACY_GOAL,
                 speed_t: tuple[float, ...] = SPEED_T, speed_batch: int = SPEED_BATCH,
                 speed_ps: tuple[int, ...] = SPEED_PS, max_workers: int = MAX_WORKERS) -> Result:
    """Fits, regression, prediction, loss->accuracy mapping and speed model from `collect_curves`'s table."""
    fits = fit_runs(curves)
    if fits.empty:
        raise RecordsError("no optimus run with 3 or more epochs to fit")
    target_depth = depth_of(target_model)
    measured = fits[fits["model"] != target_model]
    regression = regress(measured)
    values: dict = {"runs_fitted": len(fits), "devices": ",".join(regression.devices),
                    "target_model": target_model, "accuracy_goal": goal,
                    "fit_r2_median": float(fits["r2"].median()), "fit_rmse_median": float(fits["rmse"].median())}
    for c in COEFFICIENTS:
        values[f"regression/{c}_depth_slope"] = regression.slope[c]

    # loss -> accuracy, from the measured (non-target) epochs
    pairs = curves[(curves["model"] != target_model) & np.isfinite(curves["train_loss"])
                   & np.isfinite(curves["test_accuracy"])]
    map_loss, map_acc = isotonic_decreasing(pairs["train_loss"].to_numpy(), pairs["test_accuracy"].to_numpy())
    goal_loss = loss_for_accuracy(map_loss, map_acc, goal)
    values["goal_loss"] = goal_loss
    values["mapping_max_accuracy"] = float(map_acc.max()) if len(map_acc) else math.nan

    # the predicted target curve per device present, against its real run where there is one
    prediction_rows, predicted = [], {}
    for device in regression.devices:
        b = regression.predict(target_depth, device)
        predicted[device] = LossFit(b["b0"], b["b1"], b["b2"], math.nan, math.nan, 0)
        for c in COEFFICIENTS:
            values[f"predicted/{device}/{c}"] = b[c]
        epochs_to_goal = predicted[device].steps_to(goal_loss) if math.isfinite(goal_loss) else math.nan
        values[f"predicted/{device}/epochs_to_goal"] = epochs_to_goal
        real = curves[(curves["model"] == target_model) & (curves["device"] == device)].sort_values("epoch")
        epochs = real["epoch"].to_numpy(float) if len(real) else np.arange(1, int(curves["epoch"].max()) + 1)
        curve = predicted[device].predict(epochs)
        for k, pred, meas, acc in zip(epochs, curve,
                                      real["train_loss"] if len(real) else [math.nan] * len(epochs),
                                      real["test_accuracy"] if len(real) else [math.nan] * len(epochs)):
            prediction_rows.append({"device": device, "epoch": k, "predicted_loss": pred, "measured_loss": meas,
                                    "measured_accuracy": acc})
        if len(real):
            measured = real["train_loss"].to_numpy()
            ok = np.isfinite(measured) & np.isfinite(curve)
            values[f"error/{device}/wape_pct"] = float(100 * np.abs(curve - measured)[ok].sum() / measured[ok].sum())
            values[f"error/{device}/final_pct"] = float(100 * abs(curve[-1] - measured[-1]) / measured[-1])
    prediction = pd.DataFrame(prediction_rows)

    # speed model Eq. 4 and time to the goal
    reference = regression.devices[0]
    epochs_goal = values[f"predicted/{reference}/epochs_to_goal"]
    train_size = int(curves["train_size"].max())
    steps_goal = epochs_goal * train_size / speed_batch
    workers = np.arange(1, max_workers + 1)
    speed_rows = [{"p": p, "w": int(w), "steps_per_s": float(f), "hours_to_goal": steps_goal / f / 3600}
                  for p in speed_ps for w, f in zip(workers, speed(p, workers, tuple(speed_t), speed_batch))]
    speed_table = pd.DataFrame(speed_rows)
    values.update({"speed/epochs_to_goal": epochs_goal, "speed/train_size": train_size,
                   "speed/steps_to_goal": steps_goal, "speed/t": ",".join(map(str, speed_t)),
                   "speed/batch": speed_batch})
    for p in speed_ps:
        best = speed_table[speed_table["p"] == p].sort_values("hours_to_goal").iloc[0]
        finite = math.isfinite(best["hours_to_goal"])  # NaN: the goal is out of the measured runs' reach
        values[f"speed/p{p}/best_workers"] = int(best["w"]) if finite else math.nan
        values[f"speed/p{p}/best_hours"] = float(best["hours_to_goal"])

    fitted_curves = curves.copy()
    fitted_curves["fitted_loss"] = np.nan
    for _, fit in fits.iterrows():
        rows = fitted_curves["run_id"] == fit["run_id"]
        fitted_curves.loc[rows, "fitted_loss"] = loss_model(fitted_curves.loc[rows, "epoch"].to_numpy(float),
                                                            fit["b0"], fit["b1"], fit["b2"])
    mapping = pd.DataFrame({"train_loss": map_loss, "test_accuracy_fit": map_acc})
    return Result(values, {"fits.csv": fits, "curves.csv": fitted_curves, "regression.csv": regression.table(),
                           "prediction.csv": prediction, "mapping.csv": mapping, "speed.csv": speed_table})


# --- PALEO and FLOPs (the course's performance-modelling questions) ----------------------------------------

# PALEO's device table (Qi et al., ICLR 2017): the K80 at 5.6 TFLOP/s fp32 (base clock, as PALEO lists it; NVIDIA's
# datasheet gives 8.74 with boost for the two-GPU board), and PALEO's measured PPP of MXNet on a K80.
K80_PEAK = 5.6e12
K80_PPP = 0.49
# torchvision's documented "GFLOPS" per 224x224 image (multiply-accumulates, in G), beside our own count.
TORCHVISION_GMACS = {"vgg16": 15.47, "googlenet": 1.50, "resnet50": 4.09}


def paleo_table(peak: float = K80_PEAK, ppp: float = K80_PPP) -> tuple[pd.DataFrame, dict]:
    """MACs per 224x224 image of VGG16, GoogLeNet and ResNet-50 (our hook count, trainables.models.stats) and
    PALEO's predicted K80 inference time per image (2 FLOPs per MAC / (PPP x peak)); and the share of VGG19's
    forward MACs in convolution layers."""
    from trainables.models.stats import layer_table, totals
    from trainables.models.registry import build_model
    from trainables.models.paleo import paleo_estimate

    shape = (3, 224, 224)
    rows = []
    for name, documented in TORCHVISION_GMACS.items():
        t = totals(layer_table(build_model(name, num_classes=1000), shape))
        estimate = paleo_estimate(t["macs"], peak, ppp)
        rows.append({"model": name, "gmacs": t["macs"] / 1e9, "gmacs_torchvision": documented,
                     "gflops": 2 * t["macs"] / 1e9, "params_m": t["params"] / 1e6,
                     "k80_peak_tflops": peak / 1e12, "ppp": ppp,
                     "k80_inference_ms": estimate["forward_ms_per_image"],
                     "k80_inference_images_per_s": estimate["forward_images_per_s"]})
    vgg19 = totals(layer_table(build_model("vgg19", num_classes=1000), shape))
    values = {"paleo/vgg19_conv_share": vgg19["conv_macs_share"], "paleo/k80_peak_tflops": peak / 1e12,
              "paleo/k80_peak_source": "PALEO (Qi et al. 2017) device table, fp32 base clock", "paleo/ppp": ppp}
    values.update({f"paleo/{r['model']}/k80_inference_ms": r["k80_inference_ms"] for r in rows})
    return pd.DataFrame(rows), values


def measured_ppp(tracking_uri: str, sweeps: list) -> pd.DataFrame:
    """Our own training's achieved TFLOP/s (forward+backward = 3 x forward) and PPP per run, where the trial knew
    its device's peak (trainables.models.paleo.DEVICES; none for a CPU: PPP NaN)."""
    rows = []
    for parent in sweeps:
        runs = load_sweep(STUDY, parent.info.run_id, tracking_uri).runs
        for _, run in runs.iterrows():
            rows.append({"run_id": run["run_id"], "model": run.get("model"), "device": run.get("GPU type", "unknown"),
                         "images_per_s": run.get("perf/steady_images_per_s", math.nan),
                         "achieved_tflops": run.get("perf/tflops", math.nan), "ppp": run.get("perf/ppp", math.nan)})
    return pd.DataFrame(rows, columns=["run_id", "model", "device", "images_per_s", "achieved_tflops", "ppp"])


def speed_from_trace(path: str, batch: float) -> tuple[tuple[float, ...], dict]:
    """Eq. 4's coefficients fitted to a measured speed trace (a CSV of p, w, steps_per_s at global batch `batch`);
    RecordsError (exit 2) naming the file when it is missing or too small."""
    try:
        trace = pd.read_csv(path)
        t, r2 = fit_speed_model(trace, batch)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise RecordsError(f"speed_trace {path}: {e}; give a CSV with columns "
                           f"{', '.join(SPEED_TRACE_COLUMNS)} (one row per measured configuration)") from None
    return t, {"speed/source": f"fitted to {path} ({len(trace)} points)", "speed/fit_r2": r2}


def fit_step(base: dict, tracking_uri: str, from_run: str | None = None) -> tuple[dict, dict, str]:
    """The `fit` preset's work (sweeps/optimus.py wraps it as Study.analyze): read the data sweeps, run the
    analysis; -> (values, artifacts, the latest sweep read). RecordsError when there is nothing to fit."""
    sweeps = data_sweeps(tracking_uri, from_run)
    if not sweeps:
        raise RecordsError(f"no optimus data sweep at {tracking_uri}; run `python sweeps/optimus.py` first")
    curves = collect_curves(tracking_uri, from_run)
    speed_t, speed_values = tuple(base["speed_t"]), {"speed/source": "config speed_t"}
    if base.get("speed_trace"):
        speed_t, speed_values = speed_from_trace(base["speed_trace"], base["speed_batch"])
    try:
        result = run_analysis(curves, base["target_model"], base["accuracy_goal"], speed_t,
                              base["speed_batch"], tuple(base["speed_ps"]), base["max_workers"])
    except ValueError as e:
        raise RecordsError(str(e)) from e
    values = {**result.values, **speed_values, "sweeps": ",".join(s.info.run_id for s in sweeps)}
    tables = dict(result.tables)
    tables["measured_ppp.csv"] = ppp = measured_ppp(tracking_uri, sweeps)
    for device, rows in ppp.groupby("device"):
        values[f"ppp/{device}/median"] = float(rows["ppp"].median())
        values[f"ppp/{device}/achieved_tflops_median"] = float(rows["achieved_tflops"].median())
    if base["paleo"]:
        tables["paleo.csv"], paleo_values = paleo_table()
        values.update(paleo_values)
    return values, {f"optimus/{name}": table for name, table in tables.items()}, sweeps[0].info.run_id


# --- figures -----------------------------------------------------------------------------------------------

def figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """From a fit step's parent run (its artifacts), or, for a data sweep, the same analysis done here from
    the store (default settings)."""
    out_dir = Path(out_dir)
    uri, parent = runs.attrs["tracking_uri"], runs.attrs["parent_run_id"]
    if runs.empty:
        tables = {name: trial_artifact(uri, parent, f"optimus/{name}")
                  for name in ("fits.csv", "curves.csv", "prediction.csv", "mapping.csv", "speed.csv")}
        values = MlflowClient(uri).get_run(parent).data
        goal = float(values.metrics.get("accuracy_goal", 0.92))
    else:
        try:
            latest = data_sweeps(uri)
            source = None if latest and latest[0].info.run_id == parent else parent  # the latest: with its preset's
            result = run_analysis(collect_curves(uri, source))  # the study's default settings
        except (ValueError, RecordsError) as e:
            fig, ax = plt.subplots()
            ax.text(0.5, 0.5, f"no analysis: {e}", ha="center", wrap=True)
            ax.set_axis_off()
            return [save_figure(fig, out_dir / "fits.png")]
        tables, goal = result.tables, ACCURACY_GOAL
    return [fit_figure(tables["curves.csv"], tables["fits.csv"], out_dir / "fits.png"),
            prediction_figure(tables["prediction.csv"], out_dir / "prediction.png"),
            mapping_figure(tables["curves.csv"], tables["mapping.csv"], goal, out_dir / "loss_to_accuracy.png"),
            speed_figure(tables["speed.csv"], goal, out_dir / "time_to_accuracy.png")]


def fit_figure(curves: pd.DataFrame, fits: pd.DataFrame, path: Path) -> Path:
    devices = sorted(curves["device"].unique())
    fig, axes = plt.subplots(1, len(devices), figsize=(6 * len(devices), 4.5), squeeze=False)
    for ax, device in zip(axes[0], devices):
        shown = curves[(curves["device"] == device) & np.isfinite(curves["train_loss"])]  # a diverged epoch: inf
        for (model, depth), run in shown.groupby(["model", "depth"]):
            run = run.sort_values("epoch")
            line, = ax.plot(run["epoch"], run["train_loss"], "o", ms=3, label=f"{model} (depth {depth})")
            ax.plot(run["epoch"], run["fitted_loss"], "-", color=line.get_color(), lw=1)
        ax.set_title(f"{device}: training loss (dots) and Eq. 1 fits (lines)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def prediction_figure(prediction: pd.DataFrame, path: Path) -> Path:
    devices = sorted(prediction["device"].unique())
    fig, axes = plt.subplots(1, len(devices), figsize=(6 * len(devices), 4.5), squeeze=False)
    for ax, device in zip(axes[0], devices):
        rows = prediction[prediction["device"] == device]
        ax.plot(rows["epoch"], rows["predicted_loss"], "-", label="predicted from the other depths")
        measured = rows[np.isfinite(rows["measured_loss"])]
        if len(measured):
            ax.plot(measured["epoch"], measured["measured_loss"], "o", ms=3, label="measured")
        ax.set_title(f"{device}: depth-50 training loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("training loss")
        ax.legend()
    return save_figure(fig, path)


def mapping_figure(curves: pd.DataFrame, mapping: pd.DataFrame, goal: float, path: Path) -> Path:
    fig, ax = plt.subplots()
    finite = curves[np.isfinite(curves["train_loss"]) & np.isfinite(curves["test_accuracy"])]
    ax.scatter(finite["train_loss"], finite["test_accuracy"], s=5, alpha=0.5, label="epochs of all runs")
    ax.step(mapping["train_loss"], mapping["test_accuracy_fit"], where="post", color="k", label="isotonic fit")
    ax.axhline(goal, ls="--", color="gray", label=f"goal {goal:.0%}")
    ax.set_xlabel("training loss")
    ax.set_ylabel("test accuracy")
    ax.legend()
    return save_figure(fig, path)


def speed_figure(speed_table: pd.DataFrame, goal: float, path: Path) -> Path:
    fig, ax = plt.subplots()
    for p, rows in speed_table.groupby("p"):
        ax.plot(rows["w"], rows["hours_to_goal"], marker=".", label=f"p = {p} parameter servers")
    ax.set_xlabel("workers w")
    ax.set_ylabel(f"hours to {goal:.0%} test accuracy")
    if not np.isfinite(speed_table["hours_to_goal"]).any():
        ax.text(0.5, 0.5, f"the measured runs never reach {goal:.0%}:\nno epochs to predict", ha="center",
                transform=ax.transAxes)
    ax.set_title("Optimus Eq. 4: predicted time to the goal")
    ax.legend()
    return save_figure(fig, path)


def answer(values: dict) -> str:
    """The fit step's answer in a few lines, from its values (the parent run's metrics and params)."""
    number = lambda key: float(values.get(key, math.nan))  # noqa: E731  (params come back as strings)
    devices = [d for d in str(values.get("devices", "")).split(",") if d]
    goal = number("accuracy_goal")
    lines = [f"Eq. 1 fitted to {int(number('runs_fitted'))} runs on {', '.join(devices) or '?'}: median R^2 "
             f"{number('fit_r2_median'):.3f}, median RMSE {number('fit_rmse_median'):.4f}"]
    for device in devices:
        error = number(f"error/{device}/wape_pct")
        measured = (f"{error:.1f}% error against the real run (WAPE; {number(f'error/{device}/final_pct'):.1f}% at "
                    f"its last epoch)" if math.isfinite(error) else "no real run on this device to compare with")
        epochs = number(f"predicted/{device}/epochs_to_goal")
        goal_loss, floor = number("goal_loss"), number(f"predicted/{device}/b2")
        if math.isfinite(epochs):
            reach = f"{epochs:.0f} epochs to {goal:.0%} (training loss {goal_loss:.3f})"
        elif not math.isfinite(goal_loss):
            reach = (f"epochs to {goal:.0%} undefined: the measured runs reach at most "
                     f"{number('mapping_max_accuracy'):.1%} test accuracy")
        else:
            reach = (f"never reaches {goal:.0%}: its floor b2 = {floor:.3f} is above the training loss "
                     f"{goal_loss:.3f} that maps to it")
        lines.append(f"  {device}: predicted {values.get('target_model', 'target')} curve: {measured}; {reach}")
    hours = [f"p = {key.split('/')[1][1:]}: {number(key):.2f} h with {number(key.replace('best_hours', 'best_workers')):.0f} "
             f"workers" for key in sorted(values) if key.startswith("speed/p") and key.endswith("/best_hours")
             and math.isfinite(number(key))]
    if hours:
        lines.append(f"Eq. 4 ({values.get('speed/source', 'config speed_t')}): fastest to {goal:.0%}: " + "; ".join(hours))
    for key in sorted(k for k in values if k.startswith("ppp/") and k.endswith("/achieved_tflops_median")):
        device = key.split("/")[1]
        ppp = number(f"ppp/{device}/median")
        lines.append(f"our training on {device}: {number(key):.3g} TFLOP/s achieved (median over runs), PPP "
                     + (f"{ppp:.2f}" if math.isfinite(ppp) else "unknown (no documented peak for this device)"))
    if "paleo/vgg19_conv_share" in values:
        lines.append("PALEO, K80 at {:.1f} TFLOP/s x PPP {:.2f}: inference {} ms per 224x224 image; VGG19's forward "
                     "MACs in convolutions {:.1%} (Lu et al. 2017: about 99% for VGG16)".format(
                         number("paleo/k80_peak_tflops"), number("paleo/ppp"),
                         ", ".join(f"{m} {number(f'paleo/{m}/k80_inference_ms'):.1f}" for m in TORCHVISION_GMACS),
                         number("paleo/vgg19_conv_share")))
    return "\n".join(lines)


def summary(runs: pd.DataFrame) -> str:
    uri, parent = runs.attrs["tracking_uri"], runs.attrs["parent_run_id"]
    if runs.empty:  # the fit step: its values are on its own parent run
        data = MlflowClient(uri).get_run(parent).data
        return answer({**data.params, **data.metrics})
    done = runs[runs.get("trial_status", pd.Series("", index=runs.index)) == "finished"]
    devices = ", ".join(sorted(map(str, runs.get("GPU type", pd.Series(dtype=str)).dropna().unique()))) or "unknown"
    head = f"{len(done)} of {len(runs)} trials finished on {devices}"
    try:
        latest = data_sweeps(uri)
        source = None if latest and latest[0].info.run_id == parent else parent
        values = run_analysis(collect_curves(uri, source)).values  # the study's default settings
    except (ValueError, RecordsError) as e:
        return f"{head}; no fit: {e}"
    return f"{head}\n{answer(values)}\nrecord the fits on a parent run: python sweeps/optimus.py --preset fit"
