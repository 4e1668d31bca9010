"""Reproduced-vs-paper tables built from scores records, and the one place numbers are formatted.

Records are the scores records of docs/architecture.md (accuracies as fractions). A table cell
aggregates every record of one (paper dataset, regime, attack, eps, threat model): the mean MRA
over runs (seeds), the spread over submodels, and, when there are several runs, over runs.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field

from clmrepro.reporting.paper import (ATTACK_LABELS, EPS_TOLERANCE, REGIME_LABELS, PaperTable,
                                      find_table, paper_dataset)

NOT_RUN = "not run"
NOT_IN_PAPER = "—"
# "Within tolerance" for the summary: a cell reproduces when |reproduced - paper| is at most
# this many percentage points. Five points is loose on purpose: the paper reports one run,
# without spread, on 10,000 test images.
SUMMARY_TOLERANCE_POINTS = 5.0


# ---- formatting: every number in the reports goes through these functions ----------------

def pct(value: float | None) -> str:
    """A fraction as a percentage with the paper's two decimals."""
    return NOT_RUN if value is None else f"{100.0 * value:.2f}%"


def points(value: float | None) -> str:
    """A difference of fractions as signed percentage points."""
    return NOT_RUN if value is None else f"{100.0 * value:+.2f}"


def spread(value: float | None) -> str:
    return "" if value is None else f"{100.0 * value:.2f}"


def eps_text(eps: float) -> str:
    """0.3 -> "0.3"; 8/255 -> "8/255 (0.0314)": CIFAR budgets read as the paper writes them."""
    for denominator in (255,):
        numerator = eps * denominator
        if eps > 0 and abs(numerator - round(numerator)) < 1e-3 and eps < 0.1:
            return f"{round(numerator)}/{denominator} ({eps:.4f})"
    return f"{eps:g}"


def params_text(params: dict | None) -> str:
    if not params:
        return NOT_IN_PAPER
    return ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                     for k, v in sorted(params.items()))


# ---- aggregation ----------------------------------------------------------------------------

def _stdev(values: list[float]) -> float:
    # Sample standard deviation (n - 1): a population is a sample of possible submodels.
    return statistics.stdev(values) if len(values) > 1 else 0.0


@dataclass
class Cell:
    records: list[dict] = field(default_factory=list)
    paper: float | None = None

    @property
    def run(self) -> bool:
        return bool(self.records)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(r["mra"] for r in self.records) if self.records else None

    @property
    def submodel_spread(self) -> float | None:
        """Mean over runs of the standard deviation over submodels."""
        if not self.records:
            return None
        return statistics.fmean(_stdev(list(r["per_submodel"])) for r in self.records)

    @property
    def seed_spread(self) -> float | None:
        if len(self.records) < 2:
            return None
        return _stdev([r["mra"] for r in self.records])

    @property
    def delta(self) -> float | None:
        if self.mean is None or self.paper is None:
            return None
        return self.mean - self.paper

    def text(self) -> str:
        """"51.20% ± 3.10" (± over submodels), "; runs ± 0.40 (n=3)" when several runs."""
        if not self.records:
            return NOT_RUN
        out = f"{pct(self.mean)} ± {spread(self.submodel_spread)}"
        if self.seed_spread is not None:
            out += f"; runs ± {spread(self.seed_spread)} (n={len(self.records)})"
        return out


def matches(record: dict, family: str, regime: str, attack: str, eps: float,
            threat_model: str = "paper") -> bool:
    return (paper_dataset(record["dataset"]) == family and record["regime"] == regime
            and record["attack"] == attack and record["threat_model"] == threat_model
            and abs(float(record["eps"]) - eps) <= EPS_TOLERANCE)


@dataclass
class PaperTableView:
    table: PaperTable
    dataset: str
    regimes: list[str]
    # rows: (attack, {regime: Cell}, parameter text)
    rows: list[tuple[str, dict[str, Cell], str]]

    @property
    def caption(self) -> str:
        return f"Table {self.table.number}: {self.table.title}"


def paper_table_views(tables: list[PaperTable], records: list[dict]) -> list[PaperTableView]:
    views = []
    for table in tables:
        for family, rows_in_paper in table.values.items():
            regimes = table.regimes()
            rows = []
            for attack in table.attacks():
                if attack not in rows_in_paper:
                    continue
                cells = {}
                used_params = []
                for regime in regimes:
                    found = [r for r in records
                             if matches(r, family, regime, attack, table.eps)]
                    cells[regime] = Cell(found, rows_in_paper[attack].get(regime))
                    used_params += [params_text(r.get("attack_params")) for r in found]
                distinct = sorted(set(used_params))
                rows.append((attack, cells, " | ".join(distinct) if distinct else NOT_RUN))
            views.append(PaperTableView(table, family, regimes, rows))
    return views


def is_paper_cell(tables: list[PaperTable], record: dict) -> bool:
    if record["threat_model"] != "paper":
        return False
    table = find_table(tables, record["dataset"], record["attack"], float(record["eps"]))
    return table is not None and record["regime"] in table.values[
        paper_dataset(record["dataset"])][record["attack"]]


def markdown_rows(view: PaperTableView) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a paper table for tabulate: reproduced | paper | Δ per regime."""
    header = ["Attack"]
    for regime in view.regimes:
        label = REGIME_LABELS[regime]
        header += [f"{label} reproduced", f"{label} paper", f"{label} Δ"]
    header.append("effective parameters")
    rows = []
    for attack, cells, params in view.rows:
        row = [ATTACK_LABELS[attack]]
        for regime in view.regimes:
            cell = cells[regime]
            row += [cell.text(), pct(cell.paper), points(cell.delta)]
        row.append(params)
        rows.append(row)
    return header, rows


@dataclass
class Summary:
    compared: int
    within: int
    not_run: int
    tolerance_points: float
    worst: list[tuple[str, float]]  # (label, delta) sorted by |delta|, largest first


def summarise(views: list[PaperTableView]) -> Summary:
    compared = within = not_run = 0
    deltas = []
    for view in views:
        for attack, cells, _ in view.rows:
            for regime, cell in cells.items():
                if cell.paper is None:
                    continue
                if cell.delta is None:
                    not_run += 1
                    continue
                compared += 1
                if abs(cell.delta) * 100.0 <= SUMMARY_TOLERANCE_POINTS + 1e-9:
                    within += 1
                label = (f"Table {view.table.number} {ATTACK_LABELS[attack]} "
                         f"{REGIME_LABELS[regime]}")
                deltas.append((label, cell.delta))
    deltas.sort(key=lambda item: (-abs(item[1]), item[0]))
    return Summary(compared, within, not_run, SUMMARY_TOLERANCE_POINTS, deltas[:5])


# ---- beyond the paper's tables --------------------------------------------------------------

THREAT_MODELS = ("paper", "transfer", "adaptive")


@dataclass
class ThreatRow:
    experiment: str
    population: str
    regime: str
    attack: str
    eps: float
    cells: dict[str, Cell]   # threat model -> Cell (paper value only on "paper")


def threat_model_rows(records: list[dict]) -> list[ThreatRow]:
    """Every (experiment, population, attack, eps) attacked under transfer or adaptive."""
    keys = sorted({(r["experiment"], r["population"], r["regime"], r["attack"], float(r["eps"]))
                   for r in records if r["threat_model"] in ("transfer", "adaptive")})
    rows = []
    for experiment, population, regime, attack, eps in keys:
        cells = {}
        for threat in THREAT_MODELS:
            found = [r for r in records if r["experiment"] == experiment
                     and r["population"] == population and r["attack"] == attack
                     and abs(float(r["eps"]) - eps) <= EPS_TOLERANCE
                     and r["threat_model"] == threat]
            papers = {r.get("paper") for r in found} - {None}
            cells[threat] = Cell(found, papers.pop() if len(papers) == 1 else None)
        rows.append(ThreatRow(experiment, population, regime, attack, eps, cells))
    return rows


def other_records(tables: list[PaperTable], records: list[dict]) -> list[dict]:
    """Paper-protocol records the paper prints no number for (other eps, FakeData, ...)."""
    return [r for r in records if r["threat_model"] == "paper" and not is_paper_cell(tables, r)]


def record_sort_key(record: dict) -> tuple:
    return (record["experiment"], record["dataset"], record["population"], record["regime"],
            record["attack"], float(record["eps"]), record["threat_model"])
