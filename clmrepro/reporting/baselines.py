"""The Baselines section: counter-linking beside the field's other diversity methods.

Shown for every experiment that trains a diversity baseline (ADP, GAL, TRS, DVERGE;
core.training.diversity).  Per threat model one table: rows = the experiment's populations
(the paper's regimes first), columns = the benign accuracy and every attack × ε run, cells =
MRA with its 95% interval over the replicates (reporting.tables.Cell).  Beside it, what each
population cost to train: the mean measured ``wall_seconds`` of its training jobs
(training.json), plus those of the population it started from (DVERGE from a ULM; CLM
retrained from a ULM), since a user who wants that population pays for both.  And verdicts:
"CLM beats X" for every baseline X, on every attack × ε × threat model both were scored
under, through the same paired intervals and rule as the paper's claims (reporting.claims).
And what the regimes' modules say about a population the spec accepted but its method was not
designed for (issue 26: ADP with as many members as classes or more, whose log-det diversity
term is then degenerate), the warnings `clmrepro validate` prints, written once by the regime
module (kinds.regimes, ``warnings``) and read here from the records' population sizes.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from types import SimpleNamespace

from clmrepro.fields import THREAT_MODELS
from clmrepro.kinds import regimes
from clmrepro.reporting.claims import NOT_RUN, outcome
from clmrepro.reporting.estimates import paired_difference
from clmrepro.reporting.paper import ATTACK_LABELS, BASELINE_REGIMES, REGIME_LABELS, REGIMES
from clmrepro.reporting.stats import Interval
from clmrepro.reporting.tables import Cell, eps_text
from clmrepro.spec.checks import N_CLASSES

THREAT_ORDER = THREAT_MODELS
ATTACK_ORDER = tuple(ATTACK_LABELS)   # benign first, strongest last


@dataclass
class BaselineTable:
    experiment: str
    threat_model: str
    columns: list[tuple[str, float]]                    # (attack, eps)
    rows: list[tuple[str, str, dict[tuple[str, float], Cell]]]  # (population, regime, cells)

    def header(self) -> list[str]:
        return ["population", "regime"] + [
            ATTACK_LABELS.get(a, a) if a == "benign" else f"{ATTACK_LABELS.get(a, a)} ε {eps_text(e)}"
            for a, e in self.columns]

    def markdown_rows(self) -> list[list[str]]:
        return [[pop, REGIME_LABELS.get(regime, regime)]
                + [cells[c].text() if cells[c].run else "not run" for c in self.columns]
                for pop, regime, cells in self.rows]


@dataclass
class TrainingCost:
    experiment: str
    population: str
    regime: str
    own_seconds: float         # mean over replicates of its own training jobs
    total_seconds: float       # plus the population it started from (recursively)
    parent: str | None


def _experiments(records: list[dict]) -> list[str]:
    return sorted({r["experiment"] for r in records if r["regime"] in BASELINE_REGIMES})


def population_order(population: str, regime: str) -> tuple:
    """The paper's regimes first, then the baselines, then anything else; by id within one."""
    order = REGIMES + BASELINE_REGIMES
    return (order.index(regime) if regime in order else len(order), population)


def _populations(records: list[dict], experiment: str) -> list[tuple[str, str]]:
    found = {(r["population"], r["regime"]) for r in records if r["experiment"] == experiment}
    return sorted(found, key=lambda pr: population_order(*pr))


def baseline_tables(records: list[dict]) -> list[BaselineTable]:
    tables = []
    for experiment in _experiments(records):
        mine = [r for r in records if r["experiment"] == experiment]
        populations = _populations(mine, experiment)
        for threat in THREAT_ORDER:
            scored = [r for r in mine if r["threat_model"] == threat]
            if not scored:
                continue
            columns = sorted({(r["attack"], round(float(r["eps"]), 6)) for r in scored},
                             key=lambda c: (ATTACK_ORDER.index(c[0]) if c[0] in ATTACK_ORDER
                                            else len(ATTACK_ORDER), c[1], c[0]))
            rows = []
            for pop, regime in populations:
                cells = {c: Cell([r for r in scored if r["population"] == pop
                                  and r["attack"] == c[0] and round(float(r["eps"]), 6) == c[1]])
                         for c in columns}
                rows.append((pop, regime, cells))
            tables.append(BaselineTable(experiment, threat, columns, rows))
    return tables


@dataclass(frozen=True)
class Degenerate:
    experiment: str
    population: str
    regime: str
    message: str               # the regime module's warning, as `clmrepro validate` prints it

    def text(self) -> str:
        return f"{self.experiment}/{self.population}: {self.message}."


def degenerate_losses(records: list[dict]) -> list[Degenerate]:
    """Per population of the section, the regime module's warnings for its size (the
    records' ``n_submodels``; several sizes over replicates each say theirs)."""
    found = []
    for experiment in _experiments(records):
        mine = [r for r in records if r["experiment"] == experiment]
        for pop, regime in _populations(mine, experiment):
            if regime not in regimes.REGIME_KINDS:
                continue
            sizes = sorted({int(r["n_submodels"]) for r in mine
                            if r["population"] == pop and r.get("n_submodels") is not None})
            for size in sizes:
                for message in regimes.get(regime).warnings(SimpleNamespace(size=size),
                                                            N_CLASSES):
                    found.append(Degenerate(experiment, pop, regime, message))
    return found


def training_costs(trainings: list[dict]) -> list[TrainingCost]:
    """Mean measured training seconds per population, own and with its starting population."""
    by_key: dict[tuple[str, str], list[dict]] = {}
    for t in trainings:
        by_key.setdefault((t["experiment"], t["population"]), []).append(t)
    own = {key: statistics.fmean(float(t["record"].get("wall_seconds", 0.0)) for t in found)
           for key, found in by_key.items()}
    parents = {key: found[0]["record"].get("from") for key, found in by_key.items()}
    regimes = {key: found[0]["record"].get("regime", "") for key, found in by_key.items()}

    def total(key, seen=()):
        parent = parents.get(key)
        up = (key[0], parent)
        extra = total(up, (*seen, key)) if parent and up in own and up not in seen else 0.0
        return own[key] + extra

    return [TrainingCost(key[0], key[1], regimes[key], own[key], total(key), parents[key])
            for key in sorted(own)]


@dataclass
class Verdict:
    experiment: str
    baseline: str
    label: str                 # "PGD ε 0.3, adaptive"
    clm: float | None
    other: float | None
    interval: Interval | None  # of CLM − baseline
    outcome: str


def clm_vs_baselines(records: list[dict]) -> list[Verdict]:
    """"CLM beats X": CLM − X MRA > 0, per attack × ε × threat model both were scored under
    (benign excluded: that is a cost, not robustness).  Several CLM populations: the first."""
    verdicts = []
    for experiment in _experiments(records):
        mine = [r for r in records if r["experiment"] == experiment and r["attack"] != "benign"]
        pops = _populations(mine, experiment)
        clm = next((p for p, regime in pops if regime == "clm"), None)
        if clm is None:
            continue
        for baseline, regime in pops:
            if regime not in BASELINE_REGIMES:
                continue
            cells = sorted({(r["attack"], round(float(r["eps"]), 6), r["threat_model"])
                            for r in mine if r["population"] in (clm, baseline)},
                           key=lambda c: (THREAT_ORDER.index(c[2]), ATTACK_ORDER.index(c[0])
                                          if c[0] in ATTACK_ORDER else 99, c[1]))
            for attack, eps, threat in cells:
                def side(pop):
                    return [r for r in mine if r["population"] == pop and r["attack"] == attack
                            and round(float(r["eps"]), 6) == eps and r["threat_model"] == threat]
                a, b = side(clm), side(baseline)
                diff = paired_difference(a, b) if a and b else None
                label = f"{ATTACK_LABELS.get(attack, attack)} ε {eps_text(eps)}, {threat}"
                verdicts.append(Verdict(
                    experiment, baseline, label, diff.left if diff else None,
                    diff.right if diff else None, diff.interval if diff else None,
                    outcome(diff.interval, ">") if diff else NOT_RUN))
    return verdicts
