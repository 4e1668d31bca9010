"""Plan -> workflow/compiled/: config.yaml, <spec>/plan.json, <spec>/jobs/*.json."""

from __future__ import annotations

from pathlib import Path

from clmrepro.emit.files import HEADER, write_if_changed
from clmrepro.plan import paths
from clmrepro.plan.model import Plan, dumps


def emit_compiled(plan: Plan, root: Path) -> list[str]:
    """Write the plan, its job files and the Snakemake config; remove stale job files of this
    spec.  Returns the paths written (unchanged files are not rewritten)."""
    written = []
    header = "# " + HEADER.format(source=plan.spec_path) + "\n"
    config = header + f"plan: {paths.plan_file(plan.spec)}\n"
    for relative, text in [(paths.CONFIG, config), (paths.plan_file(plan.spec), dumps(plan.to_dict()))]:
        if write_if_changed(root / relative, text):
            written.append(relative)
    wanted = set()
    for job in plan.jobs:
        wanted.add(Path(job.job_file).name)
        if write_if_changed(root / job.job_file, dumps(job.job)):
            written.append(job.job_file)
    jobs_dir = root / paths.jobs_dir(plan.spec)
    for stale in sorted(jobs_dir.glob("*.json")):
        if stale.name not in wanted:
            stale.unlink()
            written.append(f"{paths.jobs_dir(plan.spec)}/{stale.name} (removed)")
    return written
