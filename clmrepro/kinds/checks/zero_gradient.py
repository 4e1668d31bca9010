"""Zero gradients: AutoAttack's own flag (``check_zero_gradients``; docs/sanity.md).

Job: per image of the check subset, whether the DLR-loss input gradient at the clean point is
exactly zero (on the crafting submodel, or the mean DLR over the population); the check file
keeps the count.  Report: flag when any image has one.
"""

from __future__ import annotations

from clmrepro.kinds.checks.base import (AUTOATTACK, Costs, Job, Kit, Measure, Population,
                                        Report, no_file)


def rule(threat: str, files) -> str:
    return ("Flag when any image of the check subset has an exactly zero DLR-loss input "
            "gradient at the clean point (more than 0 images).")


def verdict(population: Population, threat: str, kit: Kit) -> tuple[list[Measure], str]:
    found = [s["zero_gradient"] for _, s in population.sections(threat)
             if s.get("zero_gradient")]
    if not found:
        return [], no_file(population, threat, "zero_gradient count")
    count = sum(int(z["images"]) for z in found)
    total = sum(int(z["of"]) for z in found)
    losses = sorted({str(z.get("loss", "dlr")).upper() for z in found})
    return [Measure(f"images with a zero {'/'.join(losses)}-loss gradient at the clean point",
                    "count", count, of=total, flags=count > 0)], ""


def count(work) -> int:
    from clmrepro.core.attacks.sanity import zero_gradient_images

    return zero_gradient_images(work.target, work.x, work.y)


def section(s, total: int, images: int) -> dict:
    return {"zero_gradient": {"loss": "dlr", "images": total, "of": images}}


def price(s, threat: str, c: Costs) -> tuple[float, int]:
    return c.m * c.grad, 0


REPORT = Report("zero-gradients", "zero gradients", f"{AUTOATTACK}, check_zero_gradients)",
                None, rule, verdict)
JOB = Job("zero-gradient", "zero-gradient: DLR input gradient exactly 0 (AutoAttack)",
          count=count, section=section, price=price)
