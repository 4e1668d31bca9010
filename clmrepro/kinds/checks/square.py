"""Gradient-free vs gradient-based: Square (Andriushchenko et al. 2020) must not break images
every gradient attack left standing (AutoAttack's ``check_square_sr``, alpha = 0.002;
docs/sanity.md).

Job: torchattacks' Square with ``square_queries`` queries and ``square_p_init``, on the
crafting submodel (paper) or on the population's mean predicted probability (adaptive).
Report: adding Square to the per-image minimum over the gradient attacks (the grid's FGSM, PGD,
MI-FGSM, EOT-PGD and ARC at the check file's ε, and the check file's PGD variants) lowers that
MRA by more than ``SQUARE_POINTS``.
"""

from __future__ import annotations

from pydantic import Field

from clmrepro.fields import Count
from clmrepro.kinds.checks.base import (AUTOATTACK, ROUNDING, Costs, Job, Kit, Measure,
                                        Population, Report, as_record, attack_kind, no_file)

SQUARE_POINTS = 0.2          # AutoAttack check_square_sr: alpha = 0.002
GRADIENT_KINDS = ("fgsm", "pgd", "mifgsm", "eot-pgd", "arc")
PGD_VARIANTS = ("pgd", "pgd-2x-steps", "pgd-restarts")
# The share of images Square still has to query, averaged over its run: the share it leaves
# correct (a point Square breaks stops costing queries early), measured on the MNIST-5k
# sanity checks (100 images, 5,000 queries, 2026-12-03): 0.30-0.59 (mean 0.41) for ULM/CLM,
# 0.40-0.60 (mean 0.49) for ULM-Adv, paper protocol and adaptive.  It was priced with
# AutoAttack's survival after APGD-CE (0.01 for standard models), but Square in the checks
# starts from the clean images: those jobs took 1.6-2.5x their estimate in CPU time.
SQUARE_SURVIVAL = {"standard": 0.4, "adversarial": 0.5}


def rule(threat: str, files) -> str:
    return (f"Flag when adding Square to the per-image minimum over the gradient attacks "
            f"lowers that MRA by more than {SQUARE_POINTS:g} points on the check subset.")


def _gradient_tables(population: Population, check_file: dict, section: dict, threat: str,
                     n: int, kit: Kit) -> dict[str, list[float]]:
    """The gradient attacks on the first n images: the grid's records of this replicate and
    threat model at the check file's ε, and the check file's PGD variants."""
    tables = {}
    eps = check_file.get("eps")
    for r in population.attack_records(threat):
        if (kit.replicate(r) == check_file["replicate"] and attack_kind(r) in GRADIENT_KINDS
                and r.get("per_image") is not None and len(r["per_image"]) >= n
                and eps is not None and kit.same_eps(float(r["eps"]), float(eps))):
            tables[r["attack"]] = r["per_image"][:n]
    for name in PGD_VARIANTS:
        if name in section["attacks"] and len(section["attacks"][name]["per_image"]) >= n:
            tables[f"check-file {name}"] = section["attacks"][name]["per_image"][:n]
    return tables


def verdict(population: Population, threat: str, kit: Kit) -> tuple[list[Measure], str]:
    sections = [(f, s) for f, s in population.sections(threat) if "square" in s["attacks"]]
    if not sections:
        return [], no_file(population, threat, "square")
    gradient, with_square, names = [], [], set()
    only_square = total = 0
    for check_file, section in sections:
        square = section["attacks"]["square"]["per_image"]
        tables = _gradient_tables(population, check_file, section, threat, len(square), kit)
        if not tables or len(square) < 1:
            continue
        names |= set(tables)
        worst = [min(values) for values in zip(*tables.values())]
        both = [min(w, s) for w, s in zip(worst, square)]
        only_square += sum(s < w for w, s in zip(worst, square))
        total += len(square)
        gradient.append(as_record(check_file, threat, "gradient", worst))
        with_square.append(as_record(check_file, threat, "gradient+square", both))
    d = kit.paired_difference(gradient, with_square)
    if d is None:
        return [], f"no gradient attack with per-image values under {threat} to compare with"
    names_text = ", ".join(sorted(names))
    g, s = kit.cell_interval(gradient), kit.cell_interval(with_square)
    return [Measure(f"per-image minimum over the gradient attacks ({names_text})", "accuracy",
                    g.mean, g),
            Measure("the same with Square", "accuracy", s.mean, s),
            Measure("gradient attacks − with Square", "difference", d.interval.mean, d.interval,
                    flags=d.interval.mean > SQUARE_POINTS / 100.0 + ROUNDING, key=True),
            Measure("images where Square is below every gradient attack", "count",
                    only_square, of=total)], ""


def attacks(s, threat: str) -> dict[str, dict]:
    return {"square": {"eps": float(s["eps"]), "n_queries": int(s["square_queries"]),
                       "p_init": float(s["square_p_init"]), "loss": "margin",
                       "resc_schedule": False,
                       "target": "crafting submodel" if threat == "paper"
                       else "mean predicted probability of the population"}}


def run(work) -> dict:
    from clmrepro.core.attacks.sanity import MeanPrediction, square
    from clmrepro.core.seeding import derive_seed

    # eval mode: torchattacks hands a model back in the mode it found it in
    victim = (MeanPrediction(work.models, work.runtime).eval() if work.unit.crafter is None
              else work.target.models[0])
    return {"square": square(victim, work.x, work.y, eps=work.pgd.eps,
                             n_queries=int(work.params["square_queries"]),
                             p_init=float(work.params["square_p_init"]),
                             seed=derive_seed(work.unit.seed, "square") % (2**31))}


def price(s, threat: str, c: Costs) -> tuple[float, int]:
    survival = SQUARE_SURVIVAL["adversarial" if c.adversarial else "standard"]
    return int(s["square_queries"]) * c.m * c.forward * survival, 1


REPORT = Report("gradient-free", "gradient-free vs gradient-based",
                f"{AUTOATTACK}, check_square_sr, alpha = 0.002)", None, rule, verdict)
JOB = Job(
    "square", "square: Square, gradient-free",
    knobs={"square_queries": (Count, Field(5000, le=1_000_000, description="Square's queries "
                                           "(AutoAttack: 5,000)")),
           "square_p_init": (float, Field(0.8, gt=0, le=1, description="Square's initial "
                                          "fraction of pixels changed (AutoAttack: 0.8)"))},
    attacks=attacks, run=run, price=price)
