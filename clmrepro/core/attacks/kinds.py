"""The attack kinds: their exact parameters, and what a crafted batch must satisfy.

Every attack parameter comes from the job (``params``); nothing fills a default, because
torchattacks changed its defaults since the paper's 2.14.2 (REFERENCE.md §2).  The keys per
kind are :data:`REQUIRED_PARAMS` (``core.attacks.sequential`` says what each one means).
torch only: the planning and scoring code that imports this never loads torchattacks.
"""

from __future__ import annotations

import torch
from torch import Tensor

from clmrepro.fields import THREAT_MODELS  # noqa: F401  (core.attacks.threats reads it here)

ATTACK_KINDS = ("fgsm", "pgd", "autoattack", "mifgsm", "eot-pgd", "arc")
# Attacks on the population as a whole: only the adaptive threat model runs them.
ADAPTIVE_ONLY_KINDS = ("arc",)

REQUIRED_PARAMS: dict[str, frozenset[str]] = {
    "fgsm": frozenset(),
    "pgd": frozenset({"alpha", "steps", "random_start"}),
    "mifgsm": frozenset({"alpha", "steps", "decay"}),
    "eot-pgd": frozenset({"alpha", "steps", "eot_iter", "random_start"}),
    "autoattack": frozenset(
        {"version", "norm", "n_classes", "steps", "n_queries", "n_restarts", "eot_iter"}
    ),
    # core.attacks.arc: iterations, local step eta, the classes searched, rho as a fraction
    # of eps, and where it starts (with the expected-loss PGD it may start from)
    "arc": frozenset({"steps", "step_size", "candidates", "topk", "rho", "start",
                      "start_steps", "start_alpha", "start_random_start"}),
}

CRAFTING_MODES = ("per-batch", "per-sample")


class PerturbationError(ValueError):
    """An adversarial batch left the L-infinity eps-ball or the pixel range [0, 1]."""


def check_params(kind: str, params: dict) -> None:
    if kind not in REQUIRED_PARAMS:
        raise ValueError(f"attack kind must be one of {', '.join(ATTACK_KINDS)} (got {kind!r})")
    given = set(params)
    missing = sorted(REQUIRED_PARAMS[kind] - given)
    unknown = sorted(given - REQUIRED_PARAMS[kind])
    if missing or unknown:
        raise ValueError(
            f"attack {kind!r}: params must have exactly the keys "
            f"{sorted(REQUIRED_PARAMS[kind])}; missing {missing}, unknown {unknown}"
        )


def check_perturbation(x: Tensor, x_adv: Tensor, eps: float, atol: float = 1e-6) -> None:
    """Raise :class:`PerturbationError` unless ``x_adv`` is within ``eps`` of ``x`` in
    L-infinity and inside [0, 1] (3.5.x no longer checks the range; REFERENCE.md §2)."""
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


def deterministic_attack(kind: str, params: dict) -> tuple[str, dict]:
    """The attack to run against one deterministic submodel (threat models ``paper`` and
    ``transfer``): EOT-PGD becomes PGD with the same step, steps and random start.

    torchattacks ``EOTPGD`` adds ``eot_iter`` gradients of the same model; against an
    eval-mode submodel they are identical, and sign(k * g) = sign(g), so the adversarial
    examples are the same and ``eot_iter`` times cheaper (REFERENCE.md §2; checked against
    ``torchattacks.EOTPGD`` in tests/unit/core/test_batched_attacks.py).  Records keep the
    job's EOT-PGD parameters, which the result equals.
    """
    check_params(kind, params)
    if kind == "eot-pgd":
        return "pgd", {k: params[k] for k in ("alpha", "steps", "random_start")}
    return kind, dict(params)
