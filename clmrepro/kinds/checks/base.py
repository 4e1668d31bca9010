"""What a robustness check is (issue 25; docs/sanity.md, docs/extending.md "Adding a check").

A check module holds two optional parts, both plain data with functions:

- :class:`Report`: the check as the report applies it: its id and title, its source, the
  threat models it reads, its rule (a text written from the knobs the sanity jobs ran with) and
  its verdict function, which turns the records of one population (and its decoded check files)
  into the numbers it compared (:class:`Measure`) or the reason it could not run.
- :class:`Job`: what the population's sanity job runs for it: its name in the spec's
  ``evaluation.sanity.checks``, its knobs (the check's own fields of the spec's ``Sanity``
  model), how they resolve into the job's params, the attacks it adds to the check file (their
  parameters), how it runs on one unit of work (torch imported inside, from
  ``clmrepro.core.attacks.sanity``), and its price for the plan in calibration units passed in.

Layer 2: torch-free and reporting-free.  The report's statistics (paired differences, intervals,
the ε tolerance, labels) reach a verdict function as a :class:`Kit` that ``reporting.sanity``
passes in, so the interval rules stay in one place (docs/statistics.md).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

CARLINI = "Carlini et al. 2019, “On Evaluating Adversarial Robustness”"
PINTOR = "Pintor et al., NeurIPS 2022, “Indicators of Attack Failure”"
AUTOATTACK = "AutoAttack's own flags (fra31/auto-attack, autoattack/checks.py"
ROUNDING = 1e-12            # a bound met exactly in float arithmetic counts as met
CHECK_FILE_THREATS = ("paper", "adaptive")   # the threat models a sanity job can run
FLAG, PASS = "flag", "pass"                  # the verdicts (reporting.sanity adds "not run")


# ---- the report side --------------------------------------------------------------------------

@dataclass(frozen=True)
class Measure:
    """One number a check compares: a difference (points), an accuracy (percent) or a count
    of images; ``flags`` when it crosses the rule's threshold (reporting.sanity writes it)."""

    label: str
    kind: str                       # "difference" | "accuracy" | "count"
    value: float | int | None
    interval: Any = None            # reporting.stats.Interval
    of: int | None = None           # images counted over (kind "count")
    flags: bool = False
    key: bool = False               # the one to show in a table cell when nothing flags


@dataclass
class Population:
    """What the checks of one population read: its records (without the strongest row) and
    its decoded check files (reporting.sanity.decode_check_file), by replicate."""

    experiment: str
    population: str
    regime: str
    records: list[dict]
    files: list[dict] = field(default_factory=list)

    def threat_records(self, threat: str) -> list[dict]:
        return [r for r in self.records if r["threat_model"] == threat]

    def attack_records(self, threat: str) -> list[dict]:
        return [r for r in self.threat_records(threat) if r["attack"] != "benign"]

    def sections(self, threat: str) -> list[tuple[dict, dict]]:
        """(check file, its section for this threat model), by replicate."""
        return [(f, f["threat_models"][threat]) for f in self.files
                if threat in f["threat_models"]]

    @property
    def adversarially_trained(self) -> bool:
        return self.regime.endswith("-adv")


class Kit(Protocol):
    """The report's statistics and wording, passed to a verdict (reporting.sanity.KIT)."""

    T_SAMPLES: str

    def paired_difference(self, left: list[dict], right: list[dict],
                          first: int | None = None) -> Any: ...
    def cell_interval(self, records: list[dict]) -> Any: ...
    def t_interval(self, values: list[float], method: str = ...,
                   bounds: tuple[float, float] = ...) -> Any: ...
    def replicate(self, record: dict) -> int: ...
    def eps_groups(self, records: list[dict]) -> dict[float, list[dict]]: ...
    def same_eps(self, a: float, b: float) -> bool: ...
    def label(self, attack: str) -> str: ...
    def eps_text(self, eps: float) -> str: ...


Verdict = Callable[[Population, str, Kit], tuple[list[Measure], str]]


@dataclass(frozen=True)
class Report:
    """A check as the report applies it, per population and threat model."""

    id: str
    title: str
    source: str
    threat_models: tuple[str, ...] | None    # None: those of the check files
    rule: Callable[[str, Sequence[dict]], str]   # (threat model, every decoded check file)
    verdict: Verdict                          # measures, or the reason it did not run
    # a sentence for the report's reading, from the verdicts by threat model ("" for none)
    note: Callable[[Mapping[str, str]], str] | None = None


def attack_kind(record: dict) -> str:
    """The attack family; version-1 records name only the spec's id."""
    return str(record.get("attack_kind") or record["attack"])


def ids_of_kind(records: list[dict], kind: str) -> list[str]:
    return sorted({r["attack"] for r in records if attack_kind(r) == kind})


def as_record(check_file: dict, threat: str, name: str, per_image: list[float]) -> dict:
    """A per-image result of a check file as a record the report's units machinery reads."""
    return {"experiment": check_file["experiment"], "population": check_file["population"],
            "regime": check_file["regime"], "replicate": check_file["replicate"],
            "threat_model": threat, "attack": name, "eps": check_file.get("eps"),
            "mra": statistics.fmean(per_image), "n_samples": len(per_image),
            "per_image": per_image}


def variants(population: Population, threat: str, name: str,
             base: str = "pgd") -> tuple[list[dict], list[dict]]:
    """Check-file records of attack ``name`` and of ``base`` beside it, by replicate."""
    both = [(f, s) for f, s in population.sections(threat)
            if name in s["attacks"] and base in s["attacks"]]
    return ([as_record(f, threat, name, s["attacks"][name]["per_image"]) for f, s in both],
            [as_record(f, threat, base, s["attacks"][base]["per_image"]) for f, s in both])


def no_file(population: Population, threat: str, missing: str | None = None) -> str:
    """Why a check-file check did not run: no check file, no section, or ``missing``."""
    if not population.files:
        return "no check file for this population (the spec's evaluation.sanity runs none)"
    if not population.sections(threat) or missing is None:
        return f"the check files have no {threat} section"
    return f"the check files' {threat} sections have no {missing}"


def recorded(files: Sequence[dict], attack: str, knob: str, default: object) -> str:
    """A knob as the sanity jobs ran it (read from the check files' attack params), for a
    rule's text: "5", "5/10" over several, or the knob's default when no file ran it."""
    found = {section["attacks"][attack]["params"].get(knob) for f in files
             for section in f["threat_models"].values() if attack in section["attacks"]}
    found.discard(None)
    return "/".join(f"{v:g}" if isinstance(v, float) else str(v)
                    for v in sorted(found)) if found else str(default)


# ---- the job side -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Costs:
    """Calibration units of one sanity job and threat model (plan.estimate passes them in):
    ``m`` submodels attacked (1 on the paper protocol, n adaptive), ``n`` submodels scored,
    the base PGD's ``steps``, ``step`` = m × (gradient + forward) per image and step, one
    ``grad`` and one ``forward`` per image and submodel."""

    m: int
    n: int
    steps: int
    step: float
    grad: float
    forward: float
    adversarial: bool      # the population was adversarially trained


def pgd_params(s: Mapping) -> dict:
    """The checked PGD of a sanity block (plan.defaults.sanity_block), as the check file
    records it."""
    return {"eps": float(s["eps"]), "alpha": float(s["pgd"]["alpha"]),
            "steps": int(s["pgd"]["steps"]), "random_start": bool(s["pgd"]["random_start"])}


def _no_attacks(s: Mapping, threat: str) -> dict[str, dict]:
    return {}


def _free(s: Mapping, threat: str, costs: Costs) -> tuple[float, int]:
    return 0.0, 0


@dataclass(frozen=True)
class Job:
    """What a population's sanity job runs for one check (core.attacks.sanity.check_threat)."""

    name: str                                  # in the spec's evaluation.sanity.checks
    summary: str                               # one clause of that field's description
    default: bool = True                       # in the default `checks` list
    # the report shows the check only where a check file ran it (an opt-in check, or one
    # added to the defaults after check files were written: a report without it, the demo's
    # among them, reads as before rather than growing a "not run" row)
    reported_where_run: bool = False
    knobs: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)  # name: (type, Field)
    # knob values of the spec -> the job's params (default: the knobs under their own names)
    params: Callable[[Mapping], dict] | None = None
    # (sanity params, threat model) -> check-file attack name -> its params
    attacks: Callable[[Mapping, str], dict[str, dict]] = _no_attacks
    # one unit of work (core.attacks.sanity.UnitWork) -> attack name -> adversarial points
    run: Callable[[Any], dict] | None = None
    # the price per image: (work in calibration seconds, point sets scored by all n)
    price: Callable[[Mapping, str, Costs], tuple[float, int]] = _free
    trace: bool = False                        # needs the traced PGD's trace in the file
    # a per-unit count summed over the units, and the section keys written from it
    count: Callable[[Any], int] | None = None
    section: Callable[[Mapping, int, int], dict] | None = None   # (params, total, images)

    def job_params(self, knobs: Mapping) -> dict:
        if self.params is not None:
            return self.params(knobs)
        return {name: knobs[name] for name in self.knobs}
