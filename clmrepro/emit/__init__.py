"""Emitters: a Plan becomes workflow/compiled/<spec>/ (plan, job files, its dvc.yaml), the shared
data pipelines workflow/compiled/_data/<key>/ (job file, dvc.yaml), the shared config.yaml and
top-level dvc.yaml, and the spec's JSON Schema."""

from __future__ import annotations

from pathlib import Path

from clmrepro.emit.dvc import render_data_dvc_yaml, render_dvc_yaml, render_top_dvc_yaml
from clmrepro.emit.files import write_if_changed
from clmrepro.emit.schema import render_schema
from clmrepro.emit.snakemake import emit_compiled
from clmrepro.plan import paths
from clmrepro.plan.model import Plan


def emit_all(plan: Plan, root: str | Path = ".") -> list[str]:
    """Write everything `clmrepro compile` produces under ``root``; returns what changed.
    Other compiled specs' files are never touched."""
    root = Path(root)
    written = emit_compiled(plan, root)
    data = [(paths.data_dvc_yaml(job.typed.params.dataset.name, job.typed.params.dataset.root),
             render_data_dvc_yaml(job))
            for job in plan.stage("data")]
    for relative, text in [*data, (paths.spec_dvc_yaml(plan.spec), render_dvc_yaml(plan)),
                           (paths.DVC_YAML, render_top_dvc_yaml()),
                           (paths.SCHEMA, render_schema())]:
        if write_if_changed(root / relative, text):
            written.append(relative)
    return written


__all__ = ["emit_all", "render_data_dvc_yaml", "render_dvc_yaml", "render_schema", "render_top_dvc_yaml",
           "write_if_changed"]
