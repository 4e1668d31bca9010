"""One workflow run per checkout at a time: an ``flock`` on ``clmrepro.layout.RUN_LOCK``.

Snakemake locks the files a run will write (``.snakemake/locks``), but not what happens around
it: ``clmrepro compile`` rewriting the plan under a running workflow, ``dvc commit`` recording
half-finished outputs, ``clmrepro restore`` touching them.  ``clmrepro run`` (and so ``make
demo``) holds this lock from compiling to the last ``dvc commit``; a plain ``snakemake`` takes
it in the Snakefile's ``onstart`` hook; ``clmrepro compile`` and ``restore`` take it for their
few seconds.  A second run is refused at once with a line naming the holder.

The lock belongs to an open file, so it goes away with its process, even on SIGKILL: there
is no stale lock to clean up (unlike Snakemake's own, see docs/reliability.md).  Children of
the holder (Snakemake under ``clmrepro run``) inherit the open file and its number in
``CLMREPRO_RUN_LOCK_FD``, and count as the holder.  No torch import: the Snakefile uses it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from clmrepro.layout import RUN_LOCK

LOCK_FILE = Path(RUN_LOCK)
ENV_FD = "CLMREPRO_RUN_LOCK_FD"
EXIT_BUSY = 75  # EX_TEMPFAIL: try again later

_held: dict[Path, "RunLock"] = {}


class CheckoutBusy(Exception):
    """Another run holds this checkout; ``str()`` is the one line to print."""


class RunLock:
    """The held lock: ``env``/``fds`` hand it to a child process (``subprocess`` pass_fds)."""

    def __init__(self, path: Path, fd: int, owned: bool):
        self.path, self.fd, self.owned, self.depth = path, fd, owned, 1

    @property
    def env(self) -> dict[str, str]:
        return {ENV_FD: str(self.fd)}

    @property
    def fds(self) -> tuple[int, ...]:
        return (self.fd,)

    def release(self) -> None:
        self.depth -= 1
        if self.depth > 0:
            return
        _held.pop(self.path, None)
        if self.owned:
            os.close(self.fd)  # closing the last descriptor drops the flock

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        mine, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino)


def _inherited(path: Path) -> int | None:
    """The lock's descriptor handed down by the holding parent, if this process has it."""
    try:
        fd = int(os.environ.get(ENV_FD, ""))
    except ValueError:
        return None
    if not _same_file(fd, path):
        return None
    try:  # the same open file as the parent's: flock succeeds iff it is that lock
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return None
    return fd


def _command() -> str:
    """This process's command line, as the user would type it."""
    program = Path(sys.argv[0])
    if program.name == "__main__.py":
        name = program.parent.name  # python -m snakemake
    elif program.suffix == ".py" and (program.parent / "__init__.py").exists():
        name = f"python -m {program.parent.name}.{program.stem}"
    else:
        name = program.name
    return " ".join([name, *sys.argv[1:]])[:200]


def _read(fd: int) -> dict:
    try:
        return json.loads(os.pread(fd, 8192, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        return {}


def _write(fd: int, info: dict) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(info).encode("utf-8") + b"\n", 0)


def _note_helper(fd: int) -> None:
    """A child of the holder (Snakemake under `clmrepro run`) adds its pid to the record: it
    keeps the checkout busy even if its parent was killed."""
    info = _read(fd)
    if info:
        info["helper"] = f"{_command().split()[0]} pid {os.getpid()}"  # the latest one
        _write(fd, info)


def _holder(fd: int) -> str:
    info = _read(fd)
    if not info.get("pid"):
        return "starting up"
    since = time.localtime(info.get("since", 0))
    when = time.strftime("%H:%M" if since[:3] == time.localtime()[:3] else "%Y-%m-%d %H:%M",
                         since)
    where = "" if info.get("host") == socket.gethostname() else f" on {info.get('host')}"
    helper = f" ({info['helper']})" if info.get("helper") else ""
    return f"pid {info['pid']}{where}{helper}, since {when}, `{info.get('command', '?')}`"


def hold(what: str, root: str | Path = ".") -> RunLock:
    """Take this checkout's run lock without waiting; :class:`CheckoutBusy` if another run has
    it.  Re-entrant within a process, and a child of the holder gets it as well."""
    path = (Path(root) / LOCK_FILE).resolve()
    if path in _held:
        _held[path].depth += 1
        return _held[path]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _inherited(path)
    if fd is not None:
        _note_helper(fd)
        lock = _held[path] = RunLock(path, fd, owned=False)
        return lock
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise CheckoutBusy(
            f"{what}: another run holds this checkout ({holder}); wait for it to finish or "
            f"stop it (Ctrl-C in its terminal), then try again [lock: "
            f"{os.path.relpath(path)}]") from None
    _write(fd, {"pid": os.getpid(), "host": socket.gethostname(), "since": int(time.time()),
                "command": _command()})
    lock = _held[path] = RunLock(path, fd, owned=True)
    return lock


_snakemake_lock: list[RunLock] = []


def hold_for_snakemake() -> None:
    """The Snakefile's ``onstart``: hold the lock until Snakemake exits, or refuse the run."""
    try:
        _snakemake_lock.append(hold("snakemake"))
    except CheckoutBusy as busy:
        print(f"[clmrepro] {busy}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_BUSY) from None
