"""CIFAR ResNets of He et al. 2015 (arXiv 1512.03385, Sec. 4.2): depth 6n+2, option A shortcuts.

Three stages of n basic blocks with 16, 32 and 64 channels on 32x32, 16x16 and 8x8 maps,
then global average pooling and one linear layer. Option A shortcuts are parameter-free:
where a stage halves the map and doubles the channels the shortcut subsamples by 2 and
pads the new channels with zeros. Parameter counts (10 classes): ResNet-20 0.27M,
-32 0.46M, -44 0.66M, -56 0.85M, -110 1.7M, as in the paper's Table 6.

Depths that are not 6n+2 take an explicit `blocks` per stage. The Optimus study's CIFAR ResNet-18
(`cifar_resnet18`) is the same family with blocks (3, 3, 2): 1 + 2 x 8 convolutions + 1 linear = 18
weighted layers on the same 16/32/64 widths, so that depth is the only thing its regression varies (the
widely copied 64-512-channel "ResNet-18 for CIFAR" is a different, 40x larger family). `cifar_resnet50`
is ResNet-6n+2 with n = 8, the family's depth-50 member.

    >>> from trainables.models.registry import build_model
    >>> net = build_model("resnet20", num_classes=10, in_channels=3)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ZeroPadShortcut(nn.Module):
    """Option A: identity on the kept channels, zeros on the new ones, stride-2 subsampling."""

    def __init__(self, in_planes: int, out_planes: int, stride: int):
        super().__init__()
        self.stride = stride
        self.pad = out_planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        # Split the zero channels evenly on both sides (the common reference implementation does the same).
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.relu2 = nn.ReLU(inplace=True)
        needs_projection = stride != 1 or in_planes != planes
        self.shortcut = ZeroPadShortcut(in_planes, planes, stride) if needs_projection else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class CifarResNet(nn.Module):
    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3,
                 blocks: tuple[int, int, int] | None = None):
        super().__init__()
        if blocks is None:
            if (depth - 2) % 6:
                raise ValueError(f"CIFAR ResNet depth must be 6n+2 (or give blocks per stage), got {depth}")
            blocks = ((depth - 2) // 6,) * 3
        if 2 * sum(blocks) + 2 != depth:
            raise ValueError(f"blocks {blocks} give depth {2 * sum(blocks) + 2}, not {depth}")
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        stages, in_planes = [], 16
        for (planes, stride), n in zip(((16, 1), (32, 2), (64, 2)), blocks):
            layers = []
            for i in range(n):
                layers.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))
