"""The pieces several regimes share: counter linking (PRSE) and PGD adversarial training as
spec knobs and as job params, the null-knob rule, and the step from a job's params to the
configs ``core.training.loop.train_population`` takes.

A job's regime params are up to three blocks (docs/architecture.md, train job params):
``linking`` (CLM, CLM-Adv), ``adversarial`` (ULM-Adv, CLM-Adv) and ``diversity`` (the
baselines); a regime without one has it as null (``diversity`` is left out instead, so the
paper's job files stay as they were).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from clmrepro.fields import Budget, Count, Step, Strict


class Adversarial(Strict):
    """PGD adversarial training (Madry et al.), crafted on the submodel being trained."""

    eps: Budget | None = Field(None, description="L∞ budget; null → 0.3 MNIST, 8/255 CIFAR-10")
    alpha: Step | None = Field(None, description="PGD step; null → 0.01 MNIST, 2/255 CIFAR-10")
    steps: Count | None = Field(None, le=10_000, description="null → 100 MNIST, 20 CIFAR-10")
    random_start: bool = Field(True, description="start from a uniform point in the ball (code)")


class Linking(Strict):
    """Counter linking (PRSE, Alg. 1 and eq. 4–5) of the first weight layer."""

    alpha: float | None = Field(None, gt=0, le=10, allow_inf_nan=False, description="the α of eq. 5; "
                                "null → paper §3: 0.1 LeNet5, 0.5 ResNet18 (0.01 / 0.1 with adversarial)")
    delta: float | None = Field(None, gt=0, le=10, allow_inf_nan=False, description="the δ of eq. 4; "
                                "null → 0.1 both (0.005 LeNet5 / 0.05 ResNet18 with adversarial)")
    prse_every: Count | None = Field(None, le=100_000, description="a PRSE every this many "
                                     "minibatches of a submodel (Alg. 1 read as the text and code "
                                     "mean it); null → 10, except 1 for MNIST CLM-Adv (authors' runs)")
    mask: Literal["shared", "per-weight"] = Field("shared", description="shared: one kernel-shaped "
                                                  "mask for every conv1 filter (code); per-weight: "
                                                  "one bit per weight (paper text)")


def pick(value: Any, default: Any) -> Any:
    """A knob's value, or its default where the spec left it null."""
    return default if value is None else value


def linking_params(regime: Linking, *, mnist: bool, adversarial: bool) -> dict:
    """The job's ``linking`` block.  Paper §3 for alpha/delta; the authors' run folders for
    PRSE every 1 on MNIST CLM-Adv."""
    if adversarial:
        alpha, delta = (0.01, 0.005) if mnist else (0.1, 0.05)
    else:
        alpha, delta = (0.1 if mnist else 0.5), 0.1
    return {"alpha": pick(regime.alpha, alpha), "delta": pick(regime.delta, delta),
            "prse_every": pick(regime.prse_every, 1 if (adversarial and mnist) else 10),
            "mask": regime.mask, "layer": "conv1"}


def adversarial_params(adversarial: Adversarial, *, mnist: bool) -> dict:
    """The job's ``adversarial`` block: the authors' PGD training per dataset."""
    return {"eps": pick(adversarial.eps, 0.3 if mnist else 8 / 255),
            "alpha": pick(adversarial.alpha, 0.01 if mnist else 2 / 255),
            "steps": pick(adversarial.steps, 100 if mnist else 20),
            "random_start": adversarial.random_start}


# The knobs whose null means "the paper's / the code's value for this dataset": the report
# lists a set one as a departure (clmrepro.plan.departures).
LINKING_DATASET_KNOBS = {"alpha": None, "delta": None, "prse_every": None}


def train_configs(params: dict, *, loss=None, target_order: bool = False) -> dict:
    """``linking``, ``adversarial`` and ``diversity`` for ``train_population`` from the job's
    params: each config from its block where the job has one.  ``loss``: the regime's joint
    loss (core.training.config.JointLoss), which a ``diversity`` block needs; with a
    diversity config the population trains on the joint schedule (core.training.joint), else
    on Alg. 1's (sequential, or lockstep as the execution block says)."""
    from clmrepro.core.training.config import AdversarialConfig, DiversityConfig, LinkingConfig

    linking, adversarial, diversity = (params.get(k) for k in ("linking", "adversarial",
                                                                 "diversity"))
    if diversity and loss is None:
        raise ValueError(f"regime {params['population']['regime']!r} trains no joint loss, but "
                         f"the job has a diversity block (method {diversity.get('method')!r})")
    return {"linking": LinkingConfig(**linking) if linking else None,
            "adversarial": AdversarialConfig(**adversarial) if adversarial else None,
            "diversity": (DiversityConfig.from_block(diversity, loss=loss,
                                                     target_order=target_order)
                          if diversity else None)}


def population_seconds(params: dict, units) -> float:
    """Seconds of Alg. 1's training (or its lockstep order) without the job's start-up:
    ``E * n * (N_train * (T + k * A_pgd) + N_test * F(eval_batch))``, k the PGD steps of
    adversarial training; batched (ULM, or CLM with the lockstep schedule): ``T_b``,
    ``G_each`` and ``F_all`` (clmrepro.plan.estimate's unit costs, ``units``)."""
    n = int(params["population"]["size"])
    training = params["training"]
    steps = int(params["adversarial"]["steps"]) if params.get("adversarial") else 0
    batched = units.batched and (not params.get("linking") or units.clm_lockstep)
    if batched:
        per_image = units.train(True) + steps * units.grad("each")
    else:
        per_image = units.train(False) + steps * units.attack_step("pgd")
    n_train, n_test = int(params["dataset"]["n_train"]), int(params["dataset"]["n_test"])
    test = n_test * units.forward(int(training.get("eval_batch_size", 1000)), batched)
    return int(training["epochs"]) * n * (n_train * per_image + test)


def joint_seconds(params: dict, units, per_image: float) -> float:
    """Seconds of joint training (core.training.joint) without the start-up: every epoch
    ``per_image`` seconds (all members) per training image, and each member's test pass.

    The baselines' per-image factors (their ``COST_FACTOR``, DVERGE's ``DISTILL_STEP``) come
    from their cost per epoch against ULM's n passes in CPU time (benchmarks.baselines_cost,
    4 LeNet5s, 2,000 mnist-5k images, 2-core AVX512, 2026-12-03; BENCHMARKS.md): ADP 0.92,
    GAL 3.34, TRS 15.75, DVERGE 18.97."""
    n = int(params["population"]["size"])
    n_train, n_test = int(params["dataset"]["n_train"]), int(params["dataset"]["n_test"])
    test = n * n_test * units.forward(int(params["training"].get("eval_batch_size", 1000)), False)
    return int(params["training"]["epochs"]) * (n_train * per_image + test)


def no_warnings(population, n_classes: int) -> list[str]:
    """A regime whose training is sound for every population the spec accepts."""
    return []
