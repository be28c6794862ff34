"""Image-classification models defined in the project (there is no CPU torchvision here).

ResNet-18 and ResNet-50 are the CIFAR form (He et al. 2016, as in kuangliu/pytorch-cifar):
a 3x3 stride-1 stem with no max-pool, four stages at strides 1, 2, 2, 2, global average pooling.
Global pooling is ``mean`` over the spatial axes rather than ``AdaptiveAvgPool2d`` because the
latter's CUDA backward has no deterministic implementation.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

MODEL_NAMES = ("resnet18", "resnet50", "cnn", "mlp")


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    """A bias-free convolution followed by batch normalisation ("same" padding)."""
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False)
    return [conv, nn.BatchNorm2d(c_out)]


class _Residual(nn.Module):
    """``relu(body(x) + shortcut(x))``: subclasses build ``body``; the shortcut is an identity, or a
    1x1 projection where the shape changes."""

    expansion = 1

    def __init__(self, body: nn.Sequential, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.body = body
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual sum, then ReLU."""
        return torch.relu(self.body(x) + self.shortcut(x))


class BasicBlock(_Residual):
    """Two 3x3 convolutions with a shortcut: ResNet-18/34."""

    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int) -> None:
        c_out = width * self.expansion
        body = nn.Sequential(
            *_conv_bn(c_in, width, 3, stride), nn.ReLU(inplace=True), *_conv_bn(width, c_out, 3)
        )
        super().__init__(body, c_in, c_out, stride)


class Bottleneck(_Residual):
    """1x1 reduce, 3x3 (strided), 1x1 expand by 4, with a shortcut: ResNet-50/101/152."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int) -> None:
        c_out = width * self.expansion
        body = nn.Sequential(
            *_conv_bn(c_in, width, 1), nn.ReLU(inplace=True),
            *_conv_bn(width, width, 3, stride), nn.ReLU(inplace=True),
            *_conv_bn(width, c_out, 1),
        )
        super().__init__(body, c_in, c_out, stride)


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    """Identity when shapes agree, else a strided 1x1 projection with batch norm."""
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(*_conv_bn(c_in, c_out, 1, stride))


class ResNet(nn.Module):
    """CIFAR-form ResNet: 3x3 stem, four stages of *blocks*, global average pool, linear head."""

    def __init__(
        self, block: type[BasicBlock] | type[Bottleneck], depths: tuple[int, int, int, int],
        in_channels: int, num_classes: int,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(in_channels, 64, 3), nn.ReLU(inplace=True))
        stages: list[nn.Module] = []
        c_in = 64
        for i, depth in enumerate(depths):
            width = 64 * 2**i
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                stages.append(block(c_in, width, stride))
                c_in = width * block.expansion
        self.stages = nn.Sequential(*stages)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes)."""
        return self.fc(self.stages(self.stem(x)).mean(dim=(2, 3)))


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU layers (32, 64, 128 channels; the last two strided), pool, linear."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *_conv_bn(in_channels, 32, 3), nn.ReLU(inplace=True),
            *_conv_bn(32, 64, 3, 2), nn.ReLU(inplace=True),
            *_conv_bn(64, 128, 3, 2), nn.ReLU(inplace=True),
        )
        self.fc = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes)."""
        return self.fc(self.features(x).mean(dim=(2, 3)))


class MLP(nn.Module):
    """Flatten, two hidden layers of 256 ReLU units, linear head."""

    def __init__(self, in_features: int, num_classes: int, hidden: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of shape (batch, num_classes)."""
        return self.net(x)


_BUILDERS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "resnet18": lambda c, s, k: ResNet(BasicBlock, (2, 2, 2, 2), c, k),
    "resnet50": lambda c, s, k: ResNet(Bottleneck, (3, 4, 6, 3), c, k),
    "cnn": lambda c, s, k: SmallCNN(c, k),
    "mlp": lambda c, s, k: MLP(c * s * s, k),
}


def build_model(name: str, in_channels: int, image_size: int, num_classes: int) -> nn.Module:
    """Build model *name* (one of ``MODEL_NAMES``) for square images of the given shape."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    return _BUILDERS[name](in_channels, image_size, num_classes)
