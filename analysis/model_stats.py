"""Model statistics tables, figures and the command line (the counting is trainables/models/stats.py).

    python -m analysis.model_stats vgg19 --input 3x224x224 [--out results/model_stats]
    python -m analysis.model_stats tables --out results/model_stats     # AlexNet + VGG19 study tables
    python -m analysis.model_stats receptive-field --layers 3 --kernel 3
    python -m analysis.model_stats inception                            # the study's module on 32x32x256 (HxWxC)
    python -m analysis.model_stats paleo resnet50 --input 3x224x224 --ppp 0.5 [--device X=20:100]

Counting: forward hooks on every leaf module of a batch-1 forward pass in eval mode. MACs
(multiply-accumulates) are counted for convolutions (K*K*Cin/groups per output element) and
linear layers (in_features per output element); pooling, normalization, activations and
element-wise adds count 0. `flop_counter_macs` recounts with torch.utils.flop_counter as a
cross-check (it reports FLOPs = 2 x MACs). "weights" = parameters not named `bias`
(batch-norm gamma counts as a weight, beta as a bias); "params" = all parameters.
Activations = elements of a layer's output per sample.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from trainables.models.stats import (CONV_TYPES, build_for_input, flop_counter_macs, layer_table,  # noqa: F401
                                    model_summary, totals)
from trainables.models.registry import MIN_INPUT_SIZE, build_model
from trainables.models.paleo import DEVICES, Device, paleo_rows


def describe(model: nn.Module, table: pd.DataFrame, input_shape: tuple[int, ...]) -> pd.DataFrame:
    """The study layout: label, output shape, activations, weights (no biases), params, MACs."""
    modules = dict(model.named_modules())
    rows = [{"layer": "INPUT", "output_shape": "x".join(map(str, input_shape)),
             "activations": int(torch.tensor(input_shape).prod()), "weights": 0, "params": 0, "macs": 0}]
    for r in table.itertuples():
        m = modules.get(r.layer)
        if isinstance(m, nn.Conv2d):
            label = f"CONV{m.kernel_size[0]}-{m.out_channels}" + (f"/s{m.stride[0]}" if m.stride[0] > 1 else "")
        elif isinstance(m, nn.MaxPool2d):
            label = f"POOL{m.kernel_size}"
        elif isinstance(m, nn.Linear):
            label = f"FC-{m.out_features}"
        else:
            continue
        rows.append({"layer": label, "output_shape": r.output_shape, "activations": r.activations,
                     "weights": r.weights, "params": r.params, "macs": r.macs})
    out = pd.DataFrame(rows)
    total = {"layer": "TOTAL", "output_shape": ""} | {c: int(out[c].sum()) for c in ("activations", "weights", "params", "macs")}
    return pd.concat([out, pd.DataFrame([total])], ignore_index=True)


def plot_layers(table: pd.DataFrame, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = table[table["macs"] + table["params"] > 0]
    fig, axes = plt.subplots(2, 1, figsize=(max(6, 0.35 * len(t)), 6), sharex=True)
    axes[0].bar(range(len(t)), t["macs"] / 1e6)
    axes[0].set_ylabel("MMACs")
    axes[1].bar(range(len(t)), t["params"] / 1e6, color="tab:orange")
    axes[1].set_ylabel("parameters (M)")
    axes[1].set_xticks(range(len(t)), t["layer"], rotation=90, fontsize=7)
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_tables(df: pd.DataFrame, stem: Path) -> None:
    stem.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(stem.with_suffix(".csv"), index=False)
    stem.with_suffix(".md").write_text(_markdown(df))


def _markdown(df: pd.DataFrame) -> str:
    # Plain pipe table (pandas' to_markdown needs the optional `tabulate` package).
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def study_tables(out: Path) -> dict[str, pd.DataFrame]:
    """AlexNet and VGG19 at 224x224x3 per layer; VGG19 also as 'layer, activations, parameters
    (without biases)'. Writes Markdown, CSV and a figure per model under `out`."""
    shape = (3, 224, 224)
    result = {}
    for name in ("alexnet", "vgg19"):
        model = build_model(name, num_classes=1000, in_channels=3)
        table = layer_table(model, shape)
        df = describe(model, table, shape)
        write_tables(df, out / f"{name}_layers")
        plot_layers(table, f"{name} {'x'.join(map(str, shape))}", out / f"{name}_layers.png")
        result[name] = df
    vgg = result["vgg19"][["layer", "activations", "weights"]].rename(columns={"weights": "parameters (without biases)"})
    write_tables(vgg, out / "vgg19_activations_parameters")
    result["vgg19_short"] = vgg
    return result


# --- receptive field and Inception arithmetic ----------------------------------------------------

def receptive_field(n_layers: int, kernel: int, stride: int = 1) -> int:
    """Receptive field of n stacked kernel x kernel convolutions: 1 + n*(kernel-1) at stride 1;
    in general each layer adds (kernel-1) times the product of the strides before it."""
    rf, jump = 1, 1
    for _ in range(n_layers):
        rf += (kernel - 1) * jump
        jump *= stride
    return rf


def inception_cost(h: int, w: int, c: int, c1: int = 128, c3: int = 192, c5: int = 96,
                   r3: int = 128, r5: int = 32, pool_proj: int = 64) -> dict[str, dict]:
    """Output shape and MACs of an Inception module on an HxWxC input ('same' padding, stride 1).
    naive:   1x1(c1) | 3x3(c3) | 5x5(c5) | 3x3 max-pool (passes all C channels through)
    reduced: 1x1(c1) | 1x1(r3)->3x3(c3) | 1x1(r5)->5x5(c5) | max-pool->1x1(pool_proj)
    The defaults are the study's figure (on 32x32x256): 1x1 128 | 1x1 128->3x3 192 | 1x1 32->5x5 96 |
    pool->1x1 64, i.e. 1,115,684,864 MACs naive and 397,410,304 reduced; the CLI flags default the same."""
    hw = h * w
    naive = hw * c * (c1 + 9 * c3 + 25 * c5)
    reduced = hw * (c * c1 + c * r3 + 9 * r3 * c3 + c * r5 + 25 * r5 * c5 + c * pool_proj)
    return {"naive": {"output_shape": (h, w, c1 + c3 + c5 + c), "macs": naive},
            "reduced": {"output_shape": (h, w, c1 + c3 + c5 + pool_proj), "macs": reduced}}


class InceptionModule(nn.Module):
    """The module `inception_cost` describes, to count it by hooks (tests) or run it."""

    def __init__(self, c: int, c1: int, c3: int, c5: int, r3: int | None = None, r5: int | None = None,
                 pool_proj: int | None = None):
        super().__init__()
        reduce = r3 is not None
        self.b1 = nn.Conv2d(c, c1, 1)
        self.b3 = nn.Sequential(*([nn.Conv2d(c, r3, 1)] if reduce else []), nn.Conv2d(r3 if reduce else c, c3, 3, padding=1))
        self.b5 = nn.Sequential(*([nn.Conv2d(c, r5, 1)] if reduce else []), nn.Conv2d(r5 if reduce else c, c5, 5, padding=2))
        self.pool = nn.Sequential(nn.MaxPool2d(3, 1, 1), *([nn.Conv2d(c, pool_proj, 1)] if reduce else []))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.pool(x)], dim=1)


# --- command line ---------------------------------------------------------------------------------

def _shape(s: str) -> tuple[int, ...]:
    return tuple(int(v) for v in s.lower().split("x"))


def _fail(message: str) -> None:
    print(message, file=sys.stderr)
    sys.exit(2)


def _devices(specs: list[str]) -> dict[str, Device]:
    """`NAME` picks a device of the table; `NAME=FP32[:TENSOR]` (TFLOP/s) adds or overrides one.
    With any given, only those are shown; with none, the whole table."""
    devices, chosen = dict(DEVICES), []
    for spec in specs:
        name, sep, nums = spec.partition("=")
        if sep:
            try:
                fp32, _, tensor = nums.partition(":")
                devices[name] = Device(float(fp32), float(tensor) if tensor else None)
            except ValueError:
                _fail(f"error: --device {spec!r}: use NAME or NAME=FP32_TFLOPS[:TENSOR_TFLOPS]")
        elif name not in devices:
            _fail(f"error: --device {name!r} is not in the table ({', '.join(DEVICES)}); "
                  f"give its peaks as {name}=FP32_TFLOPS[:TENSOR_TFLOPS]")
        chosen.append(name)
    return {name: devices[name] for name in chosen} if chosen else devices


def _default_classes(name: str) -> int:
    return 1000 if name in MIN_INPUT_SIZE else 10


def _print(df: pd.DataFrame) -> None:
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_columns", None):
        print(df.to_string(index=False))


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv and argv[0] in ("tables", "receptive-field", "inception", "paleo") else "model"
    p = argparse.ArgumentParser(prog=f"python -m analysis.model_stats{'' if command == 'model' else ' ' + command}",
                                description=__doc__.splitlines()[0])
    args_in = argv if command == "model" else argv[1:]
    if command in ("model", "paleo"):
        p.add_argument("model")
        p.add_argument("--input", type=_shape, default=(3, 224, 224), help="CxHxW, e.g. 3x224x224")
        p.add_argument("--num-classes", type=int, default=None, help="1000 for torchvision models, else 10")
    if command == "model":
        p.add_argument("--out", type=Path, default=None, help="write <model>_layers.{csv,md,png} here")
    if command == "paleo":
        p.add_argument("--ppp", type=float, default=0.5)
        p.add_argument("--device", action="append", default=[],
                       help="NAME from the table, or NAME=FP32_TFLOPS[:TENSOR_TFLOPS]; repeatable (default: all)")
    if command == "tables":
        p.add_argument("--out", type=Path, required=True)
    if command == "receptive-field":
        p.add_argument("--layers", type=int, default=3)
        p.add_argument("--kernel", type=int, default=3)
        p.add_argument("--stride", type=int, default=1)
    if command == "inception":
        p.add_argument("--input", type=_shape, default=(32, 32, 256),
                       help="HxWxC, height x width x channels (default 32x32x256; note: not CxHxW as for models)")
        for flag, default, what in (("c1", 128, "1x1 branch filters"), ("c3", 192, "3x3 filters"),
                                    ("c5", 96, "5x5 filters"), ("r3", 128, "1x1 reduction before the 3x3"),
                                    ("r5", 32, "1x1 reduction before the 5x5"),
                                    ("pool-proj", 64, "1x1 after the max-pool")):
            p.add_argument(f"--{flag}", type=int, default=default, help=f"{what} (default {default})")
    args = p.parse_args(args_in)

    if command in ("model", "paleo"):
        classes = args.num_classes or _default_classes(args.model)
        model = build_for_input(args.model, args.input, num_classes=classes)
        table = layer_table(model, args.input)
        t = totals(table)
        if command == "paleo":
            print(f"{args.model} {'x'.join(map(str, args.input))}: {t['macs']} MACs per image, PPP {args.ppp}")
            _print(pd.DataFrame(paleo_rows(t["macs"], args.ppp, _devices(args.device))).round(3))
            return
        _print(table)
        print(f"total parameters: {t['params']}")
        print(f"total weights (without biases): {t['weights']}")
        print(f"total activations: {t['activations']}")
        print(f"total MACs: {t['macs']}")
        print(f"conv share of MACs: {t['conv_macs_share']:.4f}")
        if args.out:
            write_tables(table, args.out / f"{args.model}_layers")
            plot_layers(table, f"{args.model} {'x'.join(map(str, args.input))}", args.out / f"{args.model}_layers.png")
            print(f"wrote {args.out}/{args.model}_layers.csv/.md/.png")
    elif command == "tables":
        for name, df in study_tables(args.out).items():
            print(f"\n{name}")
            _print(df)
        print(f"\nwrote tables and figures to {args.out}")
    elif command == "receptive-field":
        rf = receptive_field(args.layers, args.kernel, args.stride)
        print(f"{args.layers} stacked {args.kernel}x{args.kernel} convs (stride {args.stride}): receptive field {rf}x{rf}")
    elif command == "inception":
        if len(args.input) != 3 or min(args.input) < 1:
            _fail(f"error: --input {'x'.join(map(str, args.input))}: give HxWxC, e.g. 32x32x256")
        h, w, c = args.input
        print(f"input {h}x{w}x{c} (HxWxC), stride 1, same padding; reduced: 1x1 {args.c1} | 1x1 {args.r3} -> "
              f"3x3 {args.c3} | 1x1 {args.r5} -> 5x5 {args.c5} | 3x3 max-pool -> 1x1 {args.pool_proj}")
        cost = inception_cost(h, w, c, args.c1, args.c3, args.c5, args.r3, args.r5, args.pool_proj)
        for kind, v in cost.items():
            print(f"{kind:8s} output {'x'.join(map(str, v['output_shape']))}  MACs {v['macs']}")
        print(f"reduction saves {1 - cost['reduced']['macs'] / cost['naive']['macs']:.1%} of the MACs")


if __name__ == "__main__":
    main()
