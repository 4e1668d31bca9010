"""The plan: every job with its file, command, log, resources; JSON in and out, no torch."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from clmrepro.plan import paths
from clmrepro.plan.jobs import AnyJob, parse_job

# 2: fused attack jobs (craft + score), replicates, resources.gpu_whole
SCHEMA_VERSION = 2


@dataclass(frozen=True)
class PlannedJob:
    typed: AnyJob                   # the job file's content, typed per stage (plan.jobs)
    job_file: str
    cmd: str                        # identical for Snakemake and DVC
    log: str
    benchmark: str
    # gpu (0/1 GPUs), gpu_whole (takes every slot of its GPU; Snakefile: slots_per_gpu),
    # mem_mb, runtime (minutes), threads
    resources: dict
    estimate_s: float               # seconds on the plan's calibration (clmrepro.plan.estimate)
    directories: list[str] = field(default_factory=list)   # output names that are folders

    @property
    def job(self) -> dict:
        """The job file's content as a dict (a fresh one each time): what the estimate, the
        storage and the summary price (plan.estimate, plan.storage take job dicts)."""
        return self.typed.as_dict()

    @property
    def id(self) -> str:
        return self.typed.id

    @property
    def stage(self) -> str:
        return self.typed.stage

    @property
    def inputs(self) -> dict:
        return self.typed.inputs

    @property
    def outputs(self) -> dict:
        return self.typed.outputs

    @property
    def rule_name(self) -> str:
        """Snakemake rule names must be identifiers."""
        return "job_" + "".join(c if c.isalnum() else "_" for c in self.id)

    def input_paths(self) -> list[str]:
        paths = []
        for value in self.inputs.values():
            paths.extend(value if isinstance(value, list) else [value])
        return paths

    def output_paths(self) -> list[str]:
        return list(self.outputs.values())

    def to_dict(self) -> dict:
        """The plan file's entry: the job under ``job``, as its job file holds it."""
        return {"job" if f.name == "typed" else f.name:
                self.job if f.name == "typed" else getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "plan") -> "PlannedJob":
        rest = {key: value for key, value in data.items() if key != "job"}
        where = f"{source}: job {rest.get('job_file', '?')}"
        return cls(typed=parse_job(data["job"], where), **rest)


@dataclass(frozen=True)
class Plan:
    spec: str
    spec_path: str
    spec_sha256: str
    jobs: list[PlannedJob]
    schema_version: int = SCHEMA_VERSION
    # the calibration that priced estimate_s and runtime: {name, sha256} (plan.compile)
    calibration: dict = field(default_factory=dict)

    def stage(self, stage: str) -> list[PlannedJob]:
        return [job for job in self.jobs if job.stage == stage]

    def by_id(self, job_id: str) -> PlannedJob:
        return next(job for job in self.jobs if job.id == job_id)

    def final_outputs(self) -> list[str]:
        return [path for job in self.jobs for path in job.output_paths()]

    def dvc_files(self) -> list[str]:
        """The DVC pipelines that hold this spec's stages: its own dvc.yaml and the shared one
        of each dataset it prepares (`dvc status` / `dvc commit` of the spec take them all)."""
        data = [paths.data_dvc_yaml(job.typed.params.dataset.name, job.typed.params.dataset.root)
                for job in self.stage("data")]
        return [paths.spec_dvc_yaml(self.spec), *data]

    def to_dict(self) -> dict:
        return {f.name: [job.to_dict() for job in self.jobs] if f.name == "jobs"
                else getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict, source: str = "plan") -> "Plan":
        """A JobError (one line naming the plan and the job file) for a job that does not parse."""
        jobs = [PlannedJob.from_dict(job, source) for job in data["jobs"]]
        return cls(**{**data, "jobs": jobs})


def dumps(data: object) -> str:
    """The one JSON spelling of generated files: sorted keys, 2-space indent, final newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def load_plan(path: str | Path) -> Plan:
    with open(path, encoding="utf-8") as handle:
        return Plan.from_dict(json.load(handle), str(path))
