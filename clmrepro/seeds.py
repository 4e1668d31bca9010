"""The seed formula, without torch: the plan derives every job's seed from the spec's seed.

``clmrepro.core.seeding.derive_seed`` is the same formula (kept identical by a test), so the
Snakefile can read the plan without importing torch.
"""

from __future__ import annotations

import hashlib


def derive_seed(root: int, *names: object) -> int:
    """A 63-bit seed from ``root`` and a path of names, stable across runs and machines."""
    text = "/".join([str(int(root)), *map(str, names)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1
