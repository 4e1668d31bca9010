"""From scores records to intervals: replicate units, one cell's interval, a paired difference.

A unit is one (experiment, replicate): the records of one cell that share it are one
measurement (several populations of one regime in one experiment are averaged, and scored on
the smallest n_samples among them). Units are the replicates of the t intervals; with one
unit the binomial intervals over its test images are used (clmrepro.reporting.stats).
CLM replicate r is retrained from ULM replicate r of the same experiment, so differences pair
units with equal keys.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

from clmrepro.reporting.stats import (Interval, newcombe_interval, paired_t_interval,
                                      t_interval, wilson_interval)

Unit = tuple[str, int]   # (experiment, replicate)


def replicate(record: dict) -> int:
    """Version-1 records carry no replicate: they are replicate 0."""
    return int(record.get("replicate", 0))


def units(records: list[dict]) -> dict[Unit, tuple[float, int]]:
    """(experiment, replicate) -> (mean MRA, n_samples), in key order."""
    groups: dict[Unit, list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["experiment"], replicate(r))].append(r)
    return {key: (statistics.fmean(float(r["mra"]) for r in found),
                  min(int(r["n_samples"]) for r in found))
            for key, found in sorted(groups.items())}


def cell_interval(records: list[dict]) -> Interval | None:
    """Mean over units and its 95% interval; None when nothing was run."""
    found = units(records)
    if not found:
        return None
    if len(found) >= 2:
        return t_interval([mean for mean, _ in found.values()])
    ((mean, n),) = found.values()
    return wilson_interval(mean, n)


@dataclass(frozen=True)
class Difference:
    left: float            # mean over the paired units
    right: float
    interval: Interval     # of left − right


def paired_difference(left: list[dict], right: list[dict]) -> Difference | None:
    """left − right over the units both sides have; None when they share none."""
    a, b = units(left), units(right)
    common = [key for key in a if key in b]
    if not common:
        return None
    left_means = [a[key][0] for key in common]
    right_means = [b[key][0] for key in common]
    if len(common) >= 2:
        interval = paired_t_interval(left_means, right_means)
    else:
        (key,) = common
        interval = newcombe_interval(a[key][0], a[key][1], b[key][0], b[key][1])
    return Difference(statistics.fmean(left_means), statistics.fmean(right_means), interval)
