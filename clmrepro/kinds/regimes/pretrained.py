"""Your own trained population (issue 28): no training job; the evaluation jobs read the
weights file (or folder) the spec names, checked against the sha256 the compiler recorded.

The file holds one state dict per member: a list of state dicts, ``{"states": [...]}``, or
clmrepro's own ``population.pt`` (``{"meta", "states"}``); a folder holds one state-dict file
per member, taken in name order (steps.population.load_external_population).  Every file is
read with ``torch.load(weights_only=True)``: a pickle that would run code is refused.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.fields import Strict
from clmrepro.kinds.regimes import common

KIND = "pretrained"
LABEL = "pretrained"
BASELINE = False
PAPER_SIZE = None
SOURCE = "your own weights"
LINKED = False
ADVERSARIAL = False
CIFAR_EPOCHS_OPEN = False
MIN_SIZE = 1
TRAINED = False  # no train job: the population is read from ``weights``


class Pretrained(Strict):
    kind: Literal["pretrained"] = Field(description="your own trained population: no training")
    weights: str = Field(min_length=1, max_length=4096, description="the members' state dicts: "
                         "a file (a list of state dicts, {states: [...]}, or a clmrepro "
                         "population.pt) or a folder of one state-dict file per member (name "
                         "order); relative to the working directory. Its sha256 is recorded "
                         "when the spec is compiled and checked by every job that reads it")
    # a pretrained population starts from nothing of this spec
    from_: None = Field(None, alias="from", description="not used (always null)")


MODEL = Pretrained


def params(regime: Pretrained, *, mnist: bool, architecture: str) -> dict:
    return {"linking": None, "adversarial": None, "diversity": None}


def reference(regime: Pretrained) -> Pretrained:
    return regime


def train_configs(job_params: dict) -> dict:
    raise ValueError("a pretrained population is not trained: it has no train job")


def price(job_params: dict, units) -> float:
    return 0.0


warnings = common.no_warnings
