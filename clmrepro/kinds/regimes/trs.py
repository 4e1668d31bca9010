"""TRS: Transferability Reduced Smooth ensemble (Yang et al., NeurIPS 2021; code:
AI-secure/Transferability-Reduced-Smooth-Ensemble).  A diversity baseline trained jointly
(core.training.joint); the loss is ``core.training.diversity.trs_loss``, its smoothness radius
growing over the epochs (:func:`radius`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.fields import Budget, Count, SafeId, Strict
from clmrepro.kinds.regimes import common

KIND = "trs"
LABEL = "TRS"
BASELINE = True
PAPER_SIZE = None
SOURCE = "TRS, Yang et al. NeurIPS 2021"
LINKED = False
ADVERSARIAL = False
CIFAR_EPOCHS_OPEN = False
MIN_SIZE = 2  # its diversity term compares members' gradients
# train_trs.py's argparse defaults (its launcher script_train.py runs the same).
DEFAULTS = {"scale": 5.0, "coeff": 2.0, "lamda": 2.0, "init_eps": 0.1, "adv_eps": 0.2,
            "steps": 6}
# Per training image and member, in units of T: backpropagation through the input gradients
# twice (at the image and at a point near it).  Measured 15.75 (benchmarks.baselines_cost).
COST_FACTOR = 17.0


def activation_factor(n: int) -> float:
    """Saved activations per image and member against plain training (plan.memory): the
    double backward through the input gradients keeps about twice the saved tensors."""
    return 2.0


class Trs(Strict):
    """Yang et al., NeurIPS 2021 (code: AI-secure/Transferability-Reduced-Smooth-Ensemble)."""

    kind: Literal["trs"] = Field(description="Transferability Reduced Smooth ensemble: "
                                 "cross-entropies + scale·(coeff·|cos| of input gradients + "
                                 "lamda·gradient magnitude near the image)")
    from_: SafeId | None = Field(None, alias="from", description="population to start from; "
                                 "null → from scratch")
    scale: float | None = Field(None, ge=0, le=100, allow_inf_nan=False, description="overall "
                                "weight of the two terms; null → 5 (authors' code)")
    coeff: float | None = Field(None, ge=0, le=100, allow_inf_nan=False, description="weight "
                                "of the pairwise |cos| of input gradients; null → 2 (code)")
    lamda: float | None = Field(None, ge=0, le=100, allow_inf_nan=False, description="weight "
                                "of the smoothness (gradient magnitude) term; null → 2 (code)")
    init_eps: Budget | None = Field(None, description="radius of the smoothness search in "
                                    "the first epoch; null → 0.1 (code)")
    adv_eps: Budget | None = Field(None, description="radius it grows to, linearly over the "
                                   "epochs; null → 0.2 (code)")
    steps: Count | None = Field(None, le=1000, description="steps of the smoothness search "
                                "(step eps/3); null → 6 (code)")


MODEL = Trs


def params(regime: Trs, *, mnist: bool, architecture: str) -> dict:
    diversity = {"method": KIND, **{key: common.pick(getattr(regime, key), value)
                                    for key, value in DEFAULTS.items()}}
    return {"linking": None, "adversarial": None, "diversity": diversity}


def reference(regime: Trs) -> Trs:
    return regime


def radius(knobs: dict, epoch: int, epochs: int) -> float:
    """TRS's smoothness radius in ``epoch``: init_eps growing linearly towards adv_eps (their
    ``eps = init_eps + (adv_eps - init_eps) * epoch / epochs``)."""
    return knobs["init_eps"] + (knobs["adv_eps"] - knobs["init_eps"]) * epoch / epochs


def joint_loss(knobs: dict, forward, models, x, y, x_target, gen, *, epoch: int, epochs: int,
               seed: int):
    from clmrepro.core.training import diversity

    return diversity.trs_loss(forward, x, y, len(models), scale=knobs["scale"],
                              coeff=knobs["coeff"], lamda=knobs["lamda"],
                              eps=radius(knobs, epoch, epochs), steps=knobs["steps"], gen=gen)


def train_configs(job_params: dict) -> dict:
    return common.train_configs(job_params, loss=joint_loss)


def price(job_params: dict, units) -> float:
    n = int(job_params["population"]["size"])
    return common.joint_seconds(job_params, units, n * COST_FACTOR * units.train(False))


warnings = common.no_warnings
