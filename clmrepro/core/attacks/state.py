"""Resumable state of an attack job: its finished chunks of adversarial samples (issue 12).

A state folder holds one subfolder per *fingerprint*: the SHA-256 of everything that
determines the adversarial sets (the job's parameters and seed, the population file's
bytes, the test data, the code path and device).  Opening a store deletes the subfolders
of other fingerprints, so a changed spec, a retrained population or a switch between the
batched and sequential paths never resumes stale work.  Each chunk is one file written
atomically (``core.checkpoints``), so a SIGKILL leaves either the whole chunk or nothing;
a chunk file that cannot be read is recomputed.  The step removes the folder once the
job's outputs are written.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from clmrepro.core.checkpoints import atomic_torch_save, atomic_write_json, safe_load
from clmrepro.core.devices import device_identity


def file_digest(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def tensor_digest(*tensors: Tensor) -> str:
    """SHA-256 of the tensors' shapes, dtypes and bytes (CPU, contiguous)."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{tuple(t.shape)}:{t.dtype};".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def fingerprint_key(fingerprint: dict[str, Any]) -> str:
    text = json.dumps(fingerprint, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ChunkStore:
    """Chunks of one job under ``folder/<fingerprint key>/<name>.pt``."""

    def __init__(self, folder: str | Path, fingerprint: dict[str, Any]):
        runtime = fingerprint.get("runtime")
        if isinstance(runtime, dict) and runtime.get("device") == "cuda":
            fingerprint = {**fingerprint, **device_identity("cuda")}   # the GPU model counts
        self.root = Path(folder)
        self.key = fingerprint_key(fingerprint)
        self.dir = self.root / self.key
        self.where = str(self.dir)
        if self.root.is_dir():
            for child in self.root.iterdir():
                if child.name != self.key:  # another fingerprint: stale work
                    shutil.rmtree(child) if child.is_dir() else child.unlink()
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.dir / "fingerprint.json", fingerprint)  # for a human reader

    def _path(self, name: str) -> Path:
        return self.dir / f"{name}.pt"

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.dir.glob("*.pt"))

    def load(self, name: str) -> list[Tensor] | None:
        path = self._path(name)
        if not path.is_file():
            return None
        try:
            blob = safe_load(path)
        except Exception:  # unreadable (never from our atomic writes): compute it again
            return None
        if not isinstance(blob, dict) or blob.get("fingerprint") != self.key:
            return None
        return list(blob["x_adv"])

    def save(self, name: str, tensors: list[Tensor]) -> None:
        atomic_torch_save({"fingerprint": self.key, "x_adv": list(tensors)}, self._path(name))

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
