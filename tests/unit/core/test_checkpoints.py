"""Atomic writes under a full disk, and safe_load's diagnosis of files it refuses."""

from __future__ import annotations

import errno
import os
import pickle

import pytest
import torch

from clmrepro.core import checkpoints
from clmrepro.core.checkpoints import (
    ArtifactError,
    ArtifactWriteError,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    load_population_states,
    pickle_imports,
    safe_load,
)


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_full_disk_at_fsync_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "scores.json"
    path.write_bytes(b"old content\n")
    monkeypatch.setattr(checkpoints.os, "fsync", no_space)
    with pytest.raises(ArtifactWriteError) as caught:
        atomic_write_bytes(path, b"new content that does not fit\n")
    assert path.read_bytes() == b"old content\n"
    assert leftovers(tmp_path) == []
    error = caught.value
    assert isinstance(error, OSError) and isinstance(error, ArtifactError)
    assert error.errno == errno.ENOSPC
    assert str(error) == (f"{path}: cannot write: no space left on device; nothing was written "
                          f"(the previous file is intact); free some space (or move results/ "
                          f"and .clmrepro-state/ to a larger disk) and rerun")


class HalfWriter:
    """A file handle on a disk that fills up halfway through the write."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        self.handle.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def test_full_disk_mid_write_leaves_no_file_and_no_partial_file(tmp_path, monkeypatch):
    real_fdopen = os.fdopen
    monkeypatch.setattr(checkpoints.os, "fdopen", lambda fd, mode: HalfWriter(real_fdopen(fd, mode)))
    path = tmp_path / "sub" / "population.pt"
    with pytest.raises(ArtifactWriteError, match="no space left on device") as caught:
        atomic_torch_save({"w": torch.ones(1000)}, path)
    assert not path.exists()
    assert leftovers(path.parent) == []
    assert "no file was left behind" in str(caught.value)


def test_no_room_for_the_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints.tempfile, "mkstemp", no_space)
    path = tmp_path / "metrics.json"
    with pytest.raises(ArtifactWriteError, match=f"{path}: cannot write: no space left"):
        atomic_write_json(path, {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_quota_and_other_write_errors_say_what_happened(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints.os, "fsync",
                        lambda fd: (_ for _ in ()).throw(OSError(errno.EDQUOT, "quota")))
    with pytest.raises(ArtifactWriteError, match="disk quota exceeded; nothing was written"):
        atomic_write_bytes(tmp_path / "x", b"1")


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    (tmp_path / ".last.pt.k2j3h4.tmp").write_bytes(b"half a state")  # SIGKILL mid-write
    (tmp_path / ".other.pt.abc.tmp").write_bytes(b"another file's")
    atomic_write_bytes(tmp_path / "last.pt", b"state")
    assert leftovers(tmp_path) == [".other.pt.abc.tmp"]


def test_successful_write_replaces_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.bin"
    atomic_write_bytes(path, b"1")
    atomic_write_bytes(path, b"2")
    assert path.read_bytes() == b"2" and leftovers(tmp_path) == []
    assert oct(path.stat().st_mode & 0o777) == "0o644"


class Evil:
    def __reduce__(self):
        return (os.system, ("true",))


def test_pickle_imports_names_what_a_pickle_would_import():
    assert "posix.system" in pickle_imports(pickle.dumps(Evil(), protocol=2))
    assert "posix.system" in pickle_imports(pickle.dumps(Evil(), protocol=4))  # STACK_GLOBAL
    assert pickle_imports(b"\xff\xfe not a pickle") == []  # stops at the bad opcode, no error
    assert pickle_imports(b"") == []


@pytest.mark.parametrize("protocol", [2, 4])
def test_plain_pickles_that_run_code_are_refused_for_safety(tmp_path, protocol):
    path = tmp_path / "population.pt"
    path.write_bytes(pickle.dumps({"meta": Evil()}, protocol=protocol))
    with pytest.raises(ArtifactError, match="refused for safety: loading it would run code "
                       r"\(posix.system\)"):
        safe_load(path)


def test_unreadable_files_are_named_with_what_is_wrong(tmp_path):
    good = tmp_path / "good.pt"
    atomic_torch_save({"meta": {"architecture": "lenet5", "in_channels": 1, "num_classes": 10},
                       "states": [{"w": torch.zeros(2)}]}, good)
    assert load_population_states(good)[0]["architecture"] == "lenet5"
    cases = {
        "missing.pt": (None, "file not found"),
        "empty.pt": (b"", "file is empty (0 bytes)"),
        "half.pt": (good.read_bytes()[:300], "truncated or corrupt"),
        "text.pt": (b"hello world\n", "not a PyTorch file"),
    }
    for name, (data, expected) in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(ArtifactError) as caught:
            safe_load(path)
        assert str(caught.value).startswith(f"{path}: {expected}"), str(caught.value)
        assert "\n" not in str(caught.value)


def test_a_file_of_another_layout_is_not_a_population(tmp_path):
    path = tmp_path / "p.pt"
    atomic_torch_save([1, 2], path)
    with pytest.raises(ArtifactError, match="not a population file"):
        load_population_states(path)
