"""Unbounded PGD: with ε = 1 on [0, 1] images the attacker can paint any image, so the
adaptive MRA must reach (almost) 0 (Pintor et al. 2022, unconstrained attack failure).

Job: under the adaptive threat model, the check's PGD with ε = 1 (``unbounded_steps`` steps of
``unbounded_alpha``, random start), written as ``pgd-unbounded``.  It has no row of its own in
the report: :mod:`clmrepro.kinds.checks.budget` applies its rule (:func:`measures`) beside the
ε grid.
"""

from __future__ import annotations

from pydantic import Field

from clmrepro.fields import Count, Step
from clmrepro.kinds.checks.base import ROUNDING, Costs, Job, Kit, Measure, Population, as_record

UNBOUNDED_MRA = 0.01         # ε = 1 must leave at most 1% (adaptive)
NAME = "pgd-unbounded"


def rule_clause() -> str:
    return f"PGD with ε = 1 leaves an MRA above {UNBOUNDED_MRA * 100:g}%"


def measures(population: Population, threat: str, kit: Kit) -> list[Measure]:
    found = [as_record(f, threat, NAME, s["attacks"][NAME]["per_image"])
             for f, s in population.sections(threat) if NAME in s["attacks"]]
    interval = kit.cell_interval(found)
    if interval is None:
        return []
    return [Measure("PGD, ε = 1 (unbounded)", "accuracy", interval.mean, interval,
                    flags=interval.mean > UNBOUNDED_MRA + ROUNDING)]


def params(knobs) -> dict:
    return {"unbounded": {"eps": 1.0, "alpha": knobs["unbounded_alpha"],
                          "steps": knobs["unbounded_steps"], "random_start": True}}


def attacks(s, threat: str) -> dict[str, dict]:
    if threat != "adaptive":
        return {}
    u = s["unbounded"]
    return {NAME: {"eps": float(u["eps"]), "alpha": float(u["alpha"]), "steps": int(u["steps"]),
                   "random_start": bool(u["random_start"])}}


def run(work) -> dict:
    from clmrepro.core.attacks.sanity import PgdSettings, traced_pgd
    from clmrepro.core.seeding import derive_seed, generator

    u = work.params["unbounded"]
    settings = PgdSettings(float(u["eps"]), float(u["alpha"]), int(u["steps"]),
                           bool(u["random_start"]))
    run_ = traced_pgd(work.target, work.x, work.y, settings,
                      generator(derive_seed(work.unit.seed, "unbounded")))
    return {NAME: run_.adv}


def price(s, threat: str, c: Costs) -> tuple[float, int]:
    if threat != "adaptive":
        return 0.0, 0
    return int(s["unbounded"]["steps"]) * c.step, 1


REPORT = None
JOB = Job(
    "unbounded", "unbounded: eps = 1 must reach ~0% (adaptive)",
    knobs={"unbounded_steps": (Count, Field(100, le=100_000,
                                            description="steps of the eps = 1 PGD")),
           "unbounded_alpha": (Step, Field(0.05, description="step of the eps = 1 PGD (100 × "
                                           "0.05 crosses [0, 1] five times)"))},
    params=params, attacks=attacks, run=run, price=price)
