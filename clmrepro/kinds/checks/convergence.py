"""Convergence: more effort must not help (Carlini et al. 2019; Pintor et al. 2022, incomplete
optimisation; docs/sanity.md).

Job: the check's PGD with twice the steps (``pgd-2x-steps``) and the best of ``restarts``
random starts per image (``pgd-restarts``), beside the traced PGD whose loss trace it reads.
Report: flag when either moves the mean MRA by ``MOVE_POINTS`` or more, or when more than
``TRACE_SHARE`` of the images PGD did not break have an incomplete loss trace.  Where a grid
attack ran to convergence (``converge``, ``core.attacks.ladder``) its scores records carry the
ladder it climbed: one that hit its cap without converging flags with its last move in
points; one that converged passes, naming the rung it converged at.
"""

from __future__ import annotations

from pydantic import Field

from clmrepro.kinds.checks.base import (CARLINI, PINTOR, ROUNDING, Costs, Job, Kit, Measure,
                                        Population, Report, no_file, pgd_params, recorded,
                                        variants)

MOVE_POINTS = 1.0            # doubled steps / restarts may move the MRA by less than this
TRACE_SPAN = 0.05            # Pintor: normalised running-best span of the last 10 values
TRACE_SHARE = 0.05           # ... on more than this share of the images
RESTARTS = 5                 # the knob's default (Carlini et al.: a handful of restarts)


def rule(threat: str, files) -> str:
    restarts = recorded(files, "pgd-restarts", "restarts", RESTARTS)
    return (f"Flag when doubling PGD's steps or {restarts} random restarts move the MRA by "
            f"{MOVE_POINTS:g} point or more, or when more than {TRACE_SHARE:.0%} of the images "
            f"PGD did not break have an incomplete loss trace (span of the last 10 normalised "
            f"running-best values > {TRACE_SPAN:g}).")


def ladder_measures(population: Population, threat: str, kit: Kit) -> list[Measure]:
    """One measure per grid attack and ε whose records climbed a ladder: the last move
    (last rung's MRA − the one before, the largest over replicates), flagging when a
    replicate's ladder hit its cap without converging."""
    groups: dict[tuple[str, float], list[dict]] = {}
    for r in population.attack_records(threat):
        params = r.get("attack_params") or {}
        if params.get("ladder") and r.get("inference") in (None, "random"):
            groups.setdefault((r["attack"], float(r["eps"])), []).append(params)
    measures = []
    for (attack, eps), found in sorted(groups.items()):
        capped = [p for p in found if not p.get("converged")]
        shown = capped or found       # the capped replicates' numbers, else the converged ones
        last = max((p["ladder"][-1][1] - p["ladder"][-2][1] if len(p["ladder"]) > 1 else 0.0
                    for p in shown), key=abs)
        steps = "/".join(str(s) for s in sorted({p["ladder"][-1][0] for p in shown}))
        where = f"{kit.label(attack)} at ε = {kit.eps_text(eps)}"
        if capped:
            label = f"{where}: the ladder hit its cap of {steps} steps unconverged; last move"
        else:
            label = f"{where}: converged at {steps} steps; last move"
        measures.append(Measure(label, "difference", last, flags=bool(capped)))
    return measures


def verdict(population: Population, threat: str, kit: Kit) -> tuple[list[Measure], str]:
    sections = population.sections(threat)
    ladders = ladder_measures(population, threat, kit)
    if not sections:
        return ladders, no_file(population, threat)
    measures = ladders
    for name in ("pgd-2x-steps", "pgd-restarts"):
        variant, pgd = variants(population, threat, name)
        d = kit.paired_difference(variant, pgd)
        if d is None:
            continue
        if name == "pgd-2x-steps":
            label = "PGD with twice the steps − PGD"
        else:
            restarts = {s["attacks"][name]["params"].get("restarts", RESTARTS)
                        for _, s in sections if name in s["attacks"]}
            label = f"PGD with {'/'.join(str(r) for r in sorted(restarts))} restarts − PGD"
        moved = abs(d.interval.mean) >= MOVE_POINTS / 100.0 - ROUNDING
        measures.append(Measure(label, "difference", d.interval.mean, d.interval, flags=moved))
    # Pintor et al. look for incomplete optimisation where the attack failed: an image the
    # attack broke (final measure 0) may keep raising an unbounded cross-entropy, which is
    # no sign of failure.  Older check files without `final` count every image.
    spans = []
    for _, s in sections:
        trace = s.get("trace") or {}
        if trace.get("span_last10") is None:
            continue
        final = trace.get("final") or [1.0] * len(trace["span_last10"])
        spans.append([span for span, left in zip(trace["span_last10"], final) if left > 0])
    if spans:
        incomplete = sum(span > TRACE_SPAN for values in spans for span in values)
        total = sum(len(values) for values in spans)
        measures.append(Measure("images the attack did not break with an incomplete loss trace",
                                "count", incomplete, of=total,
                                flags=incomplete > TRACE_SHARE * total + ROUNDING))
    return measures, (f"the check files' {threat} sections have no pgd-2x-steps or "
                      "pgd-restarts beside pgd, and no loss trace")


def attacks(s, threat: str) -> dict[str, dict]:
    pgd = pgd_params(s)
    return {"pgd-2x-steps": {**pgd, "steps": 2 * pgd["steps"]},
            "pgd-restarts": {**pgd, "random_start": True, "restarts": int(s["restarts"])}}


def run(work) -> dict:
    from clmrepro.core.attacks.sanity import PgdSettings, best_of_restarts, traced_pgd
    from clmrepro.core.seeding import derive_seed, generator

    pgd = work.pgd
    doubled = PgdSettings(pgd.eps, pgd.alpha, 2 * pgd.steps, pgd.random_start)
    seed = work.unit.seed
    return {"pgd-2x-steps": traced_pgd(work.target, work.x, work.y, doubled,
                                       generator(derive_seed(seed, "pgd", 2))).adv,
            "pgd-restarts": best_of_restarts(work.target, work.x, work.y, pgd,
                                             int(work.params["restarts"]),
                                             derive_seed(seed, "restarts"))}


def price(s, threat: str, c: Costs) -> tuple[float, int]:
    return 2 * c.steps * c.step + int(s["restarts"]) * c.steps * c.step, 2


REPORT = Report("convergence", "convergence", f"{CARLINI}; {PINTOR} (incomplete optimisation)",
                None, rule, verdict)
JOB = Job(
    "convergence", "convergence: twice PGD's steps and `restarts` random restarts, and the "
    "loss trace (Pintor et al.)",
    knobs={"restarts": (int, Field(RESTARTS, ge=2, le=100,
                                   description="random restarts of PGD"))},
    attacks=attacks, run=run, price=price, trace=True)
