"""Read a trained population back: the models of ``population.pt`` ready for attack/evaluate."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from clmrepro.core.checkpoints import load_population_states
from clmrepro.core.models import build_model


def load_population(path: str | Path, device: torch.device | str = "cpu") -> tuple[dict, list[nn.Module]]:
    """(meta, models) with every submodel built from ``meta`` and in eval mode on ``device``.

    ``meta`` holds architecture, regime, size, in_channels, num_classes and dataset, as
    written by the train step."""
    meta, states = load_population_states(path)
    models = []
    for k, state in enumerate(states):
        model = build_model(meta["architecture"], in_channels=int(meta["in_channels"]),
                            num_classes=int(meta["num_classes"]))
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{path}: submodel {k} does not fit a {meta['architecture']}: {exc}") from exc
        models.append(model.to(device).eval())
    return meta, models
