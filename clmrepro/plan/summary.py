"""What a plan costs, for `clmrepro plan`: per-stage totals, the cost of replicates, the hours the
transfer/adaptive subsets save, what the authors' execution settings would cost, and the peak
GPU memory per stage with what a 24 GB and an 80 GB card would run at once.

Every figure comes from ``estimate_seconds(job, calibration)`` (clmrepro.plan.estimate) with
the calibration the caller priced the plan with; a "what if" figure estimates the job file and a copy of
it with one thing changed.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass

from clmrepro.plan.estimate import estimate_seconds
from clmrepro.plan.memory import CARDS, JobMemory, fit_on, job_memory
from clmrepro.plan.model import Plan, PlannedJob

AUTHORS_EXECUTION = {"precision": "fp32", "clm_schedule": "sequential"}


@dataclass(frozen=True)
class StageTotal:
    stage: str
    jobs: int
    seconds: float


@dataclass(frozen=True)
class ReplicateCost:
    experiment: str
    replicates: int
    seconds: float                      # every replicate
    one_replicate: dict[str, float]     # stage -> seconds of replicate 0


@dataclass(frozen=True)
class WhatIf:
    experiment: str
    seconds: float                      # as planned
    alternative: float                  # the same jobs re-estimated
    detail: str


def stage_totals(plan: Plan) -> list[StageTotal]:
    totals: dict[str, list] = defaultdict(lambda: [0, 0.0])
    for job in plan.jobs:
        totals[job.stage][0] += 1
        totals[job.stage][1] += job.estimate_s
    return [StageTotal(stage, count, seconds) for stage, (count, seconds) in totals.items()]


def _by_experiment(plan: Plan) -> dict[str, list[PlannedJob]]:
    grouped: dict[str, list[PlannedJob]] = defaultdict(list)
    for job in plan.jobs:
        if "replicate" in job.job["params"]:
            grouped[job.job["experiment"]].append(job)
    return grouped


def replicate_costs(plan: Plan) -> list[ReplicateCost]:
    """Experiments with K >= 2 replicates: the whole cost and one replicate's, per stage."""
    costs = []
    for experiment, jobs in _by_experiment(plan).items():
        count = 1 + max(job.job["params"]["replicate"] for job in jobs)
        if count < 2:
            continue
        one: dict[str, float] = defaultdict(float)
        for job in jobs:
            if job.job["params"]["replicate"] == 0:
                one[job.stage] += job.estimate_s
        costs.append(ReplicateCost(experiment, count, sum(j.estimate_s for j in jobs), dict(one)))
    return costs


def subset_savings(plan: Plan, calibration: dict) -> list[WhatIf]:
    """Attack jobs whose transfer/adaptive sets are subsets, re-estimated on all n_samples."""
    found = []
    for experiment, jobs in _by_experiment(plan).items():
        planned = alternative = 0.0
        sizes: dict[str, int] = {}
        for job in jobs:
            samples = job.job["params"].get("samples")
            n = job.job["params"].get("n_samples")
            if not samples or all(count == n for count in samples.values()):
                continue
            full = copy.deepcopy(job.job)
            full["params"]["samples"] = {model: n for model in samples}
            planned += estimate_seconds(job.job, calibration)
            alternative += estimate_seconds(full, calibration)
            attack = job.job["params"].get("attack") or {}
            for model, count in samples.items():
                if count != n:  # ARC's own subset of the adaptive images is named apart
                    sizes["ARC" if attack.get("kind") == "arc" else model] = count
            sizes["all"] = n
        if sizes:
            detail = ", ".join(f"{model} on {count}" for model, count in sizes.items()
                               if model != "all") + f" of {sizes['all']} test images"
            found.append(WhatIf(experiment, planned, alternative, detail))
    return found


def authors_execution(plan: Plan, calibration: dict) -> list[WhatIf]:
    """Jobs run with bf16 or the lockstep CLM schedule, re-estimated with the authors' fp32 and
    Alg. 1's sequential schedule (issue 10: the plan prints both figures)."""
    found = []
    for experiment, jobs in _by_experiment(plan).items():
        planned = alternative = 0.0
        changed: set[str] = set()
        for job in jobs:
            execution = job.job["params"].get("execution") or {}
            differs = {key: value for key, value in AUTHORS_EXECUTION.items()
                       if execution.get(key, value) != value}
            if not differs:
                continue
            changed.update(f"{key} {execution[key]}" for key in differs)
            authors = copy.deepcopy(job.job)
            authors["params"]["execution"].update(AUTHORS_EXECUTION)
            planned += estimate_seconds(job.job, calibration)
            alternative += estimate_seconds(authors, calibration)
        if changed:
            found.append(WhatIf(experiment, planned, alternative, ", ".join(sorted(changed))))
    return found


@dataclass(frozen=True)
class StageMemory:
    stage: str
    job: str                            # the stage's job with the largest peak
    peak: int                           # its peak GPU memory in bytes (plan.memory)
    on_cards: dict[str, str]            # card -> what it runs at once there


def gpu_memory(plan: Plan) -> list[StageMemory]:
    """Per stage with GPU jobs, the largest estimated peak GPU memory and what a 24 GB and an
    80 GB card would micro-batch (clmrepro.plan.memory)."""
    largest: dict[str, tuple[PlannedJob, JobMemory]] = {}
    for job in plan.jobs:
        if not job.resources.get("gpu") or job.job.get("device") == "cpu":
            continue
        memory = job_memory(job.job)
        if memory is not None and (job.stage not in largest
                                   or memory.peak > largest[job.stage][1].peak):
            largest[job.stage] = (job, memory)
    return [StageMemory(stage, job.id, memory.peak,
                        {card: fit_on(memory, size).describe(memory) for card, size in CARDS.items()})
            for stage, (job, memory) in largest.items()]
