"""Is the robustness real? Checks that catch a failed attack (issue 18; docs/sanity.md).

The checks themselves (each one's inputs, rule, source and verdict) are modules of
``clmrepro.kinds.checks``; this module applies them.  Pure functions from the scores records
(with ``per_image``, reporting.build) and the decoded check files (:func:`decode_check_file`)
to results, one per (population, check, threat model): ``pass``, ``flag`` or ``not run``
(with the reason), the rule with its number, its source, and the numbers compared.
Populations pool their replicates with the units machinery of reporting.estimates (passed to
each verdict as :data:`KIT`): means over replicates, differences paired by replicate (K >= 2)
or image by image (K = 1, per-image values on the same images), as every claim does.

A check file (written by the sanity job, one per population and replicate) holds per threat
model the per-image correctness tables of the checks' attacks on the first ``n_samples`` test
images, PGD's loss trace summary and the checks' own counts (docs/sanity.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from clmrepro.core.per_image import expected_accuracy, unpack
from clmrepro.kinds import checks as check_kinds
from clmrepro.kinds.checks.base import (CHECK_FILE_THREATS, FLAG, PASS, Measure, Population,
                                        Report)
from clmrepro.reporting.estimates import cell_interval, paired_difference, replicate
from clmrepro.reporting.paper import ATTACK_LABELS, EPS_TOLERANCE, REGIME_LABELS
from clmrepro.reporting.stats import T_SAMPLES, t_interval
from clmrepro.reporting.strongest import STRONGEST
from clmrepro.reporting.tables import (NOT_RUN, THREAT_MODELS, bounds, count_text,
                                       difference_text, eps_text, pct, points)

CHECK_VERDICTS = (FLAG, PASS, NOT_RUN)
CHECK_FILE_VERSIONS = (1,)
CHECK_TITLES = {r.id: r.title for r in check_kinds.REPORTS}


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
            "checks": list(raw.get("checks") or []), "threat_models": sections}


# ---- the statistics a verdict reads ------------------------------------------------------------

def eps_groups(records: list[dict]) -> dict[float, list[dict]]:
    """Records by ε (within the paper module's tolerance), in increasing order."""
    out: dict[float, list[dict]] = {}
    for r in sorted(records, key=lambda r: float(r["eps"])):
        eps = float(r["eps"])
        key = next((k for k in out if abs(k - eps) <= EPS_TOLERANCE), eps)
        out.setdefault(key, []).append(r)
    return out


KIT = SimpleNamespace(
    T_SAMPLES=T_SAMPLES, paired_difference=paired_difference, cell_interval=cell_interval,
    t_interval=t_interval, replicate=replicate, eps_groups=eps_groups,
    same_eps=lambda a, b: abs(a - b) <= EPS_TOLERANCE,
    label=lambda attack: ATTACK_LABELS.get(attack, attack), eps_text=eps_text)


# ---- results ----------------------------------------------------------------------------------

def measure_text(m: Measure) -> str:
    if m.kind == "count":
        return f"{m.label}: {count_text(m.value, m.of)}"
    if m.kind == "difference":
        if m.interval is not None:
            size = f"K = {m.interval.k}" + ("" if m.interval.n is None
                                            else f", N = {m.interval.n}")
            return f"{m.label}: {difference_text(m.interval)} ({m.interval.method}, {size})"
        return f"{m.label}: {points(m.value)} points"
    if m.interval is not None:
        return f"{m.label}: {pct(m.value)} {bounds(m.interval)}"
    return f"{m.label}: {pct(m.value)}"


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
        return measure_text(measure) if measure is not None else ""


def _threats(check: Report, files: list[dict]) -> tuple[str, ...]:
    """A check-file check runs on paper and adaptive, and on any other threat model a check
    file has a section for."""
    if check.threat_models is not None:
        return check.threat_models
    extra = {t for f in files for t in f["threat_models"]} - set(CHECK_FILE_THREATS)
    return tuple(t for t in THREAT_MODELS if t in set(CHECK_FILE_THREATS) | extra)


def active_checks(check_files: list[dict]) -> tuple[Report, ...]:
    """The checks the report applies: every one, except those the registry shows only where
    a check file ran them (an opt-in check, or the loss-function check added to the defaults
    after check files were written: kinds.checks.WHERE_RUN)."""
    ran = {name for f in check_files for name in f.get("checks") or []}
    return tuple(r for r in check_kinds.REPORTS
                 if r.id not in check_kinds.WHERE_RUN or check_kinds.WHERE_RUN[r.id] in ran)


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
    """Every check on every population and threat model it applies to, in the order of the
    registry (clmrepro.kinds.checks) and THREAT_MODELS.  A rule's numbers are those the
    sanity jobs ran with (their check files), else the knobs' defaults."""
    results = []
    checks = active_checks(check_files)
    for population in populations(records, check_files):
        for check in checks:
            for threat in _threats(check, population.files):
                measures, reason = check.verdict(population, threat, KIT)
                verdict = (NOT_RUN if not measures
                           else FLAG if any(m.flags for m in measures) else PASS)
                results.append(CheckResult(check.id, check.title, population.experiment,
                                           population.population, population.regime, threat,
                                           verdict, check.rule(threat, check_files),
                                           check.source, tuple(measures),
                                           reason if not measures else ""))
    return results


# ---- the report's reading --------------------------------------------------------------------

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
    for check in check_kinds.REPORTS:
        verdicts = {r.threat_model: r.verdict for r in results if r.check == check.id}
        if check.note is not None and verdicts:
            text += check.note(verdicts)
    text += (" A flag means the attack behind a robustness number may have failed: that "
             "number is then an upper bound, and so is the strongest-attack row of that "
             "population and threat model, marked in the tables with the checks that flag "
             "it (docs/sanity.md says what to do for each check).")
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
                for check in check_kinds.REPORTS if any(r.check == check.id for r in mine)]
        views.append(SanityView(experiment, name, regime, rows, reading(mine)))
    return views
