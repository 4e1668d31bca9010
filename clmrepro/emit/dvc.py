"""Plan -> dvc.yaml: one stage per job with the same cmd, deps, params and outs.

Snakemake executes; DVC records (`dvc commit -f`) and can still `dvc repro` alone
(REFERENCE §4: parallel `dvc repro`s collide on DVC's lock, Snakemake does not).
"""

from __future__ import annotations

import yaml

from clmrepro.emit.files import HEADER
from clmrepro.plan.model import Plan, PlannedJob


def _stage(job: PlannedJob) -> dict:
    outputs = dict(job.outputs)
    stage: dict = {"cmd": job.cmd, "deps": [job.job_file, *job.input_paths()],
                   # The whole job file is the stage's params: changing one number reruns it.
                   "params": [{job.job_file: None}]}
    metrics, plots = [], []
    if job.stage == "report":
        # Cached (not `cache: false`): a fresh clone gets it back with `dvc pull`, so the
        # report stage is current after a restore.
        metrics = [{outputs.pop("metrics"): {"cache": True}}]
        plots = [outputs.pop("mra_csv")]
    stage["outs"] = list(outputs.values())
    if metrics:
        stage["metrics"] = metrics
        stage["plots"] = plots
    return stage


def render_dvc_yaml(plan: Plan) -> str:
    stages = {job.id: _stage(job) for job in plan.jobs}
    header = "# " + HEADER.format(source=plan.spec_path) + "\n"
    body = yaml.safe_dump({"stages": stages}, sort_keys=False, width=1000, allow_unicode=True)
    return header + body
