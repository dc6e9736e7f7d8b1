"""The device a trial trains on: the GPU Ray assigned to it, else the CPU.

    >>> device_from_assignment([], None)                 # a trial that holds no GPU
    device(type='cpu')
    >>> device_from_assignment(["3"], "3")               # Ray gave GPU 3 and made it the only visible one
    device(type='cuda', index=0)
    >>> device_from_assignment(["5"], "4,5,6,7")         # a Train worker on a node whose workers share GPUs 4-7
    device(type='cuda', index=1)

This is the one place a trial's device is decided. It never asks `torch.cuda.is_available()`: a trial that holds
no GPU trains on the CPU even on a GPU machine (its GPU belongs to other trials), and a trial that holds one (or a
fraction of one: `--gpus-per-trial 0.25`) trains on that one. Ray sets CUDA_VISIBLE_DEVICES of a worker to the
GPUs it assigned (all of a node's Train workers' GPUs, for NCCL), so the torch index is the assigned id's
position in that list; with RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES it is the id itself.
"""

from __future__ import annotations

import os
from typing import Sequence

import torch

CPU = torch.device("cpu")


def device_from_assignment(gpu_ids: Sequence[str | int], visible_devices: str | None) -> torch.device:
    """The torch device of a worker Ray gave `gpu_ids` (its first one), with CUDA_VISIBLE_DEVICES
    `visible_devices` (None: not set)."""
    if not gpu_ids:
        return CPU
    first = str(gpu_ids[0])
    visible = [v.strip() for v in visible_devices.split(",") if v.strip()] if visible_devices else []
    if not visible:
        return torch.device("cuda", int(first))
    if first not in visible:
        raise RuntimeError(f"Ray assigned GPU {first} but CUDA_VISIBLE_DEVICES={visible_devices!r} hides it")
    return torch.device("cuda", visible.index(first))


def assigned_device() -> torch.device:
    """This Ray worker's device (a Tune trial's process or a Train worker), from Ray's assignment."""
    import ray

    return device_from_assignment(ray.get_gpu_ids(), os.environ.get("CUDA_VISIBLE_DEVICES"))


def describe(device: torch.device) -> str:
    """What a run records as its param "GPU type": the CUDA device's name, else "cpu"."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
