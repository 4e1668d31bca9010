"""sha256 of a file's bytes, or of a folder's files (names and bytes, in name order).

The one content hash the pipeline records and checks (steps.verified, plan.compile for a
researcher's own weights): computed once per path, size and modification time in a process.
torch-free.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

_cache: dict[tuple, str] = {}
BLOCK = 1 << 20


def _file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def content_sha256(path: str | Path) -> str:
    """A file's sha256; for a folder, the sha256 of "name\\0sha256\\n" over its files (every
    depth, sorted by relative path), so renaming, adding or editing a member changes it."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, path.is_dir())
    if key in _cache:
        return _cache[key]
    if path.is_dir():
        digest = hashlib.sha256()
        for member in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(f"{member.relative_to(path).as_posix()}\0{_file(member)}\n".encode())
        found = digest.hexdigest()
    else:
        found = _file(path)
    if not path.is_dir():
        _cache[key] = found    # a folder's mtime does not move when a member is edited
    return found
