"""Iterative vs single-step (Carlini et al. 2019 §5; docs/sanity.md).

Inputs: the grid's records (PGD and FGSM at one ε, under every threat model); no job of its
own.  An attack that follows the gradient for many steps inside the ε-ball should find at least
what one signed-gradient step of size ε finds.
"""

from __future__ import annotations

from clmrepro.kinds.checks.base import (CARLINI, FLAG, PASS, Kit, Measure, Population, Report,
                                        ids_of_kind)

THREAT_MODELS = ("paper", "transfer", "adaptive")


def rule(threat: str, files) -> str:
    return ("Flag when the 95% interval of MRA(PGD) − MRA(FGSM) at one ε lies above 0 (the "
            "iterative attack significantly weaker than the single-step one).")


def verdict(population: Population, threat: str, kit: Kit) -> tuple[list[Measure], str]:
    measures = []
    for eps, found in kit.eps_groups(population.attack_records(threat)).items():
        for pgd in ids_of_kind(found, "pgd"):
            for fgsm in ids_of_kind(found, "fgsm"):
                d = kit.paired_difference([r for r in found if r["attack"] == pgd],
                                          [r for r in found if r["attack"] == fgsm])
                if d is None:
                    continue
                measures.append(Measure(
                    f"{kit.label(pgd)} − {kit.label(fgsm)}, ε = {kit.eps_text(eps)}",
                    "difference", d.interval.mean, d.interval, flags=d.interval.low > 0))
    return measures, f"needs PGD and FGSM at one ε under {threat} in the grid"


PROTOCOL_NOTE = (
    "The paper's protocol crafts on one random submodel and scores all, so it mostly measures "
    "transfer, where single-step attacks are known to transfer better than iterative ones: "
    "FGSM beating PGD there is a property of the protocol rather than a failed PGD")


def note(verdicts) -> str:
    """A paper-protocol flag is expected (transfer); the adaptive column says whether PGD
    itself falls short."""
    if verdicts.get("paper") != FLAG:
        return ""
    adaptive = verdicts.get("adaptive")
    if adaptive == FLAG:
        return (f" {PROTOCOL_NOTE}, but the adaptive column flags too, so PGD itself is "
                "falling short there: treat its numbers as upper bounds.")
    if adaptive == PASS:
        return f" {PROTOCOL_NOTE}; the adaptive column does not flag."
    return (f" {PROTOCOL_NOTE}, unless the adaptive column flags too; it was not run, so this "
            "reading is unconfirmed.")


REPORT = Report("iterative-vs-single-step", "iterative vs single-step", f"{CARLINI}, §5",
                THREAT_MODELS, rule, verdict, note)
JOB = None
