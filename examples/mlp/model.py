"""A small MLP as a researcher would write it: the factory a spec names as
``examples.mlp.model:build`` (docs/bring-your-own.md)."""

from torch import nn


def build(hidden: int = 256, in_channels: int = 1, classes: int = 10) -> nn.Module:
    """Images in [0, 1] of shape (N, in_channels, 32, 32) → (N, classes) logits."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_channels * 32 * 32, hidden), nn.ReLU(),
        nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, classes))
