"""PALEO-style performance estimates (Qi et al., ICLR 2017): time = FLOPs / (PPP * peak FLOP/s).

FLOPs here are 2 x multiply-accumulates (MACs): one multiply and one add. Forward+backward is
taken as `backward_factor` (default 3) times the forward cost: the backward pass computes the
gradients with respect to both inputs and weights, each about one forward's work. PPP
("platform percent of peak") was 0.46-0.62 in PALEO's GPU experiments; 0.5 is the default.

Peak figures (dense, no sparsity), in TFLOP/s, from the vendors' data sheets:
  K80   FP32 4.37 per GK210 die (one CUDA device; the dual-die board is 8.73 with boost). No tensor cores.
  P100  SXM2: FP32 10.6; FP16 21.2 (no tensor cores; the FP16 rate stands in the tensor column).
  V100  SXM2: FP32 15.7; tensor cores FP16 125.
  A100  SXM4: FP32 19.5; tensor cores TF32 156, FP16/BF16 312 (the tensor column).
  H100  SXM5: FP32 67; tensor cores TF32 495, FP16/BF16 989 (the tensor column; 1979 with sparsity).
  H200  SXM: the H100 SXM's arithmetic (FP32 67, FP16/BF16 989 dense) with more, faster memory (141 GB, 4.8 TB/s).
Override or extend with `devices=` / the CLI's `--device NAME=FP32[:TENSOR]`.

A GPU trial's peak (`gpu_peak`): the first of GPU_NAMES found in the device's name ('NVIDIA H200' -> H200;
an H100 PCIe or NVL card is matched as the SXM part, whose peaks are higher), or the environment variable
DLSWEEPS_PEAK_TFLOPS=FP32[:TENSOR] (TFLOP/s, e.g. `67:989`), which wins over the table. An unknown GPU gets no
peak (its trials record achieved TFLOP/s and leave PPP empty) and one warning naming that variable.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    fp32_tflops: float
    tensor_tflops: float | None  # dense FP16/BF16 tensor-core peak (P100: plain FP16 rate)


DEVICES: dict[str, Device] = {
    "K80": Device(4.37, None),
    "P100": Device(10.6, 21.2),
    "V100": Device(15.7, 125.0),
    "A100": Device(19.5, 312.0),
    "H100": Device(67.0, 989.0),
    "H200": Device(67.0, 989.0),
}
# Names matched in a GPU's reported name, in this order (more specific first: 'H200' before 'H100').
GPU_NAMES: tuple[str, ...] = ("H200", "H100", "A100", "V100", "P100", "K80")
PEAK_ENV = "DLSWEEPS_PEAK_TFLOPS"  # FP32[:TENSOR] in TFLOP/s: the peak of a GPU the table lacks (or overrides)
_WARNED: set[str] = set()


def gpu_peak(name: str, precision: str = "fp32", env: dict[str, str] | None = None) -> float | None:
    """Peak FLOP/s of the GPU called `name` (torch.cuda.get_device_name) at `precision` ("fp32", or "tensor":
    the dense bf16/fp16 rate, falling back to fp32 for a GPU without one); None, with one warning per name,
    when neither DLSWEEPS_PEAK_TFLOPS nor the table knows it."""
    value = (os.environ if env is None else env).get(PEAK_ENV, "").strip()
    if value:
        try:
            fp32, _, tensor = value.partition(":")
            tflops = float(tensor) if precision != "fp32" and tensor else float(fp32)
        except ValueError:
            raise ValueError(f"{PEAK_ENV}={value!r}: give FP32[:TENSOR] in TFLOP/s, e.g. 67:989") from None
        return tflops * 1e12
    upper = name.upper()
    for key in GPU_NAMES:
        if key in upper:
            device = DEVICES[key]
            tflops = device.fp32_tflops if precision == "fp32" else (device.tensor_tflops or device.fp32_tflops)
            return tflops * 1e12
    if name not in _WARNED:
        _WARNED.add(name)
        warnings.warn(f"no peak FLOP/s known for the GPU {name!r}: its trials record perf/tflops but no perf/ppp; "
                      f"give its peak as {PEAK_ENV}=FP32[:TENSOR] in TFLOP/s (e.g. {PEAK_ENV}=67:989)", stacklevel=2)
    return None


def peak_flops(device: str | float, precision: str = "fp32", devices: dict[str, Device] | None = None) -> float:
    """Peak FLOP/s of a named device (or a number, taken as FLOP/s and returned as is)."""
    if not isinstance(device, str):
        return float(device)
    dev = (devices or DEVICES)[device]
    tflops = dev.fp32_tflops if precision == "fp32" else dev.tensor_tflops
    if tflops is None:
        raise ValueError(f"{device} has no {precision} peak")
    return tflops * 1e12


def paleo_estimate(macs_per_sample: float, peak: float, ppp: float = 0.5, backward_factor: float = 3.0) -> dict[str, float]:
    """Predicted seconds per image and images/s, forward only and forward+backward, at `peak` FLOP/s."""
    forward_s = 2 * macs_per_sample / (ppp * peak)
    train_s = backward_factor * forward_s
    return {"forward_ms_per_image": forward_s * 1e3, "train_ms_per_image": train_s * 1e3,
            "forward_images_per_s": 1 / forward_s, "train_images_per_s": 1 / train_s}


def achieved_flops(macs_per_sample: float, samples_per_s: float, training: bool = True, backward_factor: float = 3.0) -> float:
    """FLOP/s a run achieved, from its model's MACs per sample and its measured samples/s."""
    return 2 * macs_per_sample * samples_per_s * (backward_factor if training else 1.0)


def perf_metrics(flops_per_s: float, peak: float | None) -> dict[str, float]:
    """A GPU trial's per-epoch `perf/tflops` and, where the device's peak (FLOP/s) is known, `perf/ppp`."""
    return {"perf/tflops": flops_per_s / 1e12, **({"perf/ppp": flops_per_s / peak} if peak else {})}


def achieved_ppp(macs_per_sample: float, samples_per_s: float, device_peak: str | float,
                 training: bool = True, precision: str = "fp32") -> float:
    """Fraction of the device's peak a run reached (PALEO's PPP, measured instead of assumed).
    `device_peak` is a name from DEVICES or a peak in FLOP/s."""
    return achieved_flops(macs_per_sample, samples_per_s, training) / peak_flops(device_peak, precision)


def paleo_rows(macs_per_sample: float, ppp: float = 0.5, devices: dict[str, Device] | None = None) -> list[dict]:
    """One row per device and precision: the PALEO estimate for a model of `macs_per_sample`."""
    rows = []
    for name, dev in (devices or DEVICES).items():
        for precision, tflops in (("fp32", dev.fp32_tflops), ("tensor", dev.tensor_tflops)):
            if tflops is not None:
                rows.append({"device": name, "precision": precision, "peak_tflops": tflops,
                             **paleo_estimate(macs_per_sample, tflops * 1e12, ppp)})
    return rows
