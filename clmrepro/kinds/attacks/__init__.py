"""The attack kinds: one module each (``base`` says what a module holds); this tuple is the
registry.  The spec's ``Attack`` union, the plan's params, prices and departures, and the
executors in ``core.attacks`` (which are handed the module, never its name) all read it.
docs/extending.md, "Adding an attack", walks through adding one.
"""

from __future__ import annotations

from types import ModuleType
from typing import Annotated, Union

from pydantic import Field

from clmrepro.kinds.attacks import arc, autoattack, eot_pgd, fgsm, mifgsm, pgd, square

MODULES: tuple[ModuleType, ...] = (
    fgsm,
    pgd,
    autoattack,
    mifgsm,
    eot_pgd,
    arc,
    square,
)

BY_KIND: dict[str, ModuleType] = {module.KIND: module for module in MODULES}
ATTACK_KINDS: tuple[str, ...] = tuple(BY_KIND)
# Attacks on the population as a whole: only the adaptive threat model runs them.
ADAPTIVE_ONLY_KINDS: tuple[str, ...] = tuple(m.KIND for m in MODULES if m.ADAPTIVE_ONLY)

Attack = Annotated[Union[tuple(m.Spec for m in MODULES)], Field(discriminator="kind")]


def get(kind: str) -> ModuleType:
    """The module of attack ``kind``; a clear error for an unknown one."""
    try:
        return BY_KIND[kind]
    except (KeyError, TypeError):
        raise ValueError(f"attack kind must be one of {', '.join(ATTACK_KINDS)} "
                         f"(got {kind!r})") from None
