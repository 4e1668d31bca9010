"""The training regimes: one module per ``regime.kind`` of a population, listed once below.

A regime is its spec model + its loss + its schedule.  Each module holds:

``KIND``, ``LABEL``   the spec's ``regime.kind`` and the report's name for it
``MODEL``             the pydantic spec model (knobs, defaults, descriptions)
``BASELINE``          a diversity baseline the paper does not run (trained jointly), with
                      its ``SOURCE``; else one of the paper's, with its ``PAPER_SIZE``
``LINKED``            counter-linked by PRSE (Alg. 1, eq. 4-5)
``ADVERSARIAL``       PGD adversarial training (the attacks' price reads which survival applies)
``CIFAR_EPOCHS_OPEN`` the paper gives no epoch count for it on CIFAR-10 (the report says so)
``MIN_SIZE``          the fewest members it trains (1 for the unlinked regimes: a one-model
                      reference row; 2 where the loss compares members)
``TRAINED``           (optional, default true) false for a population read from the spec's
                      own weights (``pretrained``): no train job
``params(regime, *, mnist, architecture)``
                      its knobs resolved into the job's ``linking``, ``adversarial`` and
                      ``diversity`` blocks (null where the regime has none)
``reference(regime)`` the regime with the knobs the paper sets back at their defaults, which
                      the report's departures compare against
``train_configs(job_params)``
                      the configs ``core.training.loop.train_population`` takes: a regime
                      with a joint loss (``joint_loss``, from ``core.training.diversity``)
                      trains on the joint schedule (core.training.joint), the others on Alg.
                      1's (sequential, or lockstep as the job's execution block says)
``price(job_params, units)``
                      seconds of its training in the plan's unit costs (clmrepro.plan.estimate
                      passes them in; the job's start-up is added there)
``warnings(population, n_classes)``
                      what `clmrepro validate` should say about a population the spec accepts
                      but the method was not designed for (ADP with n ≥ n_classes)

docs/extending.md, "Adding a regime", shows how to add one.  Importing this package imports
neither torch nor the spec package: the losses and schedules are imported inside functions.
"""

from __future__ import annotations

from types import ModuleType
from typing import Annotated, Union

from pydantic import Field

from clmrepro.kinds.regimes import (adp, clm, clm_adv, dverge, gal, pretrained, trs, ulm,
                                    ulm_adv)

MODULES: tuple[ModuleType, ...] = (
    ulm,
    clm,
    ulm_adv,
    clm_adv,
    adp,
    gal,
    trs,
    dverge,
    pretrained,
)

BY_KIND: dict[str, ModuleType] = {module.KIND: module for module in MODULES}
REGIME_KINDS: tuple[str, ...] = tuple(BY_KIND)
# The field's other ensemble-diversity methods: trained jointly, one loss over all members on
# the same minibatch.
BASELINE_KINDS: tuple[str, ...] = tuple(m.KIND for m in MODULES if m.BASELINE)
REGIME_MODELS = tuple(module.MODEL for module in MODULES)
Regime = Annotated[Union[REGIME_MODELS], Field(discriminator="kind")]


def trained(kind: str) -> bool:
    """Whether a population of this regime has a train (or retrain) job."""
    return getattr(get(kind), "TRAINED", True)


def get(kind: str) -> ModuleType:
    """The module of regime ``kind``; a clear error for one that does not exist."""
    try:
        return BY_KIND[kind]
    except KeyError:
        raise ValueError(f"unknown regime kind {kind!r}; known: {', '.join(REGIME_KINDS)}") from None
