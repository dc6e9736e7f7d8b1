"""Figures, summaries and bound-picking rules of the learning-rate and batch-size studies, from MLflow alone.

    python -m analysis lr_range | cyclic_lr | batch_size | joint_search [--parent-run ID]

The picking rule (`pick_bounds`, used for the LR range tests and the batch-size range test): on the
curve of training loss vs x (learning rate or batch size), ignoring diverged points, with L0 the loss
at the first (smallest) x and drop = L0 - min(loss):
  * x_min = the first x where the loss has fallen by 10% of the drop ("where the loss starts to fall");
  * x_max = the first x where the loss is within 5% of the drop of its minimum ("where it stops falling").
  If the two coincide (the whole drop happens in one grid step), x_min is the grid point before x_max.
  A curve whose loss falls by less than 1% of L0 has no bounds (a RecordsError says so).
The study scripts store the picked bounds on the parent run (tags lr_min/lr_max, b_min/b_max), and the
next studies read them from the latest such sweep (`latest_tag`).
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from analysis.plotting import save_figure  # noqa: E402
from analysis.records import PARENT_TAG, RecordsError  # noqa: E402

START_FRAC, PLATEAU_FRAC, MIN_DROP = 0.10, 0.05, 0.01
DIVERGE_FACTOR = 4.0  # a final loss above 4x the smallest LR's counts as diverged (drawn as such)
POLICY_COLORS = {"constant": "tab:gray", "triangular": "tab:blue", "triangular2": "tab:green",
                 "exp_range": "tab:red", "cyclic": "tab:purple", "fixed": "tab:gray", "range": "tab:orange"}


# ---------------------------------------------------------------- the picking rule

def pick_bounds(x: Sequence[float], loss: Sequence[float]) -> tuple[float, float]:
    """(x_min, x_max) of a loss-vs-x curve by the rule in the module docstring; x must be increasing."""
    points = [(float(a), float(b)) for a, b in zip(x, loss) if math.isfinite(b)]
    if len(points) < 2:
        raise RecordsError("fewer than two non-diverged points on the curve: cannot pick bounds")
    xs, ls = zip(*points)
    first, best = ls[0], min(ls)
    drop = first - best
    if drop <= MIN_DROP * abs(first):
        raise RecordsError(f"the training loss never fell (from {first:.3g} to at best {best:.3g}): cannot pick bounds")
    i_min = next(i for i, v in enumerate(ls) if v <= first - START_FRAC * drop)
    i_max = next(i for i, v in enumerate(ls) if v <= best + PLATEAU_FRAC * drop)
    if i_min >= i_max:
        i_min = i_max - 1
    return xs[i_min], xs[i_max]


# ---------------------------------------------------------------- records

def _client(runs: pd.DataFrame) -> MlflowClient | None:
    uri = runs.attrs.get("tracking_uri")
    return MlflowClient(uri) if uri else None


def latest_parent(tracking_uri: str, study: str, tag: str):
    """The latest sweep of `study` whose parent run carries `tag` (e.g. lr_max), or None."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri[len("sqlite:///"):]).exists():
        return None  # do not create an empty store just to look
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        return None
    found = client.search_runs([experiment.experiment_id],
                               filter_string=f"tags.`{PARENT_TAG}` = '1' and tags.`{tag}` != ''",
                               order_by=["attributes.start_time DESC"], max_results=1)
    return found[0] if found else None


def fill_lr_bounds(base: dict, tracking_uri: str) -> dict:
    """Study.prepare: lr_min/lr_max left at 0 come from the latest LR range test in the store."""
    from trainables.config import ConfigError

    if base.get("lr_min") and base.get("lr_max"):
        return base
    parent = latest_parent(tracking_uri, "lr_range", "lr_max")
    if parent is None:
        raise ConfigError(f"no LR range test with picked bounds in {tracking_uri}: run `python sweeps/lr_range.py` "
                          f"first or give --set lr_min=... --set lr_max=...")
    tags = parent.data.tags
    base = {**base, "lr_min": base.get("lr_min") or float(tags["lr_min"]), "lr_max": base.get("lr_max") or float(tags["lr_max"])}
    if base["lr_min"] >= base["lr_max"]:
        raise ConfigError(f"lr_min={base['lr_min']:g} must be below lr_max={base['lr_max']:g}")
    print(f"lr_min={base['lr_min']:.3g}, lr_max={base['lr_max']:.3g} (LR range test run {parent.info.run_id})")
    return base


def fill_batch_bounds(base: dict, tracking_uri: str) -> dict:
    """Study.prepare of the cyclic batch policy: batch_min/batch_max left at 0 come from the latest
    batch-size range test in the store."""
    from trainables.config import ConfigError

    if base.get("batch_policy") != "cyclic" or (base.get("batch_min") and base.get("batch_max")):
        return base
    parent = latest_parent(tracking_uri, "batch_size", "b_max")
    if parent is None:
        raise ConfigError(f"no batch-size range test with picked bounds in {tracking_uri}: run "
                          f"`python sweeps/batch_size.py` first or give --set batch_min=... --set batch_max=...")
    tags = parent.data.tags
    print(f"b_min={tags['b_min']}, b_max={tags['b_max']} (batch-size range test run {parent.info.run_id})")
    return {**base, "batch_min": base.get("batch_min") or int(tags["b_min"]),
            "batch_max": base.get("batch_max") or int(tags["b_max"])}


def history(client: MlflowClient, run_id: str, key: str) -> pd.Series:
    values = {m.step: m.value for m in client.get_metric_history(run_id, key)}
    return pd.Series(values, dtype=float).sort_index()


def _finished(runs: pd.DataFrame) -> pd.DataFrame:
    if runs.empty:
        return runs
    status = runs["trial_status"] if "trial_status" in runs else pd.Series("finished", index=runs.index)
    return runs[status.isin(["finished", "stopped"])]


def _empty(ax, text: str = "no finished trials to show") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center")


# ---------------------------------------------------------------- LR range test

def lr_curve(runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """(lr, loss, diverged) points of the range test and its kind: 'discrete' (one trial per LR, final training
    loss) or 'continuous' (one trial, LR raised every step; mean loss of each stage)."""
    if runs.empty:
        return pd.DataFrame(columns=["lr", "loss", "diverged"]), "discrete"
    if (runs.get("lr_policy") == "range").any():
        run = runs[runs["lr_policy"] == "range"].iloc[0]
        client = _client(runs)
        if client is None:
            return pd.DataFrame(columns=["lr", "loss", "diverged"]), "continuous"
        curve = pd.DataFrame({"lr": history(client, run["run_id"], "train/lr"),
                              "loss": history(client, run["run_id"], "train/loss")}).dropna(subset=["lr"])
        finite = curve["loss"][np.isfinite(curve["loss"])]
        # NaN/inf, or the stage where the loss passed 4x its best and the run stopped
        curve["diverged"] = ~np.isfinite(curve["loss"]) | (curve["loss"] > DIVERGE_FACTOR * finite.min()
                                                           if len(finite) else False)
        return curve.sort_values("lr").reset_index(drop=True), "continuous"
    loss = runs["train/loss"] if "train/loss" in runs else pd.Series(np.nan, index=runs.index)
    diverged = (runs.get("trial_status", pd.Series("", index=runs.index)) == "diverged") | ~np.isfinite(loss)
    curve = pd.DataFrame({"lr": runs["lr"].astype(float), "loss": loss.where(~diverged), "diverged": diverged})
    curve = curve.groupby("lr", as_index=False).agg(loss=("loss", "mean"), diverged=("diverged", "all"))
    curve = curve.sort_values("lr").reset_index(drop=True)
    # A finite loss far above the untrained one (the smallest LR's) has blown up all the same.
    first = curve["loss"].dropna()
    if len(first):
        curve["diverged"] |= curve["loss"] > DIVERGE_FACTOR * first.iloc[0]
        curve["loss"] = curve["loss"].where(~curve["diverged"])
    return curve, "discrete"


def lr_bounds(runs: pd.DataFrame) -> tuple[float, float]:
    curve, _ = lr_curve(runs)
    return pick_bounds(curve["lr"], curve["loss"].where(~curve["diverged"]))


def lr_range_figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curve, kind = lr_curve(runs)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ok = curve[~curve["diverged"]]
    if ok.empty:
        _empty(ax)
    else:
        ax.plot(ok["lr"], ok["loss"], "o-" if kind == "discrete" else "-", color="tab:blue", ms=5,
                label="final training loss" if kind == "discrete" else "training loss (mean of each stage)")
        bad = curve[curve["diverged"]]
        if len(bad):  # diverged: drawn at the top of the axis, since their loss is not a number
            top = ok["loss"].max() * 1.15
            ax.scatter(bad["lr"], [top] * len(bad), marker="x", color="tab:red", s=60, zorder=3,
                       label=f"diverged (loss NaN/inf or blown up), {len(bad)}")
        try:
            lo, hi = pick_bounds(curve["lr"], curve["loss"].where(~curve["diverged"]))
            ax.axvline(lo, color="tab:green", ls="--", label=f"lr_min = {lo:.3g}")
            ax.axvline(hi, color="tab:purple", ls="--", label=f"lr_max = {hi:.3g}")
        except RecordsError as e:
            ax.set_title(str(e), fontsize=8)
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel("training loss (cross-entropy)")
    title = ("LR range test: one trial per learning rate" if kind == "discrete"
             else "Continuous LR range test: LR raised every step")
    ax.set_title(title + ("\n" + ax.get_title() if ax.get_title() else ""), fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    return [save_figure(fig, out_dir / ("lr_range.png" if kind == "discrete" else "lr_range_continuous.png"))]


def lr_range_summary(runs: pd.DataFrame) -> str:
    curve, kind = lr_curve(runs)
    lines = [f"{kind} LR range test: final training loss per learning rate" if kind == "discrete"
             else f"continuous LR range test: {len(curve)} stages"]
    if kind == "discrete":
        for row in curve.itertuples():
            lines.append(f"  lr {row.lr:9.2e}  " + ("diverged" if row.diverged else f"loss {row.loss:.4f}"))
    try:
        lo, hi = pick_bounds(curve["lr"], curve["loss"].where(~curve["diverged"]))
        lines.append(f"picked: lr_min = {lo:.3g}, lr_max = {hi:.3g}")
    except RecordsError as e:
        lines.append(f"no bounds picked: {e}")
    return "\n".join(lines)


def lr_range_after(sweep) -> str:
    """Store lr_min/lr_max on the parent run (tags), where cyclic_lr and batch_size read them."""
    try:
        lo, hi = lr_bounds(sweep.runs)
    except RecordsError as e:
        return f"lr_min/lr_max not stored: {e}"
    client = MlflowClient(sweep.tracking_uri)
    for key, value in (("lr_min", lo), ("lr_max", hi)):
        client.set_tag(sweep.parent_run_id, key, repr(float(value)))
    client.set_tag(sweep.parent_run_id, "bounds_rule", "first 10% of the loss drop / within 5% of the minimum")
    return f"stored on the parent run: lr_min={lo:.3g} lr_max={hi:.3g} (read by sweeps/cyclic_lr.py, sweeps/batch_size.py)"


# ---------------------------------------------------------------- cyclical learning rate

def _label(row) -> str:
    policy = row.get("lr_policy", "constant")
    if policy == "constant":
        lr = row.get("lr") or (row.get("lr_max") if row.get("fixed_lr", "max") == "max" else row.get("lr_min"))
        return f"constant lr {float(lr):.3g}"
    return f"{policy} [{float(row['lr_min']):.3g}, {float(row['lr_max']):.3g}]"


def _policy_key(runs: pd.DataFrame) -> str:
    return "batch_policy" if "batch_policy" in runs and (runs["batch_policy"] == "cyclic").any() else "lr_policy"


def curve_figures(runs: pd.DataFrame, out_dir: Path, name: str, title: str) -> Path:
    """Training and validation loss and accuracy vs epoch, one curve per trial."""
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    client = _client(runs)
    ok = _finished(runs)
    eval_name = "val" if "val/accuracy" in runs and runs["val/accuracy"].notna().any() else "test"
    for (row_i, metric), (col_i, split) in [((r, m), (c, s)) for r, m in enumerate(["loss", "accuracy"])
                                            for c, s in enumerate(["train", eval_name])]:
        ax = axes[row_i][col_i]
        drawn = False
        for _, run in ok.iterrows():
            if client is None:
                break
            series = history(client, run["run_id"], f"{split}/{metric}")
            if len(series):
                key = run.get(_policy_key(runs), "constant")
                ax.plot(series.index, series.values, "-", color=POLICY_COLORS.get(key), label=_label(run)
                        if _policy_key(runs) == "lr_policy" else f"batch {key}, {_label(run)}")
                drawn = True
        if not drawn:
            _empty(ax, "no curves (no finished trials or no MLflow history)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"{'training' if split == 'train' else 'validation' if split == 'val' else 'test'} {metric}")
        ax.grid(True, alpha=0.3)
        if drawn and row_i == 0 and col_i == 0:
            ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=11)
    return save_figure(fig, out_dir / name)


def _config_of(run: pd.Series):
    from trainables.config import from_dict
    from trainables.lr_batch import LRBatchConfig

    values = {k: run[k] for k in LRBatchConfig.__dataclass_fields__ if k in run and not _missing(run[k])}
    values["data_dir"] = str(values.get("data_dir", "") or "")
    return from_dict(LRBatchConfig, values)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def lr_vs_iteration(runs: pd.DataFrame, out_dir: Path) -> Path:
    """The learning rate of every iteration, rebuilt from each trial's recorded config (the schedule is a pure
    function of the config and the iterations per epoch)."""
    from trainables.lr_batch import lr_schedule

    fig, ax = plt.subplots(figsize=(7.5, 4))
    drawn = False
    for _, run in _finished(runs).iterrows():
        if _missing(run.get("train/iterations")) or _missing(run.get("stopped_at_epoch")):
            continue
        total, epochs = int(run["train/iterations"]), int(run["stopped_at_epoch"])
        lrs = lr_schedule(_config_of(run), total, max(1, total // max(epochs, 1)))
        ax.plot(range(1, total + 1), lrs, "-", color=POLICY_COLORS.get(run.get("lr_policy")), label=_label(run))
        drawn = True
    if drawn:
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    else:
        _empty(ax)
    ax.set_xlabel("iteration")
    ax.set_ylabel("learning rate (log scale)")
    ax.set_title("Learning rate vs iteration", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, out_dir / "lr_vs_iteration.png")


def cyclic_lr_figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [curve_figures(runs, out_dir, "cyclic_lr_curves.png", "Cyclical vs constant learning rate"),
            lr_vs_iteration(runs, out_dir)]


def best_accuracy(runs: pd.DataFrame, client: MlflowClient | None) -> pd.DataFrame:
    """Per trial: the best validation (else test) accuracy over its epochs, and the final test accuracy."""
    rows = []
    for _, run in _finished(runs).iterrows():
        key = "val/accuracy" if not _missing(run.get("val/accuracy")) else "test/accuracy"
        series = history(client, run["run_id"], key) if client is not None else pd.Series(dtype=float)
        best = series.max() if len(series) else run.get(key, np.nan)
        rows.append({"trial": _label(run), "lr_policy": run.get("lr_policy"), "batch_policy": run.get("batch_policy"),
                     "best_accuracy": best, "best_on": key.split("/")[0], "final_test_accuracy": run.get("test/accuracy")})
    return pd.DataFrame(rows, columns=["trial", "lr_policy", "batch_policy", "best_accuracy", "best_on",
                                       "final_test_accuracy"])


def cyclic_lr_summary(runs: pd.DataFrame) -> str:
    table = best_accuracy(runs, _client(runs))
    if table.empty:
        return "no finished trials"
    lines = ["policy                                   best acc   final test acc"]
    for row in table.itertuples():
        lines.append(f"  {row.trial:<38} {row.best_accuracy:8.4f}   {row.final_test_accuracy:8.4f}")
    return "\n".join(lines)


# ---------------------------------------------------------------- batch size

def batch_curve(runs: pd.DataFrame) -> pd.DataFrame:
    """(batch_size, loss, test_accuracy) of the batch-size range test: one point per stage."""
    client = _client(runs)
    ranged = runs[runs["batch_policy"] == "range"] if "batch_policy" in runs else runs.iloc[0:0]
    if ranged.empty or client is None:
        return pd.DataFrame(columns=["batch_size", "loss", "test_accuracy"])
    run_id = ranged.iloc[0]["run_id"]
    curve = pd.DataFrame({"batch_size": history(client, run_id, "train/batch_size"),
                          "loss": history(client, run_id, "train/loss"),
                          "test_accuracy": history(client, run_id, "test/accuracy")})
    return curve.dropna(subset=["batch_size"]).reset_index(drop=True)


def batch_bounds(runs: pd.DataFrame) -> tuple[int, int]:
    curve = batch_curve(runs)
    lo, hi = pick_bounds(curve["batch_size"], curve["loss"])
    return int(lo), int(hi)


def _reference(runs: pd.DataFrame, study: str) -> pd.DataFrame:
    """Best accuracies of the latest sweep of another study in the same store (e.g. cyclic_lr)."""
    from analysis.records import load_sweep

    uri = runs.attrs.get("tracking_uri")
    if not uri or latest_parent(uri, study, PARENT_TAG) is None:
        return best_accuracy(pd.DataFrame(), None)
    other = load_sweep(study, None, uri)
    return best_accuracy(other.runs, MlflowClient(uri))


def comparison_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Best accuracy of each policy: this sweep's trials and the latest cyclic_lr sweep's."""
    ours = best_accuracy(runs, _client(runs))
    ours.insert(0, "study", "batch_size")
    ref = _reference(runs, "cyclic_lr")
    ref.insert(0, "study", "cyclic_lr")
    return pd.concat([ref, ours], ignore_index=True)


def batch_size_figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    cyclic = "batch_policy" in runs and (runs["batch_policy"] == "cyclic").any()
    if not cyclic:
        curve = batch_curve(runs)
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        if curve.empty:
            _empty(ax)
        else:
            ax.plot(curve["batch_size"], curve["loss"], "o-", color="tab:blue",
                    label="training loss (mean over the batch size's iterations)")
            try:
                lo, hi = pick_bounds(curve["batch_size"], curve["loss"])
                ax.axvline(lo, color="tab:green", ls="--", label=f"b_min = {int(lo)}")
                ax.axvline(hi, color="tab:purple", ls="--", label=f"b_max = {int(hi)}")
            except RecordsError as e:
                ax.text(0.02, 0.02, str(e), transform=ax.transAxes, fontsize=7)
            ax.set_xscale("log", base=2)
            ax.set_xticks(curve["batch_size"], [str(int(b)) for b in curve["batch_size"]], fontsize=7)
            ax.legend(fontsize=8)
        ax.set_xlabel("batch size (log scale; doubled every `interval` iterations)")
        ax.set_ylabel("training loss (cross-entropy)")
        ax.set_title("Batch-size range test at a fixed learning rate", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        paths.append(save_figure(fig, out_dir / "loss_vs_batch_size.png"))
    else:
        paths.append(curve_figures(runs, out_dir, "cyclic_batch_curves.png",
                                   "Cyclical batch size (fixed lr_min): loss and accuracy"))
        paths.append(_batch_vs_epoch(runs, out_dir))
    table = comparison_table(runs)
    name = "cyclic_batch_vs_cyclic_lr" if cyclic else "batch_range_vs_cyclic_lr"
    table.to_csv(out_dir / f"{name}.csv", index=False)
    fig, ax = plt.subplots(figsize=(7.5, 0.6 + 0.45 * max(len(table), 1)))
    if table.empty:
        _empty(ax)
    else:
        labels = [f"{r.study}: {r.trial}" + (f" (batch {r.batch_policy})" if r.study == "batch_size" else "")
                  for r in table.itertuples()]
        metric = "best_accuracy" if cyclic else "final_test_accuracy"
        colors = ["tab:red" if s == "cyclic_lr" else "tab:purple" for s in table["study"]]
        ax.barh(labels, table[metric].astype(float), color=colors)
        for i, v in enumerate(table[metric].astype(float)):
            ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
        ax.set_xlim(0, 1.1)
        if not (table["study"] == "cyclic_lr").any():
            ax.set_title("no cyclic_lr sweep in this MLflow store to compare with", fontsize=8)
    ax.set_xlabel("best validation accuracy" if cyclic else "final test accuracy")
    ax.set_title(("Best accuracy: cyclical batch size vs cyclical LR" if cyclic
                  else "Final test accuracy: batch-size range run vs cyclical LR") + (
        "\n" + ax.get_title() if ax.get_title() else ""), fontsize=10)
    paths.append(save_figure(fig, out_dir / f"{name}.png"))
    paths.append(out_dir / f"{name}.csv")
    return paths


def _batch_vs_epoch(runs: pd.DataFrame, out_dir: Path) -> Path:
    client = _client(runs)
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    drawn = False
    for _, run in _finished(runs).iterrows():
        series = history(client, run["run_id"], "train/batch_size") if client else pd.Series(dtype=float)
        if len(series):
            ax.step(series.index, series.values, where="mid", label=_label(run))
            drawn = True
    if drawn:
        ax.set_yscale("log", base=2)
        ax.legend(fontsize=8)
    else:
        _empty(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("batch size (log2 scale)")
    ax.set_title("Cyclical batch size with an increasing trend", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    return save_figure(fig, out_dir / "batch_size_vs_epoch.png")


def batch_size_summary(runs: pd.DataFrame) -> str:
    lines = []
    if not ("batch_policy" in runs and (runs["batch_policy"] == "cyclic").any()):
        curve = batch_curve(runs)
        for row in curve.itertuples():
            lines.append(f"  batch {int(row.batch_size):>6}  loss {row.loss:.4f}  test acc {row.test_accuracy:.4f}")
        try:
            lo, hi = pick_bounds(curve["batch_size"], curve["loss"])
            lines.append(f"picked: b_min = {int(lo)}, b_max = {int(hi)}")
        except RecordsError as e:
            lines.append(f"no batch bounds picked: {e}")
    table = comparison_table(runs)
    if len(table):
        lines.append("study       policy                                   best acc   final test acc")
        for row in table.itertuples():
            lines.append(f"  {row.study:<10} {row.trial + ('' if row.study != 'batch_size' else ' batch ' + str(row.batch_policy)):<40} "
                         f"{row.best_accuracy:8.4f}   {row.final_test_accuracy:8.4f}")
    return "\n".join(lines) or "no finished trials"


def batch_size_after(sweep) -> str:
    if "batch_policy" not in sweep.runs or not (sweep.runs["batch_policy"] == "range").any():
        return ""
    try:
        lo, hi = batch_bounds(sweep.runs)
    except RecordsError as e:
        return f"b_min/b_max not stored: {e}"
    client = MlflowClient(sweep.tracking_uri)
    client.set_tag(sweep.parent_run_id, "b_min", str(lo))
    client.set_tag(sweep.parent_run_id, "b_max", str(hi))
    return f"stored on the parent run: b_min={lo} b_max={hi} (read by the cyclic presets of sweeps/batch_size.py)"


# ---------------------------------------------------------------- joint search

def search_trace(runs: pd.DataFrame) -> pd.DataFrame:
    """Best validation accuracy found so far after each trial (in creation order) and the compute spent
    (cumulative training samples; ASHA-stopped trials count what they trained)."""
    if runs.empty or "run_name" not in runs:
        return pd.DataFrame(columns=["trial", "best", "samples"])
    order = runs.assign(index=runs["run_name"].astype(str).str.extract(r"_(\d+)$")[0].astype(float)).sort_values("index")
    acc = order["val/accuracy"].astype(float).fillna(0.0) if "val/accuracy" in order else pd.Series(0.0, index=order.index)
    samples = order["train/samples_seen"].astype(float).fillna(0.0) if "train/samples_seen" in order else acc * 0
    return pd.DataFrame({"trial": np.arange(1, len(order) + 1), "best": acc.cummax().to_numpy(),
                         "samples": samples.cumsum().to_numpy()})


def _other_search(runs: pd.DataFrame) -> tuple[str, pd.DataFrame] | None:
    """The latest joint_search sweep run with the other search algorithm (optuna <-> random), same store."""
    from analysis.records import load_sweep

    uri, parent_id = runs.attrs.get("tracking_uri"), runs.attrs.get("parent_run_id")
    if not uri or not parent_id:
        return None
    client = MlflowClient(uri)
    mine = client.get_run(parent_id).data.tags.get("search", "")
    other = "random" if mine == "optuna" else "optuna"
    found = client.search_runs([client.get_run(parent_id).info.experiment_id],
                               filter_string=f"tags.`{PARENT_TAG}` = '1' and tags.search = '{other}'",
                               order_by=["attributes.start_time DESC"], max_results=1)
    if not found:
        return None
    return other, load_sweep("joint_search", found[0].info.run_id, uri).runs


def joint_search_figures(runs: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    uri, parent_id = runs.attrs.get("tracking_uri"), runs.attrs.get("parent_run_id")
    mine = MlflowClient(uri).get_run(parent_id).data.tags if uri and parent_id else {}
    traces = [(f"{mine.get('search', 'this sweep')} + {mine.get('scheduler', '?')}", search_trace(runs))]
    other = _other_search(runs)
    if other is not None:
        traces.append((f"{other[0]} (latest sweep)", search_trace(other[1])))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for (name, trace), color in zip(traces, ["tab:red", "tab:gray"]):
        if len(trace):
            axes[0].step(trace["trial"], trace["best"], where="post", color=color, label=name)
            axes[1].step(trace["samples"], trace["best"], where="post", color=color, label=name)
    for ax, xlabel in zip(axes, ["trials", "compute: training samples processed (all trials)"]):
        if ax.has_data():
            ax.legend(fontsize=8)
        else:
            _empty(ax)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("best validation accuracy so far")
        ax.grid(True, alpha=0.3)
    note = "" if other is not None else " (no sweep with the other search in this store yet)"
    fig.suptitle("Joint search over lr, batch size, weight decay" + note, fontsize=10)
    return [save_figure(fig, out_dir / "best_vs_budget.png")]


def joint_search_summary(runs: pd.DataFrame) -> str:
    ok = _finished(runs)
    if ok.empty or "val/accuracy" not in ok:
        return "no finished trials"
    best = ok.loc[ok["val/accuracy"].astype(float).idxmax()]
    return (f"{len(runs)} trials; best validation accuracy {best['val/accuracy']:.4f} at lr={float(best['lr']):.3g}, "
            f"batch_size={int(best['batch_size'])}, weight_decay={float(best['weight_decay']):.3g} "
            f"(test accuracy {best.get('test/accuracy', float('nan')):.4f})")


lr_range = SimpleNamespace(figures=lr_range_figures, summary=lr_range_summary)
cyclic_lr = SimpleNamespace(figures=cyclic_lr_figures, summary=cyclic_lr_summary)
batch_size = SimpleNamespace(figures=batch_size_figures, summary=batch_size_summary)
joint_search = SimpleNamespace(figures=joint_search_figures, summary=joint_search_summary)
