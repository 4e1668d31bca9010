"""Seeds derived from the spec's seed, and private generators.

torchattacks reseeds the global RNG (APGD, FAB, Square call ``torch.manual_seed``;
docs/reference.md §2), so everything random of ours draws from its own ``torch.Generator``.
"""

from __future__ import annotations

import torch

# One formula for the plan (torch-free) and the science.
from clmrepro.seeds import derive_seed

__all__ = ["derive_seed", "generator"]


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh generator seeded with ``seed``; independent of ``torch.manual_seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
