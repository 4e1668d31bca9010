"""Silent success: Pintor et al.'s indicator (NeurIPS 2022; docs/sanity.md).

Job: nothing but the traced PGD's success measure along its path (``path_best``, ``final``).
Report: flag when the mean over images of (final − best point on the path) exceeds
``SILENT_POINTS``: the attack passed a point the defence classifies worse than the one it
returned.
"""

from __future__ import annotations

import statistics

from clmrepro.kinds.checks.base import (PINTOR, ROUNDING, Job, Kit, Measure, Population, Report,
                                        no_file)

SILENT_POINTS = 0.5          # mean of final − best point on the path


def rule(threat: str, files) -> str:
    return (f"Flag when the mean over images of (final − best point on the attack's path) "
            f"exceeds {SILENT_POINTS:g} points.")


def _mean_with_interval(values_by_unit: list[list[float]], kit: Kit):
    """Mean of per-image values pooled by replicate: t over replicates (K >= 2) or over the
    images of the one replicate (K = 1)."""
    means = [statistics.fmean(v) for v in values_by_unit]
    if len(means) >= 2:
        return statistics.fmean(means), kit.t_interval(means, bounds=(-1.0, 1.0))
    (values,) = values_by_unit
    if len(values) >= 2:
        return means[0], kit.t_interval(values, kit.T_SAMPLES, bounds=(-1.0, 1.0))
    return means[0], None


def verdict(population: Population, threat: str, kit: Kit) -> tuple[list[Measure], str]:
    traces = [s["trace"] for _, s in population.sections(threat)
              if (s.get("trace") or {}).get("path_best") is not None
              and (s.get("trace") or {}).get("final") is not None]
    if not traces:
        return [], no_file(population, threat, "path_best and final")
    gaps = [[float(f) - float(b) for f, b in zip(t["final"], t["path_best"])] for t in traces]
    gaps = [g for g in gaps if g]
    if not gaps:
        return [], "the loss traces hold no image"
    mean, interval = _mean_with_interval(gaps, kit)
    silent = sum(g > 0 for values in gaps for g in values)
    total = sum(len(values) for values in gaps)
    measured = sorted({str(t["measure"]) for t in traces if t.get("measure")})
    label = "final − best point on the path" + (f" ({measured[0]})" if len(measured) == 1
                                                 else "")
    return [Measure(label, "difference", mean, interval,
                    flags=mean > SILENT_POINTS / 100.0 + ROUNDING),
            Measure("images whose path held a better point than the one returned", "count",
                    silent, of=total)], ""


REPORT = Report("silent-success", "silent success", f"{PINTOR} (silent success)", None, rule,
                verdict)
JOB = Job("silent-success", "silent-success: a better point passed on PGD's path", trace=True)
