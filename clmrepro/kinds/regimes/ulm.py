"""ULM: unlinked submodels, each trained alone on its own data order (paper §2, the baseline
the paper compares CLM with).  Alg. 1 without PRSE: the sequential and lockstep orders are the
same training, so a GPU steps the submodels together (core.training.schedules)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.fields import SafeId, Strict
from clmrepro.kinds.regimes import common

KIND = "ulm"
LABEL = "ULM"
BASELINE = False  # one of the paper's regimes
PAPER_SIZE = 10  # submodels in the paper (§4)
SOURCE = None
LINKED = False  # counter-linked by PRSE
ADVERSARIAL = False  # PGD adversarial training
# The paper gives no epoch count for training it on CIFAR-10 (the default 200 is the code's
# cosine T_max): the report says so.
CIFAR_EPOCHS_OPEN = True
MIN_SIZE = 1  # members train independently: one member is one plain model (a reference row)


class Ulm(Strict):
    kind: Literal["ulm"] = Field(description="unlinked: independent submodels")
    from_: SafeId | None = Field(None, alias="from", description="population to start from "
                                 "(retrain); null → train from scratch")


MODEL = Ulm


def params(regime: Ulm, *, mnist: bool, architecture: str) -> dict:
    """The job's regime blocks (clmrepro.kinds.regimes.common)."""
    return {"linking": None, "adversarial": None, "diversity": None}


def reference(regime: Ulm) -> Ulm:
    """The regime with the knobs the paper sets left at their defaults (the report compares)."""
    return regime


def train_configs(job_params: dict) -> dict:
    return common.train_configs(job_params)


def price(job_params: dict, units) -> float:
    return common.population_seconds(job_params, units)


warnings = common.no_warnings
