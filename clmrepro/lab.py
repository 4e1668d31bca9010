"""A lab's checkout holds many compiled specs: which are up to date, which outputs exist, and
the Snakemake/DVC commands that act on one spec (used by `clmrepro list|run|restore|remove`).

Up to date means both tools agree: a Snakemake dry run of the spec plans no job, and
`dvc status` of the spec's dvc.yaml reports no changed stage.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from clmrepro.compiled import load_plans
from clmrepro.plan import paths
from clmrepro.plan.model import Plan


@dataclass(frozen=True)
class SpecStatus:
    name: str
    spec_path: str
    jobs: int
    outputs_present: int
    outputs_total: int
    snakemake_pending: int | None     # jobs a dry run plans; None: could not ask
    dvc_changed: int | None           # stages `dvc status` reports; None: no DVC here
    report: str | None                # report.html when it exists

    @property
    def up_to_date(self) -> bool:
        return self.snakemake_pending == 0 and self.dvc_changed in (0, None)


def snakemake_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", *args]


def dvc_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def built(plan: Plan, root: str | Path = ".") -> tuple[int, int]:
    """(outputs present, outputs declared) of one plan."""
    outputs = plan.final_outputs()
    return sum((Path(root) / path).exists() for path in outputs), len(outputs)


def _complete(counts: tuple[int, int]) -> bool:
    present, total = counts
    return present == total


def snakemake_pending(name: str, root: str | Path = ".") -> int | None:
    """Jobs a Snakemake dry run of this spec alone would run (0: nothing to be done)."""
    result = subprocess.run(snakemake_command("-n", "--cores", "1", "--config", f"spec={name}"),
                            cwd=root, capture_output=True, text=True)
    text = result.stdout + result.stderr
    if "Nothing to be done" in text:
        return 0
    match = re.search(r"^\s*total\s+(\d+)\s*$", text, re.M)
    if result.returncode != 0 or not match:
        return None
    return int(match.group(1)) - 1  # the table counts the `all` target as a job


def dvc_changed(name: str, root: str | Path = ".", files: list[str] | None = None) -> int | None:
    """Stages that `dvc status` reports as changed in this spec's dvc.yaml and in ``files``
    (``Plan.dvc_files``: with the shared data stages it reads); None without DVC."""
    if not (Path(root) / ".dvc").is_dir():
        return None
    result = subprocess.run(dvc_command("status", "--json", *(files or [paths.spec_dvc_yaml(name)])),
                            cwd=root, capture_output=True, text=True)
    try:
        return len(json.loads(result.stdout or "{}"))
    except json.JSONDecodeError:
        return None


def statuses(root: str | Path = ".", check_tools: bool = True) -> list[SpecStatus]:
    out = []
    for name, plan in load_plans("all", root).items():
        present, total = built(plan, root)
        report = paths.report_outputs(name)["report_html"]
        out.append(SpecStatus(
            name=name, spec_path=plan.spec_path, jobs=len(plan.jobs), outputs_present=present,
            outputs_total=total,
            snakemake_pending=snakemake_pending(name, root) if check_tools else None,
            dvc_changed=dvc_changed(name, root, plan.dvc_files()) if check_tools else None,
            report=report if (Path(root) / report).is_file() else None))
    return out


def status_rows(found: list[SpecStatus]) -> list[list[str]]:
    def jobs_text(n: int | None) -> str:
        return "?" if n is None else ("up to date" if n == 0 else f"{n} job(s) to run")

    def dvc_text(n: int | None) -> str:
        return "no DVC" if n is None else ("up to date" if n == 0 else f"{n} stage(s) changed")

    return [[s.name, s.spec_path, str(s.jobs), f"{s.outputs_present}/{s.outputs_total}",
             jobs_text(s.snakemake_pending), dvc_text(s.dvc_changed), s.report or "(not built)"]
            for s in found]


STATUS_HEADER = ["spec", "source", "jobs", "outputs", "snakemake", "dvc", "report"]


def restore(names: list[str] | None = None, root: str | Path = ".",
            call=None) -> tuple[int, list[str]]:
    """`snakemake --touch` over the chosen specs (default: all) whose outputs all exist, so
    Snakemake sees the files that `dvc pull` / `dvc commit` rewrote as current (REFERENCE §4).
    Returns (exit code, specs skipped because outputs are missing).  ``call`` runs the command
    (default ``subprocess.call`` in ``root``; the CLI passes one that shares its run lock)."""
    plans = load_plans(names or "all", root)
    ready = [name for name, plan in plans.items() if _complete(built(plan, root))]
    skipped = [name for name in plans if name not in ready]
    if not ready:
        return 0, skipped
    command = snakemake_command("--touch", "--cores", "1", "--quiet", "all",
                                "--config", f"spec={','.join(ready)}")
    code = call(command) if call is not None else subprocess.call(command, cwd=root)
    return code, skipped


def pending_outputs(name: str, root: str | Path = ".") -> set[str] | None:
    """Outputs a run of this spec would (re)write: `snakemake --summary`, plan column
    'update pending'.  None when Snakemake could not say."""
    result = subprocess.run(snakemake_command("--summary", "--cores", "1", "--config",
                                              f"spec={name}"),
                            cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return parse_summary(result.stdout)


def parse_summary(text: str) -> set[str]:
    """The 'update pending' files of `snakemake --summary` (tab-separated, a header row)."""
    pending = set()
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0] != "output_file" and fields[-1] == "update pending":
            pending.add(fields[0])
    return pending


def read_only_links(plan: Plan, root: str | Path = ".") -> list[str]:
    """Output files that DVC linked into its cache (a second hard link) and made read-only,
    which this user cannot write (root can: it ignores the mode)."""
    found = []
    for job in plan.jobs:
        for name, path in job.outputs.items():
            full = Path(root) / path
            if name in job.directories or full.is_symlink() or not full.is_file():
                continue  # Snakemake never calls a folder or a symlink write-protected
            if full.stat().st_nlink > 1 and not os.access(full, os.W_OK):
                found.append(path)
    return found


def release_linked_outputs(plan: Plan, root: str | Path = ".",
                           pending=pending_outputs) -> list[str]:
    """Delete the read-only linked outputs that the run is about to rewrite.

    With a linking DVC cache (.dvc/config cache.type) DVC makes every output a read-only link
    into .dvc/cache, and Snakemake refuses to rerun a job whose old output a user cannot write
    ("ProtectedOutputException: Write-protected output files").  Snakemake deletes a rerun
    job's outputs anyway before running it, and DVC's cache keeps them, so this only does that
    step first.  Returns the files deleted (none for root or a copying cache: no Snakemake
    call then)."""
    linked = read_only_links(plan, root)
    if not linked:
        return []
    rerun = pending(plan.spec, root)
    if rerun is None:
        return []  # Snakemake itself will say what is wrong
    doomed = [path for path in linked if path in rerun]
    for path in doomed:
        (Path(root) / path).unlink()
    return doomed
