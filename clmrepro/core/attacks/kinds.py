"""What an attack kind is to the executors, and what a crafted batch must satisfy.

The kinds themselves are modules of ``clmrepro.kinds.attacks`` (one per kind: its spec model,
params, executors' recipes, price).  ``core`` sits below them and never looks a kind up by its
name: whoever runs an attack hands the executors the kind's module, which satisfies
:class:`AttackKind`.  Every attack parameter comes from the job (``params``); nothing fills a
default, because torchattacks changed its defaults since the paper's 2.14.2
(docs/reference.md §2).  torch only: the planning and scoring code that imports this never
loads torchattacks.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol

import torch
from torch import Tensor

from clmrepro.fields import THREAT_MODELS  # noqa: F401  (core.attacks.threats reads it here)


class AttackKind(Protocol):
    """The part of a ``clmrepro.kinds.attacks`` module the executors use (``kinds.attacks.base``
    describes every member)."""

    KIND: str
    PARAM_KEYS: frozenset[str]
    ADAPTIVE_ONLY: bool
    BATCHED: bool
    build: Callable[..., Any] | None

    def deterministic(self, params: dict) -> tuple[AttackKind, dict] | None: ...
    def sign_steps(self, eps: float, params: dict) -> dict | None: ...
    def adaptive(self, models, eps: float, params: dict, runtime) -> Callable: ...
    def adaptive_record(self, eps: float, params: dict) -> dict: ...


CRAFTING_MODES = ("per-batch", "per-sample")


class PerturbationError(ValueError):
    """An adversarial batch left the L-infinity eps-ball or the pixel range [0, 1]."""


def check_params(kind: AttackKind, params: dict) -> None:
    """``params`` must hold exactly the kind's keys: none filled in, none ignored."""
    if isinstance(kind, str):
        raise TypeError(f"attack {kind!r}: pass the kind's module "
                        f"(clmrepro.kinds.attacks.get({kind!r})), not its name")
    given = set(params) - getattr(kind, "OPTIONAL_KEYS", frozenset())
    missing = sorted(kind.PARAM_KEYS - given)
    unknown = sorted(given - kind.PARAM_KEYS)
    if missing or unknown:
        raise ValueError(
            f"attack {kind.KIND!r}: params must have exactly the keys "
            f"{sorted(kind.PARAM_KEYS)}; missing {missing}, unknown {unknown}"
        )


def check_perturbation(x: Tensor, x_adv: Tensor, eps: float, atol: float = 1e-6) -> None:
    """Raise :class:`PerturbationError` unless ``x_adv`` is within ``eps`` of ``x`` in
    L-infinity and inside [0, 1] (3.5.x no longer checks the range; docs/reference.md §2)."""
    if x.shape != x_adv.shape:
        raise PerturbationError(f"shape changed: {tuple(x.shape)} -> {tuple(x_adv.shape)}")
    if not torch.isfinite(x_adv).all():
        raise PerturbationError("adversarial batch holds NaN or infinite values")
    if x_adv.numel() == 0:
        return
    dist = (x_adv.detach().cpu().double() - x.detach().cpu().double()).abs().max().item()
    if dist > eps + atol:
        raise PerturbationError(f"L-inf distance {dist:.8g} exceeds eps {eps:.8g}")
    low, high = x_adv.min().item(), x_adv.max().item()
    if low < -atol or high > 1 + atol:
        raise PerturbationError(f"values span [{low:.8g}, {high:.8g}], outside [0, 1]")


def deterministic_attack(kind: AttackKind, params: dict) -> tuple[AttackKind, dict]:
    """The attack to run against one deterministic submodel (threat models ``paper`` and
    ``transfer``): the kind itself, or what it amounts to there (EOT-PGD: PGD with the same
    step, steps and start, ``kinds.attacks.eot_pgd``).  Records keep the job's parameters."""
    check_params(kind, params)
    swapped = kind.deterministic(params)
    return swapped if swapped is not None else (kind, dict(params))
