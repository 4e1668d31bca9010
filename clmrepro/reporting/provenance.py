"""Where a report's numbers came from: spec, code, environment, seeds, data, cost per job.

None of this goes into metrics.json (it varies between machines); it is shown in the report.
"""

from __future__ import annotations

import csv
import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from clmrepro.core.packages import installed_versions

PACKAGES = ("torch", "torchattacks", "snakemake", "dvc")
NOT_RECORDED = "not recorded"


@dataclass
class JobCost:
    job: str
    wall: str          # seconds as text, or NOT_RECORDED
    peak_memory: str   # MiB as text (max_rss), or NOT_RECORDED


@dataclass
class DatasetSource:
    """One prepared dataset the spec read: its manifest (written by the data job) and that
    file's sha256, which pins the source files, the versions and the decoded bytes at once."""
    dataset: str
    manifest: str
    manifest_sha256: str
    data_sha256: str


@dataclass
class Provenance:
    spec_path: str
    spec_sha256: str
    git_commit: str
    lock_sha256: str
    versions: dict[str, str]
    device: str
    seed: str
    benchmarks_dir: str
    costs: list[JobCost] = field(default_factory=list)
    machine: str = NOT_RECORDED            # CPU capability of the report job's machine
    training_machines: str = NOT_RECORDED  # the same, per training job (training.json)
    datasets: list[DatasetSource] = field(default_factory=list)
    # what the scoring jobs read, from their records (issue 28): one row per population
    inputs: list["ConsumedInputs"] = field(default_factory=list)


@dataclass(frozen=True)
class ConsumedInputs:
    """The bytes a population's jobs read, as their records say (steps.verified.consumed)."""

    population: str               # "experiment/population", with "/r<k>" for replicates
    population_sha256: str        # one hash, or "DIFFER: a…, b…" when jobs read different bytes
    data_sha256: str
    trained_sha256: str           # what its train job recorded writing (training.json)

    @property
    def agrees(self) -> bool:
        return (not self.population_sha256.startswith(DIFFER)
                and not self.data_sha256.startswith(DIFFER)
                and self.trained_sha256 in (NOT_RECORDED, self.population_sha256))


DIFFER = "DIFFER"


def _one(values: set[str]) -> str:
    if not values:
        return NOT_RECORDED
    if len(values) == 1:
        return next(iter(values))
    return f"{DIFFER}: " + ", ".join(sorted(v[:16] + "…" for v in values))


def consumed_inputs(records: list[dict], trainings: list[dict] | None = None
                    ) -> list[ConsumedInputs]:
    """Per (experiment, population, replicate): the population and data sha256s its scoring
    jobs recorded reading, beside the sha256 its train job recorded writing.  Records written
    before issue 28 carry none and give no row."""
    found: dict[tuple, tuple[set, set]] = {}
    for r in records:
        consumed = r.get("consumed")
        if not consumed:
            continue
        key = (r["experiment"], r["population"], int(r.get("replicate", 0)))
        pops, data = found.setdefault(key, (set(), set()))
        if consumed.get("population"):
            pops.add(consumed["population"])
        if consumed.get("data"):
            data.add(consumed["data"])
    trained = {(t["experiment"], t["population"], int(t["replicate"])):
               t["record"].get("population_sha256") for t in trainings or []}
    replicated = {(e, p) for e, p, r in found if r > 0}
    rows = []
    for (experiment, population, r), (pops, data) in sorted(found.items()):
        name = f"{experiment}/{population}" + (f"/r{r}" if (experiment, population) in replicated
                                               else "")
        rows.append(ConsumedInputs(name, _one(pops), _one(data),
                                   trained.get((experiment, population, r)) or NOT_RECORDED))
    return rows


def sha256_file(path: str | Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return NOT_RECORDED


def git_commit(cwd: str | Path = ".") -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                              text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return NOT_RECORDED
    commit = done.stdout.strip()
    return commit + (" (uncommitted changes)" if dirty.stdout.strip() else "")


def versions(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    return installed_versions(packages)


def read_benchmark(path: Path) -> JobCost:
    """One Snakemake benchmark TSV (columns s, h:m:s, max_rss, ...; max_rss in MiB)."""
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    if not rows:
        return JobCost(path.stem, NOT_RECORDED, NOT_RECORDED)
    last = rows[-1]  # with `benchmark: repeat(...)` every repeat is a row; show the last
    wall = last.get("s", "")
    rss = last.get("max_rss", "")
    return JobCost(path.stem,
                   f"{float(wall):.1f} s" if _is_number(wall) else NOT_RECORDED,
                   f"{float(rss):.0f} MiB" if _is_number(rss) else NOT_RECORDED)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def job_costs(benchmarks_dir: str | Path) -> list[JobCost]:
    """Costs from Snakemake's benchmark files, when that is how the DAG ran.

    `dvc repro` writes none (docs/reference.md §4 workflow), so an absent folder is normal and the
    report says "not recorded". These files are read when present, never declared inputs.
    """
    directory = Path(benchmarks_dir)
    if not directory.is_dir():
        return []
    return [read_benchmark(p) for p in sorted(directory.glob("*.tsv"))]


def training_machines(records: list[dict]) -> str:
    """Which CPU kernels trained the populations: ``AVX512 (6 of 6 training jobs)``; several
    lines joined with ``; `` when jobs ran on different kinds of machine."""
    from clmrepro.core.devices import describe_machine

    counts: dict[str, int] = {}
    for record in records:
        key = describe_machine(record["machine"]) if record.get("machine") else NOT_RECORDED
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return NOT_RECORDED
    return "; ".join(f"{key} ({n} of {len(records)} training jobs)"
                     for key, n in sorted(counts.items()))


def this_machine() -> str:
    from clmrepro.core.devices import describe_machine, machine

    return describe_machine(machine())


def dataset_source(manifest: str | Path) -> DatasetSource:
    """What the report says of one data manifest (NOT_RECORDED for what cannot be read)."""
    try:
        content = json.loads(Path(manifest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        content = {}
    content = content if isinstance(content, dict) else {}
    data = content.get("data") if isinstance(content.get("data"), dict) else {}
    return DatasetSource(dataset=str(content.get("dataset", NOT_RECORDED)), manifest=str(manifest),
                         manifest_sha256=sha256_file(manifest),
                         data_sha256=str(data.get("sha256", NOT_RECORDED)))


def collect(params: dict, spec_path: str | None, lock_path: str | Path, benchmarks_dir: str | Path,
            repo_root: str | Path = ".", trainings: list[dict] | None = None,
            manifests: list[str] | None = None) -> Provenance:
    spec_hash = sha256_file(spec_path) if spec_path else NOT_RECORDED
    if spec_hash == NOT_RECORDED and params.get("spec_sha256"):
        spec_hash = str(params["spec_sha256"])
    return Provenance(
        spec_path=str(spec_path or params.get("spec_path") or NOT_RECORDED),
        spec_sha256=spec_hash,
        git_commit=git_commit(repo_root),
        lock_sha256=sha256_file(lock_path),
        versions=versions(),
        device=str(params.get("device", NOT_RECORDED)),
        seed=str(params.get("seed", NOT_RECORDED)),
        benchmarks_dir=str(benchmarks_dir),
        costs=job_costs(benchmarks_dir),
        machine=this_machine(),
        training_machines=training_machines(trainings or []),
        datasets=[dataset_source(path) for path in manifests or []],
    )
