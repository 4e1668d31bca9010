"""Zero gradients: AutoAttack's own flag (``check_zero_gradients``; docs/sanity.md), on the
attack's own loss as well as AutoAttack's (issue 26, Build item 3).

Job: per image of the check subset that the attacked model still classifies correctly (the
crafting submodel right under the paper protocol; some member right under adaptive, where the
success measure is the expected accuracy), whether the input gradient is exactly zero

- of the **cross-entropy**, the loss our PGD raises (the crafting submodel's, or the expected
  cross-entropy over the population): a softmax saturated by large logits zeroes it, and PGD
  then stands still (sign(0) = 0);
- of the **DLR loss** (AutoAttack's; scale free, so it sees quantisation and
  non-differentiable steps, not saturation);

at the **clean point** and at a **random start** in the ε-ball (where APGD computes its first
gradient and AutoAttack runs the check).  The check file keeps the counts per loss and point.
Only correctly classified images count, as AutoAttack checks only the points it still attacks:
on a misclassified image whose true class ranks third the DLR loss is constant (its gradient is
0) without any masking.

Report: flag when any image has one (AutoAttack's rule: more than 0 images).  Check files
written before issue 26 hold one count (DLR, clean point, every image) and are read as such.
"""

from __future__ import annotations

from collections.abc import Mapping

from clmrepro.kinds.checks.base import (AUTOATTACK, Costs, Job, Kit, Measure, Population,
                                        Report, no_file)

LOSSES = {"ce": "cross-entropy", "dlr": "DLR"}
POINTS = {"clean": "clean point", "random": "random start"}
KEYS = tuple(f"{loss}/{point}" for point in POINTS for loss in LOSSES)


def rule(threat: str, files) -> str:
    loss = ("the crafting submodel's cross-entropy" if threat == "paper"
            else "the expected cross-entropy over the submodels" if threat == "adaptive"
            else "the attack's cross-entropy")
    return ("Flag when any image of the check subset that the attacked model classifies "
            f"right has an exactly zero input gradient of {loss} (the attack's loss) or of "
            "the DLR loss, at the clean point or at a random start in the ε-ball (more than 0 "
            "images).")


def verdict(population: Population, threat: str, kit: Kit) -> tuple[list[Measure], str]:
    found = [s["zero_gradient"] for _, s in population.sections(threat)
             if s.get("zero_gradient")]
    if not found:
        return [], no_file(population, threat, "zero_gradient count")
    if any("by" not in z for z in found):        # a check file from before issue 26
        count = sum(int(z["images"]) for z in found)
        total = sum(int(z["of"]) for z in found)
        losses = sorted({str(z.get("loss", "dlr")).upper() for z in found})
        return [Measure(f"images with a zero {'/'.join(losses)}-loss gradient at the clean "
                        "point", "count", count, of=total, flags=count > 0)], ""
    total = sum(int(z["of"]) for z in found)
    count = sum(int(z["images"]) for z in found)
    measures = [Measure("images classified right with a zero gradient (any loss, either "
                        "point)", "count", count, of=total, flags=count > 0, key=True)]
    for key in KEYS:
        loss, point = key.split("/")
        n = sum(int(z["by"].get(loss, {}).get(point, 0)) for z in found)
        measures.append(Measure(f"zero {LOSSES[loss]} gradient at the {POINTS[point]}",
                                "count", n, of=total, flags=n > 0))
    return measures, ""


def count(work) -> dict[str, int]:
    from clmrepro.core.attacks.sanity import zero_gradients
    from clmrepro.core.seeding import derive_seed, generator

    return zero_gradients(work.target, work.x, work.y, work.pgd.eps,
                          generator(derive_seed(work.unit.seed, "zero-gradient")))


def section(s, total, images: int) -> dict:
    """The counts summed over the units (the plan passes one number standing in for each)."""
    if not isinstance(total, Mapping):
        total = {"of": total, "images": total, **{key: total for key in KEYS}}
    by: dict[str, dict[str, int]] = {}
    for key in KEYS:
        loss, point = key.split("/")
        by.setdefault(loss, {})[point] = int(total[key])
    return {"zero_gradient": {"losses": list(LOSSES), "points": list(POINTS),
                              "images": int(total["images"]), "of": int(total["of"]),
                              "n": images, "by": by}}


def price(s, threat: str, c: Costs) -> tuple[float, int]:
    # a gradient per loss and point, on the m submodels attacked, and the forward that picks
    # the correctly classified images
    return len(LOSSES) * len(POINTS) * c.m * c.grad + c.m * c.forward, 0


REPORT = Report("zero-gradients", "zero gradients", f"{AUTOATTACK}, check_zero_gradients)",
                None, rule, verdict)
JOB = Job("zero-gradient", "zero-gradient: cross-entropy or DLR input gradient exactly 0 on a "
          "image classified right, at the clean point or a random start (AutoAttack)",
          count=count, section=section, price=price)
