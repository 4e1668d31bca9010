"""ARC (Dbouk & Shanbhag, ICML 2022; ``core.attacks.arc``): the strongest known attack on a
random-dispatch population, on its exact expected accuracy.  It attacks the population as a
whole, so only the adaptive threat model runs it; its PGD start is the expected-loss PGD of
``core.attacks.adaptive``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.fields import Count, Step
from clmrepro.kinds.attacks.base import AttackBase, pick

LABEL = "ARC"  # in the report's tables
KIND = "arc"
N_CLASSES = 10  # MNIST and CIFAR-10; ARC's full search visits every class


class Arc(AttackBase):
    """ARC (Dbouk & Shanbhag, ICML 2022; core.attacks.arc): the strongest known attack on a
    random-dispatch population, on its exact expected accuracy.  Adaptive threat model only."""

    kind: Literal["arc"] = Field(description="Dbouk & Shanbhag's ARC on the exact expected "
                                 "accuracy of random dispatch (adaptive threat model only)")
    steps: Count = Field(20, le=10_000, description="iterations, each visiting every submodel "
                         "(their runs: 20)")
    step_size: Step | None = Field(None, description="local L∞ radius eta of one move; null → "
                                   "eps (their L∞ runs: eta = eps)")
    candidates: Literal["all", "topk"] = Field("all", description="decision boundaries "
                                               "searched per submodel: all classes (ARC) or "
                                               "the topk largest logits (their ARC-lite)")
    topk: int | None = Field(None, ge=2, le=1000, description="classes searched with "
                             "candidates: topk (the predicted one included); null with all")
    rho: float = Field(0.05, ge=0, le=1, allow_inf_nan=False, description="distance kept off "
                       "a boundary, as a fraction of eps (their code: 0.05)")
    start: Literal["pgd", "clean", "random"] = Field("pgd", description="pgd: start from the "
                                                     "expected-loss PGD below and never end "
                                                     "above it; clean: their code; random: a "
                                                     "uniform point of the ball")
    start_steps: Count = Field(40, le=100_000, description="iterations of the PGD start")
    start_alpha: Step | None = Field(None, description="step of the PGD start; null → 0.01 "
                                     "MNIST, 2/255 CIFAR-10")
    start_random_start: bool = Field(True, description="the PGD start begins at a uniform "
                                     "point of the ball")
    samples: Count | None = Field(None, description="test images ARC attacks: the first ones "
                                  "of the adaptive threat model's; null → adaptive_samples. A "
                                  "stated subset: ARC costs ~5x expected-loss PGD-40")


Spec = Arc  # the registry's name for a kind's spec model

# iterations, local step eta, the classes searched, rho as a fraction of eps, and where it
# starts (with the expected-loss PGD it may start from)
PARAM_KEYS = frozenset({"steps", "step_size", "candidates", "topk", "rho", "start",
                        "start_steps", "start_alpha", "start_random_start"})
ADAPTIVE_ONLY = True
BATCHED = False


def params(attack: Arc, eps: float, pgd_alpha: float) -> dict:
    return {"steps": attack.steps, "step_size": pick(attack.step_size, eps),
            "candidates": attack.candidates, "topk": attack.topk, "rho": attack.rho,
            "start": attack.start, "start_steps": attack.start_steps,
            "start_alpha": pick(attack.start_alpha, pgd_alpha),
            "start_random_start": attack.start_random_start}


def departures(attack: Arc) -> list[str]:
    return []  # not in the paper: the report lists ARC as an addition of its own


def deterministic(params: dict) -> None:
    return None


def sign_steps(eps: float, params: dict) -> None:
    return None


build = None  # no attack on one submodel: ARC exists against the population only


def adaptive_record(eps: float, params: dict) -> dict:
    return dict(params)


def adaptive(models, eps: float, params: dict, runtime):
    """Exact expected accuracy, deterministic but for its PGD start."""
    from clmrepro.core.attacks.adaptive import ExpectedLossPGD, WithGenerator
    from clmrepro.core.attacks.arc import ARC, expected_accuracy_of
    from clmrepro.core.metrics import population_classifier

    p = params
    start = ExpectedLossPGD(models, eps=eps, alpha=float(p["start_alpha"]),
                            steps=int(p["start_steps"]),
                            random_start=bool(p["start_random_start"]), runtime=runtime)
    return WithGenerator(ARC(
        models, eps=eps, steps=int(p["steps"]), step_size=float(p["step_size"]),
        candidates=p["candidates"], topk=None if p["topk"] is None else int(p["topk"]),
        rho_fraction=float(p["rho"]), start=p["start"],
        accuracy=expected_accuracy_of(population_classifier(models, runtime)),
        start_attack=start))


def gradient_steps(params: dict) -> int:
    return int(params["steps"])


def seconds_one(job: dict, u, params: dict) -> float:
    raise ValueError("arc runs against the whole population only (adaptive threat model)")


def seconds_adaptive(job: dict, u, params: dict, n: int, images: int) -> float:
    """ARC per image (core.attacks.arc): its PGD start (n gradients a step), then per
    iteration and submodel the gradients of the k searched logits and the expected accuracy
    (n forwards), plus one more expected accuracy per iteration."""
    classes = N_CLASSES if params["candidates"] == "all" else int(params["topk"])
    grad = u.grad("all" if u.batched else None)
    forward = u.forward(int(job["params"].get("batch_size", 100)), u.batched)
    start = n * int(params["start_steps"]) * grad if params["start"] == "pgd" else 0.0
    return images * (start + int(params["steps"]) * (n * (classes * grad + n * forward)
                                                     + n * forward))


def calibration_params(eps: float, alpha: float) -> None:
    return None
