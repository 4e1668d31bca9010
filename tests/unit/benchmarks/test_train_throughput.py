"""benchmarks.train_throughput times GPU work, not its queueing (issue 30)."""

import importlib.util
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]
# benchmarks/ is not an installed package: load the script by its path (as `pytest` from the
# console script does not put the checkout on sys.path)
_spec = importlib.util.spec_from_file_location("train_throughput",
                                               ROOT / "benchmarks" / "train_throughput.py")
train_throughput = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(train_throughput)


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
