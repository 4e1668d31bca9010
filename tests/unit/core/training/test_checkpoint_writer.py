"""Checkpoints written off the training thread (issue 30): a save copies the state to the
host and returns; the write happens in a thread; what is written is the state at the save."""

import errno
import threading

import pytest
import torch

from clmrepro.core.checkpoints import safe_load
from clmrepro.core.training import state as state_module
from clmrepro.core.training.state import Checkpoint, to_host


def test_to_host_copies_every_tensor_and_container():
    weights = torch.ones(3)
    state = {"a": [weights, (weights, 2)], "b": "x", "c": None}
    copy = to_host(state)
    weights.add_(1)                               # training goes on in place
    assert torch.equal(copy["a"][0], torch.ones(3)) and torch.equal(copy["a"][1][0], torch.ones(3))
    assert isinstance(copy["a"][1], tuple) and copy["b"] == "x" and copy["c"] is None
    assert copy["a"][0].data_ptr() != weights.data_ptr()


def test_save_returns_before_the_write_and_writes_the_state_at_the_save(tmp_path, monkeypatch):
    weights = torch.zeros(4)
    release, started = threading.Event(), threading.Event()
    real = state_module.atomic_torch_save

    def slow_save(obj, path):
        started.set()
        assert release.wait(10)
        real(obj, path)

    monkeypatch.setattr(state_module, "atomic_torch_save", slow_save)
    checkpoint = Checkpoint(tmp_path, {"key": 1}, every_s=0, should_stop=None,
                            snapshot=lambda: {"weights": weights})
    checkpoint.save()                             # returns while the writer is blocked
    assert started.wait(10) and not (tmp_path / "last.pt").exists()
    weights.add_(5)                               # the next minibatch changes the weights
    release.set()
    checkpoint.wait()
    saved = safe_load(tmp_path / "last.pt")
    assert saved["fingerprint"] == {"key": 1} and torch.equal(saved["weights"], torch.zeros(4))


def test_a_failed_write_is_raised_by_the_next_save(tmp_path, monkeypatch):
    def no_space(obj, path):
        raise OSError(errno.ENOSPC, "no space left on device")

    monkeypatch.setattr(state_module, "atomic_torch_save", no_space)
    checkpoint = Checkpoint(tmp_path, {}, every_s=0, should_stop=None, snapshot=dict)
    checkpoint.save()
    with pytest.raises(OSError, match="no space"):
        checkpoint.save()


def test_a_stop_waits_for_its_write(tmp_path):
    from clmrepro.core.interrupt import Interrupted

    checkpoint = Checkpoint(tmp_path, {}, every_s=1e9, should_stop=lambda: True,
                            snapshot=lambda: {"x": torch.arange(3)})
    with pytest.raises(Interrupted):
        checkpoint.after_minibatch()
    assert torch.equal(safe_load(tmp_path / "last.pt")["x"], torch.arange(3))
