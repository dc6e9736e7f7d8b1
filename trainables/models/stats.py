"""Model statistics counted on a built model: per-layer output shapes, activations, parameters
and multiply-accumulates (MACs), and the per-trial summary every image-study trial logs.

Counting: forward hooks on every leaf module of a batch-1 forward pass in eval mode. MACs are
counted for convolutions (K*K*Cin/groups per output element) and linear layers (in_features per
output element); pooling, normalization, activations and element-wise adds count 0.
`flop_counter_macs` recounts with torch.utils.flop_counter as a cross-check (it reports FLOPs =
2 x MACs). "weights" = parameters not named `bias` (batch-norm gamma counts as a weight, beta as
a bias); "params" = all parameters. Activations = elements of a layer's output per sample.

The tables, figures and command line are `analysis/model_stats.py` (`python -m analysis.model_stats`).
"""

from __future__ import annotations

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from trainables.models.registry import build_model

CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _macs(module: nn.Module, out: torch.Tensor) -> int:
    per_sample = out[0].numel()
    if isinstance(module, CONV_TYPES):
        k = 1
        for s in module.kernel_size:
            k *= s
        return per_sample * k * module.in_channels // module.groups
    if isinstance(module, nn.Linear):
        return per_sample * module.in_features
    return 0


def layer_table(model: nn.Module, input_shape: tuple[int, ...]) -> pd.DataFrame:
    """One row per leaf-module call, in execution order (a module called twice gets two rows;
    its parameters are counted on the first)."""
    rows: list[dict] = []
    seen: set[int] = set()

    def hook(name: str):
        def fn(module: nn.Module, inputs, out) -> None:
            if not isinstance(out, torch.Tensor):
                return
            first = id(module) not in seen
            seen.add(id(module))
            params = dict(module.named_parameters(recurse=False)) if first else {}
            rows.append({
                "layer": name if first else f"{name} (again)",
                "type": type(module).__name__,
                "output_shape": "x".join(map(str, out.shape[1:])),
                "activations": out[0].numel(),
                "params": sum(p.numel() for p in params.values()),
                "weights": sum(p.numel() for n, p in params.items() if n != "bias"),
                "macs": _macs(module, out),
            })
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if not list(m.children())]
    try:
        was_training = model.training
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return pd.DataFrame(rows, columns=["layer", "type", "output_shape", "activations", "params", "weights", "macs"])


def totals(table: pd.DataFrame) -> dict[str, float]:
    macs = int(table["macs"].sum())
    conv = int(table.loc[table["type"].isin([t.__name__ for t in CONV_TYPES]), "macs"].sum())
    return {"params": int(table["params"].sum()), "weights": int(table["weights"].sum()),
            "activations": int(table["activations"].sum()), "macs": macs,
            "conv_macs_share": conv / macs if macs else 0.0}


def flop_counter_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """MACs of one sample according to torch.utils.flop_counter (which counts 2 FLOPs per MAC)."""
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_shape))
    return counter.get_total_flops() // 2


def build_for_input(model_name: str, input_shape: tuple[int, ...], **model_kw) -> nn.Module:
    model_kw.setdefault("in_channels", input_shape[0])
    if model_name == "mlp":
        model_kw.setdefault("image_size", input_shape[-1])
    return build_model(model_name, **model_kw)


def model_summary(model_name: str, input_shape: tuple[int, ...], **model_kw) -> dict[str, int]:
    """What every image-study trial logs: parameter count and MACs per sample (one forward pass)."""
    table = layer_table(build_for_input(model_name, input_shape, **model_kw), input_shape)
    t = totals(table)
    return {"n_params": t["params"], "macs_per_sample": t["macs"]}


# --- study tables ------------------------------------------------------------------------------
