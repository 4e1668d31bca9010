"""The inference-rules section: random dispatch beside averaging and voting (core.ensemble).

Records of the deterministic rules (``inference``: average | vote) answer another question
than the paper's, so they stay out of every paper table, claim, check and strongest-attack
row; :func:`split` takes them out right after the scores are read.  Here, per experiment and
threat model, one row per population and attack × ε, one column per rule: MRA for random
dispatch, accuracy for the deterministic rules, each with its 95% interval over replicates.
Under the adaptive threat model random dispatch faces the expected-loss attack and the
deterministic rules the same attack, white-box, on the averaged population.
"""

from __future__ import annotations

from dataclasses import dataclass

from clmrepro.reporting.baselines import ATTACK_ORDER, THREAT_ORDER, population_order
from clmrepro.reporting.paper import ATTACK_LABELS
from clmrepro.reporting.tables import Cell, eps_text

RULES = ("random", "average", "vote")


def rule_of(record: dict) -> str:
    return record.get("inference") or "random"


def split(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """(random-dispatch records, deterministic-rule records); the paper prints no number for
    a deterministic rule, so those records carry none."""
    random = [r for r in records if rule_of(r) == "random"]
    return random, [{**r, "paper": None} for r in records if rule_of(r) != "random"]


@dataclass
class InferenceTable:
    experiment: str
    threat_model: str
    rules: list[str]
    rows: list[tuple[str, str, float, dict[str, Cell]]]   # population, attack, eps, cells

    def header(self) -> list[str]:
        return ["population", "attack"] + self.rules

    def markdown_rows(self) -> list[list[str]]:
        return [[pop, ATTACK_LABELS.get(attack, attack) if attack == "benign"
                 else f"{ATTACK_LABELS.get(attack, attack)} ε {eps_text(eps)}"]
                + [cells[rule].text() if cells[rule].run else "not run" for rule in self.rules]
                for pop, attack, eps, cells in self.rows]


def inference_tables(random: list[dict], rules: list[dict]) -> list[InferenceTable]:
    tables = []
    for experiment in sorted({r["experiment"] for r in rules}):
        rows_of = [r for r in random + rules if r["experiment"] == experiment]
        used = [rule for rule in RULES if rule == "random" or any(rule_of(r) == rule for r in rules)]
        for threat in THREAT_ORDER:
            scored = [r for r in rows_of if r["threat_model"] == threat]
            # the attacks the deterministic rules were scored under (not the strongest row)
            attacks = {r["attack"] for r in rules
                       if r["experiment"] == experiment and r["threat_model"] == threat}
            keys = sorted({(r["population"], r["regime"], r["attack"], round(float(r["eps"]), 6))
                           for r in scored if r["attack"] in attacks},
                          key=lambda k: (population_order(k[0], k[1]), ATTACK_ORDER.index(k[2])
                                         if k[2] in ATTACK_ORDER else 99, k[3]))
            if not keys:
                continue
            rows = []
            for pop, _, attack, eps in keys:
                cells = {rule: Cell([r for r in scored if r["population"] == pop
                                     and r["attack"] == attack and rule_of(r) == rule
                                     and round(float(r["eps"]), 6) == eps]) for rule in used}
                rows.append((pop, attack, eps, cells))
            tables.append(InferenceTable(experiment, threat, used, rows))
    return tables
