"""ULM-Adv: unlinked submodels with PGD adversarial training (Madry et al.), each crafted on
the submodel being trained, as the authors' code runs it (core.training.step.pgd_examples)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.fields import SafeId, Strict
from clmrepro.kinds.regimes import common
from clmrepro.kinds.regimes.common import Adversarial

KIND = "ulm-adv"
LABEL = "ULM-Adv"
BASELINE = False
PAPER_SIZE = 4  # the paper's adversarial populations have 4 submodels (§4)
SOURCE = None
LINKED = False
ADVERSARIAL = True
CIFAR_EPOCHS_OPEN = True
MIN_SIZE = 1  # members train independently: one member is one PGD-trained model


class UlmAdv(Strict):
    kind: Literal["ulm-adv"] = Field(description="unlinked, PGD adversarial training")
    from_: SafeId | None = Field(None, alias="from", description="population to start from")
    adversarial: Adversarial = Field(default_factory=Adversarial, description="PGD training knobs")


MODEL = UlmAdv


def params(regime: UlmAdv, *, mnist: bool, architecture: str) -> dict:
    return {"linking": None,
            "adversarial": common.adversarial_params(regime.adversarial, mnist=mnist),
            "diversity": None}


def reference(regime: UlmAdv) -> UlmAdv:
    return regime.model_copy(update={"adversarial": Adversarial()})


def train_configs(job_params: dict) -> dict:
    return common.train_configs(job_params)


def price(job_params: dict, units) -> float:
    return common.population_seconds(job_params, units)


warnings = common.no_warnings
