"""ARC: Attacking Randomized ensembles of Classifiers (Dbouk & Shanbhag, ICML 2022), L∞.

Expected-loss PGD can leave a random-dispatch population looking far more robust than it is:
where the members' loss gradients cancel in the mean it does not move at all (their Thm. 1,
two linear members).  ARC works on the defence's exact *expected accuracy* instead,

    A(x') = sum_i a_i 1[f_i(x') = y],   a_i = 1/n (uniform dispatch, eq. 6's MRA per image),

and moves towards one member's decision boundary at a time, keeping a move only when it does
not raise A.  Our reading of their Algorithm 1 and public code (``hsndbk4/ARC``,
``attack_ARC_linf``; read, not copied), per iteration and image:

1. ``delta_local = 0``; the members are visited in order of their sampling probability
   (equal weights: ties as their code breaks them, ``np.flip(np.argsort(a))`` = n-1, ..., 0).
2. For member i at ``x + delta_min + delta_local`` with logits z and predicted class m: for
   every other class j, ``w_j = grad z_m - grad z_j`` and the L∞ distance to the linearised
   boundary ``zeta_j = |z_m - z_j| / ||w_j||_1``; the closest boundary j* gives the direction
   ``g = -sign(w_j*)`` (and ``g2 = -w_j* / ||w_j*||_1`` for the step rule).  ``candidates``
   chooses the classes searched: ``all`` (their ARC) or the ``topk`` largest logits (their
   ARC-lite).
3. Step size ``beta = eta`` (the local radius ``step_size``); for every member after the first,
   where the boundary is nearer than eta, ``beta = eta / (eta - zeta) * |zeta - <g2,
   delta_local>| + rho`` (``rho = rho_fraction * eps`` keeps off the boundary itself).
4. Candidate ``delta_local + beta g`` rescaled to L∞ norm eta; the point ``x + delta_min +
   candidate`` projected onto the eps-ball and [0, 1]; the candidate is kept where A does not
   rise.
5. After all members, ``delta_min + delta_local`` (projected) replaces ``delta_min`` where A
   does not rise.

Departure, a knob (``start``): their code starts from the clean image (their runs set no
``--rand-init``; with it, it draws a random start but keeps comparing with the clean point's
accuracy).  ``start: pgd`` (our default) starts from the expected-loss PGD of
``core.attacks.adaptive`` and compares with *that* point's expected accuracy, so ARC never
returns a point the PGD it starts from beats; ``clean`` is their code; ``random`` starts
from a uniform point of the ball, compared with its own accuracy.

LeNet5 returns log-probabilities; differences of log-probabilities are differences of logits
(log_softmax subtracts one number from every class), so zeta and w are the same either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

ARC_CANDIDATES = ("all", "topk")
ARC_STARTS = ("pgd", "clean", "random")
_TINY = 1e-10  # their code's guard against dividing by zero

ExpectedAccuracy = Callable[[Tensor, Tensor], Tensor]  # (x, y) -> (B,) in [0, 1]


def expected_accuracy_of(classify: Callable[[Tensor], Tensor]) -> ExpectedAccuracy:
    """A(x) per image from a classifier giving every submodel's labels (n, B): the share of
    submodels that classify the image right (equal dispatch weights)."""

    def accuracy(x: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            return (classify(x) == y.view(1, -1)).double().mean(0)

    return accuracy


def closest_boundary(model: nn.Module, x: Tensor, *, candidates: str = "all",
                     topk: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """For each image of ``x``: (g, g2, zeta) of step 2 in the module docstring: the L∞
    direction towards ``model``'s nearest linearised decision boundary, its L1-normalised
    gradient difference, and the L∞ distance to that boundary."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    b, c = logits.shape
    rows = torch.arange(b, device=x.device)
    order = logits.detach().argsort(dim=1, descending=True)       # the classes by rank
    if candidates == "all":
        classes = torch.arange(c, device=x.device).expand(b, c)   # class order, as their loop
    elif candidates == "topk":
        if topk is None or not 2 <= topk <= c:
            raise ValueError(f"arc: topk must be from 2 to {c} classes (got {topk})")
        classes = order[:, :topk]                                  # rank order, as ARC-lite
    else:
        raise ValueError(f"arc: candidates must be one of {ARC_CANDIDATES} (got {candidates!r})")
    # d sum_b z[b, classes[b, k]] / dx for every k in one batched backward pass: the images
    # are independent (eval mode), so this is each image's own gradient of each logit
    seeds = torch.zeros((classes.shape[1], b, c), dtype=logits.dtype, device=x.device)
    seeds.scatter_(2, classes.t().unsqueeze(2), 1.0)
    grads = torch.autograd.grad(logits, x, grad_outputs=seeds, is_grads_batched=True)[0]
    grads = grads.transpose(0, 1).flatten(2)                       # (B, K, D)
    top = order[:, 0]
    at_top = (classes == top.unsqueeze(1)).float().argmax(1)       # where the top class sits
    w = grads[rows, at_top].unsqueeze(1) - grads                   # (B, K, D)
    z = logits.detach().gather(1, classes)
    zeta = (logits.detach()[rows, top].unsqueeze(1) - z).abs() / (w.abs().sum(-1) + _TINY)
    zeta = zeta.masked_fill(classes == top.unsqueeze(1), float("inf"))  # not the top itself
    nearest = zeta.argmin(dim=1)                                   # the first minimum wins
    w_star = w[rows, nearest]                                      # (B, D)
    zeta_star = zeta[rows, nearest]
    g = -torch.sign(w_star)
    g2 = -w_star / (w_star.abs().sum(-1, keepdim=True) + _TINY)
    return g.view(x.shape).detach(), g2.view(x.shape).detach(), zeta_star.detach()


def _linf_normalised(delta: Tensor, radius: float) -> Tensor:
    norm = delta.flatten(1).abs().amax(1).view(-1, *([1] * (delta.dim() - 1)))
    return radius * delta / (norm + _TINY)


def _project(x: Tensor, delta: Tensor, eps: float) -> Tensor:
    """delta clipped to the eps-ball, then so that x + delta stays in [0, 1]."""
    delta = delta.clamp(-eps, eps)
    return torch.max(torch.min(delta, 1 - x), -x)


class ARC:
    """L∞ ARC on ``models`` (equal dispatch weights) with the parameters of the module
    docstring.  ``accuracy(x, y)`` is the exact expected accuracy per image (the scoring
    path: ``core.metrics.population_classifier``); ``start_attack(x, y, gen)`` the
    expected-loss PGD for ``start: pgd``."""

    def __init__(self, models: Sequence[nn.Module], *, eps: float, steps: int,
                 step_size: float, candidates: str, topk: int | None, rho_fraction: float,
                 start: str, accuracy: ExpectedAccuracy,
                 start_attack: Callable[[Tensor, Tensor, torch.Generator | None], Tensor]
                 | None = None):
        if start not in ARC_STARTS:
            raise ValueError(f"arc: start must be one of {ARC_STARTS} (got {start!r})")
        if candidates not in ARC_CANDIDATES:
            raise ValueError(f"arc: candidates must be one of {ARC_CANDIDATES} "
                             f"(got {candidates!r})")
        if start == "pgd" and start_attack is None:
            raise ValueError("arc: start 'pgd' needs the expected-loss PGD to start from")
        if not (eps > 0 and step_size > 0 and steps >= 0 and rho_fraction >= 0):
            raise ValueError(f"arc: need eps > 0, step_size > 0, steps >= 0, rho >= 0 (got "
                             f"{eps}, {step_size}, {steps}, {rho_fraction})")
        self.models = list(models)
        self.eps, self.steps, self.step_size = float(eps), int(steps), float(step_size)
        self.candidates, self.topk, self.start = candidates, topk, start
        self.rho = float(rho_fraction) * self.eps
        self.accuracy, self.start_attack = accuracy, start_attack
        # equal weights: visited n-1, ..., 0 (their np.flip(np.argsort(alpha)) on ties)
        self.order = list(range(len(self.models)))[::-1]

    def __call__(self, x: Tensor, y: Tensor, gen: torch.Generator | None = None) -> Tensor:
        modes = [m.training for m in self.models]
        for m in self.models:
            m.eval()
        try:
            return self._run(x.detach(), y.detach(), gen)
        finally:
            for m, mode in zip(self.models, modes):
                m.train(mode)

    def _start(self, x: Tensor, y: Tensor, gen: torch.Generator | None) -> Tensor:
        """The starting point (not the perturbation)."""
        if self.start == "pgd":
            return self.start_attack(x, y, gen).detach().clone()
        if self.start == "random":
            if gen is None:
                raise ValueError("arc: start 'random' needs a generator")
            noise = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)
            return x + _project(x, (2 * noise - 1) * self.eps, self.eps)
        return x.clone()

    def _run(self, x: Tensor, y: Tensor, gen: torch.Generator | None) -> Tensor:
        shape = (-1, *([1] * (x.dim() - 1)))
        # The point itself is kept beside its perturbation, so what is returned is exactly
        # the point whose expected accuracy was measured (x + (p - x) need not equal p).
        best = self._start(x, y, gen)
        delta_min = best - x
        acc_min = self.accuracy(best, y)
        for _ in range(self.steps):
            delta_local = torch.zeros_like(x)
            acc_local = acc_min.clone()
            for rank, i in enumerate(self.order):
                g, g2, zeta = closest_boundary(self.models[i], x + delta_min + delta_local,
                                               candidates=self.candidates, topk=self.topk)
                beta = torch.full_like(zeta, self.step_size)
                if rank > 0:
                    along = (g2 * delta_local).flatten(1).sum(1)
                    adjusted = (self.step_size / (self.step_size - zeta + _TINY)
                                * (zeta - along).abs() + self.rho)
                    beta = torch.where(zeta < self.step_size, adjusted, beta)
                candidate = _linf_normalised(delta_local + beta.view(shape) * g, self.step_size)
                acc = self.accuracy(x + _project(x, delta_min + candidate, self.eps), y)
                keep = acc <= acc_local
                delta_local[keep] = candidate[keep]
                acc_local = torch.minimum(acc_local, acc)
            moved = _project(x, delta_min + delta_local, self.eps)
            point = x + moved
            acc = self.accuracy(point, y)
            keep = acc <= acc_min
            delta_min[keep] = moved[keep]
            best[keep] = point[keep]
            acc_min = torch.minimum(acc_min, acc)
        return best.detach()
