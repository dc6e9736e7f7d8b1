"""Which device a trial trains on (trainables/runtime/devices.py) and which peak its PPP is measured against
(trainables/models/paleo.py). Pure functions: no GPU, no Ray needed."""

from __future__ import annotations

import warnings

import pytest
import torch

from trainables.image.trial import device_peak
from trainables.models import paleo
from trainables.models.paleo import PEAK_ENV, gpu_peak
from trainables.runtime.devices import describe, device_from_assignment


@pytest.mark.parametrize("gpu_ids, visible, expected", [
    (["3"], "3", torch.device("cuda", 0)),            # Ray gave GPU 3 and made it the only visible one
    (["5"], "4,5,6,7", torch.device("cuda", 1)),      # a Train worker on a node whose workers share GPUs 4-7
    ([5], "4, 5", torch.device("cuda", 1)),           # ids as ints, spaces in the list
    (["2"], None, torch.device("cuda", 2)),           # RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES: the id itself
    ([], None, torch.device("cpu")),                  # a trial that holds no GPU: the CPU, even on a GPU machine
    ([], "0,1", torch.device("cpu")),
    (["1", "2"], "1,2", torch.device("cuda", 0)),     # several GPUs: the first
])
def test_a_trial_trains_on_the_gpu_ray_assigned_to_it(gpu_ids, visible, expected):
    assert device_from_assignment(gpu_ids, visible) == expected


def test_a_ray_worker_reads_its_assignment_from_ray_and_its_environment(monkeypatch):
    import ray

    from trainables.runtime.devices import assigned_device

    monkeypatch.setattr(ray, "get_gpu_ids", lambda: ["5"])  # what Ray tells a worker it assigned GPU 5
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert assigned_device() == torch.device("cuda", 1)
    monkeypatch.setattr(ray, "get_gpu_ids", lambda: [])
    assert assigned_device() == torch.device("cpu")


def test_an_assignment_the_visible_devices_hide_is_an_error():
    with pytest.raises(RuntimeError, match="hides it"):
        device_from_assignment(["3"], "0,1")


def test_a_cpu_trial_records_cpu_and_has_no_peak():
    assert describe(torch.device("cpu")) == "cpu"
    assert device_peak(torch.device("cpu"), amp=True) is None


@pytest.mark.parametrize("name, fp32, tensor", [
    ("NVIDIA H200", 67e12, 989e12),
    ("NVIDIA H200 NVL", 67e12, 989e12),
    ("NVIDIA H100 80GB HBM3", 67e12, 989e12),
    ("NVIDIA A100-SXM4-40GB", 19.5e12, 312e12),
    ("Tesla V100-SXM2-16GB", 15.7e12, 125e12),
    ("Tesla K80", 4.37e12, 4.37e12),                  # no tensor cores: the fp32 peak for both
])
def test_known_gpus_get_their_datasheet_peaks_h200_before_h100(name, fp32, tensor, monkeypatch):
    monkeypatch.delenv(PEAK_ENV, raising=False)
    assert gpu_peak(name, "fp32") == pytest.approx(fp32)
    assert gpu_peak(name, "tensor") == pytest.approx(tensor)


def test_the_table_holds_the_h100_and_h200_sxm_peaks():
    assert paleo.DEVICES["H200"] == paleo.DEVICES["H100"] == paleo.Device(67.0, 989.0)
    assert paleo.GPU_NAMES.index("H200") < paleo.GPU_NAMES.index("H100")


def test_an_unknown_gpu_gets_no_peak_and_one_warning_naming_the_variable(monkeypatch):
    monkeypatch.delenv(PEAK_ENV, raising=False)
    monkeypatch.setattr(paleo, "_WARNED", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert gpu_peak("NVIDIA RTX PRO 9999", "tensor") is None
        assert gpu_peak("NVIDIA RTX PRO 9999", "fp32") is None  # warned once per GPU
    assert len(caught) == 1 and PEAK_ENV in str(caught[0].message) and "\n" not in str(caught[0].message)


def test_the_environment_variable_gives_or_overrides_a_peak(monkeypatch):
    monkeypatch.setenv(PEAK_ENV, "50:400")
    assert gpu_peak("NVIDIA RTX PRO 9999", "tensor") == 400e12 and gpu_peak("NVIDIA H200", "fp32") == 50e12
    monkeypatch.setenv(PEAK_ENV, "80")  # fp32 only: the tensor column falls back to it
    assert gpu_peak("whatever", "tensor") == 80e12
    monkeypatch.setenv(PEAK_ENV, "fast")
    with pytest.raises(ValueError, match="FP32"):
        gpu_peak("whatever")
