"""Model statistics checked against hand formulas and published totals."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch
from torch import nn

from analysis.model_stats import (InceptionModule, flop_counter_macs, inception_cost, layer_table, main,
                                  model_summary, receptive_field, totals)
from trainables.models.paleo import DEVICES, achieved_ppp, paleo_estimate, peak_flops
from trainables.models.registry import build_model


def conv_macs(k: int, cin: int, cout: int, hout: int, wout: int, groups: int = 1) -> int:
    return k * k * cin * cout * hout * wout // groups


def test_hooks_match_hand_formulas_per_layer():
    model = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, groups=4, bias=False),
                          nn.Flatten(), nn.Linear(8 * 6 * 6, 5))
    t = layer_table(model, (4, 16, 16))
    assert list(t["macs"]) == [conv_macs(3, 4, 8, 8, 8), 0, conv_macs(3, 8, 8, 6, 6, groups=4), 0, 288 * 5]
    assert list(t["output_shape"]) == ["8x8x8", "8x8x8", "8x6x6", "288", "5"]
    assert list(t["params"]) == [4 * 8 * 9 + 8, 0, 8 * 2 * 9, 0, 288 * 5 + 5]
    assert list(t["weights"]) == [4 * 8 * 9, 0, 8 * 2 * 9, 0, 288 * 5]
    assert list(t["activations"]) == [512, 512, 288, 288, 5]
    assert totals(t)["macs"] == flop_counter_macs(model, (4, 16, 16))


def test_vgg19_and_alexnet_totals():
    vgg = layer_table(build_model("vgg19", num_classes=1000, in_channels=3), (3, 224, 224))
    t = totals(vgg)
    assert t["params"] == 143_667_240
    # Hand count: 16 3x3 convs at 'same' padding, maps halving after each block, then 3 FC layers.
    macs, weights, cin, size = 0, 0, 3, 224
    for block, cout in zip((2, 2, 4, 4, 4), (64, 128, 256, 512, 512)):
        for _ in range(block):
            macs += conv_macs(3, cin, cout, size, size)
            weights += 9 * cin * cout
            cin = cout
        size //= 2
    fc = 512 * 7 * 7 * 4096 + 4096 * 4096 + 4096 * 1000
    assert t["macs"] == macs + fc and t["weights"] == weights + fc
    assert t["conv_macs_share"] == pytest.approx(macs / (macs + fc))
    alex = totals(layer_table(build_model("alexnet", num_classes=1000, in_channels=3), (3, 224, 224)))
    assert alex["params"] == 61_100_840
    alex_conv = (conv_macs(11, 3, 64, 55, 55) + conv_macs(5, 64, 192, 27, 27) + conv_macs(3, 192, 384, 13, 13)
                 + conv_macs(3, 384, 256, 13, 13) + conv_macs(3, 256, 256, 13, 13))
    assert alex["macs"] == alex_conv + 9216 * 4096 + 4096 * 4096 + 4096 * 1000


@pytest.mark.parametrize("name,shape", [("resnet20", (3, 32, 32)), ("mini_googlenet", (1, 28, 28)),
                                        ("lenet5", (1, 28, 28)), ("resnet18", (3, 64, 64))])
def test_hooks_agree_with_torch_flop_counter(name, shape):
    model = build_model(name, num_classes=10, in_channels=shape[0])
    t = layer_table(model, shape)
    assert totals(t)["macs"] == flop_counter_macs(model, shape)
    assert totals(t)["params"] == sum(p.numel() for p in model.parameters())


def test_model_summary():
    s = model_summary("resnet20", (3, 32, 32))
    assert s == {"n_params": 269_722, "macs_per_sample": flop_counter_macs(build_model("resnet20", in_channels=3), (3, 32, 32))}
    assert 40e6 < s["macs_per_sample"] < 42e6  # ~41M MACs, the usual figure for ResNet-20
    assert model_summary("mlp", (1, 28, 28), widths=(100,))["n_params"] == 784 * 100 + 100 + 100 * 10 + 10


def test_receptive_field():
    for n in range(1, 6):
        for f in (3, 5, 7):
            assert receptive_field(n, f) == 1 + n * (f - 1)
    assert receptive_field(2, 3, stride=2) == 7  # second layer's taps are 2 input pixels apart


# The study's figure, 32x32x256 input: 1x1 128 | 1x1 128 -> 3x3 192 | 1x1 32 -> 5x5 96 | 3x3 max-pool -> 1x1 64.
# Hand count, stride 1 and same padding so every conv outputs 32x32: MACs = 32*32 * k*k * Cin * Cout per conv.
STUDY_NAIVE_MACS = (conv_macs(1, 256, 128, 32, 32) + conv_macs(3, 256, 192, 32, 32)
                    + conv_macs(5, 256, 96, 32, 32))  # the pool passes its 256 channels through, 0 MACs
STUDY_REDUCED_MACS = (conv_macs(1, 256, 128, 32, 32)
                      + conv_macs(1, 256, 128, 32, 32) + conv_macs(3, 128, 192, 32, 32)
                      + conv_macs(1, 256, 32, 32, 32) + conv_macs(5, 32, 96, 32, 32)
                      + conv_macs(1, 256, 64, 32, 32))


def test_inception_defaults_are_the_study_figure():
    assert (STUDY_NAIVE_MACS, STUDY_REDUCED_MACS) == (1_115_684_864, 397_410_304)  # the numbers in the docstring
    cost = inception_cost(32, 32, 256)
    assert cost == {"naive": {"output_shape": (32, 32, 128 + 192 + 96 + 256), "macs": STUDY_NAIVE_MACS},
                    "reduced": {"output_shape": (32, 32, 128 + 192 + 96 + 64), "macs": STUDY_REDUCED_MACS}}


@pytest.mark.parametrize("h,c", [(32, 256), (28, 192)])
def test_inception_cost_matches_counted_module(h, c):
    cost = inception_cost(h, h, c)  # the defaults, built into the module explicitly
    for kind, module in (("naive", InceptionModule(c, 128, 192, 96)),
                         ("reduced", InceptionModule(c, 128, 192, 96, r3=128, r5=32, pool_proj=64))):
        t = layer_table(module, (c, h, h))
        assert totals(t)["macs"] == cost[kind]["macs"]
        out = module(torch.zeros(1, c, h, h))
        assert tuple(out.shape[2:]) + (out.shape[1],) == cost[kind]["output_shape"]
    assert cost["naive"]["output_shape"] == (h, h, 128 + 192 + 96 + c)
    other = inception_cost(h, h, c, c1=16, c3=24, c5=8, r3=12, r5=4, pool_proj=20)  # every flag reaches the count
    module = InceptionModule(c, 16, 24, 8, r3=12, r5=4, pool_proj=20)
    assert totals(layer_table(module, (c, h, h)))["macs"] == other["reduced"]["macs"]


def test_inception_cli_defaults_and_input_order(capsys):
    main(["inception"])  # the plain command: 32x32x256 input, the study's branches
    out = capsys.readouterr().out
    assert "input 32x32x256 (HxWxC)" in out
    assert f"naive    output 32x32x672  MACs {STUDY_NAIVE_MACS}\n" in out
    assert f"reduced  output 32x32x480  MACs {STUDY_REDUCED_MACS}\n" in out
    main(["inception", "--input", "16x8x64", "--r5", "16"])  # HxWxC: 16 high, 8 wide, 64 channels
    out = capsys.readouterr().out
    assert f"naive    output 16x8x{128 + 192 + 96 + 64}  MACs {inception_cost(16, 8, 64)['naive']['macs']}\n" in out
    assert f"output 16x8x{128 + 192 + 96 + 64}  MACs {inception_cost(16, 8, 64, r5=16)['reduced']['macs']}\n" in out
    with pytest.raises(SystemExit) as exit_info:
        main(["inception", "--input", "32x32"])
    assert exit_info.value.code == 2 and "give HxWxC" in capsys.readouterr().err


def test_paleo_and_achieved_ppp():
    est = paleo_estimate(1e9, 10e12, ppp=0.5)
    assert est["forward_ms_per_image"] == pytest.approx(2e9 / 5e12 * 1e3)
    assert est["train_images_per_s"] == pytest.approx(est["forward_images_per_s"] / 3)
    assert achieved_ppp(1e9, est["train_images_per_s"], 10e12) == pytest.approx(0.5)
    assert achieved_ppp(1e9, est["train_images_per_s"] * 2, "V100") == pytest.approx(2 * 0.5 * 10 / 15.7)
    assert peak_flops("H100", "tensor") == 989e12 and set(DEVICES) == {"K80", "P100", "V100", "A100", "H100", "H200"}
    with pytest.raises(ValueError):
        peak_flops("K80", "tensor")


def test_cli_model_and_tables(tmp_path, capsys):
    main(["resnet20", "--input", "3x32x32", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert f"total MACs: {model_summary('resnet20', (3, 32, 32))['macs_per_sample']}\n" in out
    assert "total parameters: 269722\n" in out
    assert (tmp_path / "resnet20_layers.png").stat().st_size > 0
    assert len(pd.read_csv(tmp_path / "resnet20_layers.csv")) > 20
    main(["tables", "--out", str(tmp_path)])
    vgg = pd.read_csv(tmp_path / "vgg19_activations_parameters.csv")
    assert list(vgg.columns) == ["layer", "activations", "parameters (without biases)"]
    assert vgg.iloc[-1]["parameters (without biases)"] == 143_652_544  # 143,667,240 minus 14,696 biases
    assert (tmp_path / "alexnet_layers.md").read_text().startswith("| layer |")
    main(["inception", "--input", "32x32x256"])
    assert "MACs 1115684864" in capsys.readouterr().out
    main(["paleo", "resnet20", "--input", "3x32x32", "--device", "X=1"])
    last = capsys.readouterr().out.splitlines()[-1].split()  # device X, fp32, 1 TFLOP/s, forward ms, ...
    assert last[:2] == ["X", "fp32"] and float(last[2]) == 1.0
    assert math.isclose(float(last[3]), 2 * model_summary("resnet20", (3, 32, 32))["macs_per_sample"] / 0.5e12 * 1e3, rel_tol=1e-2)


def test_paleo_cli_picks_named_devices_and_rejects_unknown(capsys):
    from analysis.model_stats import main

    main(["paleo", "lenet5", "--input", "1x28x28", "--device", "H100", "--device", "X9=10:100"])
    out = capsys.readouterr().out
    assert "H100" in out and "X9" in out and "K80" not in out
    with pytest.raises(SystemExit) as exit_info:
        main(["paleo", "lenet5", "--input", "1x28x28", "--device", "X9"])
    assert exit_info.value.code == 2
    assert "not in the table" in capsys.readouterr().err
