"""The paper's five attacks through torchattacks 3.5.1, and the paper's crafting protocol.

Every attack parameter comes from the job (``params``); nothing here fills a default,
because torchattacks changed its defaults since the paper's 2.14.2 (REFERENCE.md §2):
MI-FGSM went from 5 steps of eps/5 to 10 steps of 2/255, PGD lost its 40 steps, and
3.5.1's ``AutoAttack`` class hard-codes 10 APGD/APGD-T/FAB steps where the original uses
100.  So AutoAttack is assembled here from its sub-attacks with explicit step counts.

``params`` per kind (exact keys, checked by :func:`build_attack`):

- ``fgsm``: ``{}``
- ``pgd``: ``{alpha, steps, random_start}``
- ``mifgsm``: ``{alpha, steps, decay}``
- ``eot-pgd``: ``{alpha, steps, eot_iter, random_start}``.  Against one deterministic
  submodel (threat models ``paper`` and ``transfer``) EOT-PGD is plain PGD at ``eot_iter``
  times the cost (REFERENCE.md §2); it is kept there because the paper reports it under
  that protocol.  It means something only in ``adaptive`` (see ``core.attacks.adaptive``).
- ``autoattack``: ``{version, norm, n_classes, steps, n_queries, n_restarts, eot_iter}``.
  ``standard`` = APGD-CE, APGD-T (n_classes - 1 targets), FAB-T (multi-targeted) and
  Square, as in Croce & Hein (2020); ``steps`` is the APGD/APGD-T/FAB iteration count
  (original 100), ``n_queries`` Square's budget (original 5000).  ``eot_iter`` is used
  by ``rand`` only (APGD-CE + APGD-DLR with EOT, original 20); ``standard`` runs with
  ``eot_iter = 1`` as the original does, since it targets deterministic models.

The paper's protocol (eq. 6; the authors' code, REFERENCE.md §1): each test batch of the
adversarial set is crafted on one uniformly random submodel (``per-batch``), or each
sample on its own random submodel (``per-sample``, the other reading of the text).
Which unit of work is crafted on which submodel with which seed is planned in
``core.attacks.work`` (torchattacks-free, so that scoring never imports torchattacks); this
module is the sequential executor: torchattacks on one submodel at a time, the reference
that ``core.attacks.batched`` reproduces.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchattacks
from torch import Tensor, nn
from torchattacks.attack import Attack

from clmrepro.core.attacks.kinds import check_params, deterministic_attack
from clmrepro.core.attacks.work import Unit

TORCHATTACKS_KINDS = ("fgsm", "pgd", "autoattack", "mifgsm", "eot-pgd")
# The seeds below are overwritten before every call (``seed_attack``); 0 is the original
# AutoAttack's default and keeps a freshly built attack deterministic.
_INITIAL_SUBATTACK_SEED = 0


def build_attack(kind: str, model: nn.Module, eps: float, params: dict) -> Attack:
    """A torchattacks attack on ``model`` with every parameter taken from ``params``."""
    check_params(kind, params)
    if kind not in TORCHATTACKS_KINDS:
        raise ValueError(f"attack {kind!r} is not a torchattacks attack (it runs in "
                         f"core.attacks.adaptive)")
    if not eps > 0:
        raise ValueError(f"attack {kind!r}: eps must be > 0 (got {eps})")
    eps = float(eps)
    p = params
    if kind == "fgsm":
        return torchattacks.FGSM(model, eps=eps)
    if kind == "pgd":
        return torchattacks.PGD(
            model, eps=eps, alpha=float(p["alpha"]), steps=int(p["steps"]),
            random_start=bool(p["random_start"]),
        )
    if kind == "mifgsm":
        return torchattacks.MIFGSM(
            model, eps=eps, alpha=float(p["alpha"]), steps=int(p["steps"]),
            decay=float(p["decay"]),
        )
    if kind == "eot-pgd":
        return torchattacks.EOTPGD(
            model, eps=eps, alpha=float(p["alpha"]), steps=int(p["steps"]),
            eot_iter=int(p["eot_iter"]), random_start=bool(p["random_start"]),
        )
    # MultiAttack runs the sub-attacks in order on the points still classified correctly
    # and returns the clean image where all fail, as the original AutoAttack does.
    return torchattacks.MultiAttack(autoattack_components(model, eps, p))


def autoattack_components(model: nn.Module, eps: float, p: dict) -> list[Attack]:
    """AutoAttack's sub-attacks in their order, every parameter explicit (``standard``:
    APGD-CE, APGD-T, FAB-T, Square; ``rand``: APGD-CE and APGD-DLR with EOT)."""
    if p["norm"] != "Linf":
        # The paper attacks in L-infinity only, and check_perturbation checks that ball.
        raise ValueError(f"autoattack: norm must be 'Linf' (got {p['norm']!r})")
    steps, restarts, n_classes = int(p["steps"]), int(p["n_restarts"]), int(p["n_classes"])
    common = dict(norm="Linf", eps=eps, seed=_INITIAL_SUBATTACK_SEED, verbose=False)
    if p["version"] == "standard":
        attacks = [
            torchattacks.APGD(model, steps=steps, n_restarts=restarts, loss="ce",
                              eot_iter=1, rho=0.75, **common),
            torchattacks.APGDT(model, steps=steps, n_restarts=restarts, eot_iter=1,
                               rho=0.75, n_classes=n_classes, **common),
            torchattacks.FAB(model, steps=steps, n_restarts=restarts, alpha_max=0.1,
                             eta=1.05, beta=0.9, multi_targeted=True, n_classes=n_classes,
                             **common),
            torchattacks.Square(model, n_queries=int(p["n_queries"]), n_restarts=restarts,
                                p_init=0.8, loss="margin", resc_schedule=True, **common),
        ]
    elif p["version"] == "rand":
        eot = int(p["eot_iter"])
        attacks = [
            torchattacks.APGD(model, steps=steps, n_restarts=restarts, loss=loss,
                              eot_iter=eot, rho=0.75, **common)
            for loss in ("ce", "dlr")
        ]
    else:
        raise ValueError(f"autoattack: version must be 'standard' or 'rand' (got {p['version']!r})")
    return attacks


def seed_attack(attack: Attack, seed: int) -> None:
    """Make the next call of ``attack`` deterministic: torchattacks draws random starts
    from the global RNG and APGD/FAB/Square reseed it from their own ``seed``."""
    torch.manual_seed(seed)
    for sub in getattr(attack, "attacks", [attack]):
        if hasattr(sub, "seed"):
            sub.seed = seed


class SequentialExecutor:
    """Crafts a chunk of units one by one with torchattacks, each on its crafting submodel
    right after ``seed_attack(attack, unit.seed)`` (the reference path)."""

    def __init__(self, models: Sequence[nn.Module], x: Tensor, y: Tensor, *, kind: str,
                 eps: float, params: dict, device):
        self.models, self.x, self.y, self.device = list(models), x, y, device
        # one deterministic submodel per unit: EOT-PGD is PGD (crafting.deterministic_attack)
        self.kind, self.params = deterministic_attack(kind, params)
        self.eps = float(eps)
        # one unit per chunk: a stop request waits for one batch on one submodel at most
        self.units_per_call = 1
        self._attacks: dict[int, Attack] = {}

    def _attack(self, crafter: int) -> Attack:
        if crafter not in self._attacks:  # one attack object per crafting submodel
            self._attacks[crafter] = build_attack(self.kind, self.models[crafter], self.eps,
                                                  self.params)
        return self._attacks[crafter]

    def __call__(self, chunk: list[Unit]) -> list[Tensor]:
        out = []
        for unit in chunk:
            attack = self._attack(int(unit.crafter))
            xb, yb = self.x[unit.index].to(self.device), self.y[unit.index].to(self.device)
            seed_attack(attack, unit.seed)
            out.append(attack(xb, yb).detach().cpu())
        return out
