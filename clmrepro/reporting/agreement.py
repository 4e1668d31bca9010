"""Agreement with the paper as a pattern, not only cell by cell (issue 27).

A cell is "consistent" when the paper's number lies in our interval widened by a tolerance
(reporting.tables); a wide interval makes every cell consistent while every gap points the
same way.  So, per paper table and population, we count on which side of the paper our means
lie, and per row (attack) and pair of populations whether our means order the two as the
paper does.  Both read means only: they describe a pattern, the claims test it.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

from clmrepro.reporting.paper import (ATTACK_LABELS, COMPARED_PAIRS, DATASET_LABELS,
                                      REGIME_LABELS)
from clmrepro.reporting.tables import PaperTableView


@dataclass(frozen=True)
class GapPattern:
    table: int
    dataset: str
    regime: str
    above: int          # cells where our mean is above the paper's number
    below: int
    compared: int       # cells with both

    @property
    def text(self) -> str:
        label = REGIME_LABELS.get(self.regime, self.regime)
        if self.above == self.compared:
            return f"{label} above the paper in {self.above} of {self.compared} cells"
        if self.below == self.compared:
            return f"{label} below the paper in {self.below} of {self.compared} cells"
        return (f"{label} above the paper in {self.above}, below in {self.below} of "
                f"{self.compared} cells")


@dataclass(frozen=True)
class Ordering:
    table: int
    dataset: str
    first: str          # the population the paper puts higher
    second: str
    reversed_in: tuple[str, ...]   # attacks where our means put `second` higher
    compared: int                  # rows with all four numbers

    @property
    def text(self) -> str:
        first = REGIME_LABELS.get(self.first, self.first)
        second = REGIME_LABELS.get(self.second, self.second)
        attacks = ", ".join(ATTACK_LABELS.get(a, a) for a in self.reversed_in)
        return (f"the paper ranks {first} above {second}; our means reverse that in "
                f"{len(self.reversed_in)} of {self.compared} rows ({attacks})")


def gap_patterns(views: list[PaperTableView]) -> list[GapPattern]:
    out = []
    for view in views:
        for regime in view.regimes:
            gaps = [cells[regime].delta for _, cells, _ in view.rows
                    if cells[regime].delta is not None]
            if gaps:
                out.append(GapPattern(view.table.number, view.dataset, regime,
                                      sum(g > 0 for g in gaps), sum(g < 0 for g in gaps),
                                      len(gaps)))
    return out


def reversed_orderings(views: list[PaperTableView]) -> list[Ordering]:
    """Pairs of populations the paper compares whose order by our means differs from the
    paper's in at least one row of a table (ties on either side are not reversals)."""
    out = []
    for view in views:
        for a, b in combinations(view.regimes, 2):
            if {a, b} not in COMPARED_PAIRS:
                continue
            flipped: dict[tuple[str, str], list[str]] = {}
            compared: dict[tuple[str, str], int] = {}
            for attack, cells, _ in view.rows:
                ca, cb = cells[a], cells[b]
                if None in (ca.mean, cb.mean, ca.paper, cb.paper) or ca.paper == cb.paper:
                    continue
                first, second = (a, b) if ca.paper > cb.paper else (b, a)
                ours = (ca.mean - cb.mean) * (1 if first == a else -1)
                compared[(first, second)] = compared.get((first, second), 0) + 1
                if ours < 0:
                    flipped.setdefault((first, second), []).append(attack)
            for (first, second), attacks in flipped.items():
                out.append(Ordering(view.table.number, view.dataset, first, second,
                                    tuple(attacks), compared[(first, second)]))
    return out


def pattern_lines(views: list[PaperTableView]) -> list[str]:
    """One line per paper table that was run: the side of every population's gaps, then
    every ordering of the paper that our means reverse."""
    lines = []
    patterns, orderings = gap_patterns(views), reversed_orderings(views)
    for view in views:
        mine = [p.text for p in patterns
                if (p.table, p.dataset) == (view.table.number, view.dataset)]
        if not mine:
            continue
        flips = [o.text for o in orderings
                 if (o.table, o.dataset) == (view.table.number, view.dataset)]
        dataset = DATASET_LABELS.get(view.dataset, view.dataset)
        line = f"Table {view.table.number} ({dataset}): " + "; ".join(mine)
        if flips:
            line += ". " + "; ".join(flips)[0].upper() + "; ".join(flips)[1:]
        lines.append(line + ".")
    return lines
