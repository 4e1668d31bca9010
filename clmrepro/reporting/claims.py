"""The paper's claims as checks on 95% intervals (docs/statistics.md).

Each row of a claim compares two cells through the interval of their difference
(clmrepro.reporting.estimates: paired t over replicates when K >= 2; when K = 1, t over the
paired per-image differences where both sides carry per-image results, else Newcombe's
interval over test images) and gets one of four outcomes:

- ``>`` (left − right > 0): holds when the interval lies above 0, fails when it lies at or
  below 0, else inconclusive; ``<`` mirrors it.
- ``≈`` (|left − right| ≤ SIMILAR_POINTS): an equivalence test, two one-sided tests at the
  margin (TOST, Lakens 2017; docs/reference.md §10): holds when the 90% interval lies inside
  the margin, fails when the 95% interval lies wholly outside it, else inconclusive; the row
  also states the smallest margin its 90% interval could confirm.
- ``cost<`` (left − right < BENIGN_COST_POINTS, left = ULM, right = CLM): holds when the
  interval's upper end is below the bound, fails when its lower end is at or above it, else
  inconclusive.
- "not run" when a cell the row needs is missing (nothing is ever filled in).

A claim fails when any row fails, holds when every row holds, and is otherwise inconclusive
(not run when any row is not run). "Holds" for all rows at once is an intersection-union
test, so it needs no multiplicity correction; with many rows a single "fails" is more likely
by chance than 2.5 % (docs/statistics.md says how much).

Each row also answers a second question, the size (issue 27): the paper's own effect for the
row's cell (its left − right, from specs/paper_tables.yaml) lies inside our 95% interval
(**reproduced**), is farther from 0 than the interval on its side (**smaller than reported**:
the effect the paper reports is excluded, ours is smaller), or nearer (**larger than
reported**).  A claim is tested in the paper's setting (its dataset and architecture); rows
measured in another setting say so, and a claim with nothing else is labelled "not the paper's
setting" and is not counted towards "did it reproduce" (:func:`counted`).

Each claim that compares two regimes under attack has a second reading, under the strongest
attack (issue 18): the same relation, one row, on the ``strongest`` records of the adaptive
threat model (per image the worst case over every attack run against the defence itself, ARC
and the check files' attacks included; reporting.strongest), marked as an upper bound where a
check flags either side. It is shown beside the paper-protocol verdict and never
counted in it. The ε = 0.4 split claim has none: it says which regime wins depends on the
attack family, and a per-image minimum over all attacks has no family.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Callable

from clmrepro.reporting.estimates import (Difference, clean_conditional_difference,
                                          paired_difference, replicate, units)
from clmrepro.reporting.paper import (ATTACKS, ATTACK_LABELS, DATASET_LABELS, REGIME_LABELS,
                                      PaperTable, paper_dataset, paper_value)
from clmrepro.reporting.stats import (LEVEL, T_REPLICATES, T_SAMPLES, Interval, paired_t_interval,
                                      t_cdf_two_sided, t_interval, t_quantile)
from clmrepro.reporting.strongest import STRONGEST
from clmrepro.reporting.tables import (Cell, difference_text, matches, upper_bound_text,
                                      value_text)

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = "holds", "fails", "inconclusive", "not run"
VERDICTS = (HOLDS, FAILS, INCONCLUSIVE, NOT_RUN)
# the size of an effect against the paper's (module docstring)
REPRODUCED, SMALLER, LARGER = "reproduced", "smaller than reported", "larger than reported"
MIXED = "mixed"
OFF_SETTING = "not the paper's setting"
# Two one-sided tests at 5% each: the 90% interval (Lakens 2017).
EQUIVALENCE_LEVEL = 0.90
# The paper's setting per dataset (paper §4: LeNet5 on MNIST, ResNet18 on CIFAR-10).
PAPER_ARCHITECTURE = {"mnist": "lenet5", "cifar10": "resnet18"}
ARCHITECTURE_LABELS = {"lenet5": "LeNet5", "resnet18": "ResNet18"}
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
    # the paper's cell this row reads: (dataset family, attack, eps, left regime, right regime)
    cell: tuple | None = None
    paper_effect: float | None = None      # the paper's left − right for that cell
    equivalence: Interval | None = None    # the 90% interval of left − right (≈ rows)
    off_setting: bool = False              # measured outside the paper's dataset/architecture
    # the same relation on the images both populations classify correctly when clean
    # (clean accuracy taken out; estimates.clean_conditional_difference), attack rows only
    clean_taken_out: "Evidence | None" = None

    @property
    def confounded(self) -> bool:
        """Clean accuracy explains the verdict: taken out, the row decides otherwise."""
        other = self.clean_taken_out
        return (other is not None and NOT_RUN not in (self.outcome, other.outcome)
                and other.outcome != self.outcome)

    @property
    def effect(self) -> str | None:
        """reproduced / smaller / larger than reported; None without the paper's effect."""
        return effect_size(self.interval, self.paper_effect)

    @property
    def confirmable_margin(self) -> float | None:
        """The smallest equivalence margin (a fraction) the 90% interval confirms."""
        if self.equivalence is None:
            return None
        return max(abs(self.equivalence.low), abs(self.equivalence.high))

    @property
    def power(self) -> float | None:
        """≈ rows: the chance that the equivalence test at SIMILAR_POINTS holds if the two
        sides were truly equal, with this row's spread and K (t approximation)."""
        if self.relation != "≈" or self.interval is None:
            return None
        return equivalence_power(self.interval, SIMILAR_POINTS / 100.0)

    @property
    def equivalence_text(self) -> str:
        """The 90% interval of an ≈ row, "[−0.21, +0.81]" points."""
        return "" if self.equivalence is None else difference_text(self.equivalence, self.unit)

    @property
    def paper_effect_text(self) -> str:
        if self.paper_effect is None:
            return "—"
        return points_text(self.paper_effect, self.unit)

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
    title: str = ""            # the claim in a few words ("CLM beats ULM")
    setting: tuple[str, str] | None = None   # the paper's (dataset family, architecture)

    @property
    def setting_text(self) -> str:
        if self.setting is None:
            return ""
        dataset, architecture = self.setting
        return (f"{DATASET_LABELS.get(dataset, dataset)} / "
                f"{ARCHITECTURE_LABELS.get(architecture, architecture)}")


@dataclass
class ClaimResult:
    claim: Claim
    verdict: str
    evidence: list[Evidence]
    strongest: Evidence | None = None   # its verdict is strongest.outcome

    @property
    def off_setting(self) -> bool:
        """Every row that ran was measured outside the paper's setting."""
        run = [e for e in self.evidence if e.outcome != NOT_RUN]
        return bool(run) and all(e.off_setting for e in run)

    @property
    def effect(self) -> str | None:
        """The rows' size verdicts in one word: all reproduced / smaller / larger, or mixed."""
        sizes = {e.effect for e in self.evidence if e.effect is not None}
        if not sizes:
            return None
        return sizes.pop() if len(sizes) == 1 else MIXED

    @property
    def effect_text(self) -> str:
        return effect_sentence(self.evidence)

    @property
    def confounded_rows(self) -> list[str]:
        """Rows whose verdict changes once clean accuracy is taken out."""
        return [e.label for e in self.evidence if e.confounded]

    @property
    def clean_verdict(self) -> str:
        """The claim's verdict with clean accuracy taken out (rows without the per-image
        data for it are not run)."""
        rows = [e.clean_taken_out for e in self.evidence if e.clean_taken_out is not None]
        return combine([e.outcome for e in rows]) if rows else NOT_RUN

    @property
    def k_text(self) -> str:
        """"K = 3" (replicates behind each row), "K = 1–3" when rows differ, "" for none."""
        ks = sorted({e.interval.k for e in self.evidence if e.interval is not None})
        if not ks:
            return ""
        return f"K = {ks[0]}" if len(ks) == 1 else f"K = {ks[0]}–{ks[-1]}"


def outcome(interval: Interval | None, relation: str, equivalence: Interval | None = None
            ) -> str:
    """One row's outcome from the 95% interval of left − right (module docstring); for
    ``≈``, ``equivalence`` is the 90% interval of the two one-sided tests (without it the
    95% interval must lie inside the margin, which is stricter)."""
    if interval is None:
        return NOT_RUN
    low, high = interval.low, interval.high
    if relation == ">":
        return HOLDS if low > 0 else FAILS if high <= 0 else INCONCLUSIVE
    if relation == "<":
        return HOLDS if high < 0 else FAILS if low >= 0 else INCONCLUSIVE
    if relation == "≈":
        margin = SIMILAR_POINTS / 100.0 + _ROUNDING
        inner = equivalence if equivalence is not None else interval
        if -margin <= inner.low and inner.high <= margin:
            return HOLDS
        return FAILS if low > margin or high < -margin else INCONCLUSIVE
    if relation == "cost<":
        bound = BENIGN_COST_POINTS / 100.0
        return HOLDS if high < bound else FAILS if low >= bound - _ROUNDING else INCONCLUSIVE
    raise ValueError(f"unknown relation {relation!r}")


def effect_size(interval: Interval | None, effect: float | None) -> str | None:
    """Where the paper's effect lies against our 95% interval of the same difference:
    inside (reproduced), farther from 0 (ours is smaller than reported), nearer to 0 or on
    the other side of it (ours is larger than reported)."""
    if interval is None or effect is None:
        return None
    if interval.low - _ROUNDING <= effect <= interval.high + _ROUNDING:
        return REPRODUCED
    if effect > 0:
        return SMALLER if effect > interval.high else LARGER
    if effect < 0:
        return SMALLER if effect < interval.low else LARGER
    return LARGER   # the paper saw no difference; our interval excludes none


def equivalence_power(interval: Interval, margin: float) -> float | None:
    """Power of the two one-sided tests at ``margin`` when the true difference is 0, for a
    t interval (replicates or paired samples): 2·F(margin/se − t₀.₉₅) − 1, F the t
    distribution's CDF with the interval's degrees of freedom (Lakens 2017's approximation);
    None for intervals that are not t intervals."""
    m = interval.k if interval.method != T_SAMPLES else interval.n
    if interval.method not in (T_REPLICATES, T_SAMPLES) or not m or m < 2:
        return None
    df = m - 1
    half = (interval.high - interval.low) / 2.0
    if half <= 0:
        return 1.0
    se = half / t_quantile(df, LEVEL)
    x = margin / se - t_quantile(df, 1 - 2 * (1 - EQUIVALENCE_LEVEL))
    one_sided = 0.5 + 0.5 * t_cdf_two_sided(x, df) * (1 if x >= 0 else -1)
    return max(0.0, 2.0 * one_sided - 1.0)


def points_text(value: float, unit: str = "percent") -> str:
    """+18.4 (points) or +0.012 (a cosine)."""
    return f"{value * 100:+.1f}" if unit == "percent" else f"{value:+.3f}"


def effect_sentence(evidence: list[Evidence]) -> str:
    """The rows' sizes in words, e.g. "the paper's +18.4 to +23.7 points are excluded under
    every row: ours at most +17.1 (FGSM)"; "" when no row has the paper's effect."""
    rows = [e for e in evidence if e.effect is not None]
    if not rows:
        return ""
    unit = " points" if rows[0].unit == "percent" else ""
    effects = sorted(e.paper_effect for e in rows)
    span = (points_text(effects[0], rows[0].unit) if effects[0] == effects[-1] else
            f"{points_text(effects[0], rows[0].unit)} to {points_text(effects[-1], rows[0].unit)}")
    sizes = [e.effect for e in rows]
    every = "every row" if len(rows) > 1 else "its row"
    if all(size == REPRODUCED for size in sizes):
        return f"the paper's {span}{unit} lie inside our interval in {every}"
    if all(size == SMALLER for size in sizes):
        if all(e.paper_effect > 0 for e in rows):
            top = max(rows, key=lambda e: e.interval.high)
            return (f"the paper's {span}{unit} are excluded in {every}: ours at most "
                    f"{points_text(top.interval.high, top.unit)} ({top.label})")
        if all(e.paper_effect < 0 for e in rows):
            low = min(rows, key=lambda e: e.interval.low)
            return (f"the paper's {span}{unit} are excluded in {every}: ours at least "
                    f"{points_text(low.interval.low, low.unit)} ({low.label})")
        return f"the paper's {span}{unit} are excluded in {every}, ours smaller"
    parts = []
    for size in (REPRODUCED, SMALLER, LARGER):
        labels = [e.label for e in rows if e.effect == size]
        if labels:
            parts.append(f"{size}: {', '.join(labels)}")
    return f"against the paper's {span}{unit}, " + "; ".join(parts)


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
         relation: str, difference: Difference | None, cell: tuple | None = None,
         architecture: str | None = None) -> Evidence:
    """One row; ≈ rows also get their 90% interval (TOST); a row whose records come from
    another architecture than the claim's is marked off the paper's setting."""
    off = architecture is not None and any(
        r.get("architecture", architecture) != architecture for r in left + right)
    if difference is None:
        return Evidence(label, left_name, _side_mean(left), right_name, _side_mean(right),
                        relation, None, NOT_RUN, cell=cell, off_setting=off)
    equivalence = None
    if relation == "≈":
        found = paired_difference(left, right, level=EQUIVALENCE_LEVEL)
        equivalence = None if found is None else found.interval
    return Evidence(label, left_name, difference.left, right_name, difference.right, relation,
                    difference.interval, outcome(difference.interval, relation, equivalence),
                    cell=cell, equivalence=equivalence, off_setting=off)


def _pairwise(family: str, eps: float, left: str, right: str,
              relations: dict[str, str]) -> Callable[[list[dict], list[dict]], list[Evidence]]:
    def evaluate(records: list[dict], _analyses: list[dict]) -> list[Evidence]:
        rows = []
        for attack, relation in relations.items():
            a = [r for r in records if matches(r, family, left, attack, eps)]
            b = [r for r in records if matches(r, family, right, attack, eps)]
            row = _row(ATTACK_LABELS[attack], REGIME_LABELS[left], a, REGIME_LABELS[right],
                       b, relation, paired_difference(a, b),
                       cell=(family, attack, eps, left, right),
                       architecture=PAPER_ARCHITECTURE[family])
            if attack != "benign":
                row.clean_taken_out = _clean_row(records, family, left, right, a, b, relation)
            rows.append(row)
        return rows
    return evaluate


def _clean_row(records: list[dict], family: str, left: str, right: str, a: list[dict],
               b: list[dict], relation: str) -> Evidence:
    """The row again on the images both classify correctly when clean (benign records of
    the same populations and replicates)."""
    clean_a = [r for r in records if matches(r, family, left, "benign", 0.0)]
    clean_b = [r for r in records if matches(r, family, right, "benign", 0.0)]
    difference = clean_conditional_difference(a, b, clean_a, clean_b)
    label = "clean-correct images"
    if difference is None:
        return Evidence(label, REGIME_LABELS[left], None, REGIME_LABELS[right], None,
                        relation, None, NOT_RUN)
    equivalence = None
    if relation == "≈":
        found = clean_conditional_difference(a, b, clean_a, clean_b, EQUIVALENCE_LEVEL)
        equivalence = None if found is None else found.interval
    return Evidence(label, REGIME_LABELS[left], difference.left, REGIME_LABELS[right],
                    difference.right, relation, difference.interval,
                    outcome(difference.interval, relation, equivalence),
                    equivalence=equivalence)


def _all(relation: str) -> dict[str, str]:
    return {attack: relation for attack in ATTACKS}


STRONGEST_THREAT_MODEL = "adaptive"
STRONGEST_LABEL = f"{ATTACK_LABELS[STRONGEST]}, {STRONGEST_THREAT_MODEL}"


def _strongest(family: str, eps: float, left: str, right: str, relation: str
               ) -> Callable[[list[dict]], Evidence]:
    """The claim's relation on the adaptive ``strongest`` records: one row, its label
    marking an upper bound where a check flags either side (reporting.strongest)."""
    def evaluate(records: list[dict]) -> Evidence:
        a = [r for r in records
             if matches(r, family, left, STRONGEST, eps, STRONGEST_THREAT_MODEL)]
        b = [r for r in records
             if matches(r, family, right, STRONGEST, eps, STRONGEST_THREAT_MODEL)]
        # a side a check flags is an upper bound: the row says so beside its numbers
        flagged = Cell(a + b).flagged_by
        # a strongest row's N is that of every attack it took (a check file's images may be
        # fewer): both sides are compared on the first images they all share
        sizes = [len(r["per_image"]) for r in a + b if r.get("per_image")]
        if sizes and min(sizes) < max(sizes):
            n = min(sizes)
            a, b = ([{**r, "per_image": r["per_image"][:n], "n_samples": n,
                      "mra": statistics.fmean(r["per_image"][:n])} if r.get("per_image")
                     else r for r in side] for side in (a, b))
        return _row(STRONGEST_LABEL + upper_bound_text(flagged), REGIME_LABELS[left], a,
                    REGIME_LABELS[right], b,
                    relation, paired_difference(a, b), cell=(family, STRONGEST, eps, left, right),
                    architecture=PAPER_ARCHITECTURE[family])
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


SALIENCY_SETTING = ("cifar10", "resnet18")


NOT_THE_PAPERS = "none"   # a dataset the paper did not use (fake-cifar10)


def _experiment_settings(records: list[dict]) -> dict[str, tuple[str, str | None]]:
    """experiment -> (the paper's dataset it stands for, or NOT_THE_PAPERS; architecture),
    from its records."""
    return {r["experiment"]: (paper_dataset(r["dataset"]) or NOT_THE_PAPERS,
                              r.get("architecture"))
            for r in records if "experiment" in r and "dataset" in r}


def _saliency(records: list[dict], analyses: list[dict]) -> list[Evidence]:
    """Per experiment: mean |cosine| over all pairs and samples, CLM vs ULM (Fig. 6).  The
    paper ran it with ResNet18 on CIFAR-10 only; another experiment's row is off its setting
    (an experiment whose records do not say is taken at its word)."""
    settings = _experiment_settings(records)
    rows = []
    for experiment in sorted({a.get("experiment", "") for a in analyses}) or [""]:
        dataset, architecture = settings.get(experiment, (None, None))
        off = ((dataset is not None and dataset != SALIENCY_SETTING[0])
               or (architecture is not None and architecture != SALIENCY_SETTING[1]))
        group = [a for a in analyses if a.get("experiment", "") == experiment]
        clm, ulm = _saliency_units(group, "clm"), _saliency_units(group, "ulm")
        difference = _saliency_difference(clm, ulm)
        label = f"mean |cos| {experiment}".strip()
        if difference is None:
            rows.append(Evidence(label, "CLM", _overall(clm), "ULM", _overall(ulm), "<", None,
                                 NOT_RUN, "number", off_setting=off))
        else:
            rows.append(Evidence(label, "CLM", difference.left, "ULM", difference.right, "<",
                                 difference.interval, outcome(difference.interval, "<"),
                                 "number", off_setting=off))
    return rows


CLAIMS: list[Claim] = [
    Claim("mnist-clm-beats-ulm",
          "CLM increased the MRA ... CLM even performed better under the AutoAttack, and "
          "MI-FGSM attacks. It performed best under the EOT attack. (MNIST, ε = 0.3)",
          "the 95% interval of CLM − ULM MRA lies above 0 on MNIST at ε = 0.3, for all five "
          "attacks",
          _pairwise("mnist", 0.3, "clm", "ulm", _all(">")),
          _strongest("mnist", 0.3, "clm", "ulm", ">"),
          title="CLM beats ULM", setting=("mnist", "lenet5")),
    Claim("cifar10-clm-beats-ulm",
          "CLM performed better than ULM against all attacks. (CIFAR-10, ε = 8/255)",
          "the 95% interval of CLM − ULM MRA lies above 0 on CIFAR-10 at ε = 8/255, for all "
          "five attacks",
          _pairwise("cifar10", CIFAR_8, "clm", "ulm", _all(">")),
          _strongest("cifar10", CIFAR_8, "clm", "ulm", ">"),
          title="CLM beats ULM", setting=("cifar10", "resnet18")),
    Claim("mnist-clm-benign-cost",
          "the noise α added to the submodels' weights in CLM during their training does not "
          "cause a noticeable accuracy drop.",
          f"the 95% interval of ULM − CLM benign MRA on MNIST lies below "
          f"{BENIGN_COST_POINTS:g} point",
          _pairwise("mnist", 0.0, "ulm", "clm", {"benign": "cost<"}), None, NO_ATTACK,
          title="CLM costs under 1 point of benign accuracy", setting=("mnist", "lenet5")),
    Claim("cifar10-clm-benign-cost",
          "the noise α added to the submodels' weights in CLM during their training does not "
          "cause a noticeable accuracy drop.",
          f"the 95% interval of ULM − CLM benign MRA on CIFAR-10 lies below "
          f"{BENIGN_COST_POINTS:g} point",
          _pairwise("cifar10", 0.0, "ulm", "clm", {"benign": "cost<"}), None, NO_ATTACK,
          title="CLM costs under 1 point of benign accuracy", setting=("cifar10", "resnet18")),
    Claim("mnist-adv-similar",
          "ULM-Adv and CLM-Adv performed similarly under all attacks variations. (MNIST, ε = 0.3)",
          f"the 95% interval of ULM-Adv − CLM-Adv lies within ±{SIMILAR_POINTS:g} point on "
          "MNIST at ε = 0.3, for all five attacks",
          _pairwise("mnist", 0.3, "ulm-adv", "clm-adv", _all("≈")),
          _strongest("mnist", 0.3, "ulm-adv", "clm-adv", "≈"),
          title="ULM-Adv and CLM-Adv perform similarly", setting=("mnist", "lenet5")),
    Claim("cifar10-adv-similar",
          "Similar to the results above, ULM-Adv and CLM-Adv performed similarly against these "
          "attacks on this dataset. (CIFAR-10, ε = 8/255)",
          f"the 95% interval of ULM-Adv − CLM-Adv lies within ±{SIMILAR_POINTS:g} point on "
          "CIFAR-10 at ε = 8/255, for all five attacks",
          _pairwise("cifar10", CIFAR_8, "ulm-adv", "clm-adv", _all("≈")),
          _strongest("cifar10", CIFAR_8, "ulm-adv", "clm-adv", "≈"),
          title="ULM-Adv and CLM-Adv perform similarly", setting=("cifar10", "resnet18")),
    Claim("mnist-eps0.4-split",
          "On MNIST, CLM-Adv performed better against FGSM based attacks (FGSM and MI-FGSM) "
          "while ULM-Adv performed better against PGD based (PGD, AutoAttack, and PGD-EOT).",
          "at ε = 0.4, the 95% interval of CLM-Adv − ULM-Adv lies above 0 for FGSM and "
          "MI-FGSM and below 0 for PGD, AutoAttack and PGD-EOT",
          _pairwise("mnist", 0.4, "clm-adv", "ulm-adv",
                    {"fgsm": ">", "mifgsm": ">", "pgd": "<", "autoattack": "<",
                     "eot-pgd": "<"}), None, NO_FAMILY,
          title="at ε = 0.4 CLM-Adv wins against FGSM-based attacks, ULM-Adv against PGD-based", setting=("mnist", "lenet5")),
    Claim("cifar10-eps16-clm-adv-better",
          "CLM-Adv performed slightly better against all attacks on CIFAR-10. (ε = 16/255)",
          "the 95% interval of CLM-Adv − ULM-Adv MRA lies above 0 on CIFAR-10 at ε = 16/255, "
          "for all five attacks",
          _pairwise("cifar10", CIFAR_16, "clm-adv", "ulm-adv", _all(">")),
          _strongest("cifar10", CIFAR_16, "clm-adv", "ulm-adv", ">"),
          title="CLM-Adv beats ULM-Adv at ε = 16/255", setting=("cifar10", "resnet18")),
    *[Claim(f"{family}-{population}-beats-{one}",
            "Our model leverages an established mechanism of defense which utilizes randomness "
            "and a population of DNNs ... the randomization technique proved to be resilient "
            "against adversarial attacks. (abstract: the thesis; the paper prints no one-model "
            "row)",
            f"the 95% interval of {REGIME_LABELS[population]} − {REGIME_LABELS[one]} MRA lies "
            f"above 0 on {DATASET_LABELS[family]} at ε = {eps_text}, for all five attacks "
            "(one model: the same architecture and training, size 1)",
            _pairwise(family, eps, population, one, _all(">")),
            _strongest(family, eps, population, one, ">"),
            title=f"a {REGIME_LABELS[population]} population beats {REGIME_LABELS[one]}",
            setting=(family, PAPER_ARCHITECTURE[family]))
      for family, eps, eps_text in (("mnist", 0.3, "0.3"), ("cifar10", CIFAR_8, "8/255"))
      for population, one in (("ulm", "one-model"), ("ulm-adv", "one-model-adv"))],
    Claim("saliency-more-orthogonal",
          "the medians of the similarities in the CLM ... got shifted more towards 0. (Fig. 6)",
          "the 95% interval of CLM − ULM mean |saliency cosine| (eq. 7, over all pairs and "
          "samples; Fig. 6 marks these means) lies below 0, in every experiment with both",
          _saliency, None, NO_MRA,
          title="CLM saliency maps are more orthogonal", setting=("cifar10", "resnet18")),
]


def _with_paper_effect(evidence: Evidence, tables: list[PaperTable]) -> Evidence:
    """The row with the paper's left − right for its cell, where the paper prints both."""
    if evidence.cell is None:
        return evidence
    family, attack, eps, left, right = evidence.cell
    a = paper_value(tables, family, left, attack, eps)
    b = paper_value(tables, family, right, attack, eps)
    if a is not None and b is not None:
        evidence.paper_effect = round(a - b, 6)
    return evidence


def evaluate_claims(records: list[dict], analyses: list[dict],
                    claims: list[Claim] | None = None,
                    tables: list[PaperTable] | None = None) -> list[ClaimResult]:
    """Every claim's verdict; with the paper's ``tables`` each row also gets the paper's
    effect and its size verdict.  Rows off the paper's setting do not decide a claim that
    has rows in it."""
    results = []
    for claim in CLAIMS if claims is None else claims:
        evidence = [_with_paper_effect(e, tables or []) for e in claim.evaluate(records, analyses)]
        strongest = claim.strongest(records) if claim.strongest is not None else None
        on_setting = [e for e in evidence if not e.off_setting]
        deciding = on_setting if any(e.outcome != NOT_RUN for e in on_setting) else evidence
        results.append(ClaimResult(claim, combine([e.outcome for e in deciding]), evidence,
                                   strongest))
    return results


def counted(results: list[ClaimResult]) -> list[ClaimResult]:
    """The claims that count towards "did it reproduce": those measured in the paper's
    setting (or not run at all)."""
    return [r for r in results if not r.off_setting]


def _span(values: list[float], unit: str) -> str:
    if not values:
        return "—"
    low, high = min(values), max(values)
    return (points_text(low, unit) if abs(high - low) < 5e-4
            else f"{points_text(low, unit)} to {points_text(high, unit)}")


@dataclass(frozen=True)
class ScreenRow:
    """One claim on the report's first screen (issue 27)."""

    claim: str             # the claim in a few words, with its setting
    paper: str             # the paper's effect (points), over the claim's rows
    ours: str              # our differences (points), over the claim's rows
    direction: str         # the verdict on the direction
    effect: str            # the size against the paper's effect, in words
    strongest: str         # the verdict under the strongest attack, or "—"


def first_screen(results: list[ClaimResult]) -> tuple[list[ScreenRow], list[str], list[str]]:
    """(one row per claim that ran in the paper's setting, the titles of claims not run, the
    titles of claims measured only outside the paper's setting)."""
    rows, not_run, off = [], [], []
    for result in results:
        claim = result.claim
        title = claim.title or claim.id
        named = f"{title} ({claim.setting_text})" if claim.setting else title
        if result.verdict == NOT_RUN and not any(e.outcome != NOT_RUN for e in result.evidence):
            not_run.append(named)
            continue
        if result.off_setting:
            off.append(f"{named}: measured on another setting, {result.verdict}")
            continue
        ran = [e for e in result.evidence if e.interval is not None and not e.off_setting]
        unit = ran[0].unit if ran else "percent"
        direction = result.verdict
        if result.confounded_rows:
            direction += (f"; with clean accuracy taken out {result.clean_verdict} "
                          f"(clean accuracy explains {', '.join(result.confounded_rows)})")
        strongest = ("—" if result.strongest is None else result.strongest.outcome
                     if result.strongest.interval is None else
                     f"{result.strongest.outcome}, {result.strongest.difference_text}"
                     + ("; an upper bound: a check flags it"
                        if "upper bound" in result.strongest.label else ""))
        if direction == NOT_RUN:
            direction += f" ({len(ran)} of {len(result.evidence)} rows run)"
        rows.append(ScreenRow(
            named, _span([e.paper_effect for e in ran if e.paper_effect is not None], unit),
            _span([e.difference for e in ran], unit), direction,
            result.effect_text or "—", strongest))
    return rows, not_run, off
