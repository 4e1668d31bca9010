"""MI-FGSM (Dong et al. 2018): iterative FGSM with momentum on the L1-normalised gradient.
Defaults are torchattacks 2.14's, the paper's version (5 steps of eps / 5, decay 1.0); 3.5.1
changed them (docs/reference.md §2)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.fields import Count, Step
from clmrepro.kinds.attacks.base import AttackBase, paper_departures, pick

LABEL = "MI-FGSM"  # in the report's tables
KIND = "mifgsm"


class Mifgsm(AttackBase):
    kind: Literal["mifgsm"] = Field(description="Dong et al., momentum iterative FGSM")
    steps: Count = Field(5, le=100_000, description="iterations (torchattacks 2.14: 5)")
    alpha: Step | None = Field(None, description="step size; null → eps / steps (torchattacks 2.14)")
    decay: float = Field(1.0, ge=0, le=100, allow_inf_nan=False, description="momentum decay")


Spec = Mifgsm  # the registry's name for a kind's spec model

PARAM_KEYS = frozenset({"alpha", "steps", "decay"})
ADAPTIVE_ONLY = False
BATCHED = True
PAPER = {"steps": 5, "decay": 1.0}


def params(attack: Mifgsm, eps: float, pgd_alpha: float) -> dict:
    # torchattacks 2.14 (the paper's version) ran alpha = eps / steps.
    return {"alpha": pick(attack.alpha, eps / attack.steps), "steps": attack.steps,
            "decay": attack.decay}


def departures(attack: Mifgsm) -> list[str]:
    return paper_departures(attack, PAPER)


def deterministic(params: dict) -> None:
    return None


def sign_steps(eps: float, params: dict) -> dict:
    return {"fgsm": False, "alpha": float(params["alpha"]), "steps": int(params["steps"]),
            "random_start": False, "decay": float(params["decay"])}


def build(model, eps: float, params: dict):
    import torchattacks

    return torchattacks.MIFGSM(model, eps=eps, alpha=float(params["alpha"]),
                               steps=int(params["steps"]), decay=float(params["decay"]))


def adaptive_record(eps: float, params: dict) -> dict:
    return dict(params)


def adaptive(models, eps: float, params: dict, runtime):
    """MI-FGSM on the exact expected loss over all submodels (``core.attacks.adaptive``)."""
    from clmrepro.core.attacks.adaptive import ExpectedLossPGD, WithGenerator

    return WithGenerator(ExpectedLossPGD(models, eps=eps, alpha=params["alpha"],
                                         steps=params["steps"],
                                         random_start=params.get("random_start", False),
                                         decay=float(params["decay"]), runtime=runtime))


def gradient_steps(params: dict) -> int:
    return int(params["steps"])


def seconds_one(job: dict, u, params: dict) -> float:
    return int(params["steps"]) * u.attack_step("mifgsm")


def seconds_adaptive(job: dict, u, params: dict, n: int, images: int) -> float:
    return images * n * gradient_steps(params) * u.grad("all" if u.batched else None)


def calibration_params(eps: float, alpha: float) -> tuple[dict, int]:
    return {"steps": 5, "decay": 1.0, "alpha": eps / 5}, 5
