"""Adaptive attacks on the random-dispatch defence itself (REFERENCE.md §3).

The paper's protocol crafts on one random submodel and scores all: a transfer attack.
The standard for randomized defences (Athalye et al. 2018; Tramer et al. 2020; AutoAttack
``rand``) is to minimise the defence's expected accuracy over its randomness.  With
n <= 10 submodels that expectation is exact, so no sampling is needed for gradients:

- ``fgsm``, ``pgd``, ``mifgsm`` -> :class:`ExpectedLossPGD`, whose loss at every step is
  the exact mean over all submodels of the cross-entropy, (1/n) sum_i CE(f_i(x'), y).
  FGSM = one step of size eps without random start; MI-FGSM = momentum with ``decay``
  and the per-sample L1-normalised gradient, as torchattacks ``MIFGSM`` does.
- ``eot-pgd`` -> torchattacks ``EOTPGD`` on :class:`RandomDispatch`, where averaging
  ``eot_iter`` gradients estimates the expectation by sampling (what EOT means).
- ``autoattack`` -> AutoAttack ``rand`` (APGD-CE + APGD-DLR with ``eot_iter`` EOT draws)
  on :class:`RandomDispatch`, whatever ``version`` the job named for the other threat
  models; :func:`adaptive_params` gives the effective parameters to record.

The adaptive set is scored as the expected accuracy over submodels: every submodel
classifies it and the record's MRA is the mean (docs/architecture.md).

Outputs of LeNet5 are log-probabilities and of ResNet18 logits; cross-entropy on
log-probabilities equals cross-entropy on the logits (log_softmax is idempotent), so all
outputs are treated as logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from clmrepro.core.attacks import build_attack, check_params, check_perturbation, seed_attack
from clmrepro.core.seeding import derive_seed, generator


class RandomDispatch(nn.Module):
    """The defence as deployed: each sample of each query is answered by a submodel drawn
    uniformly from the population with this module's own generator.

    Per sample rather than per call, so that one batched query does not share a single
    draw (which would correlate a whole batch's answers and make EOT estimates coarser).
    """

    def __init__(self, models: Sequence[nn.Module], gen: torch.Generator):
        super().__init__()
        if len(models) < 1:
            raise ValueError("RandomDispatch needs at least one submodel")
        self.models = nn.ModuleList(models)
        self.gen = gen

    def forward(self, x: Tensor) -> Tensor:
        choice = torch.randint(len(self.models), (len(x),), generator=self.gen)
        choice = choice.to(x.device)
        out = None
        for k in choice.unique().tolist():
            sel = (choice == k).nonzero().squeeze(1)
            answer = self.models[k](x[sel])
            if out is None:
                out = answer.new_zeros((len(x), *answer.shape[1:]))
            # out-of-place so autograd sees every submodel's contribution
            out = out.index_copy(0, sel, answer)
        return out


def expected_cross_entropy(models: Sequence[nn.Module], x: Tensor, y: Tensor) -> Tensor:
    """(1/n) sum_i CE(f_i(x), y): the loss of the defence averaged exactly over dispatch."""
    return torch.stack([F.cross_entropy(m(x), y) for m in models]).mean()


class ExpectedLossPGD:
    """L-inf PGD (optionally with MI-FGSM momentum) on the exact expected loss.

    ``decay=None`` gives PGD: x <- Proj(x + alpha sign(grad)).  A float gives MI-FGSM
    (Dong et al. 2018): g <- grad/mean|grad| + decay g; x <- Proj(x + alpha sign(g)).
    The random start is drawn from the caller's generator, not the global RNG.
    """

    def __init__(self, models: Sequence[nn.Module], *, eps: float, alpha: float, steps: int,
                 random_start: bool, decay: float | None = None):
        self.models = list(models)
        self.eps, self.alpha, self.steps = float(eps), float(alpha), int(steps)
        self.random_start, self.decay = bool(random_start), decay

    def __call__(self, x: Tensor, y: Tensor, gen: torch.Generator | None = None) -> Tensor:
        modes = [m.training for m in self.models]
        for m in self.models:
            m.eval()
        try:
            return self._run(x.detach(), y.detach(), gen)
        finally:
            for m, mode in zip(self.models, modes):
                m.train(mode)

    def _run(self, x: Tensor, y: Tensor, gen: torch.Generator | None) -> Tensor:
        adv = x.clone()
        if self.random_start:
            if gen is None:
                raise ValueError("random_start needs a generator")
            noise = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)
            adv = (adv + (2 * noise - 1) * self.eps).clamp(0, 1)
        momentum = torch.zeros_like(x)
        for _ in range(self.steps):
            adv.requires_grad_(True)
            loss = expected_cross_entropy(self.models, adv, y)
            grad = torch.autograd.grad(loss, adv)[0]
            if self.decay is not None:
                grad = grad / grad.abs().mean(dim=tuple(range(1, grad.dim())), keepdim=True)
                grad = grad + self.decay * momentum
                momentum = grad
            adv = adv.detach() + self.alpha * grad.sign()
            adv = (x + (adv - x).clamp(-self.eps, self.eps)).clamp(0, 1).detach()
        return adv


def adaptive_params(kind: str, eps: float, params: dict) -> dict:
    """The parameters the adaptive attack really runs with (for the record)."""
    check_params(kind, params)
    if kind == "fgsm":
        return {"alpha": float(eps), "steps": 1, "random_start": False}
    if kind == "autoattack":
        return {**params, "version": "rand"}
    return dict(params)


def _population_attack(models, kind: str, eps: float, params: dict, seed: int):
    check_params(kind, params)
    if kind == "fgsm":
        return ExpectedLossPGD(models, eps=eps, alpha=eps, steps=1, random_start=False)
    if kind == "pgd":
        return ExpectedLossPGD(models, eps=eps, alpha=params["alpha"], steps=params["steps"],
                               random_start=params["random_start"])
    if kind == "mifgsm":
        return ExpectedLossPGD(models, eps=eps, alpha=params["alpha"], steps=params["steps"],
                               random_start=False, decay=float(params["decay"]))
    dispatch = RandomDispatch(models, generator(derive_seed(seed, "dispatch")))
    return build_attack(kind, dispatch, eps, adaptive_params(kind, eps, params))


def craft_adaptive(models: Sequence[nn.Module], x: Tensor, y: Tensor, *, kind: str,
                   eps: float, params: dict, batch_size: int, seed: int, device,
                   progress: bool = False) -> Tensor:
    """One adversarial set crafted against the whole population (module docstring)."""
    attack = _population_attack(models, kind, eps, params, seed)
    out = torch.empty_like(x)
    n_batches = math.ceil(len(x) / batch_size)
    for b in tqdm(range(n_batches), desc=f"{kind} adaptive", disable=not progress):
        sl = slice(b * batch_size, (b + 1) * batch_size)
        xb, yb = x[sl].to(device), y[sl].to(device)
        batch_seed = derive_seed(seed, "adaptive", b)
        if isinstance(attack, ExpectedLossPGD):
            adv = attack(xb, yb, generator(batch_seed))
        else:
            seed_attack(attack, batch_seed)
            adv = attack(xb, yb).detach()
        check_perturbation(xb, adv, eps)
        out[sl] = adv.to(out.device, out.dtype)
    return out
