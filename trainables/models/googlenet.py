"""MiniGoogLeNet: the small Inception network of Zhang et al. 2017 ("Understanding deep
learning requires rethinking generalization", Figure 3), for 28x28 or 32x32 inputs.

conv module       = Conv-BN-ReLU
inception(c1, c3) = concat(conv 1x1 with c1 filters, conv 3x3 with c3 filters)
downsample(c)     = concat(conv 3x3 stride 2 with c filters, max-pool 3x3 stride 2)

Sequence: Conv(96, 3x3) -> Inc(32,32) -> Inc(32,48) -> Down(80) -> Inc(112,48) -> Inc(96,64)
-> Inc(80,80) -> Inc(48,96) -> Down(96) -> Inc(176,160) -> Inc(176,160) -> global average
pool -> dropout 0.5 -> FC.

Choice: both downsample branches use padding 1, so maps go 32 -> 16 -> 8 (28 -> 14 -> 7)
and the two branches always have the same size.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvModule(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1):
        super().__init__()
        # No bias: batch norm's beta follows immediately.
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    def __init__(self, in_ch: int, c1: int, c3: int):
        super().__init__()
        self.branch1 = ConvModule(in_ch, c1, 1)
        self.branch3 = ConvModule(in_ch, c3, 3)
        self.out_channels = c1 + c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch3(x)], dim=1)


class Downsample(nn.Module):
    def __init__(self, in_ch: int, c: int):
        super().__init__()
        self.conv = ConvModule(in_ch, c, 3, stride=2)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.out_channels = c + in_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.conv(x), self.pool(x)], dim=1)


class MiniGoogLeNet(nn.Module):
    def __init__(self, num_classes: int = 10, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        plan = [("inc", 32, 32), ("inc", 32, 48), ("down", 80), ("inc", 112, 48), ("inc", 96, 64),
                ("inc", 80, 80), ("inc", 48, 96), ("down", 96), ("inc", 176, 160), ("inc", 176, 160)]
        layers: list[nn.Module] = [ConvModule(in_channels, 96, 3)]
        ch = 96
        for kind, *filters in plan:
            block = Inception(ch, *filters) if kind == "inc" else Downsample(ch, *filters)
            layers.append(block)
            ch = block.out_channels
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(self.features(x)), 1)
        return self.fc(self.dropout(x))
