"""FGSM (Goodfellow et al. 2015, eq. 1 of the paper): one signed-gradient step of size eps."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.kinds.attacks.base import AttackBase

LABEL = "FGSM"  # in the report's tables
KIND = "fgsm"


class Fgsm(AttackBase):
    kind: Literal["fgsm"] = Field(description="Goodfellow et al., eq. 1")


Spec = Fgsm  # the registry's name for a kind's spec model

PARAM_KEYS: frozenset[str] = frozenset()
ADAPTIVE_ONLY = False
BATCHED = True


def params(attack: Fgsm, eps: float, pgd_alpha: float) -> dict:
    return {}


def departures(attack: Fgsm) -> list[str]:
    return []


def deterministic(params: dict) -> None:
    return None


def sign_steps(eps: float, params: dict) -> dict:
    """One step of eps from the clean image, clamped to [0, 1] (torchattacks ``FGSM``)."""
    return {"fgsm": True, "alpha": eps, "steps": 1, "random_start": False, "decay": None}


def build(model, eps: float, params: dict):
    import torchattacks

    return torchattacks.FGSM(model, eps=eps)


def adaptive_record(eps: float, params: dict) -> dict:
    return {"alpha": float(eps), "steps": 1, "random_start": False}


def adaptive(models, eps: float, params: dict, runtime):
    """One step of eps on the exact expected loss (``core.attacks.adaptive``)."""
    from clmrepro.core.attacks.adaptive import ExpectedLossPGD, WithGenerator

    p = adaptive_record(eps, params)
    return WithGenerator(ExpectedLossPGD(models, eps=eps, alpha=p["alpha"], steps=p["steps"],
                                         random_start=p["random_start"], decay=None,
                                         runtime=runtime))


def gradient_steps(params: dict) -> int:
    return 1


def seconds_one(job: dict, u, params: dict) -> float:
    return u.attack_step("fgsm")


def seconds_adaptive(job: dict, u, params: dict, n: int, images: int) -> float:
    return images * n * gradient_steps(params) * u.grad("all" if u.batched else None)


def calibration_params(eps: float, alpha: float) -> tuple[dict, int]:
    return {}, 1
