"""Square (Andriushchenko et al., ECCV 2020): a gradient-free L∞ attack by random search, one
query per step, each changing a square of pixels by ±eps at once; AutoAttack's fourth
component.  It sees only the model's outputs, so it is blind to gradient masking: on the grid
it tells a robust population from one whose gradients mislead the others (docs/sanity.md).

torchattacks 3.5.1 ``Square`` with every parameter explicit; the defaults are the reference
AutoAttack's (5,000 queries, ``p_init`` 0.8, margin loss, ``resc_schedule`` off;
docs/reference.md §8), as ``core.attacks.sanity`` runs it.  Against the whole population
(``adaptive``) it queries the population's mean predicted probability
(``core.attacks.sanity.MeanPrediction``), as the sanity check does, and is scored like every
adaptive set on the exact expected accuracy.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.fields import Count
from clmrepro.kinds.attacks.base import AttackBase, label

KIND = "square"
LABEL = "Square"  # in the report's tables


class Square(AttackBase):
    kind: Literal["square"] = Field(description="Andriushchenko et al.'s Square: gradient-free "
                                    "random search (AutoAttack's fourth component)")
    n_queries: Count = Field(5000, le=10_000_000, description="queries per image (AutoAttack: "
                             "5,000)")
    n_restarts: Count = Field(1, le=1000, description="restarts (AutoAttack: 1)")
    p_init: float = Field(0.8, gt=0, le=1, allow_inf_nan=False, description="initial fraction "
                          "of pixels a square changes (AutoAttack: 0.8)")
    loss: Literal["margin", "ce"] = Field("margin", description="what the search lowers: the "
                                          "margin of the true class (AutoAttack) or cross-entropy")
    resc_schedule: bool = Field(False, description="rescale the square-size schedule to "
                                "n_queries (torchattacks' default); false: the reference "
                                "AutoAttack's schedule for 10,000 queries")


Spec = Square  # the registry's name for a kind's spec model
PARAM_KEYS = frozenset({"n_queries", "n_restarts", "p_init", "loss", "resc_schedule"})
ADAPTIVE_ONLY = False
BATCHED = False  # data-dependent queries per image: torchattacks, one submodel at a time


def params(attack: Square, eps: float, pgd_alpha: float) -> dict:
    return {"n_queries": attack.n_queries, "n_restarts": attack.n_restarts,
            "p_init": attack.p_init, "loss": attack.loss,
            "resc_schedule": attack.resc_schedule}


def departures(attack: Square) -> list[str]:
    return [f"attack {label(attack)}: Square is not one of the paper's attacks (a gradient-free "
            "check of the gradient attacks' numbers)"]


def deterministic(params: dict) -> None:
    return None


def sign_steps(eps: float, params: dict) -> None:
    return None


def build(model, eps: float, params: dict):
    import torchattacks

    # seed 0 is overwritten before every call (core.attacks.sequential.seed_attack)
    return torchattacks.Square(model, norm="Linf", eps=eps, n_queries=int(params["n_queries"]),
                               n_restarts=int(params["n_restarts"]),
                               p_init=float(params["p_init"]), loss=params["loss"],
                               resc_schedule=bool(params["resc_schedule"]), seed=0,
                               verbose=False)


def adaptive_record(eps: float, params: dict) -> dict:
    return dict(params)


def adaptive(models, eps: float, params: dict, runtime):
    """Square on the population's mean prediction, reseeded per batch."""
    from clmrepro.core.attacks.sanity import MeanPrediction
    from clmrepro.core.attacks.sequential import Seeded

    # eval mode: torchattacks hands a model back in the mode it found it in
    return Seeded(build(MeanPrediction(models, runtime).eval(), eps, params))


def gradient_steps(params: dict) -> int:
    return 0  # gradient-free


def _query(u) -> float:
    """Seconds per image and query on one model: AutoAttack's Square as calibrated."""
    units, _ = u.autoattack()
    return units["square"]


def seconds_one(job: dict, u, params: dict) -> float:
    # an upper bound: every image keeps being queried (Square stops on the broken ones)
    return int(params["n_restarts"]) * int(params["n_queries"]) * _query(u)


def seconds_adaptive(job: dict, u, params: dict, n: int, images: int) -> float:
    return images * n * seconds_one(job, u, params)  # a query asks all n submodels


def calibration_params(eps: float, alpha: float) -> None:
    return None  # priced from AutoAttack's calibrated Square (``_query``)
