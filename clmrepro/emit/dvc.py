"""Plan -> the spec's own dvc.yaml: one stage per job with the same cmd, deps, params and outs.

Every compiled spec keeps its pipeline in ``workflow/compiled/<spec>/dvc.yaml`` (its dvc.lock
beside it); the top-level ``dvc.yaml`` holds no stage.  DVC collects every dvc.yaml of the
project, so `dvc repro`, `dvc status`, `dvc metrics`, `dvc params` and `dvc plots` from the top
take every compiled spec, and removing a spec is removing its folder (docs/lab.md says why this
layout and not one file with prefixed stage names).

Snakemake executes; DVC records (`dvc commit -f`) and can still `dvc repro` alone
(REFERENCE §4: parallel `dvc repro`s collide on DVC's lock, Snakemake does not).
"""

from __future__ import annotations

import os

import yaml

from clmrepro.emit.files import HEADER, SHARED_HEADER
from clmrepro.plan import paths
from clmrepro.plan.model import Plan, PlannedJob
from clmrepro.reporting.dvc_metrics import PLOT

# Job-file keys that are not knobs: names and paths (the job file is a dependency anyway).
NOT_KNOBS = ("id", "stage", "spec", "experiment", "inputs", "outputs", "params")


def knob_keys(job: dict) -> list[str]:
    """The job file's keys that `dvc params diff` shows, as DVC key paths (``seed``,
    ``params.attack``, ...; DVC prints nested ones as ``params.attack.params.steps``).

    Left out: names and paths, and tables or prose in params (a list of mappings such as the
    report's attack table, or of long sentences such as its departures), which DVC would print
    as one long line; they follow from knobs that are shown."""
    keys = [key for key in job if key not in NOT_KNOBS]
    for name, value in job.get("params", {}).items():
        if not _is_table_or_prose(value):
            keys.append(f"params.{name}")
    return keys


def _is_table_or_prose(value: object) -> bool:
    return isinstance(value, list) and any(
        isinstance(item, (dict, list)) or (isinstance(item, str) and len(item) > 60)
        for item in value)


def _stage(job: PlannedJob, wdir: str) -> dict:
    outputs = dict(job.outputs)
    # wdir: paths in the stage (and in its dvc.lock) are the repository-relative paths that
    # Snakemake uses too.
    stage: dict = {"wdir": wdir, "cmd": job.cmd, "deps": [job.job_file, *job.input_paths()],
                   "params": [{job.job_file: knob_keys(job.job)}]}
    # Cached (not `cache: false`): a fresh clone gets them back with `dvc pull`, so the report
    # stage is current after a restore.
    metrics = [{outputs.pop("dvc_metrics"): {"cache": True}}] if "dvc_metrics" in outputs else []
    plots = ([{outputs.pop("mra_by_attack"): {"cache": True, **PLOT}}]
             if "mra_by_attack" in outputs else [])
    stage["outs"] = list(outputs.values())
    if metrics:
        stage["metrics"] = metrics
    if plots:
        stage["plots"] = plots
    return stage


def render_dvc_yaml(plan: Plan) -> str:
    """The spec's workflow/compiled/<spec>/dvc.yaml."""
    wdir = os.path.relpath(".", paths.compiled_dir(plan.spec)).replace(os.sep, "/")
    stages = {job.id: _stage(job, wdir) for job in plan.jobs}
    header = "# " + HEADER.format(source=plan.spec_path) + "\n"
    body = yaml.safe_dump({"stages": stages}, sort_keys=False, width=1000, allow_unicode=True)
    return header + body


def render_top_dvc_yaml() -> str:
    """The top-level dvc.yaml: the same bytes whatever is compiled (no merge conflicts)."""
    return (f"# {SHARED_HEADER}\n"
            "# Every compiled spec keeps its own pipeline in workflow/compiled/<spec>/dvc.yaml,\n"
            "# beside its plan and dvc.lock. This file holds no stage, so `dvc repro` and\n"
            "# `dvc status` here take every compiled spec (DVC reads every dvc.yaml of the\n"
            "# project); `clmrepro list` shows them, docs/lab.md explains the layout.\n"
            "stages: {}\n")
