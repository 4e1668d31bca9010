"""Plan -> workflow/compiled/: <spec>/plan.json, <spec>/jobs/*.json, and config.yaml.

config.yaml is the same for every spec: Snakemake runs every compiled spec unless told
`--config spec=NAME[,NAME...]` (clmrepro.compiled reads the compiled folders).
"""

from __future__ import annotations

from pathlib import Path

from clmrepro.emit.files import SHARED_HEADER, write_if_changed
from clmrepro.plan import paths
from clmrepro.plan.model import Plan, dumps

CONFIG_TEXT = (f"# {SHARED_HEADER}\n"
               "# Snakemake runs every spec compiled under workflow/compiled/ (one folder each);\n"
               "# `snakemake --config spec=smoke` (or spec=smoke,tiny) runs only those.\n"
               "spec: all\n")


def emit_compiled(plan: Plan, root: Path) -> list[str]:
    """Write the plan, its job files and the Snakemake config; remove stale job files of this
    spec.  Returns the paths written (unchanged files are not rewritten)."""
    written = []
    for relative, text in [(paths.CONFIG, CONFIG_TEXT), (paths.plan_file(plan.spec), dumps(plan.to_dict()))]:
        if write_if_changed(root / relative, text):
            written.append(relative)
    wanted = set()
    for job in plan.jobs:
        wanted.add(job.job_file)
        # a data job's file is shared (workflow/compiled/_data/): the same bytes from every spec
        if write_if_changed(root / job.job_file, dumps(job.typed.as_dict())):
            written.append(job.job_file)
    jobs_dir = root / paths.jobs_dir(plan.spec)
    for stale in sorted(jobs_dir.glob("*.json")):
        if f"{paths.jobs_dir(plan.spec)}/{stale.name}" not in wanted:
            stale.unlink()
            written.append(f"{paths.jobs_dir(plan.spec)}/{stale.name} (removed)")
    return written
