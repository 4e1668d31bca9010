"""CLM: counter-linked submodels (paper §2-3, Alg. 1): each submodel's full pass in turn, a
PRSE of its first weight layer against a random partner every ``prse_every`` minibatches
(eq. 4-5, core.training.linking).  The paper retrains CLM from a trained ULM."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.fields import SafeId
from clmrepro.kinds.regimes import common
from clmrepro.kinds.regimes.common import Linking

KIND = "clm"
LABEL = "CLM"
BASELINE = False
PAPER_SIZE = 10
SOURCE = None
LINKED = True
ADVERSARIAL = False
CIFAR_EPOCHS_OPEN = False  # the paper retrains it for 150 epochs
MIN_SIZE = 2  # counter-linking needs two members' coinciding weights


class Clm(Linking):
    kind: Literal["clm"] = Field(description="counter-linked (PRSE during training)")
    from_: SafeId | None = Field(None, alias="from", description="population to retrain "
                                 "(paper: CLM is retrained from the ULM); null → from scratch")


MODEL = Clm


def params(regime: Clm, *, mnist: bool, architecture: str) -> dict:
    return {"linking": common.linking_params(regime, mnist=mnist, adversarial=False),
            "adversarial": None, "diversity": None}


def reference(regime: Clm) -> Clm:
    return regime.model_copy(update=common.LINKING_DATASET_KNOBS)


def train_configs(job_params: dict) -> dict:
    return common.train_configs(job_params)


def price(job_params: dict, units) -> float:
    return common.population_seconds(job_params, units)


warnings = common.no_warnings
