"""Reproduced-vs-paper tables built from scores records, and the one place numbers are formatted.

Records are the scores records of docs/architecture.md (accuracies as fractions), one per
replicate. A table cell aggregates every record of one (paper dataset, regime, attack, eps,
threat model): the mean MRA over replicates and its 95% interval
(clmrepro.reporting.estimates). A cell is consistent with the paper when the paper's number
lies inside that interval widened by TOLERANCE_POINTS on each side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property

from clmrepro.fields import THREAT_MODELS
from clmrepro.kinds.checks import REPORTS as _CHECKS
from clmrepro.reporting.estimates import cell_interval, replicate
from clmrepro.reporting.paper import (ATTACK_LABELS, EPS_TOLERANCE, REGIME_LABELS, PaperTable,
                                      find_table, paper_dataset)
from clmrepro.reporting.stats import Interval

NOT_RUN = "not run"
NOT_IN_PAPER = "—"
CONSISTENT = "consistent"
# The interval covers our own uncertainty only. The paper's number is one training run (no
# spread printed): the authors' code run twice moved an MNIST FGSM MRA by 3-4 points (issue
# 11), so a single run of theirs may sit ~5 points from its own mean. That, not our
# precision, is what the tolerance stands for.
TOLERANCE_POINTS = 5.0
# the checks whose flag makes a strongest cell an upper bound, for its text
CHECK_IDS = tuple(c.id for c in _CHECKS)
CHECK_TITLES = {c.id: c.title for c in _CHECKS}


# ---- formatting: every number in the reports goes through these functions ----------------

def pct(value: float | None) -> str:
    """A fraction as a percentage with the paper's two decimals."""
    return NOT_RUN if value is None else f"{100.0 * value:.2f}%"


def points(value: float | None) -> str:
    """A difference of fractions as signed percentage points."""
    return NOT_RUN if value is None else f"{100.0 * value:+.2f}"


def bounds(interval: Interval | None) -> str:
    """"[48.10, 54.30]": an interval's ends in percent (points for a difference)."""
    if interval is None:
        return NOT_RUN
    return f"[{100.0 * interval.low:.2f}, {100.0 * interval.high:.2f}]"


def value_text(value: float | None, unit: str = "percent") -> str:
    """An accuracy as a percentage, or a plain number (a cosine) with three decimals."""
    if unit == "percent" or value is None:
        return pct(value)
    return f"{value:.3f}"


def difference_text(interval: Interval | None, unit: str = "percent") -> str:
    """"+3.10 [+1.20, +7.40] points", or "-0.230 [-0.257, -0.204]" for a plain number."""
    if interval is None:
        return NOT_RUN
    if unit == "percent":
        return (f"{100.0 * interval.mean:+.2f} [{100.0 * interval.low:+.2f}, "
                f"{100.0 * interval.high:+.2f}] points")
    return f"{interval.mean:+.3f} [{interval.low:+.3f}, {interval.high:+.3f}]"


def count_text(count: int | None, total: int | None) -> str:
    """"3 of 200 (1.50%)": a count of images out of those checked."""
    if count is None:
        return NOT_RUN
    if not total:
        return f"{int(count)}"
    return f"{int(count)} of {int(total)} ({pct(count / total)})"


def eps_text(eps: float) -> str:
    """0.3 -> "0.3"; 8/255 -> "8/255 (0.0314)": CIFAR budgets read as the paper writes them."""
    for denominator in (255,):
        numerator = eps * denominator
        if eps > 0 and abs(numerator - round(numerator)) < 1e-3 and eps < 0.1:
            return f"{round(numerator)}/{denominator} ({eps:.4f})"
    return f"{eps:g}"


def markdown_text(text: object) -> str:
    """User text in Markdown: raw HTML would pass through most renderers, so escape it."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def params_text(params: dict | None) -> str:
    if not params:
        return NOT_IN_PAPER
    # a convergence ladder (core.attacks.ladder) is the convergence check's evidence, not a knob
    return ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                     for k, v in sorted(params.items()) if k not in LADDER_KEYS)


LADDER_KEYS = ("ladder", "converged")


def upper_bound_text(flagged_by: list[str]) -> str:
    """" — upper bound (flagged by convergence, random noise)": what a number a check flags
    carries beside it (check ids → titles); "" when none flags."""
    if not flagged_by:
        return ""
    return (" — upper bound (flagged by "
            + ", ".join(CHECK_TITLES.get(c, c) for c in flagged_by) + ")")


# ---- aggregation ----------------------------------------------------------------------------

@dataclass
class Cell:
    records: list[dict] = field(default_factory=list)
    paper: float | None = None

    @property
    def run(self) -> bool:
        return bool(self.records)

    @cached_property
    def interval(self) -> Interval | None:
        return cell_interval(self.records)

    @property
    def mean(self) -> float | None:
        return None if self.interval is None else self.interval.mean

    @property
    def k(self) -> int:
        return 0 if self.interval is None else self.interval.k

    @property
    def samples(self) -> int | None:
        """Test images per replicate (the smallest, if they differ)."""
        return min(int(r["n_samples"]) for r in self.records) if self.records else None

    @property
    def delta(self) -> float | None:
        if self.mean is None or self.paper is None:
            return None
        return self.mean - self.paper

    @property
    def consistent(self) -> bool | None:
        """Paper inside the interval widened by TOLERANCE_POINTS; None if either is missing."""
        if self.interval is None or self.paper is None:
            return None
        return self.interval.contains(self.paper, TOLERANCE_POINTS / 100.0 + 1e-12)

    @property
    def flagged_by(self) -> list[str]:
        """The checks that flag this cell's population and threat model (ids, in the
        registry's order), for a strongest cell (reporting.strongest.mark_upper_bounds)."""
        found = {check for r in self.records for check in r.get("flagged_by") or ()}
        return [c for c in CHECK_IDS if c in found] + sorted(found - set(CHECK_IDS))

    @property
    def derived_from(self) -> list[str]:
        """The attacks a strongest cell took the minimum over (every replicate's)."""
        return sorted({a for r in self.records for a in r.get("derived_from") or ()})

    def bound_text(self) -> str:
        """" — upper bound (flagged by convergence)" for a flagged strongest cell, else ""."""
        return upper_bound_text(self.flagged_by)

    def text(self) -> str:
        """"51.20% [48.10, 54.30]": the mean and its 95% interval (and a flag's bound)."""
        if self.interval is None:
            return NOT_RUN
        return f"{pct(self.mean)} {bounds(self.interval)}{self.bound_text()}"

    def text_with_size(self) -> str:
        """"51.20% [48.10, 54.30] (K=3, N=200)": for tables whose cells differ in size."""
        if self.interval is None:
            return NOT_RUN
        return (f"{pct(self.mean)} {bounds(self.interval)} (K={self.k}, N={self.samples})"
                f"{self.bound_text()}")

    def vs_paper(self) -> str:
        """"consistent", the signed gap mean − paper in points, "not run" or "—"."""
        if self.paper is None:
            return NOT_IN_PAPER
        if self.consistent is None:
            return NOT_RUN
        return CONSISTENT if self.consistent else points(self.delta)


def methods_text(cells: list[Cell]) -> str:
    """"t over replicates (K=3)"; several methods joined by "; "."""
    found = sorted({(c.interval.method, c.k) for c in cells if c.interval is not None})
    return "; ".join(f"{method} (K={k})" for method, k in found) or NOT_RUN


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
    """Header and rows of a paper table for tabulate: reproduced | paper | vs paper."""
    header = ["Attack"]
    for regime in view.regimes:
        label = REGIME_LABELS[regime]
        header += [f"{label} reproduced", f"{label} paper", f"{label} vs paper"]
    header.append("effective parameters")
    rows = []
    for attack, cells, params in view.rows:
        row = [ATTACK_LABELS[attack]]
        for regime in view.regimes:
            cell = cells[regime]
            row += [cell.text(), pct(cell.paper), cell.vs_paper()]
        row.append(params)
        rows.append(row)
    return header, rows


def view_cells(view: PaperTableView) -> list[Cell]:
    return [cell for _, cells, _ in view.rows for cell in cells.values()]


@dataclass
class Summary:
    compared: int          # the paper's cells that were run
    consistent: int
    inconsistent: int
    not_run: int           # the paper's cells that were not run
    tolerance_points: float
    worst: list[tuple[str, float]]  # inconsistent (label, mean − paper), largest |gap| first


def summarise(views: list[PaperTableView]) -> Summary:
    consistent = inconsistent = not_run = 0
    gaps = []
    for view in views:
        for attack, cells, _ in view.rows:
            for regime, cell in cells.items():
                if cell.paper is None:
                    continue
                if cell.consistent is None:
                    not_run += 1
                elif cell.consistent:
                    consistent += 1
                else:
                    inconsistent += 1
                    label = (f"Table {view.table.number} {ATTACK_LABELS[attack]} "
                             f"{REGIME_LABELS[regime]}")
                    gaps.append((label, cell.delta))
    gaps.sort(key=lambda item: (-abs(item[1]), item[0]))
    return Summary(consistent + inconsistent, consistent, inconsistent, not_run,
                   TOLERANCE_POINTS, gaps[:5])


# ---- beyond the paper's tables --------------------------------------------------------------



@dataclass
class ThreatRow:
    experiment: str
    population: str
    regime: str
    attack: str
    eps: float
    cells: dict[str, Cell]   # threat model -> Cell (paper value only on "paper")


def _same_cell(record: dict, experiment: str, population: str, attack: str, eps: float,
               threat: str) -> bool:
    return (record["experiment"] == experiment and record["population"] == population
            and record["attack"] == attack and abs(float(record["eps"]) - eps) <= EPS_TOLERANCE
            and record["threat_model"] == threat)


def threat_model_rows(records: list[dict]) -> list[ThreatRow]:
    """Every (experiment, population, attack, eps) attacked under transfer or adaptive; each
    cell aggregates its replicates."""
    keys = sorted({(r["experiment"], r["population"], r["regime"], r["attack"], float(r["eps"]))
                   for r in records if r["threat_model"] in ("transfer", "adaptive")})
    rows = []
    for experiment, population, regime, attack, eps in keys:
        cells = {}
        for threat in THREAT_MODELS:
            found = [r for r in records
                     if _same_cell(r, experiment, population, attack, eps, threat)]
            papers = {r.get("paper") for r in found} - {None}
            cells[threat] = Cell(found, papers.pop() if len(papers) == 1 else None)
        rows.append(ThreatRow(experiment, population, regime, attack, eps, cells))
    return rows


@dataclass
class OtherRow:
    experiment: str
    dataset: str
    population: str
    attack: str
    eps: float
    crafting: str
    params: str
    cell: Cell


def other_rows(tables: list[PaperTable], records: list[dict]) -> list[OtherRow]:
    """Paper-protocol cells the paper prints no number for (other eps, FakeData, ...), each
    aggregating its replicates."""
    others = [r for r in records if r["threat_model"] == "paper"
              and not is_paper_cell(tables, r)]
    keys = sorted({(r["experiment"], r["dataset"], r["population"], r["attack"],
                    float(r["eps"])) for r in others})
    rows = []
    for experiment, dataset, population, attack, eps in keys:
        found = [r for r in others if r["dataset"] == dataset
                 and _same_cell(r, experiment, population, attack, eps, "paper")]
        crafting = sorted({str(r.get("crafting", "")) for r in found})
        params = sorted({params_text(r.get("attack_params")) for r in found})
        rows.append(OtherRow(experiment, dataset, population, attack, eps, " | ".join(crafting),
                             " | ".join(params), Cell(found)))
    return rows


def record_sort_key(record: dict) -> tuple:
    return (record["experiment"], record["dataset"], record["population"], record["regime"],
            record["attack"], float(record["eps"]), record["threat_model"], replicate(record))
