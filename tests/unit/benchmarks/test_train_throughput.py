"""benchmarks.train_throughput times GPU work, not its queueing (issue 30)."""

import torch

from benchmarks import train_throughput


def test_timed_synchronizes_cuda_before_and_after(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("sync"))
    train_throughput.timed(lambda: calls.append("work"), torch.device("cuda"))
    assert calls == ["sync", "work", "sync"]


def test_timed_never_touches_cuda_on_the_cpu(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("sync"))
    wall, cpu = train_throughput.timed(lambda: calls.append("work"), torch.device("cpu"))
    assert calls == ["work"] and wall >= 0 and cpu >= 0
