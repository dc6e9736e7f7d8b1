"""Figures and summary of the batch-augmentation study, from its MLflow records.

    python -m analysis batch_augment [--parent-run ID]

1. `val_error_vs_epochs.png`: test error (original images) vs epoch, one curve per M (Hoffer et al.
   2019, Fig. 3a), beside the training loss; replicate seeds averaged per epoch;
2. `epochs_to_target_vs_m.png`: epochs to reach the target accuracy vs M; a hatched bar marks a
   target never reached (its height is the epochs run, the label the best accuracy);
3. `time_to_target_vs_m.png`: training wall-clock time (evaluation excluded) to the target vs M,
   marked the same way;
4. `cutout_examples.png`: two CIFAR-10 test images, their cutout version and three batch-augmented
   copies (crop + flip + cutout). Drawn from the data directory recorded in the runs' params (the
   images are data, not results); where that directory is missing the figure says so, and the
   copy logged to the sweep's parent run (figures/cutout_examples.png) stays in MLflow.

Curves come from the per-epoch metric histories; the tracking store is the one the figures'
results directory belongs to (`RESULTS_DIR/mlflow.db` or MLFLOW_TRACKING_URI), as for the runner.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from analysis.plotting import save_figure  # noqa: E402
from analysis.records import Sweep, default_tracking_uri, metric_history  # noqa: E402

METRIC = "test/error"  # what the trials are compared by: ASHA, the overview figures, `python -m analysis list`
MODE = "min"

ACC = "test/accuracy"
HE_RESNET44_ERROR = 7.17  # % test error, He et al. 2015 Table 6 (no cutout, 64k iterations of batch 128)
CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)  # for drawing only
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


# ---------------------------------------------------------------- tables

def _usable(runs: pd.DataFrame) -> pd.DataFrame:
    if runs.empty or "batch_m" not in runs:
        return runs.iloc[0:0]
    status = runs["trial_status"] if "trial_status" in runs else pd.Series("finished", index=runs.index)
    return runs[status.isin(["finished", "stopped"])]


def histories(runs: pd.DataFrame, tracking_uri: str) -> pd.DataFrame:
    """Long table: run_id, batch_m, seed, epoch, test_error (%), train_loss, train_s."""
    ok = _usable(runs)
    sweep = Sweep(parent=None, runs=ok, tracking_uri=tracking_uri)
    keys = {ACC: "accuracy", "train/loss": "train_loss", "time/train_s": "train_s"}
    tables = [metric_history(sweep, key).rename(columns={"value": name}).set_index(["run_id", "step"])
              for key, name in keys.items()]
    long = pd.concat(tables, axis=1).reset_index().rename(columns={"step": "epoch"})
    long["test_error"] = 100 * (1 - long["accuracy"])
    meta = ok[["run_id", "batch_m", "seed", "target_accuracy"]] if len(ok) else pd.DataFrame(
        columns=["run_id", "batch_m", "seed", "target_accuracy"])
    return long.merge(meta, on="run_id").sort_values(["batch_m", "seed", "epoch"])


def per_trial(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per trial from its final metrics: a trial stops at the first epoch at or above its target,
    so its last epoch and `time/train_s` are those to the target; otherwise they cover all its epochs and
    `test/best_accuracy` says how close it came."""
    ok = _usable(runs)
    rows = []
    for run in ok.to_dict("records"):
        accuracy = run.get(ACC, math.nan)
        if accuracy is None or math.isnan(accuracy):
            continue
        target = float(run.get("target_accuracy") or 0)
        best = run.get("test/best_accuracy", accuracy)
        best = accuracy if best is None or math.isnan(best) else best
        epochs = int(run.get("stopped_at_epoch") or run.get("epochs") or 0)
        rows.append({"run_id": run["run_id"], "batch_m": int(run["batch_m"]), "seed": run.get("seed", 0),
                     "target": target, "reached": bool(target > 0 and accuracy >= target), "epochs": epochs,
                     "train_s": float(run["time/train_s"]), "best_accuracy": float(best),
                     "s_per_epoch": float(run["time/train_s"]) / max(epochs, 1)})
    return pd.DataFrame(rows, columns=["run_id", "batch_m", "seed", "target", "reached", "epochs", "train_s",
                                       "best_accuracy", "s_per_epoch"])


def per_m(trials: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per M; `reached` only when every seed reached the target."""
    if trials.empty:
        return pd.DataFrame(columns=["batch_m", "seeds", "reached", "epochs", "train_s", "best_accuracy",
                                     "s_per_epoch", "target"])
    return trials.groupby("batch_m", as_index=False).agg(
        seeds=("run_id", "size"), reached=("reached", "all"), epochs=("epochs", "mean"), train_s=("train_s", "mean"),
        best_accuracy=("best_accuracy", "mean"), s_per_epoch=("s_per_epoch", "mean"), target=("target", "first"))


# ---------------------------------------------------------------- figures

def figures(runs: pd.DataFrame, out_dir: str | Path, tracking_uri: str | None = None) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    # The figures of a study live in RESULTS_DIR/<study>/, next to the sweep's store RESULTS_DIR/mlflow.db.
    tracking_uri = tracking_uri or default_tracking_uri(out_dir.parent)
    hist = histories(runs, tracking_uri)
    trials = per_trial(runs)
    colors = _colors(sorted(hist["batch_m"].unique()) if len(hist) else [])
    paths = [_curves(hist, colors, out_dir / "val_error_vs_epochs.png")]
    table = per_m(trials)
    paths.append(_bars(table, "epochs", "epochs to target", "Epochs to reach the target accuracy",
                       out_dir / "epochs_to_target_vs_m.png"))
    paths.append(_bars(table, "train_s", "training time to target (s, evaluation excluded)",
                       "Wall-clock time to reach the target accuracy", out_dir / "time_to_target_vs_m.png"))
    paths.append(cutout_examples(runs, out_dir / "cutout_examples.png"))
    return paths


def _colors(ms: list[int]) -> dict[int, tuple]:
    cmap = plt.get_cmap("viridis")
    return {m: cmap(i / max(len(ms) - 1, 1) * 0.9) for i, m in enumerate(ms)}


def _curves(hist: pd.DataFrame, colors: dict, path: Path) -> Path:
    fig, (ax_err, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    for m, group in hist.groupby("batch_m"):
        mean = group.groupby("epoch")[["test_error", "train_loss"]].mean()
        seeds = group["seed"].nunique()
        label = f"M = {m}" + (f" ({seeds} seeds)" if seeds > 1 else "")
        ax_err.plot(mean.index, mean["test_error"], "-o", ms=3, color=colors[m], label=label)
        ax_loss.plot(mean.index, mean["train_loss"], "-o", ms=3, color=colors[m], label=label)
    targets = hist["target_accuracy"].dropna().unique() if len(hist) else []
    if len(targets) == 1 and targets[0] > 0:
        ax_err.axhline(100 * (1 - targets[0]), color="gray", ls="--", lw=1,
                       label=f"target ({100 * targets[0]:g}% accuracy)")
    for ax, ylabel, title in ((ax_err, "validation (test) error, %", "Validation error vs epochs"),
                              (ax_loss, "training loss (augmented copies)", "Training loss vs epochs")):
        if not ax.has_data():
            ax.text(0.5, 0.5, "no finished trials to show", transform=ax.transAxes, ha="center", va="center")
        else:
            ax.legend(fontsize=8)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
    fig.suptitle("Batch augmentation: ResNet-44 on CIFAR-10, one curve per M (trials stop at the target)",
                 fontsize=10)
    return save_figure(fig, path)


def _bars(table: pd.DataFrame, column: str, ylabel: str, title: str, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    x = np.arange(len(table))
    for i, row in enumerate(table.itertuples()):
        reached = bool(row.reached)
        ax.bar(i, getattr(row, column), color="tab:blue" if reached else "white", edgecolor="tab:blue",
               hatch=None if reached else "//")
        note = "" if reached else f"not reached\nbest {100 * row.best_accuracy:.1f}%"
        value = getattr(row, column)
        ax.annotate(f"{value:.3g}\n{note}".strip(), (i, value), ha="center", va="bottom", fontsize=7,
                    xytext=(0, 2), textcoords="offset points")
    if len(table):
        ax.set_xticks(x, [str(int(m)) for m in table["batch_m"]])
        ax.set_ylim(0, table[column].max() * 1.3)
        target = table["target"].iloc[0]
        hatched = plt.Rectangle((0, 0), 1, 1, facecolor="white", edgecolor="tab:blue", hatch="//")
        solid = plt.Rectangle((0, 0), 1, 1, color="tab:blue")
        ax.legend([solid, hatched], [f"reached {100 * target:g}% (mean over seeds)",
                                     "never reached: all epochs run"], fontsize=8, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no finished trials to show", transform=ax.transAxes, ha="center", va="center")
    ax.set_xlabel("M (augmented copies of each sample per step)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    return save_figure(fig, path)


def _read_cifar_test(data_dir: Path, n: int = 200) -> tuple[np.ndarray, list[int]]:
    """The first images of CIFAR-10's test batch, read straight from the python pickle (no MD5 check:
    this only draws pictures; training reads through torchvision's checked loader)."""
    with open(data_dir / "cifar-10-batches-py" / "test_batch", "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    return np.asarray(entry["data"][:n], dtype=np.uint8).reshape(-1, 3, 32, 32), list(entry["labels"][:n])


def cutout_examples(runs: pd.DataFrame, path: Path, copies: int = 3, seed: int = 0) -> Path:
    from trainables.training.augment import batch_augment, cutout, normalize
    from trainables.data.vision import resolve_data_dir

    data_dir = None
    if len(runs) and "data_dir" in runs:
        value = runs["data_dir"].dropna().iloc[0] if runs["data_dir"].notna().any() else ""
        data_dir = resolve_data_dir(str(value) if isinstance(value, str) and value else None)
    else:
        data_dir = resolve_data_dir(None)
    try:
        images, labels = _read_cifar_test(data_dir)
    except (OSError, KeyError, pickle.UnpicklingError) as e:
        fig, ax = plt.subplots(figsize=(6.4, 2.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"CIFAR-10 not readable in {data_dir}\n({type(e).__name__}); the sweep's own copy of this "
                          f"figure is\nan artifact of its parent run: figures/cutout_examples.png",
                ha="center", va="center", fontsize=9)
        return save_figure(fig, path)
    # two images of different classes
    first = 0
    second = next((i for i in range(1, len(labels)) if labels[i] != labels[first]), min(1, len(labels) - 1))
    x = torch.from_numpy(images[[first, second]])
    y = torch.tensor([labels[first], labels[second]])
    g = torch.Generator().manual_seed(seed)
    only_cutout = cutout(normalize(x, CIFAR_MEAN, CIFAR_STD), 16, g)
    augmented, _ = batch_augment(x, y, copies, g, mean=CIFAR_MEAN, std=CIFAR_STD, padding=4, flip=True, cutout=16)
    columns = [("original", normalize(x, CIFAR_MEAN, CIFAR_STD)), ("cutout 16x16", only_cutout)]
    columns += [(f"copy {k + 1}: crop+flip+cutout", augmented[k * 2:(k + 1) * 2]) for k in range(copies)]
    fig, axes = plt.subplots(2, len(columns), figsize=(2.0 * len(columns), 4.4))
    mean, std = torch.tensor(CIFAR_MEAN).view(3, 1, 1), torch.tensor(CIFAR_STD).view(3, 1, 1)
    for col, (title, batch) in enumerate(columns):
        for row in range(2):
            picture = (batch[row] * std + mean).clamp(0, 1).permute(1, 2, 0).numpy()
            ax = axes[row, col]
            ax.imshow(picture, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=8)
            if col == 0:
                label = int(y[row])
                ax.set_ylabel(CLASSES[label] if label < len(CLASSES) else f"class {label}", fontsize=9)
    fig.suptitle(f"Two CIFAR-10 test images, cutout (DeVries & Taylor) and {copies} batch-augmented copies "
                 f"(Hoffer et al., M = {copies})\ncutout zeros after normalization = the mean colour; "
                 f"data: {data_dir}", fontsize=8)
    return save_figure(fig, path)


# ---------------------------------------------------------------- text

def summary(runs: pd.DataFrame) -> str:
    table = per_m(per_trial(runs))
    if table.empty:
        return "no finished trials"
    target = table["target"].iloc[0]
    lines = [f"per M (mean over seeds; target {100 * target:g}% test accuracy, time = training only):",
             f"  {'M':>3} {'seeds':>5} {'reached':>7} {'epochs':>7} {'time s':>8} {'s/epoch':>8} {'best acc %':>10}"]
    for row in table.itertuples():
        lines.append(f"  {int(row.batch_m):>3} {row.seeds:>5} {'yes' if row.reached else 'no':>7} {row.epochs:>7.1f} "
                     f"{row.train_s:>8.1f} {row.s_per_epoch:>8.2f} {100 * row.best_accuracy:>10.2f}")
    base = table[table["batch_m"] == 1]
    ours = f"{100 * (1 - base['best_accuracy'].iloc[0]):.2f}%" if len(base) else "n/a (no M=1 trial)"
    lines.append(f"reference: ResNet-44 test error {HE_RESNET44_ERROR}% (He et al. 2015, no cutout, ~164 epochs); "
                 f"ours at M=1: {ours} lowest test error (this preset's data and epochs; stops at the target)")
    lines.append("reference: Hoffer et al. 2019 study the epochs to 94% test accuracy vs M (fewer epochs for larger M)")
    return "\n".join(lines)

