"""Atomic writes and population checkpoints (state dicts only, loaded with weights_only).

Every artifact is written to a temporary file in the destination folder, fsynced and renamed
into place, so a crash (SIGKILL, power loss, a full disk) never leaves a half-written file that
looks finished: the destination holds either its previous bytes or the new ones.

Reading and writing problems raise :class:`ArtifactError`, whose message is one line naming the
file, what is wrong and what to do (STYLE.md rule 7); ``steps.common.step_main`` prints it
without a traceback.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pickletools
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# torch is imported where it is used, so a step can report a bad job file (and the report step
# write its JSON) without paying for the torch import.
REBUILD = "delete it and rerun the pipeline to rebuild it"


class ArtifactError(Exception):
    """An artifact that cannot be read or written.  ``str()`` is one line: the file, what is
    wrong, what to do."""


class ArtifactWriteError(ArtifactError, OSError):
    """Writing an artifact failed (``errno`` kept: ENOSPC for a full disk); nothing was written
    and the destination is unchanged."""

    def __init__(self, message: str, code: int | None):
        OSError.__init__(self, code, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


_WRITE_PROBLEMS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
                   errno.EROFS: "read-only file system", errno.EACCES: "permission denied"}


def _write_failed(path: Path, error: OSError, existed: bool) -> ArtifactWriteError:
    problem = _WRITE_PROBLEMS.get(error.errno) or (error.strerror or str(error)).lower()
    kept = "the previous file is intact" if existed else "no file was left behind"
    remedy = ("free some space (or move results/ and .clmrepro-state/ to a larger disk) and rerun"
              if error.errno in (errno.ENOSPC, errno.EDQUOT) else "fix that and rerun")
    return ArtifactWriteError(f"{path}: cannot write: {problem}; nothing was written "
                              f"({kept}); {remedy}", error.errno)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    path = Path(path)
    existed = path.exists()
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed writer
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; artifacts are shared like any other file
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(error, OSError) and not isinstance(error, ArtifactError):
            raise _write_failed(path, error, existed) from error
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (a power cut after it keeps the new file)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def safe_load(path: str | Path, map_location: str | torch.device = "cpu", *,
              mmap: bool = False) -> Any:
    """Load tensors/containers without unpickling arbitrary objects (``weights_only``).

    ``mmap=True`` maps the tensors instead of reading them (for cheap checks of big files).
    Any failure becomes an :class:`ArtifactError` saying what is wrong with the file."""
    import torch

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # e.g. "Detected pickle protocol 4": the refusal below says what matters
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, KeyError...
        raise ArtifactError(f"{path}: {diagnose_unreadable(path, error)}") from error


def diagnose_unreadable(path: Path, error: BaseException) -> str:
    """What is wrong with a file torch.load refused, and what to do, as one phrase."""
    if isinstance(error, FileNotFoundError) or not path.exists():
        return "file not found; run the job that writes it first (snakemake does this)"
    if isinstance(error, OSError):
        return f"cannot read it ({error.strerror or error})"
    size = path.stat().st_size
    if size == 0:
        return f"file is empty (0 bytes); {REBUILD}"
    raw = path.read_bytes()
    pickled = raw
    if raw[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if n.endswith("data.pkl")]
                pickled = archive.read(names[0]) if names else b""
        except (zipfile.BadZipFile, OSError, EOFError):
            return f"truncated or corrupt ({size} bytes, not a complete PyTorch archive); {REBUILD}"
    unsafe = [name for name in pickle_imports(pickled) if not _allowed_import(name)]
    if unsafe:
        return (f"refused for safety: loading it would run code ({unsafe[0]}); only plain "
                f"tensors are accepted (torch.load weights_only). Do not load files of unknown "
                f"origin; {REBUILD}")
    if pickled is raw:
        return f"not a PyTorch file ({size} bytes of something else); {REBUILD}"
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return f"corrupt PyTorch archive ({first[:120]}); {REBUILD}"


_ALLOWED_MODULES = ("torch", "collections", "builtins", "_codecs", "numpy")


def _allowed_import(name: str) -> bool:
    module = name.split(" ")[0].split(".")[0]
    return module in _ALLOWED_MODULES and not name.startswith(("builtins.eval", "builtins.exec",
                                                               "builtins.getattr",
                                                               "builtins.__import__"))


def pickle_imports(data: bytes) -> list[str]:
    """Every ``module.name`` a pickle stream would import (GLOBAL / STACK_GLOBAL / INST),
    read with pickletools without running anything; stops at the first bad opcode."""
    found: list[str] = []
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(io.BytesIO(data)):
            if opcode.name in ("GLOBAL", "INST"):
                found.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                found.append(f"{strings[-2]}.{strings[-1]}")
            elif isinstance(arg, str):
                strings.append(arg)
    except Exception:  # random bytes: an unknown opcode or a truncated stream
        pass
    return found


def save_population(path: str | Path, models: list[torch.nn.Module], meta: dict) -> None:
    """One file holding every submodel's state dict (CPU tensors) and plain metadata."""
    states = [{k: v.detach().cpu().clone() for k, v in m.state_dict().items()} for m in models]
    atomic_torch_save({"meta": dict(meta), "states": states}, path)


def load_population_states(path: str | Path, *, mmap: bool = False) -> tuple[dict, list[dict]]:
    """(meta, states) of a population file; ArtifactError unless it has that layout."""
    blob = safe_load(path, mmap=mmap)
    meta = blob.get("meta") if isinstance(blob, dict) else None
    states = blob.get("states") if isinstance(blob, dict) else None
    if not isinstance(meta, dict) or not isinstance(states, list) or not states \
            or not all(isinstance(s, dict) for s in states):
        got = sorted(blob) if isinstance(blob, dict) else type(blob).__name__
        raise ArtifactError(f"{path}: not a population file (expected keys 'meta' and 'states' "
                            f"with one state dict per submodel, got {got}); {REBUILD}")
    missing = [key for key in ("architecture", "in_channels", "num_classes") if key not in meta]
    if missing:
        raise ArtifactError(f"{path}: population metadata lacks {', '.join(missing)}; {REBUILD}")
    return meta, states
