"""Outputs that DVC links into its cache (.dvc/config cache.type hardlink or symlink, read-only):
every writer of an output replaces the file, never writes through the link into the cache.

DVC protects a linked file with mode 0444, but root ignores that mode, so a writer that opened
the old file in place would silently change the cached copy of an earlier result.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

CACHED = b"the cached bytes of an earlier run\n"


def linked(tmp_path: Path, name: str, kind: str) -> tuple[Path, Path]:
    """(workspace file, cache file) as DVC leaves them: same bytes, linked, read-only."""
    cache = tmp_path / "cache" / "ab" / "cdef0123"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(CACHED)
    cache.chmod(0o444)
    work = tmp_path / "work" / name
    work.parent.mkdir(parents=True, exist_ok=True)
    if kind == "hardlink":
        os.link(cache, work)
        assert work.stat().st_nlink == 2
    else:
        work.symlink_to(cache)
    return work, cache


def assert_replaced(work: Path, cache: Path) -> None:
    assert cache.read_bytes() == CACHED                      # the cache keeps its bytes
    assert stat.S_IMODE(cache.stat().st_mode) == 0o444
    assert not work.is_symlink() and work.stat().st_nlink == 1
    assert work.read_bytes() != CACHED


@pytest.mark.parametrize("kind", ["hardlink", "symlink"])
def test_atomic_writes_replace_a_linked_file(tmp_path, kind):
    import torch

    from clmrepro.core.checkpoints import atomic_torch_save, atomic_write_json

    work, cache = linked(tmp_path, "scores.json", kind)
    atomic_write_json(work, {"mra": 0.5})
    assert_replaced(work, cache)
    assert json.loads(work.read_text()) == {"mra": 0.5}
    work, cache = linked(tmp_path, "population.pt", kind)
    atomic_torch_save({"x": torch.zeros(2)}, work)
    assert_replaced(work, cache)


@pytest.mark.parametrize("kind", ["hardlink", "symlink"])
def test_report_figures_and_dvc_views_replace_a_linked_file(tmp_path, kind):
    from matplotlib.figure import Figure

    from clmrepro.reporting.dvc_metrics import write_dvc_views
    from clmrepro.reporting.figures import save_png

    work, cache = linked(tmp_path, "figures/conv1-spread.png", kind)
    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    save_png(fig, work)
    assert_replaced(work, cache)
    assert work.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    work, cache = linked(tmp_path, "dvc_metrics.json", kind)
    write_dvc_views([], None, {"dvc_metrics": str(work)})
    assert_replaced(work, cache)
