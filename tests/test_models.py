"""Every registered model: output shape, finite outputs, a gradient for every parameter."""

from __future__ import annotations

import pytest
import torch
import torchvision

from trainables.models import MIN_INPUT_SIZE, MODELS, build_model, count_parameters

# Smallest inputs that keep each model cheap on a 2-core CPU.
INPUTS = {"mlp": (1, 28), "lenet5": (1, 28), "mini_googlenet": (3, 32)}
KWARGS = {"mlp": {"image_size": 28, "widths": (32, 16), "batch_norm": True, "dropout_hidden": 0.5}}


def input_for(name: str) -> tuple[int, int]:
    if name in INPUTS:
        return INPUTS[name]
    return (3, 32) if name.startswith("resnet") and name not in MIN_INPUT_SIZE else (3, max(32, MIN_INPUT_SIZE[name]))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_backward(name):
    torch.manual_seed(0)
    channels, size = input_for(name)
    model = build_model(name, num_classes=7, in_channels=channels, **KWARGS.get(name, {}))
    out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a finite gradient: {missing}"


@pytest.mark.parametrize("depth,millions", [(20, 0.27), (32, 0.46), (44, 0.66), (56, 0.85), (110, 1.7)])
def test_cifar_resnet_parameters_match_he_et_al(depth, millions):
    n = count_parameters(build_model(f"resnet{depth}", num_classes=10, in_channels=3))
    digits = 1 if depth == 110 else 2  # the paper rounds to 2 decimals (1.7M for ResNet-110)
    assert round(n / 1e6, digits) == millions


@pytest.mark.parametrize("name", ["lenet5", "mini_googlenet", "resnet20"])
def test_small_models_take_mnist_and_cifar(name):
    for channels, size in ((1, 28), (3, 32)):
        assert build_model(name, num_classes=10, in_channels=channels).eval()(torch.zeros(1, channels, size, size)).shape == (1, 10)


def test_resnet50_on_fashion_mnist():
    model = build_model("resnet50", num_classes=10, in_channels=1).eval()
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_lenet5_options():
    plain = build_model("lenet5")
    full = build_model("lenet5", batch_norm=True, input_batch_norm=True, dropout_input=0.2, dropout_hidden=0.5)
    assert count_parameters(plain) == 61706  # classic LeNet-5 with 28x28 input padded to 32x32
    kinds = [type(m).__name__ for m in full.modules()]
    assert kinds.count("BatchNorm2d") == 3 and kinds.count("BatchNorm1d") == 2 and kinds.count("Dropout") == 3
    assert [m.p for m in full.modules() if isinstance(m, torch.nn.Dropout)] == [0.2, 0.5, 0.5]


def test_weights_path_loads_local_state_dict(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model = build_model("resnet18", num_classes=10, in_channels=1, weights_path=str(path))
    torch.testing.assert_close(model.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    torch.testing.assert_close(model.conv1.weight, reference.conv1.weight.sum(1, keepdim=True))
    assert model.fc.out_features == 10
    same = build_model("resnet18", num_classes=1000, in_channels=3, weights_path=str(path))
    x = torch.randn(1, 3, 64, 64)
    torch.testing.assert_close(same.eval()(x), reference.eval()(x))
    # A grey image through the adapted conv equals the RGB model on the grey image copied 3 times.
    grey = torch.randn(1, 1, 64, 64)
    torch.testing.assert_close(model.conv1(grey), reference.conv1(grey.repeat(1, 3, 1, 1)), rtol=1e-4, atol=1e-4)


def test_unknown_model_and_option_fail_loudly():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet9000")
    with pytest.raises(TypeError):
        build_model("resnet20", widht=3)
