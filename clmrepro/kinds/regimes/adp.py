"""ADP: Adaptive Diversity Promoting (Pang et al., ICML 2019; code:
P2333/Adaptive-Diverse-Ensemble).  A diversity baseline the paper does not run: the members
train jointly on one shared order, one loss over all of them (core.training.joint); the loss
is ``core.training.diversity.adp_loss``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.fields import SafeId, Strict
from clmrepro.kinds.regimes import common

KIND = "adp"
LABEL = "ADP"
BASELINE = True  # not in the paper: trained jointly, listed as such in the report
PAPER_SIZE = None
SOURCE = "ADP, Pang et al. ICML 2019"
LINKED = False
ADVERSARIAL = False
CIFAR_EPOCHS_OPEN = False
MIN_SIZE = 2  # its diversity term compares members
# The authors' code (``Loss_withEE_DPP``): α, β of ADP_{2,0.5}; the offsets inside the
# entropy's log and added to the Gram matrix.
DEFAULTS = {"alpha": 2.0, "beta": 0.5, "log_offset": 1e-20, "det_offset": 1e-6}
# Per training image and member, in units of a plain training step T: one step plus the
# determinant.  Measured 0.92 (benchmarks.baselines_cost, docs/baselines.md "What it costs").
COST_FACTOR = 1.0


def activation_factor(n: int) -> float:
    """Saved activations per image and member against plain training (plan.memory): one
    forward and backward, as plain training."""
    return 1.0


class Adp(Strict):
    """Pang et al., ICML 2019 (code: P2333/Adaptive-Diverse-Ensemble)."""

    kind: Literal["adp"] = Field(description="Adaptive Diversity Promoting: the members' "
                                 "cross-entropies − α·ensemble entropy − β·log ensemble diversity")
    from_: SafeId | None = Field(None, alias="from", description="population to start from; "
                                 "null → from scratch (the method's own setting)")
    alpha: float | None = Field(None, ge=0, le=100, allow_inf_nan=False, description="weight of "
                                "the ensemble entropy; null → 2 (authors' code)")
    beta: float | None = Field(None, ge=0, le=100, allow_inf_nan=False, description="weight of "
                               "the log-determinant; null → 0.5 (authors' code)")


MODEL = Adp


def params(regime: Adp, *, mnist: bool, architecture: str) -> dict:
    diversity = {"method": KIND, **DEFAULTS, "alpha": common.pick(regime.alpha, DEFAULTS["alpha"]),
                 "beta": common.pick(regime.beta, DEFAULTS["beta"])}
    return {"linking": None, "adversarial": None, "diversity": diversity}


def reference(regime: Adp) -> Adp:
    return regime


def joint_loss(knobs: dict, forward, models, x, y, x_target, gen, *, epoch: int, epochs: int,
               seed: int):
    """(loss, outputs on the clean batch, terms) of one shared batch: core.training.config.JointLoss."""
    from clmrepro.core.training import diversity

    m = len(models)
    out = forward(x.unsqueeze(0).expand(m, *x.shape))
    loss, terms = diversity.adp_loss(out, y, alpha=knobs["alpha"], beta=knobs["beta"],
                                     log_offset=knobs["log_offset"], det_offset=knobs["det_offset"])
    return loss, out, terms


def train_configs(job_params: dict) -> dict:
    return common.train_configs(job_params, loss=joint_loss)


def price(job_params: dict, units) -> float:
    n = int(job_params["population"]["size"])
    return common.joint_seconds(job_params, units, n * COST_FACTOR * units.train(False))


def warnings(population, n_classes: int) -> list[str]:
    """ADP's log-det term is degenerate with as many members as classes or more: it takes the
    Gram matrix of the members' normalised non-true-class predictions, n vectors in
    n_classes − 1 dimensions, which is singular for n ≥ n_classes whatever they predict."""
    n = population.size
    if n < n_classes:
        return []
    return [f"adp with {n} members on {n_classes} classes: the log-det diversity term is "
            f"degenerate — its Gram matrix holds {n} normalised non-true predictions in "
            f"{n_classes - 1} dimensions, so it is singular whatever the members predict; the "
            f"term then reads the det_offset (1e-6) in {n - n_classes + 1} direction(s) and can "
            f"make at most {n_classes - 1} members mutually diverse (docs/baselines.md); use "
            f"size ≤ {n_classes - 1} for the method as designed"]
