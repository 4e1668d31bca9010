"""The paper's claims as checks: each reads the merged records and gives a verdict with the
numbers it rests on.

Verdicts: "holds", "fails", or "not run" when any cell the claim needs is missing (nothing is
ever filled in). "≈" means within SIMILAR_POINTS percentage points; "costs under one point"
means ULM minus CLM benign MRA below BENIGN_COST_POINTS.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

from clmrepro.reporting.paper import ATTACKS, ATTACK_LABELS, REGIME_LABELS
from clmrepro.reporting.tables import matches

HOLDS, FAILS, NOT_RUN = "holds", "fails", "not run"
SIMILAR_POINTS = 1.0
BENIGN_COST_POINTS = 1.0
CIFAR_8 = 8 / 255
CIFAR_16 = 16 / 255


@dataclass
class Evidence:
    label: str
    left_name: str
    left: float | None
    right_name: str
    right: float | None
    relation: str              # ">", "<", "≈", "cost<"
    ok: bool | None

    @property
    def difference(self) -> float | None:
        """left − right, shown beside the verdict so a reader sees the margin."""
        return None if self.left is None or self.right is None else self.left - self.right

    @property
    def relation_text(self) -> str:
        return {"≈": f"≈ (within {SIMILAR_POINTS:g} pt)",
                "cost<": f"costs < {BENIGN_COST_POINTS:g} pt vs"}.get(self.relation,
                                                                     self.relation)


@dataclass
class Claim:
    id: str
    quote: str
    check: str                 # the exact test, with its tolerance
    evaluate: Callable[[list[dict], list[dict]], list[Evidence]]


@dataclass
class ClaimResult:
    claim: Claim
    verdict: str
    evidence: list[Evidence]


def mean_mra(records: list[dict], family: str, regime: str, attack: str, eps: float
             ) -> float | None:
    """Mean MRA over runs under the paper's protocol; None when not run."""
    found = [r["mra"] for r in records if matches(r, family, regime, attack, eps)]
    return statistics.fmean(found) if found else None


def _compare(left: float | None, right: float | None, relation: str) -> bool | None:
    if left is None or right is None:
        return None
    if relation == ">":
        return left > right
    if relation == "<":
        return left < right
    if relation == "≈":
        return abs(left - right) * 100.0 <= SIMILAR_POINTS + 1e-9
    if relation == "cost<":  # right (ULM) minus left (CLM), in points
        return (right - left) * 100.0 < BENIGN_COST_POINTS
    raise ValueError(f"unknown relation {relation!r}")


def _pairwise(family: str, eps: float, left: str, right: str,
              relations: dict[str, str]) -> Callable[[list[dict], list[dict]], list[Evidence]]:
    def evaluate(records: list[dict], _analyses: list[dict]) -> list[Evidence]:
        rows = []
        for attack, relation in relations.items():
            a = mean_mra(records, family, left, attack, eps)
            b = mean_mra(records, family, right, attack, eps)
            rows.append(Evidence(ATTACK_LABELS[attack], REGIME_LABELS[left], a,
                                 REGIME_LABELS[right], b, relation, _compare(a, b, relation)))
        return rows
    return evaluate


def _all(relation: str) -> dict[str, str]:
    return {attack: relation for attack in ATTACKS}


def _saliency(_records: list[dict], analyses: list[dict]) -> list[Evidence]:
    """Per experiment: median |cosine| over all pairs and samples, CLM vs ULM (Fig. 6)."""
    by_experiment: dict[str, dict[str, float]] = {}
    for analysis in analyses:
        values = [abs(c) for cosines in analysis["saliency_cosine"].values() for c in cosines]
        if values:
            by_experiment.setdefault(analysis.get("experiment", ""), {})[
                analysis["regime"]] = statistics.median(values)
    rows = []
    for experiment in sorted(by_experiment) or [""]:
        got = by_experiment.get(experiment, {})
        clm, ulm = got.get("clm"), got.get("ulm")
        rows.append(Evidence(f"median |cos| {experiment}".strip(), "CLM", clm, "ULM", ulm, "<",
                             _compare(clm, ulm, "<")))
    return rows


CLAIMS: list[Claim] = [
    Claim("mnist-clm-beats-ulm",
          "CLM increased the MRA ... CLM even performed better under the AutoAttack, and "
          "MI-FGSM attacks. It performed best under the EOT attack. (MNIST, ε = 0.3)",
          "CLM MRA > ULM MRA on MNIST at ε = 0.3 for all five attacks",
          _pairwise("mnist", 0.3, "clm", "ulm", _all(">"))),
    Claim("cifar10-clm-beats-ulm",
          "CLM performed better than ULM against all attacks. (CIFAR-10, ε = 8/255)",
          "CLM MRA > ULM MRA on CIFAR-10 at ε = 8/255 for all five attacks",
          _pairwise("cifar10", CIFAR_8, "clm", "ulm", _all(">"))),
    Claim("mnist-clm-benign-cost",
          "the noise α added to the submodels' weights in CLM during their training does not "
          "cause a noticeable accuracy drop.",
          f"ULM − CLM benign MRA on MNIST < {BENIGN_COST_POINTS:g} point",
          _pairwise("mnist", 0.0, "clm", "ulm", {"benign": "cost<"})),
    Claim("cifar10-clm-benign-cost",
          "the noise α added to the submodels' weights in CLM during their training does not "
          "cause a noticeable accuracy drop.",
          f"ULM − CLM benign MRA on CIFAR-10 < {BENIGN_COST_POINTS:g} point",
          _pairwise("cifar10", 0.0, "clm", "ulm", {"benign": "cost<"})),
    Claim("mnist-adv-similar",
          "ULM-Adv and CLM-Adv performed similarly under all attacks variations. (MNIST, ε = 0.3)",
          f"|ULM-Adv − CLM-Adv| ≤ {SIMILAR_POINTS:g} point on MNIST at ε = 0.3, all five attacks",
          _pairwise("mnist", 0.3, "ulm-adv", "clm-adv", _all("≈"))),
    Claim("cifar10-adv-similar",
          "Similar to the results above, ULM-Adv and CLM-Adv performed similarly against these "
          "attacks on this dataset. (CIFAR-10, ε = 8/255)",
          f"|ULM-Adv − CLM-Adv| ≤ {SIMILAR_POINTS:g} point on CIFAR-10 at ε = 8/255, "
          "all five attacks",
          _pairwise("cifar10", CIFAR_8, "ulm-adv", "clm-adv", _all("≈"))),
    Claim("mnist-eps0.4-split",
          "On MNIST, CLM-Adv performed better against FGSM based attacks (FGSM and MI-FGSM) "
          "while ULM-Adv performed better against PGD based (PGD, AutoAttack, and PGD-EOT).",
          "at ε = 0.4: CLM-Adv > ULM-Adv for FGSM, MI-FGSM; CLM-Adv < ULM-Adv for PGD, "
          "AutoAttack, PGD-EOT",
          _pairwise("mnist", 0.4, "clm-adv", "ulm-adv",
                    {"fgsm": ">", "mifgsm": ">", "pgd": "<", "autoattack": "<",
                     "eot-pgd": "<"})),
    Claim("cifar10-eps16-clm-adv-better",
          "CLM-Adv performed slightly better against all attacks on CIFAR-10. (ε = 16/255)",
          "CLM-Adv MRA > ULM-Adv MRA on CIFAR-10 at ε = 16/255 for all five attacks",
          _pairwise("cifar10", CIFAR_16, "clm-adv", "ulm-adv", _all(">"))),
    Claim("saliency-more-orthogonal",
          "the medians of the similarities in the CLM ... got shifted more towards 0. (Fig. 6)",
          "median over all pairs and samples of |saliency cosine| (eq. 7): CLM < ULM, "
          "in every experiment with both",
          _saliency),
]


def verdict(evidence: list[Evidence]) -> str:
    if not evidence or any(row.ok is None for row in evidence):
        return NOT_RUN
    return HOLDS if all(row.ok for row in evidence) else FAILS


def evaluate_claims(records: list[dict], analyses: list[dict],
                    claims: list[Claim] | None = None) -> list[ClaimResult]:
    results = []
    for claim in CLAIMS if claims is None else claims:
        evidence = claim.evaluate(records, analyses)
        results.append(ClaimResult(claim, verdict(evidence), evidence))
    return results
