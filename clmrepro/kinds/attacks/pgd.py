"""PGD (Madry et al. 2018, eq. 2 of the paper): L∞ projected signed-gradient ascent, the
authors' 40 steps of 0.01 (MNIST) or 2/255 (CIFAR-10) from a uniform random start."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_serializer

from clmrepro.fields import Count, Step
from clmrepro.kinds.attacks.base import (CONVERGE_HELP, AttackBase, Converge, paper_departures,
                                         pick)

LABEL = "PGD"  # in the report's tables
KIND = "pgd"


class Pgd(AttackBase):
    kind: Literal["pgd"] = Field(description="Madry et al., eq. 2")
    steps: Count = Field(40, le=100_000, description="iterations (authors' code: 40)")
    alpha: Step | None = Field(None, description="step size; null → 0.01 MNIST, 2/255 CIFAR-10")
    random_start: bool = Field(True, description="uniform start in the ball (authors' code)")
    # the schema leaves the null default unwritten: snakemake.utils.validate would fill the
    # knob's own defaults into that null (as for evaluation.sanity, emit.schema)
    converge: Converge | None = Field(None, description=CONVERGE_HELP,
                                      json_schema_extra=lambda s: s.pop("default", None))

    @model_serializer(mode="wrap")
    def _without_null_converge(self, handler):
        # a spec without the knob dumps (and hashes: plan.compile.spec_sha256) as before it
        data = handler(self)
        if self.converge is None and isinstance(data, dict):
            data.pop("converge", None)
        return data


Spec = Pgd  # the registry's name for a kind's spec model

PARAM_KEYS = frozenset({"alpha", "steps", "random_start"})
OPTIONAL_KEYS = frozenset({"converge"})   # present only when the spec asks for convergence
CONVERGES = True   # PGD continued from its own iterate for s steps = PGD with s more steps
ADAPTIVE_ONLY = False
BATCHED = True
PAPER = {"steps": 40}


def params(attack: Pgd, eps: float, pgd_alpha: float) -> dict:
    out = {"alpha": pick(attack.alpha, pgd_alpha), "steps": attack.steps,
           "random_start": attack.random_start}
    if attack.converge is not None:  # absent otherwise: job files as before the knob
        out["converge"] = attack.converge.model_dump()
    return out


def departures(attack: Pgd) -> list[str]:
    return paper_departures(attack, PAPER)


def deterministic(params: dict) -> None:
    return None


def sign_steps(eps: float, params: dict) -> dict:
    return {"fgsm": False, "alpha": float(params["alpha"]), "steps": int(params["steps"]),
            "random_start": bool(params["random_start"]), "decay": None}


def build(model, eps: float, params: dict):
    import torchattacks

    return torchattacks.PGD(model, eps=eps, alpha=float(params["alpha"]),
                            steps=int(params["steps"]),
                            random_start=bool(params["random_start"]))


def adaptive_record(eps: float, params: dict) -> dict:
    return dict(params)


def adaptive(models, eps: float, params: dict, runtime):
    """PGD on the exact expected loss over all submodels (``core.attacks.adaptive``)."""
    from clmrepro.core.attacks.adaptive import ExpectedLossPGD, WithGenerator

    return WithGenerator(ExpectedLossPGD(models, eps=eps, alpha=params["alpha"],
                                         steps=params["steps"],
                                         random_start=params.get("random_start", False),
                                         decay=None, runtime=runtime))


def gradient_steps(params: dict) -> int:
    """Steps the plan prices: with ``converge``, the whole ladder up to ``max_steps`` (the
    worst case; a ladder that converges earlier costs less: docs/sanity.md)."""
    converge = params.get("converge")
    return int(params["steps"]) if converge is None else ladder_steps(params)[-1]


def ladder_steps(params: dict) -> list[int]:
    """The rungs' steps: ``steps`` doubled while within ``converge.max_steps``."""
    rungs = [int(params["steps"])]
    converge = params.get("converge")
    while converge is not None and 2 * rungs[-1] <= int(converge["max_steps"]):
        rungs.append(2 * rungs[-1])
    return rungs


def seconds_one(job: dict, u, params: dict) -> float:
    return gradient_steps(params) * u.attack_step("pgd")


def seconds_adaptive(job: dict, u, params: dict, n: int, images: int) -> float:
    return images * n * gradient_steps(params) * u.grad("all" if u.batched else None)


def calibration_params(eps: float, alpha: float) -> tuple[dict, int]:
    # short runs: the cost per gradient step does not depend on the step count
    return {"steps": 5, "random_start": True, "alpha": alpha}, 5
