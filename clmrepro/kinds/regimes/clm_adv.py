"""CLM-Adv: counter linking (Alg. 1, eq. 4-5) and PGD adversarial training together; the
paper retrains it from the ULM-Adv with smaller alpha and delta (§3)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.fields import SafeId
from clmrepro.kinds.regimes import common
from clmrepro.kinds.regimes.common import Adversarial, Linking

KIND = "clm-adv"
LABEL = "CLM-Adv"
BASELINE = False
PAPER_SIZE = 4
SOURCE = None
LINKED = True
ADVERSARIAL = True
CIFAR_EPOCHS_OPEN = False
MIN_SIZE = 2  # counter-linking needs two members' coinciding weights


class ClmAdv(Linking):
    kind: Literal["clm-adv"] = Field(description="counter-linked with PGD adversarial training")
    from_: SafeId | None = Field(None, alias="from", description="population to retrain "
                                 "(paper: from the ULM-Adv); null → from scratch")
    adversarial: Adversarial = Field(default_factory=Adversarial, description="PGD training knobs")


MODEL = ClmAdv


def params(regime: ClmAdv, *, mnist: bool, architecture: str) -> dict:
    return {"linking": common.linking_params(regime, mnist=mnist, adversarial=True),
            "adversarial": common.adversarial_params(regime.adversarial, mnist=mnist),
            "diversity": None}


def reference(regime: ClmAdv) -> ClmAdv:
    return regime.model_copy(update={**common.LINKING_DATASET_KNOBS, "adversarial": Adversarial()})


def train_configs(job_params: dict) -> dict:
    return common.train_configs(job_params)


def price(job_params: dict, units) -> float:
    return common.population_seconds(job_params, units)


warnings = common.no_warnings
