"""Model registry: every model is a plain `nn.Module` built by `build_model(name, **kw)`.

    >>> from trainables.models.registry import build_model
    >>> net = build_model("mlp", num_classes=1, in_features=2, widths=(64, 32), batch_norm=True)

Each builder takes `num_classes` and `in_channels` (ignored where meaningless)
plus its own keyword options; unknown names or options fail loudly. Without `in_channels` a
model gets its natural input: 3 channels for the CIFAR ResNets and the torchvision models,
1 for mlp, lenet5 and mini_googlenet.

The small models (mlp, lenet5) also take `activation` (ACTIVATIONS; `leaky_slope` for
leaky_relu), `weight_init` (WEIGHT_INITS: PyTorch's default, or normal with `init_sigma`,
glorot/xavier or he/kaiming normal, biases zero), batch norm on the input and/or hidden layers
and dropout on the input and/or hidden layers. They stay plain stacks of standard layers
(nn.Sequential), so other code can walk them layer by layer.

Registered: mlp, lenet5, mini_googlenet (trainables/models/googlenet.py), CIFAR ResNets
resnet20/32/44/56/110 and the same family's cifar_resnet18 (blocks 3-3-2) and cifar_resnet50
(trainables/models/cifar_resnet.py), and torchvision's resnet18, resnet50, alexnet, vgg16, vgg19 and
googlenet (without its auxiliary classifiers) with adapted input channels and class count. The torchvision models
start from random weights; `weights_path=` loads a locally saved ImageNet state dict
(nothing is ever downloaded). `MIN_INPUT_SIZE` gives the smallest square input a model
accepts (resize smaller images with `trainables.training.augment.resize`).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torchvision
from torch import nn

from trainables.models.cifar_resnet import CifarResNet
from trainables.models.googlenet import MiniGoogLeNet

MODELS: dict[str, Callable[..., nn.Module]] = {}


def register(name: str) -> Callable:
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        MODELS[name] = fn
        return fn

    return wrap


def build_model(name: str, num_classes: int = 10, in_channels: int | None = None, **kw) -> nn.Module:
    """`in_channels=None`: the model's natural input (its builder's default)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(sorted(MODELS))}")
    if in_channels is not None:
        kw["in_channels"] = in_channels
    return MODELS[name](num_classes=num_classes, **kw)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def batchnorm_layers(model: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    """Every batch-norm layer of `model` in forward (registration) order, labelled by what it normalizes: "input"
    before the first conv/linear layer, else the layer it follows, "conv1", "conv2", ..., "fc1", "fc2", ...
    (LeNet-5 with batch norm everywhere: input, conv1, conv2, fc1, fc2; an MLP: input, fc1, fc2, ...)."""
    labelled, convs, linears, last = [], 0, 0, "input"
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            convs += 1
            last = f"conv{convs}"
        elif isinstance(module, nn.Linear):
            linears += 1
            last = f"fc{linears}"
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            labelled.append((last, module))
    return labelled


# --- options of the small models (mlp, lenet5) ------------------------------------------------

ACTIVATIONS = ("relu", "leaky_relu", "tanh", "sigmoid", "elu", "gelu")
# glorot = xavier and he = kaiming (the two names of each scheme)
WEIGHT_INITS = ("default", "normal", "glorot", "xavier", "he", "kaiming")


def activation_factory(name: str, leaky_slope: float = 0.01) -> Callable[[], nn.Module]:
    """A constructor of the activation layer `name` (one of ACTIVATIONS)."""
    layers = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "elu": nn.ELU, "gelu": nn.GELU,
              "leaky_relu": lambda: nn.LeakyReLU(leaky_slope)}
    if name not in layers:
        raise ValueError(f"unknown activation {name!r}; choose from {', '.join(ACTIVATIONS)}")
    return layers[name]


def init_weights(model: nn.Module, scheme: str = "default", sigma: float = 0.01) -> nn.Module:
    """Re-draw the weights of every Linear and Conv2d layer of `model` (batch norm keeps gamma=1, beta=0):

    - default: leave PyTorch's own initialization (Kaiming-uniform with a=sqrt(5));
    - normal: N(0, sigma^2);
    - glorot / xavier: N(0, 2 / (n_in + n_out)) (Glorot & Bengio 2010, normal variant);
    - he / kaiming: N(0, 2 / n_in) (He et al. 2015, fan-in, for ReLU);
    with n_in = in_features (in_channels x kernel area for a convolution), n_out likewise. Biases are set
    to zero by every explicit scheme."""
    if scheme not in WEIGHT_INITS:
        raise ValueError(f"unknown weight_init {scheme!r}; choose from {', '.join(WEIGHT_INITS)}")
    if scheme == "default":
        return model
    for layer in model.modules():
        if not isinstance(layer, (nn.Linear, nn.Conv2d)):
            continue
        w = layer.weight
        receptive = w[0, 0].numel()  # 1 for a linear layer, kh * kw for a convolution
        n_in, n_out = w.shape[1] * receptive, w.shape[0] * receptive
        std = {"normal": sigma, "glorot": math.sqrt(2.0 / (n_in + n_out)), "xavier": math.sqrt(2.0 / (n_in + n_out)),
               "he": math.sqrt(2.0 / n_in), "kaiming": math.sqrt(2.0 / n_in)}[scheme]
        with torch.no_grad():
            w.normal_(0.0, std)
            if layer.bias is not None:
                layer.bias.zero_()
    return model


class MLP(nn.Module):
    """Fully connected net: [BN] [Dropout] (Linear [BN] activation [Dropout])* Linear.

    Inputs of any shape are flattened, so the same net runs on tabular data and images.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        widths: Sequence[int],
        batch_norm: bool = False,
        input_batch_norm: bool = False,
        dropout_input: float = 0.0,
        dropout_hidden: float = 0.0,
        activation: Callable[[], nn.Module] = nn.ReLU,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        if input_batch_norm:
            layers.append(nn.BatchNorm1d(in_features))
        if dropout_input > 0:
            layers.append(nn.Dropout(dropout_input))
        width_in = in_features
        for width in widths:
            # Bias is redundant right before batch norm (BN's beta plays its role).
            layers.append(nn.Linear(width_in, width, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(activation())
            if dropout_hidden > 0:
                layers.append(nn.Dropout(dropout_hidden))
            width_in = width
        layers.append(nn.Linear(width_in, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register("mlp")
def mlp(
    num_classes: int,
    in_channels: int = 1,
    in_features: int | None = None,
    image_size: int | None = None,
    widths: Sequence[int] = (1000, 1000),
    batch_norm: bool = False,
    input_batch_norm: bool = False,
    dropout_input: float = 0.0,
    dropout_hidden: float = 0.0,
    activation: str = "relu",
    leaky_slope: float = 0.01,
    weight_init: str = "default",
    init_sigma: float = 0.01,
) -> nn.Module:
    """`in_features` for tabular inputs, or `in_channels` x `image_size`^2 for images."""
    if in_features is None:
        if image_size is None:
            raise ValueError("mlp needs in_features (tabular) or image_size (images)")
        in_features = in_channels * image_size * image_size
    net = MLP(in_features, num_classes, tuple(widths), batch_norm, input_batch_norm, dropout_input, dropout_hidden,
              activation_factory(activation, leaky_slope))
    return init_weights(net, weight_init, init_sigma)


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling: conv6-5x5, pool, conv16-5x5, pool,
    FC120, FC84, FC classes.

    28x28 inputs are zero-padded by 2 in the first conv so both MNIST and CIFAR reach the
    classic 5x5x16 feature map. Options for the batch-norm-vs-dropout study: `input_batch_norm`
    (BN on the raw input), `batch_norm` (BN after every hidden conv/FC layer, before the activation),
    `dropout_input` (e.g. 0.2, on the input) and `dropout_hidden` (e.g. 0.5, after the hidden
    FC layers; conv maps are left without dropout, as in Srivastava et al.'s usual setup);
    `activation` (a constructor of the activation layer, default ReLU).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        image_size: int = 28,
        batch_norm: bool = False,
        input_batch_norm: bool = False,
        dropout_input: float = 0.0,
        dropout_hidden: float = 0.0,
        activation: Callable[[], nn.Module] = lambda: nn.ReLU(inplace=True),
    ):
        super().__init__()
        pad = 2 if image_size < 32 else 0
        size = ((image_size + 2 * pad - 4) // 2 - 4) // 2
        if size < 1:
            raise ValueError(f"lenet5 needs images of at least 28x28, got {image_size}")

        def block(layer: nn.Module, width: int, bn: type[nn.Module]) -> list[nn.Module]:
            return [layer] + ([bn(width)] if batch_norm else []) + [activation()]

        feats: list[nn.Module] = []
        if input_batch_norm:
            feats.append(nn.BatchNorm2d(in_channels))
        if dropout_input > 0:
            feats.append(nn.Dropout(dropout_input))
        feats += block(nn.Conv2d(in_channels, 6, 5, padding=pad, bias=not batch_norm), 6, nn.BatchNorm2d)
        feats.append(nn.MaxPool2d(2))
        feats += block(nn.Conv2d(6, 16, 5, bias=not batch_norm), 16, nn.BatchNorm2d)
        feats.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*feats)
        head: list[nn.Module] = [nn.Flatten()]
        width_in = 16 * size * size
        for width in (120, 84):
            head += block(nn.Linear(width_in, width, bias=not batch_norm), width, nn.BatchNorm1d)
            if dropout_hidden > 0:
                head.append(nn.Dropout(dropout_hidden))
            width_in = width
        head.append(nn.Linear(width_in, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register("lenet5")
def lenet5(num_classes: int, in_channels: int = 1, image_size: int | None = None, batch_norm: bool = False,
           input_batch_norm: bool = False, dropout_input: float = 0.0, dropout_hidden: float = 0.0,
           activation: str = "relu", leaky_slope: float = 0.01, weight_init: str = "default",
           init_sigma: float = 0.01) -> nn.Module:
    """`image_size` defaults to 28 for 1-channel and 32 for 3-channel inputs."""
    if image_size is None:
        image_size = 28 if in_channels == 1 else 32
    act = (lambda: nn.ReLU(inplace=True)) if activation == "relu" else activation_factory(activation, leaky_slope)
    net = LeNet5(num_classes, in_channels, image_size, batch_norm, input_batch_norm, dropout_input, dropout_hidden, act)
    return init_weights(net, weight_init, init_sigma)


@register("mini_googlenet")
def mini_googlenet(num_classes: int, in_channels: int = 1, dropout: float = 0.5) -> nn.Module:
    return MiniGoogLeNet(num_classes, in_channels, dropout)


def _cifar_resnet(depth: int, blocks: tuple[int, int, int] | None = None) -> Callable[..., nn.Module]:
    def build(num_classes: int, in_channels: int = 3) -> nn.Module:
        return CifarResNet(depth, num_classes, in_channels, blocks)

    build.__doc__ = f"CIFAR ResNet-{depth} (He et al. 2015, option A shortcuts)."
    return build


for _depth in (20, 32, 44, 56, 110):
    register(f"resnet{_depth}")(_cifar_resnet(_depth))
# The Optimus study's depth 18 and 50 in the same family (the names resnet18/resnet50 are torchvision's).
register("cifar_resnet18")(_cifar_resnet(18, (3, 3, 2)))
register("cifar_resnet50")(_cifar_resnet(50))


# --- torchvision ImageNet models -------------------------------------------------------------

# Smallest square input each model accepts (its pooling stages must leave at least 1x1).
MIN_INPUT_SIZE = {"alexnet": 63, "vgg16": 32, "vgg19": 32, "resnet18": 1, "resnet50": 1, "googlenet": 15}


def _first_conv_path(name: str) -> str:
    return "conv1" if name.startswith("resnet") else "conv1.conv" if name == "googlenet" else "features.0"


def _classifier_path(name: str) -> str:
    return "fc" if name.startswith("resnet") or name == "googlenet" else "classifier.6"


def _replace(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_path, _, attr = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, attr, new)


def _adapt_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of `conv` taking `in_channels` inputs. Pretrained RGB filters are summed over the
    colour channels for 1-channel input (a grey image then gives the RGB response of its grey
    copy), and tiled and rescaled otherwise (the same rule as timm's adapt_input_conv)."""
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None)
    with torch.no_grad():
        w = conv.weight
        if in_channels == 1:
            new.weight.copy_(w.sum(dim=1, keepdim=True))
        else:
            reps = -(-in_channels // w.shape[1])
            new.weight.copy_(w.repeat(1, reps, 1, 1)[:, :in_channels] * (w.shape[1] / in_channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _torchvision(name: str) -> Callable[..., nn.Module]:
    def build(num_classes: int, in_channels: int = 3, weights_path: str | None = None) -> nn.Module:
        # Always the 1000-class RGB architecture first, so an ImageNet state dict loads as saved.
        # GoogLeNet without its two auxiliary classifiers (training-only heads; they would change the output type).
        kw = {"aux_logits": False, "init_weights": True} if name == "googlenet" else {}
        model = getattr(torchvision.models, name)(weights=None, **kw)
        if weights_path is not None:
            model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        if in_channels != 3:
            path = _first_conv_path(name)
            _replace(model, path, _adapt_first_conv(model.get_submodule(path), in_channels))
        if num_classes != 1000:
            path = _classifier_path(name)
            _replace(model, path, nn.Linear(model.get_submodule(path).in_features, num_classes))
        return model

    build.__doc__ = (f"torchvision {name} (weights=None); `weights_path` loads a local 1000-class RGB "
                     "state dict before the input conv and classifier are adapted.")
    return build


for _name in ("resnet18", "resnet50", "alexnet", "vgg16", "vgg19", "googlenet"):
    register(_name)(_torchvision(_name))
