"""Seeds derived from the spec's seed, and private generators.

torchattacks reseeds the global RNG (APGD, FAB, Square call ``torch.manual_seed``;
REFERENCE.md §2), so everything random of ours draws from its own ``torch.Generator``.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(root: int, *names: object) -> int:
    """A 63-bit seed from ``root`` and a path of names, stable across runs and machines."""
    text = "/".join([str(int(root)), *map(str, names)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh generator seeded with ``seed``; independent of ``torch.manual_seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen
