"""The paper's five attacks through torchattacks 3.5.1, and the paper's crafting protocol.

Every attack parameter comes from the job (``params``); nothing here fills a default,
because torchattacks changed its defaults since the paper's 2.14.2 (docs/reference.md §2):
MI-FGSM went from 5 steps of eps/5 to 10 steps of 2/255, PGD lost its 40 steps, and
3.5.1's ``AutoAttack`` class hard-codes 10 APGD/APGD-T/FAB steps where the original uses
100.  So AutoAttack is assembled from its sub-attacks with explicit step counts
(``kinds.attacks.autoattack``).

Each kind's module (``clmrepro.kinds.attacks``) builds its torchattacks attack with every
parameter explicit (``build``); this module checks the params, seeds and runs it.  Against
one deterministic submodel EOT-PGD runs as PGD (``core.attacks.kinds.deterministic_attack``).

The paper's protocol (eq. 6; the authors' code, docs/reference.md §1): each test batch of the
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
from torch import Tensor, nn
from torchattacks.attack import Attack

from clmrepro.core.attacks.kinds import AttackKind, check_params, deterministic_attack
from clmrepro.core.attacks.work import Unit


def build_attack(kind: AttackKind, model: nn.Module, eps: float, params: dict) -> Attack:
    """The kind's torchattacks attack on ``model`` with every parameter taken from ``params``."""
    check_params(kind, params)
    if kind.build is None:
        raise ValueError(f"attack {kind.KIND!r} is not a torchattacks attack (it runs in "
                         f"core.attacks.adaptive)")
    if not eps > 0:
        raise ValueError(f"attack {kind.KIND!r}: eps must be > 0 (got {eps})")
    return kind.build(model, float(eps), params)


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

    def __init__(self, models: Sequence[nn.Module], x: Tensor, y: Tensor, *, kind: AttackKind,
                 eps: float, params: dict, device):
        self.models, self.x, self.y, self.device = list(models), x, y, device
        # one deterministic submodel per unit: EOT-PGD is PGD (kinds.deterministic_attack)
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

    def continue_from(self, chunk: list[Unit], starts: list[Tensor], steps: int) -> list[Tensor]:
        """``steps`` more PGD steps of each unit from its iterate (``core.attacks.ladder``)."""
        if not getattr(self.kind, "CONVERGES", False):
            raise ValueError(f"attack {self.kind.KIND!r} cannot continue from its iterate")
        out = []
        for unit, start in zip(chunk, starts, strict=True):
            xb, yb = self.x[unit.index].to(self.device), self.y[unit.index].to(self.device)
            out.append(continue_pgd(self.models[int(unit.crafter)], xb, yb,
                                    start.to(self.device, xb.dtype), eps=self.eps,
                                    alpha=float(self.params["alpha"]),
                                    steps=steps).detach().cpu())
        return out


def continue_pgd(model: nn.Module, x: Tensor, y: Tensor, start: Tensor, *, eps: float,
                 alpha: float, steps: int) -> Tensor:
    """``steps`` more steps of torchattacks 3.5.1 ``PGD`` on ``model`` from its iterate
    ``start`` of the clean ``x``: the same operations in the same order as its loop
    (torchattacks/attacks/pgd.py), so PGD-s continued for s steps is PGD-2s bit for bit
    (tests/unit/core/attacks/test_ladder.py)."""
    import torch.nn.functional as F

    images = x.clone().detach()
    adv = start.clone().detach()
    mode = model.training
    model.eval()   # torchattacks attacks in eval mode (its default model_training=False)
    try:
        for _ in range(int(steps)):
            adv.requires_grad = True
            cost = F.cross_entropy(model(adv), y)
            grad = torch.autograd.grad(cost, adv, retain_graph=False, create_graph=False)[0]
            adv = adv.detach() + alpha * grad.sign()
            delta = torch.clamp(adv - images, min=-eps, max=eps)
            adv = torch.clamp(images + delta, min=0, max=1).detach()
    finally:
        model.train(mode)
    return adv


class Seeded:
    """A torchattacks attack called ``(x, y, seed)``: reseeded (``seed_attack``) before each
    call, as the adaptive executor calls its attacks."""

    def __init__(self, attack: Attack):
        self.attack = attack

    def __call__(self, x: Tensor, y: Tensor, seed: int) -> Tensor:
        seed_attack(self.attack, seed)
        return self.attack(x, y)
