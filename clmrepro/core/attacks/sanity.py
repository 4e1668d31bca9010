"""Evidence that an attack did its job on a random-dispatch population (issue 18).

A random-dispatch defence is the textbook case of overestimated robustness, so the report
checks its attacks the way the field does (rules and sources: docs/sanity.md; each check is
a module of ``clmrepro.kinds.checks``, which says what it runs and calls the tensor-level
functions below; ``clmrepro.reporting.sanity`` applies the rules).  This module computes what
those rules need, on the first ``N`` test images, for the ``paper`` protocol (each image
attacked on the submodel that crafts it, eq. 6) and the ``adaptive`` threat model (the whole
population):

- ``pgd``: PGD with the grid's settings, traced: the attacker's loss at every step (Pintor
  et al. 2022: an incomplete optimisation leaves the normalised running best still moving
  over the last 10 steps) and the attack's own success measure along its path (silent
  success: a better point passed, a worse one returned);
- ``pgd-2x-steps`` and ``pgd-restarts``: the same with twice the steps, and the best of
  ``restarts`` random starts per image (Carlini et al. 2019: more effort must not help);
- ``pgd-unbounded`` (adaptive): eps = 1 on [0, 1] images must reach (almost) 0%;
- ``square``: Square (Andriushchenko et al. 2020), gradient-free; on the crafting submodel
  (paper) or on the population's mean prediction (adaptive);
- ``noise``: the worst of ``draws`` uniform points in the eps-ball per image;
- ``zero_gradient``: among the images the target still classifies correctly, those whose
  input gradient is exactly 0, of the cross-entropy (the attack's own loss; saturated
  softmaxes zero it) and of the DLR loss (scale free), at the clean point and at a random
  start (AutoAttack's flag, its rule).

Every result is a per-image correctness table (``core.per_image``), scored by every
submodel like the grid's records.  The attacker's success measure is the crafting
submodel's correctness (paper) or the expected accuracy of random dispatch (adaptive);
restarts keep, per image, the run best by that measure, then by the attacker's loss.
Our randomness comes from generators seeded per unit; Square reseeds the global RNG, which
is reseeded before every call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clmrepro.core.attacks.work import Unit, adaptive_units, paper_units
from clmrepro.core.metrics import correctness
from clmrepro.core.per_image import pack
from clmrepro.core.runtime import AttackRuntime
from clmrepro.core.seeding import derive_seed, generator

SANITY_THREATS = ("paper", "adaptive")
TRACE_WINDOW = 10  # Pintor et al.: the last 10 values of the running best


@dataclass(frozen=True)
class PgdSettings:
    eps: float
    alpha: float
    steps: int
    random_start: bool

    def as_dict(self) -> dict:
        return {"eps": self.eps, "alpha": self.alpha, "steps": self.steps,
                "random_start": self.random_start}


@dataclass
class Traced:
    adv: Tensor           # the returned points
    losses: Tensor        # (steps + 1, B): the attacker's loss at the start and after each step
    measure: Tensor       # (steps + 1, B): the success measure there (lower: better attack)


def dlr_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Croce & Hein's difference of logits ratio per image (higher: closer to an error).
    LeNet5's log-probabilities give the same value: only logit differences enter."""
    ordered, _ = logits.sort(dim=1, descending=True)
    true = logits.gather(1, y.unsqueeze(1)).squeeze(1)
    top_is_true = ordered[:, 0] == true
    runner = torch.where(top_is_true, ordered[:, 1], ordered[:, 0])
    return -(true - runner) / (ordered[:, 0] - ordered[:, 2] + 1e-12)


def normalised_span(losses: Tensor, window: int = TRACE_WINDOW) -> Tensor:
    """Per image: the loss trace scaled to [0, 1], its running best (the attack maximises),
    and how much that rose over the last ``window`` steps (Pintor et al.'s indicator)."""
    low, high = losses.min(0).values, losses.max(0).values
    scaled = (losses - low) / torch.where(high > low, high - low, torch.ones_like(high))
    best = torch.cummax(scaled, dim=0).values
    back = max(0, best.shape[0] - 1 - window)
    return best[-1] - best[back]


class Target:
    """What one attack call aims at: a per-image loss to raise and a per-image success
    measure (the crafting submodel's correctness, or the expected accuracy)."""

    def __init__(self, models: Sequence[nn.Module], runtime: AttackRuntime):
        self.models, self.runtime = list(models), runtime

    def outputs(self, x: Tensor) -> list[Tensor]:
        with self.runtime.autocast():
            return [m(x).float() for m in self.models]

    def loss(self, x: Tensor, y: Tensor, kind: str = "ce") -> Tensor:
        outs = self.outputs(x)
        if kind == "dlr":
            return torch.stack([dlr_loss(o, y) for o in outs]).mean(0)
        return torch.stack([F.cross_entropy(o, y, reduction="none") for o in outs]).mean(0)

    def measure(self, x: Tensor, y: Tensor) -> Tensor:
        with torch.no_grad():
            return torch.stack([(o.argmax(1) == y).double() for o in self.outputs(x)]).mean(0)


def random_start(x: Tensor, eps: float, gen: torch.Generator) -> Tensor:
    """A uniform point of the L∞ ε-ball around each image, in [0, 1] (PGD's random start)."""
    noise = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)
    return (x + (2 * noise - 1) * eps).clamp(0, 1)


def traced_pgd(target: Target, x: Tensor, y: Tensor, pgd: PgdSettings,
               gen: torch.Generator) -> Traced:
    """L∞ PGD on ``target.loss`` (sign steps, projection, [0, 1]), recording its trace."""
    adv = random_start(x, pgd.eps, gen) if pgd.random_start else x.clone()
    losses, measures = [], []
    for step in range(pgd.steps + 1):
        adv.requires_grad_(True)
        loss = target.loss(adv, y)
        losses.append(loss.detach())
        measures.append(target.measure(adv.detach(), y))
        if step == pgd.steps:
            break
        grad = torch.autograd.grad(loss.sum(), adv)[0]
        adv = adv.detach() + pgd.alpha * grad.sign()
        adv = (x + (adv - x).clamp(-pgd.eps, pgd.eps)).clamp(0, 1)
    return Traced(adv.detach(), torch.stack(losses), torch.stack(measures))


def best_of_restarts(target: Target, x: Tensor, y: Tensor, pgd: PgdSettings, restarts: int,
                     seed: int) -> Tensor:
    """Per image the restart best for the attacker: lowest success measure, then highest
    loss (random starts, whatever the grid's PGD says: identical restarts would be one)."""
    settings = PgdSettings(pgd.eps, pgd.alpha, pgd.steps, True)
    best = best_key = None
    for r in range(restarts):
        run = traced_pgd(target, x, y, settings, generator(derive_seed(seed, "restart", r)))
        # lexicographic: measure first (lower is better), loss second (higher is better)
        key = torch.stack([run.measure[-1], -run.losses[-1].double()], dim=1)
        if best is None:
            best, best_key = run.adv.clone(), key
            continue
        better = (key[:, 0] < best_key[:, 0]) | ((key[:, 0] == best_key[:, 0])
                                                 & (key[:, 1] < best_key[:, 1]))
        best[better], best_key[better] = run.adv[better], key[better]
    return best


def worst_noise(score: Callable[[Tensor], Tensor], x: Tensor, eps: float, draws: int,
                gen: torch.Generator) -> Tensor:
    """Per image the uniform draw in the eps-ball with the lowest expected accuracy."""
    best, best_acc = x.clone(), None
    for _ in range(draws):
        noise = torch.rand(x.shape, generator=gen, dtype=x.dtype).to(x.device)
        point = (x + (2 * noise - 1) * eps).clamp(0, 1)
        acc = score(point)
        if best_acc is None:
            best, best_acc = point, acc
            continue
        lower = acc < best_acc
        best[lower], best_acc = point[lower], torch.minimum(best_acc, acc)
    return best


class MeanPrediction(nn.Module):
    """The population's mean predicted probability, as log-probabilities: what a
    gradient-free attacker on the whole population scores (Square's margin loss)."""

    def __init__(self, models: Sequence[nn.Module], runtime: AttackRuntime):
        super().__init__()
        self.members, self.runtime = nn.ModuleList(models), runtime

    def forward(self, x: Tensor) -> Tensor:
        with self.runtime.autocast():
            probs = torch.stack([F.softmax(m(x).float(), dim=1) for m in self.members]).mean(0)
        return probs.clamp_min(1e-30).log()


def square(model: nn.Module, x: Tensor, y: Tensor, *, eps: float, n_queries: int,
           p_init: float, seed: int) -> Tensor:
    """torchattacks' Square, every parameter explicit; ``resc_schedule=False`` as the
    reference AutoAttack runs it (docs/reference.md §8)."""
    import torchattacks

    attack = torchattacks.Square(model, norm="Linf", eps=eps, n_queries=n_queries,
                                 n_restarts=1, p_init=p_init, loss="margin",
                                 resc_schedule=False, seed=seed, verbose=False)
    torch.manual_seed(seed)
    return attack(x, y).detach()


ZERO_GRADIENT_LOSSES = ("ce", "dlr")      # the attack's own loss, and AutoAttack's
ZERO_GRADIENT_POINTS = ("clean", "random")


def zero_gradients(target: Target, x: Tensor, y: Tensor, eps: float,
                   gen: torch.Generator) -> dict[str, int]:
    """AutoAttack's ``check_zero_gradients`` rule, on the images the target still classifies
    correctly (its success measure above 0 at the clean point: the crafting submodel right,
    or some member right): per loss (the cross-entropy, which our PGD raises, the expected one
    over the population when the target is the population; and the DLR loss, which logit
    scaling cannot saturate) and per point (the clean image, and a random start in the
    ε-ball, where APGD computes its first gradient), how many of them have an input gradient
    that is exactly zero.  Keys: ``of`` (images checked), ``images`` (those with a zero
    gradient on any loss at any point) and ``<loss>/<point>``."""
    checked = target.measure(x, y) > 0
    points = {"clean": x, "random": random_start(x, eps, gen)}
    zero = {}
    for point, at in points.items():
        leaf = at.clone().requires_grad_(True)
        for loss in ZERO_GRADIENT_LOSSES:
            grad = torch.autograd.grad(target.loss(leaf, y, kind=loss).sum(), leaf)[0]
            zero[f"{loss}/{point}"] = (grad.flatten(1).abs().sum(1) == 0) & checked
    found = torch.stack(list(zero.values())).any(0)
    return {"of": int(checked.sum()), "images": int(found.sum()),
            **{key: int(z.sum()) for key, z in zero.items()}}


def add_counts(total, count):
    """A check's per-unit counts summed over the units: numbers, or dicts of numbers."""
    if total is None:
        return count
    if isinstance(count, Mapping):
        return {key: total[key] + count[key] for key in count}
    return total + count


@dataclass(frozen=True)
class SanitySettings:
    """One sanity job: the checks' job parts (``clmrepro.kinds.checks``: each says which
    attacks it adds, how it runs on a unit, whether it needs the trace, what it counts), the
    threat models, the checked PGD and the job's sanity params (the checks' knobs)."""

    jobs: tuple
    threat_models: tuple[str, ...]
    pgd: PgdSettings
    params: Mapping
    crafting: str
    batch_size: int


@dataclass
class UnitWork:
    """What a check runs on for one unit of work: the batch (on the device), the target the
    unit attacks (its crafting submodel, or the population) and the whole population."""

    models: list[nn.Module]
    runtime: AttackRuntime
    threat: str
    unit: Unit
    x: Tensor
    y: Tensor
    target: Target
    everyone: Target
    pgd: PgdSettings
    params: Mapping


def _units(threat: str, n_models: int, n_images: int, settings: SanitySettings, seed: int,
           crafters: Tensor | None) -> list[Unit]:
    if threat == "paper":
        return paper_units(crafters, n_models, batch_size=settings.batch_size,
                           seed=derive_seed(seed, "paper"))
    return adaptive_units(n_images, batch_size=settings.batch_size,
                          seed=derive_seed(seed, "adaptive"))


def check_threat(models: Sequence[nn.Module], x: Tensor, y: Tensor, *, threat: str,
                 settings: SanitySettings, seed: int, runtime: AttackRuntime,
                 crafters: Tensor | None = None, on_unit: Callable[[], None] | None = None
                 ) -> dict:
    """Everything one threat model's checks need, on images ``x`` (docstring; the layout
    is the check file's, docs/sanity.md): the traced PGD, then each check's attacks and
    counts, in the order of ``settings.jobs``."""
    n, size = len(models), len(x)
    pgd, params = settings.pgd, settings.params
    plan = [(job, job.attacks(params, threat)) for job in settings.jobs]
    attack_params = {"pgd": pgd.as_dict()}
    for _, found in plan:
        attack_params.update(found)
    sets = {name: torch.empty_like(x) for name in attack_params}
    counts: list = [None] * len(plan)
    span = torch.zeros(size, dtype=torch.float64)
    path_best, final = torch.zeros(size, dtype=torch.float64), torch.zeros(size, dtype=torch.float64)
    everyone = Target(models, runtime)
    for unit in _units(threat, n, size, settings, seed, crafters):
        idx = unit.index
        xb, yb = x[idx].to(runtime.device), y[idx].to(runtime.device)
        target = everyone if unit.crafter is None else Target([models[unit.crafter]], runtime)
        run = traced_pgd(target, xb, yb, pgd, generator(derive_seed(unit.seed, "pgd")))
        sets["pgd"][idx] = run.adv.cpu()
        span[idx] = normalised_span(run.losses.double()).cpu()
        path_best[idx] = run.measure.min(0).values.cpu()
        final[idx] = run.measure[-1].cpu()
        work = UnitWork(list(models), runtime, threat, unit, xb, yb, target, everyone, pgd,
                        params)
        for k, (job, found) in enumerate(plan):
            if found and job.run is not None:
                for name, adv in job.run(work).items():
                    sets[name][idx] = adv.cpu()
            if job.count is not None:
                counts[k] = add_counts(counts[k], job.count(work))
        if on_unit is not None:
            on_unit()
    attacks = {}
    for name, adv in sets.items():
        table = correctness(models, adv, y, batch_size=settings.batch_size,
                            device=runtime.device, runtime=runtime)
        attacks[name] = {"params": attack_params[name], "correct": pack(table)}
    out: dict = {"attacks": attacks}
    objective = ("cross-entropy of the crafting submodel" if threat == "paper"
                 else "expected cross-entropy over the submodels")
    measure = ("the crafting submodel's correctness" if threat == "paper"
               else "expected accuracy of random dispatch")
    if any(job.trace for job in settings.jobs):
        out["trace"] = {"objective": objective, "measure": measure, "steps": pgd.steps,
                        "window": TRACE_WINDOW,
                        "span_last10": [round(float(v), 6) for v in span],
                        "path_best": [round(float(v), 6) for v in path_best],
                        "final": [round(float(v), 6) for v in final]}
    for k, (job, _) in enumerate(plan):
        if job.section is not None:
            out.update(job.section(params, counts[k], size))
    return out
