"""Atomic writes and population checkpoints (state dicts only, loaded with weights_only).

Every artifact is written to a temporary file in the destination folder and renamed into
place, so a crash never leaves a half-written file that looks finished.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; artifacts are shared like any other file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def safe_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load tensors/containers without unpickling arbitrary objects."""
    return torch.load(path, map_location=map_location, weights_only=True)


def save_population(path: str | Path, models: list[torch.nn.Module], meta: dict) -> None:
    """One file holding every submodel's state dict (CPU tensors) and plain metadata."""
    states = [{k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in models]
    atomic_torch_save({"meta": dict(meta), "states": states}, path)


def load_population_states(path: str | Path) -> tuple[dict, list[dict]]:
    blob = safe_load(path)
    return blob["meta"], blob["states"]
