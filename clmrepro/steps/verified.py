"""Every input checked against the sha256 recorded when it was written (issue 28, item 5).

A job reads bytes other jobs wrote: the prepared dataset (its data job records the file's
sha256 in the manifest beside it), a trained population (its train job records the file's
sha256 in training.json) and a researcher's own weights (the compiler records their sha256 in
the job file).  A file changed after it was recorded (a bad copy, a partial ``dvc pull``, an
edit) would otherwise flow into training or scoring while the report names the recorded
hash.  :func:`check_recorded` refuses a mismatch in one line naming the file and what to do;
:func:`consumed` gives the sha256s a job read, which its records carry (``consumed``) and the
report's provenance lists (reporting.provenance).

Digests are computed once per file and process (a population read by check_inputs and again
by the step is hashed once).
"""

from __future__ import annotations

import json
from pathlib import Path

from clmrepro.core.checkpoints import ArtifactError
from clmrepro.core.digest import content_sha256

# (input holding the bytes, input holding its recorded sha256): a population's record is its
# training.json; the prepared dataset's is its manifest.
RECORDED_BY = {"data": "manifest", "population": "trained", "init": "init_record"}
CONSUMED = {"data": "data", "population": "population", "init": "population"}


def file_sha256(path: str | Path) -> str:
    """The bytes' sha256 (a folder: its files', core.digest), computed once per file."""
    return content_sha256(path)


def _recorded(name: str, record_path: Path) -> str | None:
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # check_inputs names a missing or broken record itself
    if name == "data":
        return (record.get("data") or {}).get("sha256")
    return record.get("population_sha256")


def _fix(name: str) -> str:
    if name == "data":
        return ("the file changed after its data job: restore it (`dvc pull` or `dvc checkout` "
                "in a lab) or rerun the data job (`snakemake --forcerun data_<dataset>`)")
    if name == "weights":
        return (f"the weights changed after `clmrepro compile`: recompile the spec if the new "
                f"weights are meant (the job file records the old sha256), else restore them")
    return ("the file changed after the job that trained it: restore it (`dvc checkout`) or "
            "delete it and its training.json and rerun that job")


def _expected(job: dict, name: str) -> tuple[str | None, str, str]:
    """(the sha256 input ``name`` must have, where it was recorded, what to do if not): your
    own weights against the compiler's record in the job file, a population against its
    training record, the prepared data against its manifest (the manifest beside it for job
    files compiled before issue 28)."""
    inputs = job["inputs"]
    pinned = (job["params"].get("population") or {}).get("sha256")
    if name == "population" and pinned:
        return pinned, f"job {job['id']} (compiled)", _fix("weights")
    record = inputs.get(RECORDED_BY[name])
    if record is None and name == "data":
        record = str(Path(inputs[name]).with_suffix("")) + ".manifest.json"
    if record is None or not Path(record).exists():
        return None, "", ""
    return _recorded(name, Path(record)), record, _fix(name)


def check_recorded(job: dict) -> None:
    """ArtifactError for the first input whose bytes differ from their recorded sha256.
    Inputs without a recorded sha256 (files written before the record carried one) pass."""
    for name in RECORDED_BY:
        if name not in job["inputs"]:
            continue
        path = job["inputs"][name]
        expected, where, fix = _expected(job, name)
        if expected and file_sha256(path) != expected:
            raise ArtifactError(f"{path}: sha256 {file_sha256(path)[:16]}… differs from the "
                                f"{expected[:16]}… recorded in {where}; {fix}")


def consumed(job: dict) -> dict[str, str]:
    """{"data": sha256, "population": sha256} of what the job read (those it has)."""
    out = {}
    for name, label in CONSUMED.items():
        path = job["inputs"].get(name)
        if isinstance(path, str) and Path(path).exists():
            out[label] = file_sha256(path)
    return out
