"""Adaptive attacks on the random-dispatch defence itself (docs/reference.md §3).

The paper's protocol crafts on one random submodel and scores all: a transfer attack.
The standard for randomized defences (Athalye et al. 2018; Tramer et al. 2020; AutoAttack
``rand``) is to minimise the defence's expected accuracy over its randomness.  With
n <= 10 submodels that expectation is exact, so no sampling is needed for gradients:

Each kind's module (``clmrepro.kinds.attacks``) builds its adaptive attack (``adaptive``)
from the pieces here:

- ``fgsm``, ``pgd``, ``mifgsm`` -> :class:`ExpectedLossPGD`, whose loss at every step is
  the exact mean over all submodels of the cross-entropy, (1/n) sum_i CE(f_i(x'), y).
  FGSM = one step of size eps without random start; MI-FGSM = momentum with ``decay``
  and the per-sample L1-normalised gradient, as torchattacks ``MIFGSM`` does.
- ``eot-pgd`` -> torchattacks ``EOTPGD`` on :class:`RandomDispatch`, where averaging
  ``eot_iter`` gradients estimates the expectation by sampling (what EOT means).
- ``autoattack`` -> AutoAttack ``rand`` (APGD-CE + APGD-DLR with ``eot_iter`` EOT draws)
  on :class:`RandomDispatch`, whatever ``version`` the job named for the other threat
  models, run as :class:`ExpectedAccuracyCascade`: a sub-attack's success on a point is
  judged on the exact expected accuracy over all submodels, and each point keeps the
  sub-attack result with the lowest one.  torchattacks' ``MultiAttack`` decides with one
  forward pass of the random defence (one random submodel's answer) and then skips the later
  sub-attacks for that point; :func:`adaptive_params` records the difference
  (``success: expected-accuracy``) with the effective parameters.  The APGD runs are ours
  (``core.attacks.apgd``, recorded ``apgd: expected-accuracy``): torchattacks' APGD also
  decides with one draw which points to attack and which iterate to keep.
- ``arc`` -> :class:`core.attacks.arc.ARC` on the exact expected accuracy (Dbouk &
  Shanbhag 2022), adaptive only.

The adaptive set is scored as the expected accuracy over submodels: every submodel
classifies it and the record's MRA is the mean (docs/architecture.md).

Batch b is crafted right after reseeding from its own seed (``core.attacks.work``), the
dispatch generator included, so a batch's result does not depend on the batches before it
and a job resumed from saved chunks equals an uninterrupted one (issue 12).  On the
batched path (``core.runtime``) the expected loss takes one
``StackedPopulation.all`` call per step instead of n forward passes.

Outputs of LeNet5 are log-probabilities and of ResNet18 logits; cross-entropy on
log-probabilities equals cross-entropy on the logits (log_softmax is idempotent), so all
outputs are treated as logits.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from clmrepro.core.attacks.arc import expected_accuracy_of
from clmrepro.core.attacks.kinds import AttackKind, check_params
from clmrepro.core.attacks.work import Unit, adaptive_units, assemble, chunked, craft_chunks
from clmrepro.core.metrics import population_classifier
from clmrepro.core.runtime import AttackRuntime
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
        # the draws stay on the host (a CPU generator): which submodel answers which sample is
        # known without waiting for the GPU; only the indices travel, asynchronously
        choice = torch.randint(len(self.models), (len(x),), generator=self.gen).cpu()
        out = None
        for k in choice.unique().tolist():
            sel = (choice == k).nonzero().squeeze(1).to(x.device, non_blocking=True)
            answer = self.models[k](x[sel])
            if out is None:
                out = answer.new_zeros((len(x), *answer.shape[1:]))
            # out-of-place so autograd sees every submodel's contribution
            out = out.index_copy(0, sel, answer)
        return out


def expected_cross_entropy(models: Sequence[nn.Module], x: Tensor, y: Tensor, *,
                           stacked=None) -> Tensor:
    """(1/n) sum_i CE(f_i(x), y): the loss of the defence averaged exactly over dispatch.

    With ``stacked`` (a ``StackedPopulation`` of ``models``) the n outputs come from one
    ``.all(x)`` call; the mean of the per-submodel means is formed the same way."""
    if stacked is not None:
        logits = stacked.all(x).float()
        return torch.stack([F.cross_entropy(logits[k], y) for k in range(len(logits))]).mean()
    return torch.stack([F.cross_entropy(m(x), y) for m in models]).mean()


class ExpectedLossPGD:
    """L-inf PGD (optionally with MI-FGSM momentum) on the exact expected loss.

    ``decay=None`` gives PGD: x <- Proj(x + alpha sign(grad)).  A float gives MI-FGSM
    (Dong et al. 2018): g <- grad/mean|grad| + decay g; x <- Proj(x + alpha sign(g)).
    The random start is drawn from the caller's generator, not the global RNG.
    """

    def __init__(self, models: Sequence[nn.Module], *, eps: float, alpha: float, steps: int,
                 random_start: bool, decay: float | None = None,
                 runtime: AttackRuntime | None = None):
        self.models = list(models)
        self.eps, self.alpha, self.steps = float(eps), float(alpha), int(steps)
        self.random_start, self.decay = bool(random_start), decay
        self.runtime = runtime
        # the batched path: one StackedPopulation.all per step instead of n forward passes
        self.stacked = runtime.stack(self.models) if runtime and runtime.batched else None

    def _loss(self, adv: Tensor, y: Tensor) -> Tensor:
        if self.runtime is None:
            return expected_cross_entropy(self.models, adv, y)
        with self.runtime.autocast():
            return expected_cross_entropy(self.models, adv, y, stacked=self.stacked)

    def __call__(self, x: Tensor, y: Tensor, gen: torch.Generator | None = None,
                 start: Tensor | None = None) -> Tensor:
        """``start``: continue from an iterate of this attack (PGD only): s more steps from
        the iterate after s steps are the 2s-step attack exactly (``core.attacks.ladder``)."""
        if start is not None and self.decay is not None:
            raise ValueError("MI-FGSM cannot continue from an iterate alone (its momentum)")
        modes = [m.training for m in self.models]
        for m in self.models:
            m.eval()
        try:
            return self._run(x.detach(), y.detach(), gen, start)
        finally:
            for m, mode in zip(self.models, modes):
                m.train(mode)

    def _run(self, x: Tensor, y: Tensor, gen: torch.Generator | None,
             start: Tensor | None = None) -> Tensor:
        adv = x.clone()
        if start is not None:
            adv = start.detach().clone()
        elif self.random_start:
            if gen is None:
                raise ValueError("random_start needs a generator")
            noise = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)
            adv = (adv + (2 * noise - 1) * self.eps).clamp(0, 1)
        momentum = torch.zeros_like(x)
        for _ in range(self.steps):
            adv.requires_grad_(True)
            loss = self._loss(adv, y)
            grad = torch.autograd.grad(loss, adv)[0]
            if self.decay is not None:
                grad = grad / grad.abs().mean(dim=tuple(range(1, grad.dim())), keepdim=True)
                grad = grad + self.decay * momentum
                momentum = grad
            adv = adv.detach() + self.alpha * grad.sign()
            adv = (x + (adv - x).clamp(-self.eps, self.eps)).clamp(0, 1).detach()
        return adv


# How the adaptive AutoAttack decides that a sub-attack broke a point (recorded: it departs
# from torchattacks' MultiAttack, which asks the random defence once).
CASCADE_SUCCESS = "expected-accuracy"


def adaptive_params(kind: AttackKind, eps: float, params: dict) -> dict:
    """The parameters the adaptive attack really runs with (for the record)."""
    check_params(kind, params)
    return kind.adaptive_record(eps, params)


class ExpectedAccuracyCascade:
    """AutoAttack's cascade of sub-attacks, judged as we score (issue 18).

    Each point starts as its clean image with its expected accuracy A (the share of
    submodels right).  Sub-attack k runs on the points whose A is still above 0 (some
    submodel still right: the random defence can still answer correctly) and a point takes
    its result where that lowers A.  So the output per point is the sub-attack result with
    the lowest A, and a point fooled by one lucky draw of the random defence still gets the
    later sub-attacks."""

    def __init__(self, attacks: Sequence, accuracy):
        self.attacks, self.accuracy = list(attacks), accuracy

    def __call__(self, x: Tensor, y: Tensor, seed: int) -> Tensor:
        from clmrepro.core.attacks.sequential import seed_attack

        best = x.clone()
        best_acc = self.accuracy(x, y)
        for attack in self.attacks:
            todo = (best_acc > 0).nonzero().squeeze(1)
            if len(todo) == 0:
                break
            seed_attack(attack, seed)
            adv = attack(x[todo], y[todo]).detach()
            acc = self.accuracy(adv, y[todo])
            better = acc < best_acc[todo]
            best[todo[better]] = adv[better]
            best_acc[todo[better]] = acc[better]
        return best


def cascade(models: Sequence[nn.Module], attacks: Sequence,
            runtime: AttackRuntime) -> ExpectedAccuracyCascade:
    """``attacks`` run as a cascade judged on the population's exact expected accuracy."""
    return ExpectedAccuracyCascade(
        attacks, expected_accuracy_of(population_classifier(models, runtime)))


class WithGenerator:
    """An attack called ``(x, y, gen)`` (its randomness from the caller's generator), called
    ``(x, y, seed)`` as the adaptive executor calls its attacks."""

    def __init__(self, attack):
        self.attack = attack

    def __call__(self, x: Tensor, y: Tensor, seed: int) -> Tensor:
        return self.attack(x, y, generator(seed))

    def continue_from(self, x: Tensor, y: Tensor, start: Tensor) -> Tensor:
        return self.attack(x, y, None, start=start)


class OnDispatch:
    """An attack on the deployed defence, :class:`RandomDispatch` of ``models``: ``make``
    builds it (called ``(x, y, seed)``) on the dispatch, whose draws restart from each
    batch's seed, so a batch does not depend on the batches before it.  The sampled
    expectation runs on torchattacks, sequentially."""

    def __init__(self, models: Sequence[nn.Module], make):
        # eval mode: torchattacks puts the model back in the mode it found it in, and the
        # submodels are scored between sub-attacks
        self.dispatch = RandomDispatch(models, generator(0)).eval()
        self.attack = make(self.dispatch)

    def __call__(self, x: Tensor, y: Tensor, seed: int) -> Tensor:
        self.dispatch.gen = generator(derive_seed(seed, "dispatch"))
        return self.attack(x, y, seed)


class AdaptiveExecutor:
    """Crafts chunks of adaptive units (one batch each) against the whole population, with
    the attack the kind's module builds (``adaptive``)."""

    def __init__(self, models: Sequence[nn.Module], x: Tensor, y: Tensor, *, kind: AttackKind,
                 eps: float, params: dict, runtime: AttackRuntime):
        check_params(kind, params)
        self.x, self.y, self.runtime = x, y, runtime
        self.units_per_call = 1  # a unit (one batch) already attacks all n submodels
        self.attack = kind.adaptive(models, float(eps), params, runtime)
        self._continue = functools.partial(kind.adaptive, models, float(eps), runtime=runtime)
        self.kind, self.params = kind, params
        self._continued = None

    def continue_from(self, chunk: list[Unit], starts: list[Tensor], steps: int) -> list[Tensor]:
        """``steps`` more steps of each unit's attack from its iterate (PGD on the expected
        loss; ``core.attacks.ladder``)."""
        if not getattr(self.kind, "CONVERGES", False):
            raise ValueError(f"attack {self.kind.KIND!r} cannot continue from its iterate")
        if self._continued is None or self._continued[0] != int(steps):  # one per rung
            self._continued = (int(steps), self._continue({**self.params, "steps": int(steps)}))
        attack = self._continued[1]
        out = []
        for unit, start in zip(chunk, starts, strict=True):
            xb = self.x[unit.index].to(self.runtime.device)
            yb = self.y[unit.index].to(self.runtime.device)
            out.append(attack.continue_from(xb, yb, start.to(xb.device, xb.dtype)).detach().cpu())
        return out

    def __call__(self, chunk: list[Unit]) -> list[Tensor]:
        out = []
        for unit in chunk:
            xb = self.x[unit.index].to(self.runtime.device)
            yb = self.y[unit.index].to(self.runtime.device)
            out.append(self.attack(xb, yb, unit.seed).detach().cpu())
        return out


def craft_adaptive(models: Sequence[nn.Module], x: Tensor, y: Tensor, *, kind: AttackKind,
                   eps: float, params: dict, batch_size: int, seed: int, device,
                   runtime: AttackRuntime | None = None, progress: bool = False) -> Tensor:
    """One adversarial set crafted against the whole population (module docstring), in
    memory; the attack step saves chunks with ``core.attacks.work.craft_chunks``."""
    runtime = runtime or AttackRuntime(torch.device(device))
    execute = AdaptiveExecutor(models, x, y, kind=kind, eps=eps, params=params, runtime=runtime)
    chunks = chunked(adaptive_units(len(x), batch_size=batch_size, seed=seed),
                     execute.units_per_call)
    with tqdm(total=len(chunks), desc=f"{kind.KIND} adaptive", disable=not progress) as bar:
        results = craft_chunks("adaptive", chunks, execute, x=x, eps=eps,
                               on_chunk=lambda: bar.update(1))
    return assemble(chunks, results, torch.empty_like(x))
