"""Budget: the MRA may not rise with ε (Carlini et al. 2019; Pintor et al. 2022, unconstrained
attack failure; docs/sanity.md).

Inputs: the grid's records (one attack at two ε or more, under every threat model) and, under
the adaptive threat model, the check files' ``pgd-unbounded`` (the job of
:mod:`clmrepro.kinds.checks.unbounded`, whose rule this check applies).
"""

from __future__ import annotations

from clmrepro.kinds.checks import unbounded
from clmrepro.kinds.checks.base import (CARLINI, PINTOR, Kit, Measure, Population, Report)

THREAT_MODELS = ("paper", "transfer", "adaptive")


def rule(threat: str, files) -> str:
    return ("Flag when the 95% interval of MRA(larger ε) − MRA(smaller ε) of one attack lies "
            "above 0" + (f", or when {unbounded.rule_clause()}." if threat == "adaptive"
                         else "."))


def verdict(population: Population, threat: str, kit: Kit) -> tuple[list[Measure], str]:
    measures = []
    records = population.attack_records(threat)
    for attack in sorted({r["attack"] for r in records}):
        groups = list(kit.eps_groups([r for r in records if r["attack"] == attack]).items())
        for (small, low_side), (large, high_side) in zip(groups, groups[1:]):
            d = kit.paired_difference(high_side, low_side)
            if d is None:
                continue
            measures.append(Measure(f"{kit.label(attack)} ε = {kit.eps_text(large)} − ε = "
                                    f"{kit.eps_text(small)}", "difference", d.interval.mean,
                                    d.interval, flags=d.interval.low > 0))
    reason = "needs one attack at two ε or more in the grid"
    if threat == "adaptive":
        measures += unbounded.measures(population, threat, kit)
        reason += ", or the check file's pgd-unbounded"
    return measures, reason


REPORT = Report("budget", "budget", f"{CARLINI}; {PINTOR} (unconstrained attack failure)",
                THREAT_MODELS, rule, verdict)
JOB = None
