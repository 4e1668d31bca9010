"""APGD (Croce & Hein, ICML 2020, Algorithm 1), L∞, on the random-dispatch defence, with its
decisions taken on the exact expected accuracy (issue 26, item 4).

AutoAttack ``rand`` runs APGD-CE and APGD-DLR with EOT on the randomised model.  torchattacks
3.5.1 (as the original AutoAttack) decides with the random model's own answers: it attacks
only the points that *one* forward pass at the clean image classifies correctly, and per point
returns the last iterate at which *one* EOT draw was wrong, or the clean image when no draw
ever was.  On a random-dispatch population that answer is one random submodel's, so a point
is skipped, or its iterate kept or dropped, by the luck of a draw (docs/reference.md §2).  We
score the exact expected accuracy A(x) = share of submodels right, so here:

- a point is attacked while A > 0 at its clean image (some submodel still right), and every
  restart runs on the points whose best A is still above 0;
- per point the iterate kept is the one with the lowest A over the run (the random start
  included; the first one reached on ties), never the clean image when an iterate lowers A;
- the loss that steers the step size and picks the point a halving restarts from is the exact
  expected loss over the submodels (torchattacks: the last EOT draw's).  With a sampled loss
  one unlucky draw can make a point look like the best so far (a member that is always wrong
  has a high, flat cross-entropy), and every later checkpoint sends the run back to it;
- a run sent back to its highest-loss point takes a fresh EOT gradient there (torchattacks
  reuses the gradient it drew there, which with EOT is one sample: if every draw hit a member
  with a flat loss it is zero, and the point can never leave).

A and the expected loss come from one pass of every submodel per iterate.  What moves the
iterate is APGD's, unchanged: the gradient is the mean of ``eot_iter`` draws of the random
model (EOT), x(0) a random point of the ball, the first step of size eta = 2 eps, then
momentum 0.75 (x <- P(x + 0.75 (z - x) + 0.25 (x - x_prev)), z = P(x + eta sign g)), and the
step size halved, restarting from the highest-loss point, at the checkpoints where the loss
rose in at most ``rho`` of the steps since the last one (condition 1) or neither the step size
was halved nor the best loss improved since then (condition 2).  The checkpoints are the
reference code's integer form of the paper's schedule: a first interval of int(0.22 N) steps,
shrinking by int(0.03 N) to at least int(0.06 N) (each at least 1).  Two details follow the
reference code where the paper is silent or differs, so a deterministic population (all
submodels equal, where every expectation is the one model's value) gives what torchattacks
gives (tests/unit/core/attacks/test_apgd.py): condition 1 is ``increases <= rho * interval``,
and the first interval's first step is compared with a loss of 0.

The random start is drawn on the CPU from a generator seeded with ``seed`` (which
``core.attacks.sequential.seed_attack`` sets before each batch), the draw torchattacks makes
from the global RNG after seeding it the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clmrepro.core.runtime import AttackRuntime

APGD_LOSSES = ("ce", "dlr")
_MOMENTUM = 0.75  # the paper's alpha: weight of the new step against the previous move


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Croce & Hein's difference-of-logits ratio, per image: -(z_y - max_{i != y} z_i) /
    (z_pi1 - z_pi3), pi the classes sorted by decreasing logit."""
    top, order = logits.sort(dim=1, descending=True)
    z_y = logits.gather(1, y.view(-1, 1)).squeeze(1)
    other = torch.where(order[:, 0] == y, top[:, 1], top[:, 0])
    return -(z_y - other) / (top[:, 0] - top[:, 2] + 1e-12)


def _ce_loss(logits: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(logits, y, reduction="none")


def population_outputs(models, runtime: AttackRuntime | None) -> Callable[[Tensor], Tensor]:
    """x -> every submodel's outputs, shape (n, B, classes), float, without gradients (one
    ``StackedPopulation.all`` call on the batched path)."""
    for model in models:
        model.eval()
    stacked = runtime.stack(list(models)) if runtime is not None and runtime.batched else None

    def outputs(x: Tensor) -> Tensor:
        with torch.no_grad():
            if runtime is None:
                return torch.stack([m(x) for m in models]).float()
            with runtime.autocast():
                if stacked is not None:
                    return stacked.all(x).float()
                return torch.stack([m(x) for m in models]).float()

    return outputs


def checkpoint_intervals(steps: int) -> tuple[int, int, int]:
    """(first interval, shrink per checkpoint, smallest interval) of the step-size checks."""
    return (max(int(0.22 * steps), 1), max(int(0.03 * steps), 1), max(int(0.06 * steps), 1))


class ExpectedAccuracyAPGD:
    """APGD-CE or APGD-DLR on ``model`` (the random defence; gradients by EOT), deciding on the
    exact expectations over ``outputs``, x -> every submodel's outputs (module docstring).
    Called ``(x, y)`` after ``seed_attack`` set ``seed``, as
    :class:`core.attacks.adaptive.ExpectedAccuracyCascade` calls its sub-attacks."""

    def __init__(self, model: nn.Module, outputs: Callable[[Tensor], Tensor], *,
                 eps: float, steps: int, n_restarts: int, loss: str, eot_iter: int,
                 rho: float = 0.75, seed: int = 0):
        if loss not in APGD_LOSSES:
            raise ValueError(f"apgd: loss must be one of {APGD_LOSSES} (got {loss!r})")
        self.model, self.outputs = model, outputs
        self.eps, self.steps, self.n_restarts = float(eps), int(steps), int(n_restarts)
        self.loss, self.eot_iter, self.rho, self.seed = loss, int(eot_iter), float(rho), seed
        self.criterion = _ce_loss if loss == "ce" else dlr_loss

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        x, y = x.detach(), y.detach()
        gen = torch.Generator().manual_seed(int(self.seed))
        best, best_acc = x.clone(), self._judge(x, y)[0]
        for _ in range(self.n_restarts):
            todo = (best_acc > 0).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            adv, acc = self._run(x[todo], y[todo], gen)
            better = acc < best_acc[todo]
            best[todo[better]] = adv[better]
            best_acc[todo[better]] = acc[better]
        return best

    def _project(self, x: Tensor, adv: Tensor) -> Tensor:
        return torch.min(torch.max(adv, x - self.eps), x + self.eps).clamp(0.0, 1.0)

    def _judge(self, adv: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """(A, expected loss) per image: the share of submodels right and their mean loss."""
        out = self.outputs(adv)
        acc = (out.argmax(dim=-1) == y.view(1, -1)).double().mean(0)
        loss = torch.stack([self.criterion(o, y) for o in out]).mean(0)
        return acc, loss

    def _gradient(self, adv: Tensor, y: Tensor) -> Tensor:
        """The input gradient of the loss, the mean over ``eot_iter`` draws (EOT)."""
        adv = adv.detach().requires_grad_(True)
        grad = torch.zeros_like(adv)
        for _ in range(self.eot_iter):
            with torch.enable_grad():
                loss = self.criterion(self.model(adv), y).sum()
            grad += torch.autograd.grad(loss, adv)[0].detach()
        return grad / self.eot_iter

    def _start(self, x: Tensor, gen: torch.Generator) -> Tensor:
        t = (2 * torch.rand(x.shape, generator=gen) - 1).to(x.device)
        scale = t.flatten(1).abs().max(dim=1)[0].view(-1, *([1] * (x.dim() - 1)))
        return (x + self.eps * t / scale).clamp(0.0, 1.0)

    def _run(self, x: Tensor, y: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """One APGD run from a random start: (kept iterate, its A) per image."""
        shape = (-1, *([1] * (x.dim() - 1)))
        cur = self._start(x, gen)
        grad = self._gradient(cur, y)
        acc, loss = self._judge(cur, y)
        kept, kept_acc = cur.clone(), acc
        top, top_loss = cur.clone(), loss.clone()  # the highest expected loss so far
        eta = torch.full((len(x),), 2 * self.eps, device=x.device)
        prev = cur.clone()
        interval, shrink, smallest = checkpoint_intervals(self.steps)
        last_loss = torch.zeros_like(loss)  # the reference code's first comparison
        rises, count = torch.zeros_like(loss), 0
        halved_at_check = torch.ones(len(x), dtype=torch.bool, device=x.device)
        top_at_check = top_loss.clone()
        for i in range(self.steps):
            with torch.no_grad():
                move, prev = cur - prev, cur
                a = _MOMENTUM if i > 0 else 1.0
                z = self._project(x, cur + eta.view(shape) * grad.sign())
                cur = self._project(x, cur + a * (z - cur) + (1 - a) * move)
            grad = self._gradient(cur, y)
            acc, loss = self._judge(cur, y)
            with torch.no_grad():
                lower = acc < kept_acc
                kept[lower], kept_acc[lower] = cur[lower], acc[lower]
                up = loss > top_loss
                top[up], top_loss[up] = cur[up], loss[up]
                rises += (loss > last_loss).float()
                last_loss, count = loss, count + 1
                if count == interval:
                    stalled = rises <= self.rho * interval                # condition 1
                    stuck = ~halved_at_check & (top_loss <= top_at_check)  # condition 2
                    halve = stalled | stuck
                    eta[halve] /= 2.0
                    cur, grad = cur.clone(), grad.clone()
                    cur[halve] = top[halve]
                    if halve.any():  # a fresh EOT gradient there (module docstring)
                        grad[halve] = self._gradient(top[halve], y[halve])
                    halved_at_check, top_at_check = halve, top_loss.clone()
                    rises, count = torch.zeros_like(loss), 0
                    interval = max(interval - shrink, smallest)
        return kept, kept_acc
