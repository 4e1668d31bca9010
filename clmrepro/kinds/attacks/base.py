"""What every attack kind shares: the spec fields common to all kinds, and the helpers the kind
modules use to resolve their knobs and list their departures from the paper.

An attack kind module (``clmrepro.kinds.attacks.<kind>``) holds, in this order:

- ``Spec``: its pydantic model (on :class:`AttackBase`), ``KIND`` its name, ``LABEL`` its
  name in the report;
- ``PARAM_KEYS``: the exact keys of its job params (nothing fills a default at run time:
  torchattacks changed its defaults since the paper's 2.14.2, docs/reference.md §2);
- ``params(attack, eps, pgd_alpha)``: the spec's knobs resolved into those params
  (``pgd_alpha``: the dataset's PGD step, 0.01 MNIST / 2/255 CIFAR-10);
- ``departures(attack)``: how the knobs differ from the paper (for the report);
- ``ADAPTIVE_ONLY``: the attack exists only against the whole population (ARC);
- ``deterministic(params)``: what runs against one deterministic submodel (threat models
  ``paper``/``transfer``), ``None`` when the kind runs as itself;
- ``BATCHED`` and ``sign_steps(eps, params)``: the kind is a plain sign-gradient iteration that
  ``core.attacks.batched`` runs population-batched, and its recipe there;
- ``build(model, eps, params)``: the torchattacks attack of the sequential executor;
- ``adaptive(models, eps, params, runtime)`` and ``adaptive_record(eps, params)``: the attack
  on the whole population (``core.attacks.adaptive``), called ``(x, y, seed)``, and the
  parameters it really runs with (for the record);
- ``seconds_one(job, u, params)``, ``seconds_adaptive(job, u, params, n, images)`` and
  ``gradient_steps(params)``: its price for the plan, in the calibration's units ``u``
  (``plan.estimate._Units``, passed in: kinds do not import calibration);
- optionally ``OPTIONAL_KEYS`` (params that may be absent: ``converge``, so that a job
  without it is byte-identical to one from before the knob), ``CONVERGES`` and
  ``ladder_steps(params)``: the kind's iteration continued from its own iterate equals a
  longer run (PGD), so the attack step may climb a ladder of doubled steps, these rungs
  (``core.attacks.ladder``; the executors' ``continue_from``);
- ``calibration_params(eps, alpha)``: the short run that measures its cost per gradient step
  (``calibration.attacks``), or ``None``.

torch and torchattacks are imported inside the functions that run an attack, so importing a
kind (the CLI's validate, the Snakefile) stays fast.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from clmrepro.fields import SWEEP_HELP, Budget, SafeId, Strict, Sweep


class Converge(Strict):
    """Run an iterative attack until it converges (issue 26; docs/sanity.md, "Convergence")."""

    tolerance: float = Field(0.5, gt=0, le=100, description="stop doubling the steps once the "
                             "MRA on the attacked images moves by less than this many points")
    max_steps: int = Field(640, ge=1, le=100_000, description="the cap: the last rung's steps "
                           "(a ladder that reaches it without converging is a convergence flag)")


CONVERGE_HELP = ("run to convergence: from its saved iterate the job doubles the steps (40 → "
                 "80 → 160 ...) until the MRA of each threat model moves by less than "
                 "`tolerance` points or `max_steps` is reached, scores the last rung and records "
                 "the ladder (steps → MRA) in attack_params; null → the fixed `steps` "
                 "(docs/sanity.md, \"Convergence\")")


class AttackBase(Strict):
    id: SafeId | None = Field(None, description="label in paths and tables; null → the kind")
    eps: list[Budget] = Field(min_length=1, max_length=100, description="L∞ budgets in [0, 1] "
                              "pixel units, e.g. [0.3] or ['8/255', '16/255']; one job per value")
    populations: list[SafeId] | None = Field(None, description="attack only these populations; "
                                             "null → the evaluation's populations")
    sweep: Sweep | None = Field(None, exclude=True, description=SWEEP_HELP.replace(
        "regime.alpha: [0.01, 0.1], regime.delta: [0.05, 0.1]}", "steps: [10, 40]}").replace(
        "-alpha0.01-delta0.05", "-steps10"))


def pick(value: Any, default: Any) -> Any:
    """The spec's value, or the default where the spec says null."""
    return default if value is None else value


def label(attack: AttackBase) -> str:
    return attack.id or attack.kind


def paper_departures(attack: AttackBase, paper: dict[str, Any]) -> list[str]:
    """One note per knob whose value differs from the paper's (and the authors' code's)."""
    return [f"attack {label(attack)}: {key} = {getattr(attack, key)} (paper/code: {value})"
            for key, value in paper.items() if getattr(attack, key) != value]
