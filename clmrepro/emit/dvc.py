"""Plan -> the spec's own dvc.yaml: one stage per job with the same cmd, deps, params and outs.

Every compiled spec keeps its pipeline in ``workflow/compiled/<spec>/dvc.yaml`` (its dvc.lock
beside it); the top-level ``dvc.yaml`` holds no stage.  DVC collects every dvc.yaml of the
project, so `dvc repro`, `dvc status`, `dvc metrics`, `dvc params` and `dvc plots` from the top
take every compiled spec, and removing a spec is removing its folder (docs/lab.md says why this
layout and not one file with prefixed stage names).

Data stages are shared: each prepared dataset has its own ``workflow/compiled/_data/<key>/
dvc.yaml`` (``render_data_dvc_yaml``), written by every spec that reads it in the same bytes,
because one output declared by two stages makes DVC refuse the whole project.  The spec's
stages depend on the prepared file, so DVC orders them after it.

Snakemake executes; DVC records (`dvc commit -f`) and can still `dvc repro` alone
(docs/reference.md §4: parallel `dvc repro`s collide on DVC's lock, Snakemake does not).
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


def _wdir(folder: str) -> str:
    return os.path.relpath(".", folder).replace(os.sep, "/")


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
    """The spec's workflow/compiled/<spec>/dvc.yaml (every stage but the shared data ones)."""
    wdir = _wdir(paths.compiled_dir(plan.spec))
    stages = {job.id: _stage(job, wdir) for job in plan.jobs if job.stage != "data"}
    header = "# " + HEADER.format(source=plan.spec_path) + "\n"
    return header + _dump(stages)


def render_data_dvc_yaml(job: PlannedJob) -> str:
    """One data job's shared workflow/compiled/_data/<key>/dvc.yaml.  Its outputs are cached,
    so `dvc push` / `dvc pull` carry the prepared bytes to a machine without network; a dataset
    root outside the checkout is recorded by hash only (DVC 3 caches nothing outside it)."""
    dataset = job.typed.params.dataset
    stage = _stage(job, _wdir(paths.data_pipeline_dir(dataset.name, dataset.root)))
    if not paths.inside_repository(dataset.root):
        stage["outs"] = [{path: {"cache": False}} for path in stage["outs"]]
    return (f"# {SHARED_HEADER}\n# The data stage of every compiled spec that reads "
            f"{dataset.name} from {dataset.root} (docs/data.md).\n"
            + _dump({job.id: stage}))


def _dump(stages: dict) -> str:
    return yaml.safe_dump({"stages": stages}, sort_keys=False, width=1000, allow_unicode=True)


def render_top_dvc_yaml() -> str:
    """The top-level dvc.yaml: the same bytes whatever is compiled (no merge conflicts)."""
    return (f"# {SHARED_HEADER}\n"
            "# Every compiled spec keeps its own pipeline in workflow/compiled/<spec>/dvc.yaml,\n"
            "# beside its plan and dvc.lock. This file holds no stage, so `dvc repro` and\n"
            "# `dvc status` here take every compiled spec (DVC reads every dvc.yaml of the\n"
            "# project); `clmrepro list` shows them, docs/lab.md explains the layout.\n"
            "stages: {}\n")
