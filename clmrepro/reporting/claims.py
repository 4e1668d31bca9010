"""The paper's claims as checks on 95% intervals (docs/statistics.md).

Each row of a claim compares two cells through the interval of their difference
(clmrepro.reporting.estimates: paired t over replicates when K >= 2; when K = 1, t over the
paired per-image differences where both sides carry per-image results, else Newcombe's
interval over test images) and gets one of four outcomes:

- ``>`` (left − right > 0): holds when the interval lies above 0, fails when it lies at or
  below 0, else inconclusive; ``<`` mirrors it.
- ``≈`` (|left − right| ≤ SIMILAR_POINTS): holds when the whole interval lies inside the
  margin, fails when it lies wholly outside, else inconclusive.
- ``cost<`` (left − right < BENIGN_COST_POINTS, left = ULM, right = CLM): holds when the
  interval's upper end is below the bound, fails when its lower end is at or above it, else
  inconclusive.
- "not run" when a cell the row needs is missing (nothing is ever filled in).

A claim fails when any row fails, holds when every row holds, and is otherwise inconclusive
(not run when any row is not run). "Holds" for all rows at once is an intersection-union
test, so it needs no multiplicity correction; with many rows a single "fails" is more likely
by chance than 2.5 % (docs/statistics.md says how much).

Each claim that compares two regimes under attack has a second reading, under the strongest
attack (issue 18): the same relation, one row, on the ``strongest`` records of the adaptive
threat model (per image the worst case over every attack run against the defence itself, ARC
included; reporting.strongest). It is shown beside the paper-protocol verdict and never
counted in it. The ε = 0.4 split claim has none: it says which regime wins depends on the
attack family, and a per-image minimum over all attacks has no family.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

from clmrepro.reporting.estimates import Difference, paired_difference, replicate, units
from clmrepro.reporting.paper import ATTACKS, ATTACK_LABELS, REGIME_LABELS
from clmrepro.reporting.stats import T_SAMPLES, Interval, paired_t_interval, t_interval
from clmrepro.reporting.strongest import STRONGEST
from clmrepro.reporting.tables import difference_text, matches, value_text

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = "holds", "fails", "inconclusive", "not run"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_RUN)
SIMILAR_POINTS = 1.0
BENIGN_COST_POINTS = 1.0
CIFAR_8 = 8 / 255
CIFAR_16 = 16 / 255
_ROUNDING = 1e-12   # a bound met exactly in float arithmetic counts as met


@dataclass
class Evidence:
    label: str
    left_name: str
    left: float | None          # mean over the units the difference pairs (or all, unpaired)
    right_name: str
    right: float | None
    relation: str               # ">", "<", "≈", "cost<"
    interval: Interval | None   # of left − right
    outcome: str
    unit: str = "percent"       # "percent" (MRAs) or "number" (saliency cosines)

    @property
    def difference(self) -> float | None:
        return None if self.interval is None else self.interval.mean

    @property
    def left_text(self) -> str:
        return value_text(self.left, self.unit)

    @property
    def right_text(self) -> str:
        return value_text(self.right, self.unit)

    @property
    def difference_text(self) -> str:
        return difference_text(self.interval, self.unit)

    @property
    def size_text(self) -> str:
        """"t over replicates, K = 3" or "Wilson ..., K = 1, N = 200"."""
        if self.interval is None:
            return NOT_RUN
        n = "" if self.interval.n is None else f", N = {self.interval.n}"
        return f"{self.interval.method}, K = {self.interval.k}{n}"

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
    # the same relation under the strongest attack (adaptive); None: no such reading, and why
    strongest: Callable[[list[dict]], Evidence] | None = None
    no_strongest: str = ""


@dataclass
class ClaimResult:
    claim: Claim
    verdict: str
    evidence: list[Evidence]
    strongest: Evidence | None = None   # its verdict is strongest.outcome

    @property
    def k_text(self) -> str:
        """"K = 3" (replicates behind each row), "K = 1–3" when rows differ, "" for none."""
        ks = sorted({e.interval.k for e in self.evidence if e.interval is not None})
        if not ks:
            return ""
        return f"K = {ks[0]}" if len(ks) == 1 else f"K = {ks[0]}–{ks[-1]}"


def outcome(interval: Interval | None, relation: str) -> str:
    """One row's outcome from the interval of left − right (module docstring)."""
    if interval is None:
        return NOT_RUN
    low, high = interval.low, interval.high
    if relation == ">":
        return HOLDS if low > 0 else FAILS if high <= 0 else INCONCLUSIVE
    if relation == "<":
        return HOLDS if high < 0 else FAILS if low >= 0 else INCONCLUSIVE
    if relation == "≈":
        margin = SIMILAR_POINTS / 100.0 + _ROUNDING
        if -margin <= low and high <= margin:
            return HOLDS
        return FAILS if low > margin or high < -margin else INCONCLUSIVE
    if relation == "cost<":
        bound = BENIGN_COST_POINTS / 100.0
        return HOLDS if high < bound else FAILS if low >= bound - _ROUNDING else INCONCLUSIVE
    raise ValueError(f"unknown relation {relation!r}")


def combine(outcomes: list[str]) -> str:
    if not outcomes or NOT_RUN in outcomes:
        return NOT_RUN
    if FAILS in outcomes:
        return FAILS
    return HOLDS if all(o == HOLDS for o in outcomes) else INCONCLUSIVE


def _side_mean(records: list[dict]) -> float | None:
    found = units(records)
    return statistics.fmean(m for m, _ in found.values()) if found else None


def _row(label: str, left_name: str, left: list[dict], right_name: str, right: list[dict],
         relation: str, difference: Difference | None) -> Evidence:
    if difference is None:
        return Evidence(label, left_name, _side_mean(left), right_name, _side_mean(right),
                        relation, None, NOT_RUN)
    return Evidence(label, left_name, difference.left, right_name, difference.right, relation,
                    difference.interval, outcome(difference.interval, relation))


def _pairwise(family: str, eps: float, left: str, right: str,
              relations: dict[str, str]) -> Callable[[list[dict], list[dict]], list[Evidence]]:
    def evaluate(records: list[dict], _analyses: list[dict]) -> list[Evidence]:
        rows = []
        for attack, relation in relations.items():
            a = [r for r in records if matches(r, family, left, attack, eps)]
            b = [r for r in records if matches(r, family, right, attack, eps)]
            rows.append(_row(ATTACK_LABELS[attack], REGIME_LABELS[left], a,
                             REGIME_LABELS[right], b, relation, paired_difference(a, b)))
        return rows
    return evaluate


def _all(relation: str) -> dict[str, str]:
    return {attack: relation for attack in ATTACKS}


STRONGEST_THREAT_MODEL = "adaptive"
STRONGEST_LABEL = f"{ATTACK_LABELS[STRONGEST]}, {STRONGEST_THREAT_MODEL}"


def _strongest(family: str, eps: float, left: str, right: str, relation: str
               ) -> Callable[[list[dict]], Evidence]:
    """The claim's relation on the adaptive ``strongest`` records: one row."""
    def evaluate(records: list[dict]) -> Evidence:
        a = [r for r in records
             if matches(r, family, left, STRONGEST, eps, STRONGEST_THREAT_MODEL)]
        b = [r for r in records
             if matches(r, family, right, STRONGEST, eps, STRONGEST_THREAT_MODEL)]
        return _row(STRONGEST_LABEL, REGIME_LABELS[left], a, REGIME_LABELS[right], b,
                    relation, paired_difference(a, b))
    return evaluate


NO_ATTACK = "a benign accuracy: no attack, so no strongest one"
NO_FAMILY = ("the claim is that the winner depends on the attack family (FGSM-based vs "
             "PGD-based); the per-image minimum over all attacks has no family, so it has "
             "no reading under the strongest attack")
NO_MRA = "a saliency statistic, not an accuracy under attack"


# ---- the saliency claim (Fig. 6) ------------------------------------------------------------

def per_sample_abs_cosine(analysis: dict) -> list[float]:
    """For each saliency sample, the mean over submodel pairs of |cosine| (eq. 7)."""
    pairs = [cosines for _, cosines in sorted(analysis["saliency_cosine"].items()) if cosines]
    if not pairs or len({len(c) for c in pairs}) != 1:
        return []
    return [statistics.fmean(abs(c[i]) for c in pairs) for i in range(len(pairs[0]))]


def _saliency_units(analyses: list[dict], regime: str) -> dict[int, list[float]]:
    """replicate -> per-sample mean |cos|, averaged over populations of this regime."""
    groups: dict[int, list[list[float]]] = {}
    for analysis in analyses:
        values = per_sample_abs_cosine(analysis) if analysis["regime"] == regime else []
        if values:
            groups.setdefault(replicate(analysis), []).append(values)
    return {r: [statistics.fmean(column) for column in zip(*found)]
            for r, found in sorted(groups.items()) if len({len(v) for v in found}) == 1}


def _overall(found: dict[int, list[float]]) -> float | None:
    return statistics.fmean(statistics.fmean(v) for v in found.values()) if found else None


def _saliency_difference(clm: dict[int, list[float]], ulm: dict[int, list[float]]
                         ) -> Difference | None:
    """CLM − ULM mean |cos|: paired t over replicates (K >= 2), or over the saliency samples,
    which are the same first test images for every population (K = 1)."""
    common = [r for r in clm if r in ulm]
    left = [statistics.fmean(clm[r]) for r in common]
    right = [statistics.fmean(ulm[r]) for r in common]
    if len(common) >= 2:
        return Difference(statistics.fmean(left), statistics.fmean(right),
                          paired_t_interval(left, right))
    if len(common) == 1:
        a, b = clm[common[0]], ulm[common[0]]
        if len(a) == len(b) and len(a) >= 2:
            diffs = [x - y for x, y in zip(a, b)]
            return Difference(left[0], right[0], t_interval(diffs, T_SAMPLES, bounds=(-1, 1)))
    return None


def _saliency(_records: list[dict], analyses: list[dict]) -> list[Evidence]:
    """Per experiment: mean |cosine| over all pairs and samples, CLM vs ULM (Fig. 6)."""
    rows = []
    for experiment in sorted({a.get("experiment", "") for a in analyses}) or [""]:
        group = [a for a in analyses if a.get("experiment", "") == experiment]
        clm, ulm = _saliency_units(group, "clm"), _saliency_units(group, "ulm")
        difference = _saliency_difference(clm, ulm)
        label = f"mean |cos| {experiment}".strip()
        if difference is None:
            rows.append(Evidence(label, "CLM", _overall(clm), "ULM", _overall(ulm), "<", None,
                                 NOT_RUN, "number"))
        else:
            rows.append(Evidence(label, "CLM", difference.left, "ULM", difference.right, "<",
                                 difference.interval, outcome(difference.interval, "<"),
                                 "number"))
    return rows


CLAIMS: list[Claim] = [
    Claim("mnist-clm-beats-ulm",
          "CLM increased the MRA ... CLM even performed better under the AutoAttack, and "
          "MI-FGSM attacks. It performed best under the EOT attack. (MNIST, ε = 0.3)",
          "the 95% interval of CLM − ULM MRA lies above 0 on MNIST at ε = 0.3, for all five "
          "attacks",
          _pairwise("mnist", 0.3, "clm", "ulm", _all(">")),
          _strongest("mnist", 0.3, "clm", "ulm", ">")),
    Claim("cifar10-clm-beats-ulm",
          "CLM performed better than ULM against all attacks. (CIFAR-10, ε = 8/255)",
          "the 95% interval of CLM − ULM MRA lies above 0 on CIFAR-10 at ε = 8/255, for all "
          "five attacks",
          _pairwise("cifar10", CIFAR_8, "clm", "ulm", _all(">")),
          _strongest("cifar10", CIFAR_8, "clm", "ulm", ">")),
    Claim("mnist-clm-benign-cost",
          "the noise α added to the submodels' weights in CLM during their training does not "
          "cause a noticeable accuracy drop.",
          f"the 95% interval of ULM − CLM benign MRA on MNIST lies below "
          f"{BENIGN_COST_POINTS:g} point",
          _pairwise("mnist", 0.0, "ulm", "clm", {"benign": "cost<"}), None, NO_ATTACK),
    Claim("cifar10-clm-benign-cost",
          "the noise α added to the submodels' weights in CLM during their training does not "
          "cause a noticeable accuracy drop.",
          f"the 95% interval of ULM − CLM benign MRA on CIFAR-10 lies below "
          f"{BENIGN_COST_POINTS:g} point",
          _pairwise("cifar10", 0.0, "ulm", "clm", {"benign": "cost<"}), None, NO_ATTACK),
    Claim("mnist-adv-similar",
          "ULM-Adv and CLM-Adv performed similarly under all attacks variations. (MNIST, ε = 0.3)",
          f"the 95% interval of ULM-Adv − CLM-Adv lies within ±{SIMILAR_POINTS:g} point on "
          "MNIST at ε = 0.3, for all five attacks",
          _pairwise("mnist", 0.3, "ulm-adv", "clm-adv", _all("≈")),
          _strongest("mnist", 0.3, "ulm-adv", "clm-adv", "≈")),
    Claim("cifar10-adv-similar",
          "Similar to the results above, ULM-Adv and CLM-Adv performed similarly against these "
          "attacks on this dataset. (CIFAR-10, ε = 8/255)",
          f"the 95% interval of ULM-Adv − CLM-Adv lies within ±{SIMILAR_POINTS:g} point on "
          "CIFAR-10 at ε = 8/255, for all five attacks",
          _pairwise("cifar10", CIFAR_8, "ulm-adv", "clm-adv", _all("≈")),
          _strongest("cifar10", CIFAR_8, "ulm-adv", "clm-adv", "≈")),
    Claim("mnist-eps0.4-split",
          "On MNIST, CLM-Adv performed better against FGSM based attacks (FGSM and MI-FGSM) "
          "while ULM-Adv performed better against PGD based (PGD, AutoAttack, and PGD-EOT).",
          "at ε = 0.4, the 95% interval of CLM-Adv − ULM-Adv lies above 0 for FGSM and "
          "MI-FGSM and below 0 for PGD, AutoAttack and PGD-EOT",
          _pairwise("mnist", 0.4, "clm-adv", "ulm-adv",
                    {"fgsm": ">", "mifgsm": ">", "pgd": "<", "autoattack": "<",
                     "eot-pgd": "<"}), None, NO_FAMILY),
    Claim("cifar10-eps16-clm-adv-better",
          "CLM-Adv performed slightly better against all attacks on CIFAR-10. (ε = 16/255)",
          "the 95% interval of CLM-Adv − ULM-Adv MRA lies above 0 on CIFAR-10 at ε = 16/255, "
          "for all five attacks",
          _pairwise("cifar10", CIFAR_16, "clm-adv", "ulm-adv", _all(">")),
          _strongest("cifar10", CIFAR_16, "clm-adv", "ulm-adv", ">")),
    Claim("saliency-more-orthogonal",
          "the medians of the similarities in the CLM ... got shifted more towards 0. (Fig. 6)",
          "the 95% interval of CLM − ULM mean |saliency cosine| (eq. 7, over all pairs and "
          "samples; Fig. 6 marks these means) lies below 0, in every experiment with both",
          _saliency, None, NO_MRA),
]


def evaluate_claims(records: list[dict], analyses: list[dict],
                    claims: list[Claim] | None = None) -> list[ClaimResult]:
    results = []
    for claim in CLAIMS if claims is None else claims:
        evidence = claim.evaluate(records, analyses)
        strongest = claim.strongest(records) if claim.strongest is not None else None
        results.append(ClaimResult(claim, combine([e.outcome for e in evidence]), evidence,
                                   strongest))
    return results
