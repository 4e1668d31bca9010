"""Random noise: noise in the ε-ball must never beat a gradient attack (Carlini et al. 2019;
docs/sanity.md).

Job: per image the worst of ``noise_draws`` uniform points in the ε-ball, by the expected
accuracy over the population (``noise``).  Report: flag when the 95% interval of MRA(noise) −
MRA(PGD) lies below 0.
"""

from __future__ import annotations

from pydantic import Field

from clmrepro.kinds.checks.base import (CARLINI, Costs, Job, Kit, Measure, Population, Report,
                                        no_file, variants)


def rule(threat: str, files) -> str:
    return ("Flag when the 95% interval of MRA(worst of the noise draws per image) − MRA(PGD) "
            "lies below 0 on the check subset (noise beats PGD).")


def verdict(population: Population, threat: str, kit: Kit) -> tuple[list[Measure], str]:
    noise, pgd = variants(population, threat, "noise")
    d = kit.paired_difference(noise, pgd)
    if d is None:
        return [], no_file(population, threat, "noise beside pgd")
    draws = sorted({s["attacks"]["noise"]["params"].get("draws") for _, s in
                    population.sections(threat) if "noise" in s["attacks"]} - {None})
    label = (f"worst of {'/'.join(str(d) for d in draws)} noise draws − PGD" if draws
             else "worst noise draw − PGD")
    return [Measure(label, "difference", d.interval.mean, d.interval,
                    flags=d.interval.high < 0)], ""


def attacks(s, threat: str) -> dict[str, dict]:
    return {"noise": {"eps": float(s["eps"]), "draws": int(s["noise_draws"])}}


def run(work) -> dict:
    from clmrepro.core.attacks.sanity import worst_noise
    from clmrepro.core.seeding import derive_seed, generator

    return {"noise": worst_noise(lambda p: work.everyone.measure(p, work.y), work.x,
                                 work.pgd.eps, int(work.params["noise_draws"]),
                                 generator(derive_seed(work.unit.seed, "noise")))}


def price(s, threat: str, c: Costs) -> tuple[float, int]:
    return int(s["noise_draws"]) * c.n * c.forward, 1


REPORT = Report("random-noise", "random noise", CARLINI, None, rule, verdict)
JOB = Job(
    "noise", "noise: random points in the ball",
    knobs={"noise_draws": (int, Field(20, ge=1, le=10_000, description="uniform draws in the "
                                      "ball per image; the worst one counts"))},
    attacks=attacks, run=run, price=price)
