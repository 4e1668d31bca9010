"""Session fixtures of the reliability tests: a tiny real population, built once."""

from __future__ import annotations

import pytest
from reliability_helpers import N_MODELS, population_meta


@pytest.fixture(scope="session")
def lenet_states():
    """State dicts of 2 untrained LeNet5 (3 input channels), built once per session."""
    import torch

    from clmrepro.core.models import build_model

    torch.manual_seed(0)
    return [build_model("lenet5", in_channels=3).state_dict() for _ in range(N_MODELS)]


@pytest.fixture(scope="session")
def population_bytes(lenet_states, tmp_path_factory) -> bytes:
    """A valid population.pt (core.checkpoints.save_population) as bytes."""
    from clmrepro.core.checkpoints import save_population
    from clmrepro.core.models import build_model

    models = []
    for state in lenet_states:
        model = build_model("lenet5", in_channels=3)
        model.load_state_dict(state)
        models.append(model)
    path = tmp_path_factory.mktemp("population") / "population.pt"
    save_population(path, models, population_meta())
    return path.read_bytes()
