"""White-box vs transfer (Carlini et al. 2019; docs/sanity.md).

Inputs: the grid's records, no job of its own.  Adaptive: an attacker who knows the whole
population must do at least as well as one crafting on a single random submodel (adaptive −
paper-protocol MRA, same attack and ε, on the adaptive images).  Transfer: the diagonal of
PGD's transfer matrix (each submodel on its own examples) must fall to near 0 for an
undefended submodel, and below the off-diagonal mean for an adversarially trained one.
"""

from __future__ import annotations

import statistics

from clmrepro.kinds.checks.base import (CARLINI, ROUNDING, Kit, Measure, Population, Report,
                                        attack_kind)

THREAT_MODELS = ("transfer", "adaptive")
DIAGONAL_MAX = 0.05          # white-box accuracy of a submodel on its own PGD examples


def rule(threat: str, files) -> str:
    if threat == "adaptive":
        return ("Flag when the 95% interval of adaptive MRA − paper-protocol MRA (same attack "
                "and ε, on the adaptive images) lies above 0.")
    return (f"Flag when a submodel keeps more than {DIAGONAL_MAX:.0%} accuracy on its own PGD "
            "examples (ULM, CLM), or when the mean diagonal of the transfer matrix exceeds its "
            "off-diagonal mean (adversarially trained).")


def _off_diagonal_mean(transfer: dict) -> float:
    if transfer.get("off_diagonal_mean") is not None:
        return float(transfer["off_diagonal_mean"])
    matrix = transfer["matrix"]
    n = len(matrix)
    return statistics.fmean(matrix[i][j] for i in range(n) for j in range(n) if i != j)


def _adaptive(population: Population, kit: Kit) -> tuple[list[Measure], str]:
    measures = []
    adaptive = population.attack_records("adaptive")
    paper = population.attack_records("paper")
    for attack in sorted({r["attack"] for r in adaptive}):
        for eps, found in kit.eps_groups([r for r in adaptive if r["attack"] == attack]).items():
            other = [r for r in paper if r["attack"] == attack
                     and kit.same_eps(float(r["eps"]), eps)]
            n = min(int(r["n_samples"]) for r in found)
            d = kit.paired_difference(found, other, first=n)
            if d is None:
                continue
            measures.append(Measure(f"adaptive − paper protocol, {kit.label(attack)}, ε = "
                                    f"{kit.eps_text(eps)} (first {n} images)", "difference",
                                    d.interval.mean, d.interval, flags=d.interval.low > 0))
    return measures, "needs one attack at one ε under both the adaptive and the paper protocol"


def verdict(population: Population, threat: str, kit: Kit) -> tuple[list[Measure], str]:
    if threat == "adaptive":
        return _adaptive(population, kit)
    measures = []
    diagonals = kit.eps_groups([r for r in population.attack_records("transfer")
                                if attack_kind(r) == "pgd"
                                and (r.get("transfer") or {}).get("diagonal")])
    for eps, found in diagonals.items():
        if population.adversarially_trained:
            by_unit: dict[int, list[tuple[float, float]]] = {}
            for r in found:
                diagonal = statistics.fmean(r["transfer"]["diagonal"])
                by_unit.setdefault(kit.replicate(r), []).append(
                    (diagonal, _off_diagonal_mean(r["transfer"])))
            gaps = [statistics.fmean(d - o for d, o in pairs) for pairs in by_unit.values()]
            interval = (kit.t_interval(gaps, bounds=(-1.0, 1.0)) if len(gaps) >= 2 else None)
            value = statistics.fmean(gaps)
            measures.append(Measure(f"PGD ε = {kit.eps_text(eps)}: mean diagonal − "
                                    "off-diagonal mean", "difference", value, interval,
                                    flags=value > 0))
        else:
            largest = max(max(r["transfer"]["diagonal"]) for r in found)
            measures.append(Measure(f"PGD ε = {kit.eps_text(eps)}: largest diagonal entry "
                                    "(a submodel on its own examples)", "accuracy", largest,
                                    flags=largest > DIAGONAL_MAX + ROUNDING))
    return measures, "needs the transfer records of PGD (their matrix diagonal)"


REPORT = Report("white-box-vs-transfer", "white-box vs transfer", CARLINI, THREAT_MODELS,
                rule, verdict)
JOB = None
