"""Random noise: noise in the ε-ball must never beat a gradient attack (Carlini et al. 2019;
docs/sanity.md).

Job: per image the worst of ``noise_draws`` uniform points in the ε-ball (``noise``), chosen as
the PGD it is compared with decides (issue 26): under the paper protocol by the crafting
submodel's accuracy (PGD sees that one member; choosing by all members' accuracy would give
the noise an oracle PGD lacks and bias the check towards flagging), under adaptive by the
expected accuracy over the population (PGD's success measure there).  Both sides are then
scored by every member.  Report: flag when the 95% interval of MRA(noise) − MRA(PGD) lies below
0.
"""

from __future__ import annotations

from pydantic import Field

from clmrepro.kinds.checks.base import (CARLINI, Costs, Job, Kit, Measure, Population, Report,
                                        no_file, variants)


CHOSEN_BY = {"paper": "the crafting submodel's accuracy",
             "adaptive": "the expected accuracy over the submodels"}


def rule(threat: str, files) -> str:
    chosen = CHOSEN_BY.get(threat, "the attacked model's success measure")
    return ("Flag when the 95% interval of MRA(worst of the noise draws per image, chosen by "
            f"{chosen} as PGD's success is measured) − MRA(PGD) lies below 0 on the check "
            "subset (noise beats PGD).")


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
    return {"noise": {"eps": float(s["eps"]), "draws": int(s["noise_draws"]),
                      "chosen_by": CHOSEN_BY.get(threat, "the attacked model's success "
                                                 "measure")}}


def run(work) -> dict:
    from clmrepro.core.attacks.sanity import worst_noise
    from clmrepro.core.seeding import derive_seed, generator

    # the target PGD attacked: the crafting submodel (paper) or the population (adaptive)
    return {"noise": worst_noise(lambda p: work.target.measure(p, work.y), work.x,
                                 work.pgd.eps, int(work.params["noise_draws"]),
                                 generator(derive_seed(work.unit.seed, "noise")))}


def price(s, threat: str, c: Costs) -> tuple[float, int]:
    return int(s["noise_draws"]) * c.m * c.forward, 1


REPORT = Report("random-noise", "random noise", CARLINI, None, rule, verdict)
JOB = Job(
    "noise", "noise: random points in the ball",
    knobs={"noise_draws": (int, Field(20, ge=1, le=10_000, description="uniform draws in the "
                                      "ball per image; the worst one counts"))},
    attacks=attacks, run=run, price=price)
