"""Every registered model: output shape, finite outputs, a gradient for every parameter."""

from __future__ import annotations

import pytest
import torch
import torchvision

from trainables.models.registry import MIN_INPUT_SIZE, MODELS, build_model, count_parameters

# Smallest inputs that keep each model cheap on a 2-core CPU.
INPUTS = {"mlp": (1, 28), "lenet5": (1, 28), "mini_googlenet": (3, 32)}
KWARGS = {"mlp": {"image_size": 28, "widths": (32, 16), "batch_norm": True, "dropout_hidden": 0.5}}


def input_for(name: str) -> tuple[int, int]:
    if name in INPUTS:
        return INPUTS[name]
    return (3, 32) if name.startswith(("resnet", "cifar_resnet")) and name not in MIN_INPUT_SIZE else (3, max(32, MIN_INPUT_SIZE[name]))


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


@pytest.mark.parametrize("name, depth, blocks", [("cifar_resnet18", 18, (3, 3, 2)), ("cifar_resnet50", 50, (8, 8, 8))])
def test_optimus_cifar_resnets_depth(name, depth, blocks):
    """Depth = weighted layers: the first conv, two per basic block, the linear layer (16/32/64 channels)."""
    net = build_model(name, num_classes=10)
    weighted = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    assert len(weighted) == depth
    assert tuple(len(stage) for stage in (net.layer1, net.layer2, net.layer3)) == blocks


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


NATURAL_CHANNELS = {"mlp": 1, "lenet5": 1, "mini_googlenet": 1}  # every other registered model: 3 (RGB)


def _input_width(model: torch.nn.Module) -> int:
    """Channels of the first convolution, or features of the first linear layer."""
    first = next(m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    return first.in_channels if isinstance(first, torch.nn.Conv2d) else first.in_features


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registry_defaults_to_natural_input_channels(name):
    channels = NATURAL_CHANNELS.get(name, 3)
    model = build_model(name, **({"image_size": 28} if name == "mlp" else {}))
    assert _input_width(model) == (channels * 28 * 28 if name == "mlp" else channels)


@pytest.mark.parametrize("activation, layer", [("relu", "ReLU"), ("leaky_relu", "LeakyReLU"), ("tanh", "Tanh"),
                                               ("sigmoid", "Sigmoid"), ("elu", "ELU"), ("gelu", "GELU")])
@pytest.mark.parametrize("name", ["mlp", "lenet5"])
def test_activation_option(name, activation, layer):
    kw = {"image_size": 28, "widths": (16, 8)} if name == "mlp" else {}
    model = build_model(name, activation=activation, leaky_slope=0.2, **kw)
    acts = [m for m in model.modules() if type(m).__name__ == layer]
    assert len(acts) == (2 if name == "mlp" else 4)
    if activation == "leaky_relu":
        assert all(m.negative_slope == 0.2 for m in acts)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.parametrize("scheme, variance", [
    ("glorot", lambda n_in, n_out: 2 / (n_in + n_out)), ("xavier", lambda n_in, n_out: 2 / (n_in + n_out)),
    ("he", lambda n_in, n_out: 2 / n_in), ("kaiming", lambda n_in, n_out: 2 / n_in),
    ("normal", lambda n_in, n_out: 0.05**2)])
def test_weight_init_variance_and_zero_biases(scheme, variance):
    torch.manual_seed(0)
    model = build_model("mlp", image_size=28, widths=(600, 400), weight_init=scheme, init_sigma=0.05)
    for layer in [m for m in model.modules() if isinstance(m, torch.nn.Linear)][:2]:  # the large layers
        n_out, n_in = layer.weight.shape
        assert layer.weight.var().item() == pytest.approx(variance(n_in, n_out), rel=0.02)
        assert layer.weight.mean().item() == pytest.approx(0.0, abs=0.01 * variance(n_in, n_out) ** 0.5)
        assert torch.all(layer.bias == 0)
    conv = build_model("lenet5", weight_init="he").features[0]  # n_in = in_channels x kernel area = 25
    assert conv.weight.std().item() == pytest.approx((2 / 25) ** 0.5, rel=0.3) and torch.all(conv.bias == 0)


def test_default_init_is_pytorchs():
    torch.manual_seed(3)
    a = build_model("lenet5")
    torch.manual_seed(3)
    b = build_model("lenet5", weight_init="default")
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q)
    assert any(bool((m.bias != 0).any()) for m in a.modules() if isinstance(m, torch.nn.Linear))


def test_small_models_stay_plain_layer_stacks():
    """A population trainer fuses these models layer by layer: only standard layers in nn.Sequential stacks."""
    standard = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.Dropout,
                torch.nn.MaxPool2d, torch.nn.Flatten, torch.nn.ReLU, torch.nn.LeakyReLU, torch.nn.Tanh,
                torch.nn.Sigmoid, torch.nn.ELU, torch.nn.GELU)
    for model in (build_model("mlp", image_size=28, widths=(8, 8), batch_norm=True, input_batch_norm=True,
                              dropout_input=0.1, dropout_hidden=0.2, activation="gelu", weight_init="he"),
                  build_model("lenet5", batch_norm=True, dropout_hidden=0.5, activation="elu")):
        stacks = [m for m in model.children()]
        assert all(isinstance(m, torch.nn.Sequential) for m in stacks)
        assert all(isinstance(layer, standard) for stack in stacks for layer in stack)


def test_unknown_activation_and_init_fail_loudly():
    with pytest.raises(ValueError, match="unknown activation"):
        build_model("mlp", image_size=28, activation="swish")
    with pytest.raises(ValueError, match="unknown weight_init"):
        build_model("lenet5", weight_init="orthogonal")
