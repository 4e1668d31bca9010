"""The two architectures of the paper, as the authors' code builds them (docs/reference.md §1).

Both take inputs in [0, 1] of size 32×32 and do not normalise (the authors' code has no
``Normalize``).  ``counter_linked_layer`` names the layer l = 1 of eq. 4–5: the first conv.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LeNet5(nn.Module):
    """LeNet5 of the authors' code: 3 conv (with BatchNorm) + 2 linear, log-probabilities out.

    The paper says "one FC layer"; the code has Linear 120→84 and 84→10 (docs/reference.md §1).
    Expects N×C×32×32 (MNIST is resized from 28×28 to 32×32, as in the code).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, kernel_size=5)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.bn2 = nn.BatchNorm2d(16)
        self.conv3 = nn.Conv2d(16, 120, kernel_size=5)
        self.bn3 = nn.BatchNorm2d(120)
        self.fc1 = nn.Linear(120, 84)
        self.fc2 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)  # 32 -> 28 -> 14
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)  # 14 -> 10 -> 5
        x = F.relu(self.bn3(self.conv3(x)))  # 5 -> 1
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return F.log_softmax(self.fc2(x), dim=1)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet18 (kuangliu/pytorch-cifar layout): 3×3 stem with 64 filters, stride 1,
    no max-pool, BasicBlock [2, 2, 2, 2], 4×4 average pool, Linear 512→classes; logits out.
    Expects N×C×32×32."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.in_planes = 64
        self.layer1 = self._make_layer(64, 2, stride=1)
        self.layer2 = self._make_layer(128, 2, stride=2)
        self.layer3 = self._make_layer(256, 2, stride=2)
        self.layer4 = self._make_layer(512, 2, stride=2)
        self.linear = nn.Linear(512 * BasicBlock.expansion, num_classes)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(BasicBlock(self.in_planes, planes, s))
            self.in_planes = planes * BasicBlock.expansion
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)
        return self.linear(torch.flatten(out, 1))


ARCHITECTURES = {"lenet5": LeNet5, "resnet18": ResNet18}


def build_model(architecture: str, *, in_channels: int, num_classes: int = 10,
                kwargs: dict | None = None) -> nn.Module:
    """One of the paper's architectures, or a researcher's own (``python:<module>:<function>``
    with its ``kwargs``, core.factory)."""
    from clmrepro.core import factory

    if factory.is_python(architecture):
        return factory.build(architecture, kwargs)
    if architecture not in ARCHITECTURES:
        allowed = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"architecture must be one of {allowed} (got {architecture!r})")
    return ARCHITECTURES[architecture](in_channels=in_channels, num_classes=num_classes)


def batch_norm_statistics_in_contiguous_memory(model: nn.Module) -> nn.Module:
    """Make ``model``'s BatchNorm layers compute batch statistics on contiguous memory.

    PyTorch's CPU BatchNorm kernel for channels_last tensors loses digits when a channel's
    mean is large next to its spread, as LeNet5's are on MNIST: measured here, conv1/conv2
    weight gradients off by 1-3% (relative to float64) against ~1e-6 in contiguous memory.
    Converting around the BatchNorm in training mode keeps the convolutions' channels_last
    speed and the statistics exact to float rounding; eval mode (running statistics, a
    per-channel affine map) is accurate either way and is left alone."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.register_forward_pre_hook(_contiguous_when_training)
            module.register_forward_hook(_channels_last_when_training)
    return model


def _contiguous_when_training(module: nn.Module, args: tuple) -> tuple | None:
    return (args[0].contiguous(),) if module.training else None


def _channels_last_when_training(module: nn.Module, args: tuple, out: torch.Tensor):
    return out.contiguous(memory_format=torch.channels_last) if module.training else None


def counter_linked_layer(model: nn.Module) -> nn.Conv2d | nn.Linear:
    """The layer l = 1 of eq. 4–5, whose weights PRSE pushes apart: the first conv (a
    researcher's architecture without one: its first linear layer)."""
    for kind in (nn.Conv2d, nn.Linear):
        for module in model.modules():
            if isinstance(module, kind):
                return module
    raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to counter-link")
