"""The robustness checks' registry (issue 25; docs/sanity.md, docs/extending.md).

One module per check, listed once in ``MODULES``, in the order the report shows them (its
``REPORT``) and the sanity job runs them (its ``JOB``; :mod:`.base` says what each part holds).
The spec (``spec.models.Sanity``: the ``checks`` names, their default and the knobs), the plan
(``plan.defaults.sanity_block``, ``plan.estimate``, ``plan.storage``), the sanity job
(``steps.sanity`` → ``core.attacks.sanity.check_threat``) and the report
(``reporting.sanity``) read this registry instead of branching on a check's name.
"""

from __future__ import annotations

from collections.abc import Iterable

# a check is one import and one line of MODULES (docs/extending.md, "Adding a check")
from clmrepro.kinds.checks import iterative
from clmrepro.kinds.checks import budget
from clmrepro.kinds.checks import convergence
from clmrepro.kinds.checks import unbounded
from clmrepro.kinds.checks import square
from clmrepro.kinds.checks import white_box
from clmrepro.kinds.checks import zero_gradient
from clmrepro.kinds.checks import silent_success
from clmrepro.kinds.checks import noise
from clmrepro.kinds.checks import loss_function
from clmrepro.kinds.checks.base import Job, Report

MODULES = (
    iterative,
    budget,
    convergence,
    unbounded,
    square,
    white_box,
    zero_gradient,
    silent_success,
    noise,
    loss_function,
)

REPORTS: tuple[Report, ...] = tuple(m.REPORT for m in MODULES if m.REPORT is not None)
JOBS: tuple[Job, ...] = tuple(m.JOB for m in MODULES if m.JOB is not None)
BY_ID: dict[str, Report] = {r.id: r for r in REPORTS}
BY_JOB: dict[str, Job] = {j.name: j for j in JOBS}
JOB_NAMES: tuple[str, ...] = tuple(BY_JOB)
DEFAULT_JOBS: tuple[str, ...] = tuple(j.name for j in JOBS if j.default)
# the report shows these checks only where a check file ran them (Job.reported_where_run)
WHERE_RUN: dict[str, str] = {m.REPORT.id: m.JOB.name for m in MODULES
                             if m.REPORT is not None and m.JOB is not None
                             and (not m.JOB.default or m.JOB.reported_where_run)}
CHECKS_HELP = "; ".join(j.summary for j in JOBS)


def get(name: str) -> Job:
    """The job part of the check the spec's ``evaluation.sanity.checks`` names."""
    try:
        return BY_JOB[name]
    except KeyError:
        raise ValueError(f"unknown sanity check {name!r}: known are "
                         f"{', '.join(JOB_NAMES)} (clmrepro.kinds.checks)") from None


def jobs(names: Iterable[str]) -> tuple[Job, ...]:
    """The named checks' jobs, in registry order (the order the sanity job runs them)."""
    wanted = {get(name).name for name in names}
    return tuple(j for j in JOBS if j.name in wanted)


def knob_fields() -> dict[str, tuple]:
    """Every check's knobs, (type, Field) by name, for the spec's ``Sanity`` model."""
    out: dict[str, tuple] = {}
    for job in JOBS:
        for name, spec in job.knobs.items():
            if name in out:
                raise ValueError(f"sanity knob {name!r} is defined by two checks")
            out[name] = spec
    return out
