"""A lab's checkout holds many compiled specs: which are up to date, which outputs exist, and
the Snakemake/DVC commands that act on one spec (used by `clmrepro list|run|restore|remove`).

Up to date means both tools agree: a Snakemake dry run of the spec plans no job, and
`dvc status` of the spec's dvc.yaml reports no changed stage.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

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
    Snakemake sees the files that `dvc pull` / `dvc commit` rewrote as current
    (docs/reference.md §4).
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


def pull_plan(names: list[str] | None = None,
              root: str | Path = ".") -> tuple[list[str], list[str], list[str]]:
    """What `clmrepro restore --pull` fetches: the chosen specs (default: all) whose own
    dvc.lock is here, i.e. a run of theirs was committed; the DVC pipelines that hold them (each
    spec's and the shared data pipelines it reads: a plain `dvc pull` of the spec's dvc.yaml
    would leave the prepared dataset out); the specs with no lock, which have nothing to pull.
    Returns (recorded specs, dvc.yaml files, specs never recorded)."""
    recorded, files, never = [], [], []
    for name, plan in load_plans(names or "all", root).items():
        if (Path(root) / lock_of(paths.spec_dvc_yaml(name))).is_file():
            recorded.append(name)
            files += [f for f in plan.dvc_files() if f not in files]
        else:
            never.append(name)
    return recorded, files, never


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


# ---- what a run leaves for git, and whether a committed dvc.lock is true (docs/lab.md, Locks)


def lock_of(dvc_yaml: str) -> str:
    """The dvc.lock that DVC writes beside a pipeline's dvc.yaml."""
    return str(PurePosixPath(dvc_yaml).with_name("dvc.lock"))


def locks_of(plan: Plan, root: str | Path = ".") -> list[str]:
    """The dvc.lock files that record a run of this spec and exist: its own pipeline's and
    those of the shared data pipelines it reads."""
    return [lock for lock in map(lock_of, plan.dvc_files()) if (Path(root) / lock).is_file()]


def to_commit(plan: Plan, root: str | Path = ".") -> list[str] | None:
    """What a run of this spec leaves for git: the files of its pipelines (its compiled folder,
    the shared data pipelines it reads, the shared files compile writes) that git sees as new,
    changed or removed, a folder that is new as a whole named once.  That is every lock the run
    wrote, and what compile wrote.  None when git cannot say (not a git checkout)."""
    folders = [str(PurePosixPath(dvc_yaml).parent) for dvc_yaml in plan.dvc_files()]
    result = subprocess.run(["git", "status", "--porcelain", "--untracked-files=normal", "--",
                             *folders, paths.CONFIG, paths.DVC_YAML, paths.SCHEMA],
                            cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return [line[3:].strip('"') for line in result.stdout.splitlines() if len(line) > 3]


def commit_hint(plan: Plan, root: str | Path = ".") -> list[str]:
    """The lines `clmrepro run` ends with: which files to `git add` so that a clone can pull
    what the run recorded (the data pipelines' locks included: `git commit -a` leaves new
    files out)."""
    locks = locks_of(plan, root)
    if not locks:
        return []
    changed = to_commit(plan, root)
    if changed is None:
        return [f"[clmrepro] DVC recorded this run in {', '.join(locks)}; commit them with the "
                "pipeline files and `dvc push` the outputs to share it (docs/lab.md)."]
    if not changed:
        return [f"[clmrepro] nothing new for git: {', '.join(locks)} already committed as they are."]
    return [f"[clmrepro] DVC recorded this run in {', '.join(locks)}. To share it (docs/lab.md), "
            "commit what the run wrote and push the outputs:",
            "  git add " + " ".join(shlex.quote(path) for path in changed),
            f"  git commit -m {shlex.quote(f'{plan.spec}: run recorded')}",
            "  dvc push"]


def md5_of(path: str | Path) -> str:
    """A file's md5 as DVC 3 records it (`hash: md5`: the bytes as they are)."""
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _outputs_of_pipelines(root: Path) -> set[str]:
    """Every path a stage of the project's dvc.yaml files writes (outs, metrics, plots)."""
    found = set()
    for dvc_yaml in [root / paths.DVC_YAML, *(root / paths.COMPILED).rglob("dvc.yaml")]:
        stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {}
        for stage in stages.values():
            for key in ("outs", "metrics", "plots"):
                for entry in stage.get(key, []):
                    found.add(next(iter(entry)) if isinstance(entry, dict) else entry)
    return found


def _lookup(data: dict, dotted: str):
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return _MISSING
        data = data[key]
    return data


_MISSING = object()


def _read_params(path: Path) -> dict:
    """A params file as DVC reads it (job files are JSON; YAML otherwise); {} when missing."""
    if not path.is_file():
        return {}
    text = path.read_text()
    return json.loads(text) if path.suffix == ".json" else (yaml.safe_load(text) or {})


def lock_disagreements(lock: str, root: str | Path = ".") -> list[str]:
    """What a dvc.lock records that the files beside it no longer say, one line each: a source
    dependency (a job file, a spec, the paper's tables: every dependency that no stage writes)
    whose md5 differs or that is gone, a param whose value differs, a command that differs from
    the dvc.yaml's, a stage the dvc.yaml no longer has.  Empty: the lock is true of this
    checkout's files (its outputs are the run's it records; `dvc status` compares those)."""
    root = Path(root)
    recorded = (yaml.safe_load((root / lock).read_text()) or {}).get("stages") or {}
    dvc_yaml = PurePosixPath(lock).with_name("dvc.yaml")
    declared = ((yaml.safe_load((root / dvc_yaml).read_text()) or {}).get("stages") or {}
                if (root / dvc_yaml).is_file() else {})
    written = _outputs_of_pipelines(root)
    found = []
    for name, stage in recorded.items():
        where = f"{lock}: {name}"
        if name not in declared:
            found.append(f"{where}: no such stage in {dvc_yaml}")
            continue
        if stage.get("cmd") != declared[name].get("cmd"):
            found.append(f"{where}: command differs from {dvc_yaml}'s")
        for dep in stage.get("deps", []):
            path = dep["path"]
            if path in written or "md5" not in dep:
                continue
            if not (root / path).is_file():
                found.append(f"{where}: {path} is recorded but missing")
            elif md5_of(root / path) != dep["md5"]:
                found.append(f"{where}: {path} md5 {dep['md5']} recorded, "
                             f"{md5_of(root / path)} here")
        for params_file, values in (stage.get("params") or {}).items():
            data = _read_params(root / params_file)
            for key, value in values.items():
                if _lookup(data, key) != value:
                    found.append(f"{where}: param {key} of {params_file} differs")
    return found
