"""The compiled specs of a checkout: each is one folder, workflow/compiled/<spec>/.

There is no list to keep in step: a spec is compiled when its folder holds a plan.json, and
removing the folder removes its pipeline (plan, job files, its dvc.yaml and dvc.lock) and
nothing of any other spec.  The Snakefile calls `snakemake_plan` to run one spec, several, or
all; rule names then carry the spec, since two specs may plan the same job id.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from clmrepro.plan import load_plan, paths
from clmrepro.plan.model import Plan, PlannedJob

ALL = "all"


class UnknownSpec(ValueError):
    """A spec name that is not compiled in this checkout."""


def compiled_specs(root: str | Path = ".") -> list[str]:
    base = Path(root) / paths.COMPILED
    return sorted(p.parent.name for p in base.glob("*/plan.json"))


def parse_selection(selection: object, root: str | Path = ".") -> list[str]:
    """``all`` (or nothing) -> every compiled spec; ``smoke`` or ``smoke,tiny`` -> those."""
    compiled = compiled_specs(root)
    if selection is None or selection == ALL or selection == [ALL]:
        return compiled
    names = selection if isinstance(selection, (list, tuple)) else str(selection).split(",")
    names = [str(n).strip() for n in names if str(n).strip()]
    unknown = [n for n in names if n not in compiled]
    if unknown:
        raise UnknownSpec(f"spec {', '.join(repr(n) for n in unknown)} is not compiled here; "
                          f"compiled: {', '.join(compiled) or 'none'} (compile one with "
                          f"`clmrepro compile specs/NAME.yaml`)")
    return list(dict.fromkeys(names))


def load_plans(selection: object = ALL, root: str | Path = ".") -> dict[str, Plan]:
    return {name: load_plan(Path(root) / paths.plan_file(name))
            for name in parse_selection(selection, root)}


def _identifier(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def spec_rule_name(spec: str) -> str:
    """The Snakemake target that builds one spec: `snakemake spec_smoke`."""
    return f"spec_{_identifier(spec)}"


class SpecJob(PlannedJob):
    """A planned job whose Snakemake rule name carries its spec (job_smoke__train_mnist_ulm);
    a data job's carries its shared pipeline instead (data_mnist_5k), as every spec that
    reads the dataset plans the very same job."""

    @property
    def rule_name(self) -> str:
        if self.stage == "data":
            dataset = self.typed.params.dataset
            return "data_" + _identifier(paths.data_key(dataset.name, dataset.root))
        return "job_" + _identifier(f"{self.typed.spec}__{self.id}")


def snakemake_plan(plans: dict[str, Plan]) -> Plan:
    """Every job of the chosen plans in one Plan for workflow/rules/jobs.smk; a data job
    that several specs plan (one job file, workflow/compiled/_data/) is one rule."""
    jobs, shared = [], set()
    for plan in plans.values():
        for job in plan.jobs:
            if job.stage == "data":
                if job.job_file in shared:
                    continue
                shared.add(job.job_file)
            jobs.append(SpecJob(**{name: getattr(job, name)
                                   for name in PlannedJob.__dataclass_fields__}))
    seen: dict[str, str] = {}
    for job in jobs:
        if job.rule_name in seen:
            raise UnknownSpec(f"jobs {seen[job.rule_name]!r} and {job.typed.spec}/{job.id!r} "
                              f"get the same Snakemake rule name {job.rule_name}; rename a spec")
        seen[job.rule_name] = f"{job.typed.spec}/{job.id}"
    return Plan(spec="+".join(plans), spec_path="", spec_sha256="", jobs=jobs)


def _remove_unused_data_pipelines(root: Path) -> list[str]:
    """Shared data pipelines (workflow/compiled/_data/<key>/) that no compiled spec plans any
    more; the prepared files stay (other checkouts may share the data folder)."""
    used = {job.job_file.rsplit("/", 1)[0] for plan in load_plans(ALL, root).values()
            for job in plan.stage("data")}
    removed = []
    shared = root / paths.DATA_PIPELINES
    for folder in sorted(shared.iterdir() if shared.is_dir() else []):
        relative = f"{paths.DATA_PIPELINES}/{folder.name}"
        if folder.is_dir() and relative not in used:
            shutil.rmtree(folder)
            removed.append(relative)
    return removed


def remove_spec(name: str, root: str | Path = ".", outputs: bool = False) -> list[str]:
    """Delete one compiled spec's pipeline; with ``outputs`` also its results, report and
    resumable state.  Returns what was removed.  DVC's cache keeps the outputs, so checking
    out an older commit and `dvc checkout` bring the spec back."""
    parse_selection(name, root)  # raises UnknownSpec
    root = Path(root)
    removed = [paths.compiled_dir(name)]
    shutil.rmtree(root / paths.compiled_dir(name))
    removed += _remove_unused_data_pipelines(root)
    if outputs:
        for folder in (paths.spec_results_dir(name), paths.report_dir(name),
                       paths.spec_state_dir(name)):
            if (root / folder).exists():
                shutil.rmtree(root / folder)
                removed.append(folder)
    return removed
