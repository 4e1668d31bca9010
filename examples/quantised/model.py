"""A defence that looks robust and is not: LeNet5 behind an input quantisation.

Rounding every pixel to ``levels`` grey levels before the network makes the model's input
gradient exactly zero almost everywhere (the rounding's derivative), so gradient attacks
(FGSM, PGD, AutoAttack's APGD) find nothing to follow and report a high robust accuracy,
while the model is as easy to fool as the plain LeNet5 it wraps: the textbook case of
gradient masking (Athalye et al. 2018, "obfuscated gradients").  The factory a spec names as
``examples.quantised.model:build`` (docs/bring-your-own.md); ``levels: null`` builds the
plain LeNet5 to compare with.
"""

import torch
from torch import nn

from clmrepro.core.models import LeNet5


class Quantise(nn.Module):
    """x in [0, 1] → round(x (levels − 1)) / (levels − 1): a step function of the input."""

    def __init__(self, levels: int):
        super().__init__()
        self.levels = levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.round(x * (self.levels - 1)) / (self.levels - 1)


def build(levels: int | None = 4, in_channels: int = 1, classes: int = 10) -> nn.Module:
    network = LeNet5(in_channels=in_channels, num_classes=classes)
    return network if levels is None else nn.Sequential(Quantise(levels), network)
