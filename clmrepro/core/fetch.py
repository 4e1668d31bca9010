"""Fetching one file over HTTP(S): into a temporary file beside it, checked, then renamed.

A download never shows under its final name before its size and checksum are right.  It is
written to ``.<name>.<random>.part`` in the destination folder; its length is compared with the
server's Content-Length (a connection that closes early is silent otherwise: ``http.client``
returns short reads without raising); its md5 (the checksum torchvision publishes) is compared
with the expected one; only then is it renamed into place (``os.replace``, atomic within a
folder).  Any failure, Ctrl-C included, removes the part file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

CHUNK = 1 << 20
TIMEOUT_S = 60.0  # per socket operation, not for the whole file
PART_SUFFIX = ".part"


class FetchFailed(Exception):
    """One download did not give the expected file; ``str()`` is a short reason (no path)."""


def file_digest(path: str | Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def matches_md5(path: str | Path, md5: str) -> bool:
    """The file exists and has this md5 (torchvision's checksums are md5)."""
    path = Path(path)
    return path.is_file() and file_digest(path, "md5") == md5


def remove_stale_parts(dest: str | Path) -> None:
    """Part files of ``dest`` left by a fetch that was killed (call it while holding the
    dataset's lock: then no live fetch owns one)."""
    dest = Path(dest)
    if dest.parent.is_dir():
        for part in dest.parent.glob(f".{dest.name}.*{PART_SUFFIX}"):
            part.unlink(missing_ok=True)


def _short(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"cannot connect ({error.reason})"
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}"[:160] if text else type(error).__name__


def _copy_checked(response, handle, url: str) -> tuple[int, str]:
    """Copy the body into ``handle``; (bytes, md5).  FetchFailed when it is cut short."""
    expected = response.headers.get("Content-Length")
    md5 = hashlib.md5(usedforsecurity=False)
    received = 0
    try:
        for block in iter(lambda: response.read(CHUNK), b""):
            handle.write(block)
            md5.update(block)
            received += len(block)
    except (OSError, ValueError) as error:  # reset connection, http.client.IncompleteRead
        raise FetchFailed(f"{url}: download cut after {received} bytes ({_short(error)})") from None
    if expected is not None and expected.isdigit() and received != int(expected):
        raise FetchFailed(f"{url}: download cut after {received} of {expected} bytes")
    return received, md5.hexdigest()


def fetch(url: str, dest: str | Path, md5: str, *, timeout: float = TIMEOUT_S,
          say: Callable[[str], None] | None = None) -> None:
    """Download ``url`` to ``dest`` when its md5 is ``md5``; FetchFailed (dest untouched,
    nothing left behind) otherwise."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=PART_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            if say:
                say(f"fetching {url}")
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    size, got = _copy_checked(response, handle, url)
            except FetchFailed:
                raise
            except (OSError, ValueError) as error:  # URLError, HTTPError, timeouts are OSErrors
                raise FetchFailed(f"{url}: {_short(error)}") from None
            if got != md5:
                raise FetchFailed(f"{url}: md5 {got} of the {size} bytes received, expected "
                                  f"{md5}")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(part, 0o644)
        os.replace(part, dest)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise
