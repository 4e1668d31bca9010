"""Transfer and paper-protocol crafting with the population as one batched computation.

A chunk of m units (``core.attacks.work.Unit``: samples, crafting submodel, seed) becomes m
input blocks of one ``StackedPopulation.each`` call, block k attacked on its crafter.
Every step is a sign step per element and BatchNorm is in eval mode, so each block's
attack is exactly its own (issue 10); what is batched is the arithmetic, not the attack.
Each block reproduces torchattacks 3.5.1's ``FGSM``, ``PGD`` and ``MIFGSM`` step for step,
so the batched and the sequential paths give the same adversarial examples up to float
rounding of the (grouped) convolutions:

- random start: torchattacks draws ``empty_like(images).uniform_(-eps, eps)`` from the
  global RNG, which ``attacks.seed_attack`` has just seeded with the unit's seed; here each
  block reseeds with its own unit's seed and draws the same shape on the same device, so
  it gets the very same numbers;
- loss: ``CrossEntropyLoss`` (mean over the block's own samples); the batched loss is the
  sum over blocks of each block's mean, so each block's gradient is its own attack's
  gradient at the same scale.  Blocks shorter than the longest one (the last batch of a
  group) are padded, and padding rows take no part in the loss;
- a kind runs here when its module says ``BATCHED`` (``clmrepro.kinds.attacks``) and gives
  its recipe, ``sign_steps(eps, params)``: FGSM, PGD, MI-FGSM, and EOT-PGD as PGD (against
  one deterministic submodel torchattacks ``EOTPGD`` adds ``eot_iter`` identical gradients,
  and sign(sum) = sign(one gradient), so one gradient is exact and ``eot_iter`` times cheaper:
  docs/reference.md §2; ``core.attacks.kinds.deterministic_attack``;
  tests/unit/core/attacks/test_batched_attacks.py compares with ``torchattacks.EOTPGD``).

AutoAttack (data-dependent restarts and sub-attack cascade) stays on torchattacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clmrepro.core.attacks.kinds import AttackKind, deterministic_attack
from clmrepro.core.attacks.work import Unit
from clmrepro.core.runtime import AttackRuntime


@dataclass(frozen=True)
class SignSteps:
    """An L∞ attack made of signed-gradient steps, as a kind describes it (``sign_steps``):
    ``fgsm``: one step of eps from the clean image, clamped to [0, 1] (torchattacks ``FGSM``);
    else ``steps`` steps of ``alpha`` projected on the ball, from a uniform start when
    ``random_start``, with MI-FGSM's momentum when ``decay`` is a number."""

    fgsm: bool
    alpha: float
    steps: int
    random_start: bool
    decay: float | None


def _block_loss(logits: Tensor, labels: Tensor, lengths: Sequence[int]) -> Tensor:
    """Sum over blocks of the mean cross-entropy over each block's real samples."""
    return sum(F.cross_entropy(logits[k, :n], labels[k, :n]) for k, n in enumerate(lengths))


def attack_blocks(stacked, images: Tensor, labels: Tensor, lengths: Sequence[int], *,
                  recipe: SignSteps, eps: float, noise: Tensor | None,
                  runtime: AttackRuntime, start: Tensor | None = None) -> Tensor:
    """Block k of ``images`` (m, B, C, H, W) attacked on block k of ``stacked``.

    ``noise`` is the random start (zero on padding rows), or None.  Same operations in the
    same order as torchattacks, per block.  ``start``: an iterate of this attack to continue
    from (PGD only, ``core.attacks.ladder``) instead of the start; s more steps from the
    iterate after s steps are the 2s-step attack exactly.
    """

    def gradient(adv: Tensor) -> Tensor:
        adv.requires_grad_(True)
        with runtime.autocast():
            logits = stacked.each(adv)
        loss = _block_loss(logits.float(), labels, lengths)
        return torch.autograd.grad(loss, adv)[0]

    images = images.detach()
    if recipe.fgsm:
        adv = images.clone()
        adv = adv + eps * gradient(adv).sign()
        return torch.clamp(adv, min=0, max=1).detach()
    alpha, steps, decay = recipe.alpha, recipe.steps, recipe.decay
    adv = images.clone()
    if start is not None:
        if decay is not None:
            raise ValueError("momentum attacks cannot continue from an iterate alone")
        adv = start.detach().clone()
    elif noise is not None:
        adv = torch.clamp(adv + noise, min=0, max=1).detach()
    if decay is not None:
        momentum = torch.zeros_like(images)
        padding = _padding_mask(images, lengths)
    for _ in range(steps):
        grad = gradient(adv)
        if decay is not None:
            scale = torch.mean(torch.abs(grad), dim=(2, 3, 4), keepdim=True)
            # padding rows have no gradient; divide them by 1 instead of 0
            grad = grad / torch.where(padding, torch.ones_like(scale), scale)
            grad = grad + momentum * decay
            momentum = grad
        adv = adv.detach() + alpha * grad.sign()
        delta = torch.clamp(adv - images, min=-eps, max=eps)
        adv = torch.clamp(images + delta, min=0, max=1).detach()
    return adv


def _padding_mask(images: Tensor, lengths: Sequence[int]) -> Tensor:
    rows = torch.arange(images.shape[1], device=images.device)
    lengths_t = torch.as_tensor(list(lengths), device=images.device)
    return (rows[None, :] >= lengths_t[:, None]).view(*images.shape[:2], 1, 1, 1)


class BatchedExecutor:
    """Crafts a chunk of units (``core.attacks.work``) in one batched attack."""

    def __init__(self, models: Sequence[nn.Module], x: Tensor, y: Tensor, *, kind: AttackKind,
                 eps: float, params: dict, runtime: AttackRuntime):
        self.models, self.x, self.y, self.runtime = list(models), x, y, runtime
        self.eps = float(eps)
        runs_as, runs_with = deterministic_attack(kind, params)
        recipe = runs_as.sign_steps(self.eps, runs_with) if kind.BATCHED else None
        if recipe is None:
            raise ValueError(f"attack {kind.KIND!r} is not batched (its module's BATCHED is "
                             f"False): craft it sequentially")
        self.recipe = SignSteps(**recipe)
        # a chunk is one .each call: as many units as submodels, like one transfer batch, or
        # fewer where the plan sized the job to a card (execution.max_models; exact: every
        # unit keeps its images and seed)
        self.units_per_call = min(len(self.models), runtime.max_models or len(self.models))
        self._stacks: dict[tuple[int, ...], object] = {}

    def _stacked(self, crafters: tuple[int, ...]):
        # transfer chunks always stack (0..n-1); paper chunks repeat a few crafter tuples
        if crafters not in self._stacks:
            if len(self._stacks) >= 8:
                self._stacks.clear()
            self._stacks[crafters] = self.runtime.stack([self.models[k] for k in crafters])
        return self._stacks[crafters]

    def _blocks(self, chunk: list[Unit]):
        device = self.runtime.device
        lengths = [len(u.index) for u in chunk]
        width = max(lengths)
        images = torch.zeros((len(chunk), width, *self.x.shape[1:]), dtype=self.x.dtype,
                             device=device)
        labels = torch.zeros((len(chunk), width), dtype=torch.long, device=device)
        for k, unit in enumerate(chunk):
            images[k, :lengths[k]] = self.x[unit.index].to(device)
            labels[k, :lengths[k]] = self.y[unit.index].to(device)
        return lengths, images, labels

    def continue_from(self, chunk: list[Unit], starts: list[Tensor], steps: int) -> list[Tensor]:
        """``steps`` more steps of the chunk's attack from its iterates ``starts`` (one per
        unit, as ``__call__`` returned them): the attack with that many more steps."""
        from dataclasses import replace

        lengths, images, labels = self._blocks(chunk)
        start = torch.zeros_like(images)   # padding rows stay 0, as in the first run
        for k, a in enumerate(starts):
            start[k, :lengths[k]] = a.to(images.device, images.dtype)
        stacked = self._stacked(tuple(int(u.crafter) for u in chunk))
        adv = attack_blocks(stacked, images, labels, lengths, eps=self.eps, noise=None,
                            recipe=replace(self.recipe, steps=int(steps)),
                            runtime=self.runtime, start=start)
        return [adv[k, :n].cpu() for k, n in enumerate(lengths)]

    def __call__(self, chunk: list[Unit]) -> list[Tensor]:
        device = self.runtime.device
        lengths, images, labels = self._blocks(chunk)
        noise = None
        if self.recipe.random_start:
            noise = torch.zeros_like(images)
            for k, unit in enumerate(chunk):
                # the draw torchattacks PGD makes right after seed_attack(attack, unit.seed)
                torch.manual_seed(unit.seed)
                block = torch.empty((lengths[k], *images.shape[2:]), dtype=images.dtype,
                                    device=device)
                noise[k, :lengths[k]] = block.uniform_(-self.eps, self.eps)
        stacked = self._stacked(tuple(int(u.crafter) for u in chunk))
        adv = attack_blocks(stacked, images, labels, lengths, recipe=self.recipe, eps=self.eps,
                            noise=noise, runtime=self.runtime)
        return [adv[k, :n].cpu() for k, n in enumerate(lengths)]
