"""Is the robustness real? Checks that catch a failed attack (issue 18; docs/sanity.md).

Pure functions from the scores records (with ``per_image``, reporting.build) and the decoded
check files (:func:`decode_check_file`) to results, one per (population, check, threat model):
``pass``, ``flag`` or ``not run`` (with the reason), the rule with its number, its source, and
the numbers compared. Populations pool their replicates with the units machinery of
reporting.estimates: means over replicates, differences paired by replicate (K >= 2) or image
by image (K = 1, per-image values on the same images), as every claim does.

A check file (written by the sanity job, one per population and replicate) holds per threat
model the per-image correctness tables of PGD variants, Square and random noise on the first
``n_samples`` test images, PGD's loss trace summary and the zero-gradient count
(docs/architecture.md). Sources (REFERENCE.md §8): Carlini et al. 2019, "On Evaluating
Adversarial Robustness"; AutoAttack's own flags (fra31/auto-attack, ``autoattack/checks.py``);
Pintor et al., NeurIPS 2022, "Indicators of Attack Failure".
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable

from clmrepro.core.per_image import expected_accuracy, unpack
from clmrepro.reporting.estimates import cell_interval, paired_difference, replicate
from clmrepro.reporting.paper import ATTACK_LABELS, EPS_TOLERANCE, REGIME_LABELS
from clmrepro.reporting.stats import T_SAMPLES, Interval, t_interval
from clmrepro.reporting.strongest import STRONGEST
from clmrepro.reporting.tables import (NOT_RUN, THREAT_MODELS, bounds, count_text,
                                       difference_text, eps_text, pct, points)

PASS, FLAG = "pass", "flag"
CHECK_VERDICTS = (FLAG, PASS, NOT_RUN)
CHECK_FILE_VERSIONS = (1,)

# the rules' numbers (docs/sanity.md)
MOVE_POINTS = 1.0            # doubled steps / restarts may move the MRA by less than this
TRACE_SPAN = 0.05            # Pintor: normalised running-best span of the last 10 values
TRACE_SHARE = 0.05           # ... on more than this share of the images
SQUARE_POINTS = 0.2          # AutoAttack check_square_sr: alpha = 0.002
UNBOUNDED_MRA = 0.01         # ε = 1 must leave at most 1% (adaptive)
DIAGONAL_MAX = 0.05          # white-box accuracy of a submodel on its own PGD examples
SILENT_POINTS = 0.5          # mean of final − best point on the path
GRADIENT_KINDS = ("fgsm", "pgd", "mifgsm", "eot-pgd", "arc")
PGD_VARIANTS = ("pgd", "pgd-2x-steps", "pgd-restarts")
_ROUNDING = 1e-12            # a bound met exactly in float arithmetic counts as met

CARLINI = "Carlini et al. 2019, “On Evaluating Adversarial Robustness”"
PINTOR = "Pintor et al., NeurIPS 2022, “Indicators of Attack Failure”"
AUTOATTACK = "AutoAttack's own flags (fra31/auto-attack, autoattack/checks.py"


# ---- check files ------------------------------------------------------------------------------

def decode_check_file(raw: dict, path: str = "check file") -> dict:
    """A check file with every per-image table decoded to each image's expected accuracy
    (``per_image``, as reporting.build does for scores); the tables themselves are dropped."""
    if raw.get("schema_version") not in CHECK_FILE_VERSIONS:
        raise ValueError(f"{path}: schema_version {raw.get('schema_version')!r} is not one "
                         f"this report reads {CHECK_FILE_VERSIONS}: re-run the sanity job, or "
                         "update clmrepro")
    for key in ("experiment", "population"):
        if not isinstance(raw.get(key), str):
            raise ValueError(f"{path}: {key!r} is missing; the report cannot tell which "
                             "population this check file belongs to: re-run the sanity job")
    sections = {}
    for threat, section in sorted((raw.get("threat_models") or {}).items()):
        attacks = {}
        for name, attack in sorted((section.get("attacks") or {}).items()):
            try:
                per_image = expected_accuracy(unpack(attack["correct"])).tolist()
            except (KeyError, ValueError) as error:
                raise ValueError(f"{path}: threat_models.{threat}.attacks.{name}: {error}; "
                                 "re-run the sanity job") from None
            attacks[name] = {"params": attack.get("params") or {}, "per_image": per_image}
        sections[threat] = {"attacks": attacks, "trace": section.get("trace"),
                            "zero_gradient": section.get("zero_gradient")}
    return {"experiment": raw["experiment"], "population": raw["population"],
            "regime": raw.get("regime", raw["population"]), "replicate": replicate(raw),
            "eps": raw.get("eps"), "n_samples": raw.get("n_samples"),
            "threat_models": sections}


def _pseudo(check_file: dict, threat: str, name: str, per_image: list[float]) -> dict:
    """A per-image result of a check file as a record the units machinery reads."""
    return {"experiment": check_file["experiment"], "population": check_file["population"],
            "regime": check_file["regime"], "replicate": check_file["replicate"],
            "threat_model": threat, "attack": name, "eps": check_file.get("eps"),
            "mra": statistics.fmean(per_image), "n_samples": len(per_image),
            "per_image": per_image}


# ---- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Measure:
    """One number a check compares: a difference (points), an accuracy (percent) or a count
    of images; ``flags`` when it crosses the rule's threshold."""

    label: str
    kind: str                       # "difference" | "accuracy" | "count"
    value: float | int | None
    interval: Interval | None = None
    of: int | None = None           # images counted over (kind "count")
    flags: bool = False
    key: bool = False               # the one to show in a table cell when nothing flags

    @property
    def text(self) -> str:
        if self.kind == "count":
            return f"{self.label}: {count_text(self.value, self.of)}"
        if self.kind == "difference":
            if self.interval is not None:
                size = f"K = {self.interval.k}" + (
                    "" if self.interval.n is None else f", N = {self.interval.n}")
                return (f"{self.label}: {difference_text(self.interval)} "
                        f"({self.interval.method}, {size})")
            return f"{self.label}: {points(self.value)} points"
        if self.interval is not None:
            return f"{self.label}: {pct(self.value)} {bounds(self.interval)}"
        return f"{self.label}: {pct(self.value)}"


@dataclass(frozen=True)
class CheckResult:
    check: str
    title: str
    experiment: str
    population: str
    regime: str
    threat_model: str
    verdict: str
    rule: str
    source: str
    evidence: tuple[Measure, ...] = ()
    reason: str = ""                # why "not run"

    @property
    def key_measure(self) -> Measure | None:
        """The first measure that flags, else the one marked key, else the first."""
        for wanted in (lambda m: m.flags, lambda m: m.key, lambda m: True):
            for measure in self.evidence:
                if wanted(measure):
                    return measure
        return None

    @property
    def key_text(self) -> str:
        if self.verdict == NOT_RUN:
            return self.reason
        measure = self.key_measure
        return measure.text if measure is not None else ""


@dataclass
class Population:
    """What the checks of one population read: its records and decoded check files."""

    experiment: str
    population: str
    regime: str
    records: list[dict]
    files: list[dict] = field(default_factory=list)

    def threat_records(self, threat: str) -> list[dict]:
        return [r for r in self.records if r["threat_model"] == threat]

    def sections(self, threat: str) -> list[tuple[dict, dict]]:
        """(check file, its section for this threat model), by replicate."""
        return [(f, f["threat_models"][threat]) for f in self.files
                if threat in f["threat_models"]]

    @property
    def adversarially_trained(self) -> bool:
        return self.regime.endswith("-adv")


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    source: str
    threat_models: tuple[str, ...] | None   # None: those of the check files
    rule: Callable[[str], str]
    run: Callable[[Population, str], tuple[list[Measure], str]]  # measures, or a reason


def _label(attack: str) -> str:
    return ATTACK_LABELS.get(attack, attack)


def _kind(record: dict) -> str:
    """The attack family; version-1 records name only the spec's id."""
    return str(record.get("attack_kind") or record["attack"])


def _eps_groups(records: list[dict]) -> dict[float, list[dict]]:
    """Records by ε (within the paper module's tolerance), in increasing order."""
    out: dict[float, list[dict]] = {}
    for r in sorted(records, key=lambda r: float(r["eps"])):
        eps = float(r["eps"])
        key = next((k for k in out if abs(k - eps) <= EPS_TOLERANCE), eps)
        out.setdefault(key, []).append(r)
    return out


def _attack_records(population: Population, threat: str) -> list[dict]:
    return [r for r in population.threat_records(threat)
            if r["attack"] not in ("benign", STRONGEST)]


def _no_file(population: Population, threat: str) -> str:
    if not population.files:
        return "no check file for this population (the spec's evaluation.sanity runs none)"
    return f"the check files have no {threat} section"


# ---- the checks -------------------------------------------------------------------------------

def _ids(records: list[dict], kind: str) -> list[str]:
    return sorted({r["attack"] for r in records if _kind(r) == kind})


def _iterative(population: Population, threat: str) -> tuple[list[Measure], str]:
    measures = []
    for eps, found in _eps_groups(_attack_records(population, threat)).items():
        for pgd in _ids(found, "pgd"):
            for fgsm in _ids(found, "fgsm"):
                d = paired_difference([r for r in found if r["attack"] == pgd],
                                      [r for r in found if r["attack"] == fgsm])
                if d is None:
                    continue
                measures.append(Measure(f"{_label(pgd)} − {_label(fgsm)}, ε = {eps_text(eps)}",
                                        "difference", d.interval.mean, d.interval,
                                        flags=d.interval.low > 0))
    return measures, f"needs PGD and FGSM at one ε under {threat} in the grid"


def _budget(population: Population, threat: str) -> tuple[list[Measure], str]:
    measures = []
    records = _attack_records(population, threat)
    for attack in sorted({r["attack"] for r in records}):
        groups = list(_eps_groups([r for r in records if r["attack"] == attack]).items())
        for (small, low_side), (large, high_side) in zip(groups, groups[1:]):
            d = paired_difference(high_side, low_side)
            if d is None:
                continue
            measures.append(Measure(f"{_label(attack)} ε = {eps_text(large)} − ε = "
                                    f"{eps_text(small)}", "difference", d.interval.mean,
                                    d.interval, flags=d.interval.low > 0))
    if threat == "adaptive":
        unbounded = [_pseudo(f, threat, "pgd-unbounded", s["attacks"]["pgd-unbounded"]
                             ["per_image"]) for f, s in population.sections(threat)
                     if "pgd-unbounded" in s["attacks"]]
        interval = cell_interval(unbounded)
        if interval is not None:
            measures.append(Measure("PGD, ε = 1 (unbounded)", "accuracy", interval.mean,
                                    interval, flags=interval.mean > UNBOUNDED_MRA + _ROUNDING))
    reason = "needs one attack at two ε or more in the grid"
    if threat == "adaptive":
        reason += ", or the check file's pgd-unbounded"
    return measures, reason


def _variants(population: Population, threat: str, name: str) -> tuple[list[dict], list[dict]]:
    """Check-file records of a PGD variant and of the check file's own PGD, by replicate."""
    both = [(f, s) for f, s in population.sections(threat)
            if name in s["attacks"] and "pgd" in s["attacks"]]
    return ([_pseudo(f, threat, name, s["attacks"][name]["per_image"]) for f, s in both],
            [_pseudo(f, threat, "pgd", s["attacks"]["pgd"]["per_image"]) for f, s in both])


def _convergence(population: Population, threat: str) -> tuple[list[Measure], str]:
    sections = population.sections(threat)
    if not sections:
        return [], _no_file(population, threat)
    measures = []
    for name in ("pgd-2x-steps", "pgd-restarts"):
        variant, pgd = _variants(population, threat, name)
        d = paired_difference(variant, pgd)
        if d is None:
            continue
        if name == "pgd-2x-steps":
            label = "PGD with twice the steps − PGD"
        else:
            restarts = {s["attacks"][name]["params"].get("restarts", 5) for _, s in sections
                        if name in s["attacks"]}
            label = f"PGD with {'/'.join(str(r) for r in sorted(restarts))} restarts − PGD"
        moved = abs(d.interval.mean) >= MOVE_POINTS / 100.0 - _ROUNDING
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
                                flags=incomplete > TRACE_SHARE * total + _ROUNDING))
    return measures, (f"the check files' {threat} sections have no pgd-2x-steps or "
                      "pgd-restarts beside pgd, and no loss trace")


def _gradient_tables(population: Population, check_file: dict, section: dict, threat: str,
                     n: int) -> dict[str, list[float]]:
    """The gradient attacks on the first n images: the grid's records of this replicate and
    threat model at the check file's ε, and the check file's PGD variants."""
    tables = {}
    eps = check_file.get("eps")
    for r in _attack_records(population, threat):
        if (replicate(r) == check_file["replicate"] and _kind(r) in GRADIENT_KINDS
                and r.get("per_image") is not None and len(r["per_image"]) >= n
                and eps is not None and abs(float(r["eps"]) - float(eps)) <= EPS_TOLERANCE):
            tables[r["attack"]] = r["per_image"][:n]
    for name in PGD_VARIANTS:
        if name in section["attacks"] and len(section["attacks"][name]["per_image"]) >= n:
            tables[f"check-file {name}"] = section["attacks"][name]["per_image"][:n]
    return tables


def _gradient_free(population: Population, threat: str) -> tuple[list[Measure], str]:
    sections = [(f, s) for f, s in population.sections(threat) if "square" in s["attacks"]]
    if not sections:
        return [], (_no_file(population, threat) if not population.sections(threat)
                    else f"the check files' {threat} sections have no square")
    gradient, with_square, names = [], [], set()
    only_square = total = 0
    for check_file, section in sections:
        square = section["attacks"]["square"]["per_image"]
        tables = _gradient_tables(population, check_file, section, threat, len(square))
        if not tables or len(square) < 1:
            continue
        names |= set(tables)
        worst = [min(values) for values in zip(*tables.values())]
        both = [min(w, s) for w, s in zip(worst, square)]
        only_square += sum(s < w for w, s in zip(worst, square))
        total += len(square)
        gradient.append(_pseudo(check_file, threat, "gradient", worst))
        with_square.append(_pseudo(check_file, threat, "gradient+square", both))
    d = paired_difference(gradient, with_square)
    if d is None:
        return [], f"no gradient attack with per-image values under {threat} to compare with"
    names_text = ", ".join(sorted(names))
    g, s = cell_interval(gradient), cell_interval(with_square)
    return [Measure(f"per-image minimum over the gradient attacks ({names_text})", "accuracy",
                    g.mean, g),
            Measure("the same with Square", "accuracy", s.mean, s),
            Measure("gradient attacks − with Square", "difference", d.interval.mean, d.interval,
                    flags=d.interval.mean > SQUARE_POINTS / 100.0 + _ROUNDING, key=True),
            Measure("images where Square is below every gradient attack", "count",
                    only_square, of=total)], ""


def _diagonals(population: Population) -> dict[float, list[dict]]:
    found = [r for r in _attack_records(population, "transfer")
             if _kind(r) == "pgd" and (r.get("transfer") or {}).get("diagonal")]
    return _eps_groups(found)


def _off_diagonal_mean(transfer: dict) -> float:
    if transfer.get("off_diagonal_mean") is not None:
        return float(transfer["off_diagonal_mean"])
    matrix = transfer["matrix"]
    n = len(matrix)
    return statistics.fmean(matrix[i][j] for i in range(n) for j in range(n) if i != j)


def _white_box(population: Population, threat: str) -> tuple[list[Measure], str]:
    measures = []
    if threat == "adaptive":
        adaptive = _attack_records(population, "adaptive")
        paper = _attack_records(population, "paper")
        for attack in sorted({r["attack"] for r in adaptive}):
            for eps, found in _eps_groups([r for r in adaptive
                                           if r["attack"] == attack]).items():
                other = [r for r in paper if r["attack"] == attack
                         and abs(float(r["eps"]) - eps) <= EPS_TOLERANCE]
                n = min(int(r["n_samples"]) for r in found)
                d = paired_difference(found, other, first=n)
                if d is None:
                    continue
                measures.append(Measure(f"adaptive − paper protocol, {_label(attack)}, ε = "
                                        f"{eps_text(eps)} (first {n} images)", "difference",
                                        d.interval.mean, d.interval, flags=d.interval.low > 0))
        return measures, ("needs one attack at one ε under both the adaptive and the paper "
                          "protocol")
    for eps, found in _diagonals(population).items():
        if population.adversarially_trained:
            by_unit: dict[int, list[tuple[float, float]]] = {}
            for r in found:
                diagonal = statistics.fmean(r["transfer"]["diagonal"])
                by_unit.setdefault(replicate(r), []).append(
                    (diagonal, _off_diagonal_mean(r["transfer"])))
            gaps = [statistics.fmean(d - o for d, o in pairs) for pairs in by_unit.values()]
            interval = (t_interval(gaps, bounds=(-1.0, 1.0)) if len(gaps) >= 2 else None)
            value = statistics.fmean(gaps)
            measures.append(Measure(f"PGD ε = {eps_text(eps)}: mean diagonal − off-diagonal "
                                    "mean", "difference", value, interval, flags=value > 0))
        else:
            largest = max(max(r["transfer"]["diagonal"]) for r in found)
            measures.append(Measure(f"PGD ε = {eps_text(eps)}: largest diagonal entry "
                                    "(a submodel on its own examples)", "accuracy", largest,
                                    flags=largest > DIAGONAL_MAX + _ROUNDING))
    return measures, "needs the transfer records of PGD (their matrix diagonal)"


def _zero_gradients(population: Population, threat: str) -> tuple[list[Measure], str]:
    found = [s["zero_gradient"] for _, s in population.sections(threat)
             if s.get("zero_gradient")]
    if not found:
        return [], (_no_file(population, threat) if not population.sections(threat)
                    else f"the check files' {threat} sections have no zero_gradient count")
    count = sum(int(z["images"]) for z in found)
    total = sum(int(z["of"]) for z in found)
    losses = sorted({str(z.get("loss", "dlr")).upper() for z in found})
    return [Measure(f"images with a zero {'/'.join(losses)}-loss gradient at the clean point",
                    "count", count, of=total, flags=count > 0)], ""


def _mean_with_interval(values_by_unit: list[list[float]]) -> tuple[float, Interval | None]:
    """Mean of per-image values pooled by replicate: t over replicates (K >= 2) or over the
    images of the one replicate (K = 1)."""
    means = [statistics.fmean(v) for v in values_by_unit]
    if len(means) >= 2:
        return statistics.fmean(means), t_interval(means, bounds=(-1.0, 1.0))
    (values,) = values_by_unit
    if len(values) >= 2:
        return means[0], t_interval(values, T_SAMPLES, bounds=(-1.0, 1.0))
    return means[0], None


def _silent_success(population: Population, threat: str) -> tuple[list[Measure], str]:
    traces = [s["trace"] for _, s in population.sections(threat)
              if (s.get("trace") or {}).get("path_best") is not None
              and (s.get("trace") or {}).get("final") is not None]
    if not traces:
        return [], (_no_file(population, threat) if not population.sections(threat)
                    else f"the check files' {threat} sections have no path_best and final")
    gaps = [[float(f) - float(b) for f, b in zip(t["final"], t["path_best"])] for t in traces]
    gaps = [g for g in gaps if g]
    if not gaps:
        return [], "the loss traces hold no image"
    mean, interval = _mean_with_interval(gaps)
    silent = sum(g > 0 for values in gaps for g in values)
    total = sum(len(values) for values in gaps)
    measured = sorted({str(t["measure"]) for t in traces if t.get("measure")})
    label = "final − best point on the path" + (f" ({measured[0]})" if len(measured) == 1
                                                 else "")
    return [Measure(label, "difference", mean, interval,
                    flags=mean > SILENT_POINTS / 100.0 + _ROUNDING),
            Measure("images whose path held a better point than the one returned", "count",
                    silent, of=total)], ""


def _random_noise(population: Population, threat: str) -> tuple[list[Measure], str]:
    noise, pgd = _variants(population, threat, "noise")
    d = paired_difference(noise, pgd)
    if d is None:
        return [], (_no_file(population, threat) if not population.sections(threat)
                    else f"the check files' {threat} sections have no noise beside pgd")
    draws = sorted({s["attacks"]["noise"]["params"].get("draws") for _, s in
                    population.sections(threat) if "noise" in s["attacks"]} - {None})
    label = (f"worst of {'/'.join(str(d) for d in draws)} noise draws − PGD" if draws
             else "worst noise draw − PGD")
    return [Measure(label, "difference", d.interval.mean, d.interval,
                    flags=d.interval.high < 0)], ""


CHECK_FILE_THREATS = ("paper", "adaptive")
CHECKS: tuple[Check, ...] = (
    Check("iterative-vs-single-step", "iterative vs single-step",
          f"{CARLINI}, §5", THREAT_MODELS,
          lambda t: "Flag when the 95% interval of MRA(PGD) − MRA(FGSM) at one ε lies above "
                    "0 (the iterative attack significantly weaker than the single-step one).",
          _iterative),
    Check("budget", "budget", f"{CARLINI}; {PINTOR} (unconstrained attack failure)",
          THREAT_MODELS,
          lambda t: ("Flag when the 95% interval of MRA(larger ε) − MRA(smaller ε) of one "
                     "attack lies above 0" + (f", or when PGD with ε = 1 leaves an MRA above "
                                              f"{UNBOUNDED_MRA * 100:g}%."
                                              if t == "adaptive" else ".")),
          _budget),
    Check("convergence", "convergence", f"{CARLINI}; {PINTOR} (incomplete optimisation)",
          None,
          lambda t: (f"Flag when doubling PGD's steps or 5 random restarts move the MRA by "
                     f"{MOVE_POINTS:g} point or more, or when more than {TRACE_SHARE:.0%} of "
                     f"the images PGD did not break have an incomplete loss trace (span of "
                     f"the last 10 normalised running-best values > {TRACE_SPAN:g})."),
          _convergence),
    Check("gradient-free", "gradient-free vs gradient-based",
          f"{AUTOATTACK}, check_square_sr, alpha = 0.002)", None,
          lambda t: (f"Flag when adding Square to the per-image minimum over the gradient "
                     f"attacks lowers that MRA by more than {SQUARE_POINTS:g} points on the "
                     "check subset."),
          _gradient_free),
    Check("white-box-vs-transfer", "white-box vs transfer", CARLINI, ("transfer", "adaptive"),
          lambda t: ("Flag when the 95% interval of adaptive MRA − paper-protocol MRA (same "
                     "attack and ε, on the adaptive images) lies above 0." if t == "adaptive"
                     else f"Flag when a submodel keeps more than {DIAGONAL_MAX:.0%} accuracy "
                          "on its own PGD examples (ULM, CLM), or when the mean diagonal of "
                          "the transfer matrix exceeds its off-diagonal mean (adversarially "
                          "trained)."),
          _white_box),
    Check("zero-gradients", "zero gradients", f"{AUTOATTACK}, check_zero_gradients)", None,
          lambda t: "Flag when any image of the check subset has an exactly zero DLR-loss "
                    "input gradient at the clean point (more than 0 images).",
          _zero_gradients),
    Check("silent-success", "silent success", f"{PINTOR} (silent success)", None,
          lambda t: (f"Flag when the mean over images of (final − best point on the attack's "
                     f"path) exceeds {SILENT_POINTS:g} points."),
          _silent_success),
    Check("random-noise", "random noise", CARLINI, None,
          lambda t: "Flag when the 95% interval of MRA(worst of the noise draws per image) − "
                    "MRA(PGD) lies below 0 on the check subset (noise beats PGD).",
          _random_noise),
)
CHECK_TITLES = {c.id: c.title for c in CHECKS}


def _threats(check: Check, files: list[dict]) -> tuple[str, ...]:
    """A check-file check runs on paper and adaptive, and on any other threat model a check
    file has a section for."""
    if check.threat_models is not None:
        return check.threat_models
    extra = {t for f in files for t in f["threat_models"]} - set(CHECK_FILE_THREATS)
    return tuple(t for t in THREAT_MODELS if t in set(CHECK_FILE_THREATS) | extra)


def populations(records: list[dict], check_files: list[dict]) -> list[Population]:
    """Every (experiment, population) with a record or a check file, sorted."""
    keys = {(r["experiment"], r["population"]): r["regime"] for r in records}
    for f in check_files:
        keys.setdefault((f["experiment"], f["population"]), f["regime"])
    out = []
    for (experiment, name), regime in sorted(keys.items()):
        out.append(Population(
            experiment, name, regime,
            [r for r in records if (r["experiment"], r["population"]) == (experiment, name)
             and r["attack"] != STRONGEST],
            sorted((f for f in check_files
                    if (f["experiment"], f["population"]) == (experiment, name)),
                   key=lambda f: f["replicate"])))
    return out


def run_checks(records: list[dict], check_files: list[dict]) -> list[CheckResult]:
    """Every check on every population and threat model it applies to, in the order of
    CHECKS and THREAT_MODELS."""
    results = []
    for population in populations(records, check_files):
        for check in CHECKS:
            for threat in _threats(check, population.files):
                measures, reason = check.run(population, threat)
                verdict = (NOT_RUN if not measures
                           else FLAG if any(m.flags for m in measures) else PASS)
                results.append(CheckResult(check.id, check.title, population.experiment,
                                           population.population, population.regime, threat,
                                           verdict, check.rule(threat), check.source,
                                           tuple(measures), reason if not measures else ""))
    return results


# ---- the report's reading --------------------------------------------------------------------

PROTOCOL_NOTE = (
    "The paper's protocol crafts on one random submodel and scores all, so it mostly measures "
    "transfer, where single-step attacks are known to transfer better than iterative ones: "
    "FGSM beating PGD there is a property of the protocol rather than a failed PGD")


def reading(results: list[CheckResult]) -> str:
    """One paragraph on one population's results, written from the numbers."""
    if not results:
        return ""
    counts = {v: sum(r.verdict == v for r in results) for v in CHECK_VERDICTS}
    head = (f"{counts[FLAG]} of {len(results)} checks flag, {counts[PASS]} pass, "
            f"{counts[NOT_RUN]} not run.")
    flagged = [r for r in results if r.verdict == FLAG]
    if not flagged:
        if not counts[PASS]:
            return head + " No check could run: the robustness numbers are unchecked."
        if counts[NOT_RUN]:
            return head + (f" No check that ran flags, but {counts[NOT_RUN]} could not run: "
                           "the attacks are checked only as far as those that ran go.")
        return head + " No check flags: nothing here suggests a failed attack."
    parts = [f"{r.title} under {r.threat_model} ({r.key_text})" for r in flagged]
    text = head + " Flagged: " + "; ".join(parts) + "."
    iterative = {r.threat_model: r for r in results if r.check == "iterative-vs-single-step"}
    if "paper" in iterative and iterative["paper"].verdict == FLAG:
        adaptive = iterative.get("adaptive")
        if adaptive is not None and adaptive.verdict == FLAG:
            text += (f" {PROTOCOL_NOTE}, but the adaptive column flags too, so PGD itself is "
                     "falling short there: treat its numbers as upper bounds.")
        elif adaptive is not None and adaptive.verdict == PASS:
            text += f" {PROTOCOL_NOTE}; the adaptive column does not flag."
        else:
            text += (f" {PROTOCOL_NOTE}, unless the adaptive column flags too; it was not "
                     "run, so this reading is unconfirmed.")
    text += (" A flag means the attack behind a robustness number may have failed: that "
             "number is then an upper bound, and the strongest-attack rows are the ones to "
             "trust (docs/sanity.md says what to do for each check).")
    return text


@dataclass
class SanityView:
    experiment: str
    population: str
    regime: str
    rows: list[tuple[str, dict[str, CheckResult]]]   # (check title, threat model -> result)
    reading: str

    @property
    def caption(self) -> str:
        return (f"{self.experiment}/{self.population} "
                f"({REGIME_LABELS.get(self.regime, self.regime)})")


def sanity_views(results: list[CheckResult]) -> list[SanityView]:
    """Per population, the checks as rows and the threat models as columns."""
    keys = []
    for r in results:
        if (r.experiment, r.population, r.regime) not in keys:
            keys.append((r.experiment, r.population, r.regime))
    views = []
    for experiment, name, regime in keys:
        mine = [r for r in results if (r.experiment, r.population) == (experiment, name)]
        rows = [(check.title, {r.threat_model: r for r in mine if r.check == check.id})
                for check in CHECKS]
        views.append(SanityView(experiment, name, regime, rows, reading(mine)))
    return views
