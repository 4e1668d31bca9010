"""From scores records to intervals: replicate units, one cell's interval, a paired difference.

A unit is one (experiment, replicate): the records of one cell that share it are one
measurement (several populations of one regime in one experiment are averaged, and scored on
the smallest n_samples among them). Units are the replicates of the t intervals; with one
unit the binomial intervals over its test images are used (clmrepro.reporting.stats).
CLM replicate r is retrained from ULM replicate r of the same experiment, so differences pair
units with equal keys.

Records written since issue 18 carry ``per_image`` (each test image's expected accuracy under
random dispatch, decoded by reporting.build). With one unit on each side and per-image values
on the same images, a difference is a t interval over the paired per-image differences: both
sides are scored on the same first N test images, and pairing removes what the images share
(an easy or a hard image), which Newcombe's interval for independent samples cannot.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

from clmrepro.reporting.stats import (LEVEL, T_SAMPLES, Interval, newcombe_interval,
                                      paired_t_interval, t_interval, wilson_interval)

Unit = tuple[str, int]   # (experiment, replicate)


def replicate(record: dict) -> int:
    """Version-1 records carry no replicate: they are replicate 0."""
    return int(record.get("replicate", 0))


def _grouped(records: list[dict]) -> dict[Unit, list[dict]]:
    groups: dict[Unit, list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["experiment"], replicate(r))].append(r)
    return dict(sorted(groups.items()))


def unit_images(records: list[dict], first: int | None = None) -> list[float] | None:
    """One unit's per-image expected accuracies: the mean over its records, image by image,
    on the first ``first`` images (default: the shortest record's); None when a record has
    no per-image values or the unit has fewer images than asked for."""
    tables = [r.get("per_image") for r in records]
    if not tables or any(t is None for t in tables):
        return None
    length = min(len(t) for t in tables)
    if first is not None:
        if first > length:
            return None
        length = first
    return [statistics.fmean(t[j] for t in tables) for j in range(length)]


def units(records: list[dict], first: int | None = None) -> dict[Unit, tuple[float, int]]:
    """(experiment, replicate) -> (mean MRA, n_samples), in key order.

    With ``first``, a unit's mean is taken over its first ``first`` images from its per-image
    values (two threat models compared on the images both scored); a unit without them keeps
    its MRA."""
    out = {}
    for key, found in _grouped(records).items():
        images = unit_images(found, first) if first is not None else None
        if images:
            out[key] = (statistics.fmean(images), len(images))
        else:
            out[key] = (statistics.fmean(float(r["mra"]) for r in found),
                        min(int(r["n_samples"]) for r in found))
    return out


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


def paired_difference(left: list[dict], right: list[dict], first: int | None = None,
                      level: float = LEVEL) -> Difference | None:
    """left − right over the units both sides have; None when they share none.

    K >= 2 shared units: paired t over replicates. K = 1: the t interval over the paired
    per-image differences when both sides carry per-image values on the same images (same
    length, at least 2), else Newcombe's interval (version-1 scores files). ``first`` compares
    both sides on their first ``first`` images only (see :func:`units`).  ``level``: the
    interval's coverage (0.90 for an equivalence test's two one-sided 5% tests)."""
    a, b = units(left, first), units(right, first)
    common = [key for key in a if key in b]
    if not common:
        return None
    left_means = [a[key][0] for key in common]
    right_means = [b[key][0] for key in common]
    if len(common) >= 2:
        interval = paired_t_interval(left_means, right_means, level)
        return Difference(statistics.fmean(left_means), statistics.fmean(right_means),
                          interval)
    (key,) = common
    images_a = unit_images(_grouped(left)[key], first)
    images_b = unit_images(_grouped(right)[key], first)
    if images_a and images_b and len(images_a) == len(images_b) >= 2:
        diffs = [x - y for x, y in zip(images_a, images_b)]
        return Difference(statistics.fmean(images_a), statistics.fmean(images_b),
                          t_interval(diffs, T_SAMPLES, level, bounds=(-1.0, 1.0)))
    interval = newcombe_interval(a[key][0], a[key][1], b[key][0], b[key][1], level)
    return Difference(a[key][0], b[key][0], interval)


# Where "classified correctly when clean" must hold for every member: an image a population's
# random dispatch gets right whichever member answers (expected accuracy 1 on the clean image).
CLEAN_CORRECT = 1.0 - 1e-9


def clean_conditional_difference(left: list[dict], right: list[dict], left_clean: list[dict],
                                 right_clean: list[dict], level: float = LEVEL
                                 ) -> Difference | None:
    """left − right under attack, on the images that both populations classify correctly when
    clean (every member right): robust accuracy with clean accuracy taken out (issue 27).

    Per unit both sides need per-image values under attack and clean; the images are the
    first ones both scored.  K >= 2 shared units: paired t over the units' conditional means;
    K = 1: t over the paired per-image differences on those images.  None when a side lacks
    per-image values, the sides share no unit, or fewer than 2 images qualify."""
    groups = [_grouped(side) for side in (left, right, left_clean, right_clean)]
    common = [key for key in groups[0] if all(key in g for g in groups[1:])]
    kept: dict[Unit, tuple[list[float], list[float]]] = {}
    for key in common:
        found = [unit_images(g[key]) for g in groups]
        if any(f is None for f in found):
            return None
        a, b, ca, cb = found
        length = min(len(a), len(b), len(ca), len(cb))
        pairs = [(a[j], b[j]) for j in range(length)
                 if ca[j] >= CLEAN_CORRECT and cb[j] >= CLEAN_CORRECT]
        if len(pairs) >= 2:
            kept[key] = ([p[0] for p in pairs], [p[1] for p in pairs])
    if not kept:
        return None
    if len(kept) >= 2:
        left_means = [statistics.fmean(a) for a, _ in kept.values()]
        right_means = [statistics.fmean(b) for _, b in kept.values()]
        return Difference(statistics.fmean(left_means), statistics.fmean(right_means),
                          paired_t_interval(left_means, right_means, level))
    ((a, b),) = kept.values()
    return Difference(statistics.fmean(a), statistics.fmean(b),
                      t_interval([x - y for x, y in zip(a, b)], T_SAMPLES, level,
                                 bounds=(-1.0, 1.0)))
