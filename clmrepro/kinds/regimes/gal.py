"""GAL: Gradient Alignment Loss (Kariyappa & Qureshi 2019, arXiv 1901.09981; no official
code: DVERGE's and TRS's re-implementations).  A diversity baseline trained jointly
(core.training.joint); the loss is ``core.training.diversity.gal_loss``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.fields import SafeId, Strict
from clmrepro.kinds.regimes import common

KIND = "gal"
LABEL = "GAL"
BASELINE = True
PAPER_SIZE = None
SOURCE = "GAL, Kariyappa & Qureshi 2019"
LINKED = False
ADVERSARIAL = False
CIFAR_EPOCHS_OPEN = False
MIN_SIZE = 2  # its diversity term compares members' gradients
DEFAULTS = {"lam": 0.5}  # DVERGE arguments.py --lambda, TRS script_train.py gal_coeff
# Per training image and member, in units of T: backpropagation through the input gradients.
# Measured 3.34 (benchmarks.baselines_cost).
COST_FACTOR = 3.5


def activation_factor(n: int) -> float:
    """Saved activations per image and member against plain training (plan.memory): the
    double backward through the input gradients keeps about twice the saved tensors."""
    return 2.0


class Gal(Strict):
    """Kariyappa & Qureshi, 2019 (arXiv 1901.09981)."""

    kind: Literal["gal"] = Field(description="Gradient Alignment Loss: cross-entropies + "
                                 "λ·log Σ exp(cosine similarity of the members' input gradients)")
    from_: SafeId | None = Field(None, alias="from", description="population to start from; "
                                 "null → from scratch (the method's own setting)")
    lam: float | None = Field(None, ge=0, le=100, allow_inf_nan=False, description="λ, weight "
                              "of the gradient alignment term; null → 0.5")


MODEL = Gal


def params(regime: Gal, *, mnist: bool, architecture: str) -> dict:
    diversity = {"method": KIND, "lam": common.pick(regime.lam, DEFAULTS["lam"])}
    return {"linking": None, "adversarial": None, "diversity": diversity}


def reference(regime: Gal) -> Gal:
    return regime


def joint_loss(knobs: dict, forward, models, x, y, x_target, gen, *, epoch: int, epochs: int,
               seed: int):
    from clmrepro.core.training import diversity

    return diversity.gal_loss(forward, x, y, len(models), lam=knobs["lam"])


def train_configs(job_params: dict) -> dict:
    return common.train_configs(job_params, loss=joint_loss)


def price(job_params: dict, units) -> float:
    n = int(job_params["population"]["size"])
    return common.joint_seconds(job_params, units, n * COST_FACTOR * units.train(False))


warnings = common.no_warnings
