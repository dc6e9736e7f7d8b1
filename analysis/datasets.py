"""What a data set looks like: split sizes, images per class, sample images with their class names.

    python -m analysis.datasets fashion_mnist --classes 3 --per-class 3
    python -m analysis.datasets flowers102 --data-dir /shared/data --size 128

writes results/datasets/NAME/{dataset.png, splits.csv, classes.csv} and prints a few lines
(classes, split sizes, images per class). A missing data set is a one-line error, exit code 2.

The figure is drawn from `trainables.data.vision.dataset_summary`'s artifacts alone, the same ones
a study logs on its parent run, so `artifacts_from_run` + `draw_summary` redraws it from the records.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from analysis.plotting import plt

PREFIX = "dataset/"


def _parts(artifacts: dict):
    return (artifacts[PREFIX + "splits.csv"], artifacts[PREFIX + "classes.csv"],
            np.asarray(artifacts[PREFIX + "samples.npy"]), artifacts[PREFIX + "summary.json"])


def summary_text(artifacts: dict) -> str:
    """Classes, split sizes and images per class (min/median/max over the training split's classes)."""
    splits, classes, samples, info = _parts(artifacts)
    shape = "x".join(map(str, info["image_shape"]))
    per_class = classes["train"].to_numpy()
    sizes = ", ".join(f"{r.split} {r.images:,}" for r in splits.itertuples())
    shown = ", ".join(f"{label} {name!r}" for label, name in zip(info["sample_labels"], info["sample_names"]))
    return "\n".join([
        f"{info['name']}: {info['num_classes']} classes, images {shape} (C x H x W)",
        f"images: {sizes}",
        f"train images per class: min {per_class.min():,}, median {np.median(per_class):g}, max {per_class.max():,}"
        f" ({int((per_class > 0).sum())} classes present)",
        f"sample grid ({samples.shape[1]} training images each): {shown}",
    ])


def draw_summary(artifacts: dict, out_dir: str | os.PathLike) -> list[Path]:
    """dataset.png (split sizes, a histogram of images per class in the training split, the sample grid
    labelled with class names) and the splits.csv / classes.csv tables beside it."""
    splits, classes, samples, info = _parts(artifacts)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, cols = samples.shape[:2]
    fig = plt.figure(figsize=(max(8.0, 1.6 * cols), 3.2 + 1.7 * rows), layout="constrained")
    shape = "x".join(map(str, info["image_shape"]))
    fig.suptitle(f"{info['name']}: {info['num_classes']} classes, images {shape}", fontsize=13)
    top, bottom = fig.subfigures(2, 1, height_ratios=[3.0, 1.7 * max(rows, 1)])

    ax_split, ax_hist = top.subplots(1, 2)
    bars = ax_split.bar(splits["split"], splits["images"], color=["tab:blue", "tab:orange", "tab:green"][:len(splits)])
    ax_split.bar_label(bars, labels=[f"{n:,}" for n in splits["images"]], fontsize=9)
    ax_split.set_ylabel("images")
    ax_split.set_title(f"{info['name']}: images per split")
    ax_split.margins(y=0.15)
    per_class = classes["train"].to_numpy()
    ax_hist.hist(per_class, bins=min(30, max(5, len(np.unique(per_class)))), color="tab:blue")
    ax_hist.set_xlabel("training images in a class")
    ax_hist.set_ylabel("classes")
    ax_hist.set_title(f"{info['name']}: training images per class\n"
                      f"(min {per_class.min()}, median {np.median(per_class):g}, max {per_class.max()})", fontsize=10)

    bottom.suptitle(f"{info['name']}: training images of {rows} classes (seeded choice)", fontsize=11)
    axes = np.atleast_2d(bottom.subplots(max(rows, 1), cols, squeeze=False))
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            image = samples[r, c]
            if image.shape[0] == 1:
                ax.imshow(image[0], cmap="gray", vmin=0, vmax=255)
            else:
                ax.imshow(image.transpose(1, 2, 0))
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= info["sample_counts"][r]:
                ax.set_facecolor("0.9")  # fewer training images than slots
        label, name = info["sample_labels"][r], info["sample_names"][r]
        axes[r, 0].set_ylabel(name if name == str(label) else f"{label}: {name}", fontsize=9,
                              rotation=0, ha="right", va="center")
    path = out / "dataset.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    splits.to_csv(out / "splits.csv", index=False)
    classes.to_csv(out / "classes.csv", index=False)
    return [path, out / "splits.csv", out / "classes.csv"]


def artifacts_from_run(tracking_uri: str, run_id: str) -> dict | None:
    """The "dataset/..." artifacts a study logged on a run, decoded (trainables.artifacts); None if it has none."""
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    from trainables.artifacts import decode

    listed = MlflowClient(tracking_uri).list_artifacts(run_id, PREFIX.rstrip("/"))
    if not listed:
        return None
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=PREFIX.rstrip("/"),
                                                         tracking_uri=tracking_uri, dst_path=tmp))
        return {PREFIX + p.name: decode(p.name, p.read_bytes()) for p in sorted(local.iterdir()) if p.is_file()}


def main(argv: list[str] | None = None) -> int:
    from trainables.data.vision import DATASETS, DatasetUnavailableError, dataset_summary, load_vision_data

    parser = argparse.ArgumentParser(prog="python -m analysis.datasets", description=__doc__.split("\n")[0])
    parser.add_argument("name", choices=sorted(DATASETS))
    parser.add_argument("--data-dir", default=None, help="default: $DLSWEEPS_DATA_DIR or ~/.cache/dlsweeps/data")
    parser.add_argument("--size", type=int, default=0, help="file data sets: image side in pixels (0 = 256)")
    parser.add_argument("--classes", type=int, default=2, help="classes in the sample grid")
    parser.add_argument("--per-class", type=int, default=4, help="images per class in the sample grid")
    parser.add_argument("--results-dir", default="results")
    args = parser.parse_args(argv)
    try:
        data = load_vision_data(args.name, args.data_dir, size=args.size)
    except (DatasetUnavailableError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    artifacts = dataset_summary(data, classes=args.classes, per_class=args.per_class)
    paths = draw_summary(artifacts, Path(args.results_dir) / "datasets" / args.name)
    print(summary_text(artifacts))
    print("wrote " + ", ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
