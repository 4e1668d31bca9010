"""Which job to start first: the longest chain of planned work that still waits on it.

Snakemake runs ready jobs in an order it picks; with two cores and a DAG whose long chains are
the adversarial trainings (ULM-Adv → CLM-Adv, 16 min each on mnist5k), starting the short
attack jobs first leaves one core idle at the end while the last chain runs alone.  Classic
list scheduling (critical path first) fixes that: a job's priority is its own estimate plus the
longest estimated chain of jobs that read its outputs, directly or through others.  The
Snakefile hands it to each rule as ``priority`` (workflow/rules/jobs.smk); nothing compiled
changes.
"""

from __future__ import annotations

from typing import Iterable, Protocol


class _Job(Protocol):
    id: str
    estimate_s: float

    def input_paths(self) -> list[str]: ...

    @property
    def outputs(self) -> dict: ...


def _paths(value) -> list[str]:
    return list(value) if isinstance(value, list) else [value]


def critical_path_seconds(jobs: Iterable[_Job]) -> dict[str, float]:
    """job id → its estimate plus the longest chain of estimates downstream of it."""
    jobs = list(jobs)
    producer = {path: job.id for job in jobs for value in job.outputs.values()
                for path in _paths(value)}
    readers: dict[str, set[str]] = {job.id: set() for job in jobs}
    for job in jobs:
        for path in job.input_paths():
            source = producer.get(path)
            if source is not None and source != job.id:
                readers[source].add(job.id)
    estimate = {job.id: float(job.estimate_s) for job in jobs}
    found: dict[str, float] = {}

    def chain(job_id: str, seen: frozenset = frozenset()) -> float:
        if job_id in found:
            return found[job_id]
        if job_id in seen:
            raise ValueError(f"the plan's jobs form a cycle through {job_id!r}")
        below = [chain(reader, seen | {job_id}) for reader in readers[job_id]]
        found[job_id] = estimate[job_id] + max(below, default=0.0)
        return found[job_id]

    for job in jobs:
        chain(job.id)
    return found


def priorities(jobs: Iterable[_Job]) -> dict[str, int]:
    """job id → Snakemake priority: its critical path in whole seconds."""
    return {job_id: int(round(seconds)) for job_id, seconds in critical_path_seconds(jobs).items()}
