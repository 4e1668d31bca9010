"""Hot loops that must not wait for the GPU, and fingerprints that name it (issue 30).

Without a GPU, the "meta" device stands in for one: a meta tensor has no data, so any code that
reads a device tensor's values on the host (``.tolist()``, ``.item()``, ``nonzero``) fails on it,
exactly where it would synchronise with a GPU."""

from __future__ import annotations

import torch
from torch import nn

from clmrepro.core import devices
from clmrepro.core.attacks.adaptive import RandomDispatch
from clmrepro.core.attacks.state import ChunkStore
from clmrepro.core.training.linking import mask_like


def test_random_dispatch_never_reads_device_values():
    models = [nn.Linear(4, 3, device="meta") for _ in range(3)]
    dispatch = RandomDispatch(models, torch.Generator().manual_seed(0))
    out = dispatch(torch.empty(16, 4, device="meta"))
    assert out.shape == (16, 3) and out.device.type == "meta"


def test_random_dispatch_answers_as_before_on_the_cpu():
    torch.manual_seed(0)
    models = [nn.Linear(4, 3) for _ in range(3)]
    x = torch.rand(32, 4)
    out = RandomDispatch(models, torch.Generator().manual_seed(5))(x)
    choice = torch.randint(3, (32,), generator=torch.Generator().manual_seed(5))
    expected = torch.stack([models[int(k)](x[i]) for i, k in enumerate(choice)])
    assert torch.equal(out, expected)


def test_the_prse_mask_is_copied_to_the_device_once():
    mask = torch.ones(3, 5, 5)
    weight = torch.zeros(6, 3, 5, 5, dtype=torch.float64)
    first, again = mask_like(mask, weight), mask_like(mask, weight)
    assert first is again and first.dtype == torch.float64
    assert mask_like(mask, weight.float()) is mask                   # already there: no copy


def fake_gpu(monkeypatch, name: str):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))


def test_device_identity_names_the_gpu_model_on_cuda_only(monkeypatch):
    fake_gpu(monkeypatch, "NVIDIA A100-SXM4-80GB")
    assert devices.device_identity("cpu") == {}
    assert devices.device_identity("cuda") == {"device": "cuda", "gpu": "NVIDIA A100-SXM4-80GB",
                                               "gpu_capability": "8.0"}


def test_an_attack_state_saved_on_one_gpu_model_is_not_resumed_on_another(tmp_path, monkeypatch):
    fingerprint = {"runtime": {"device": "cuda"}, "params": {"eps": 0.3}}
    fake_gpu(monkeypatch, "NVIDIA A100-SXM4-80GB")
    a100 = ChunkStore(tmp_path, fingerprint).key
    fake_gpu(monkeypatch, "NVIDIA H100 80GB HBM3")
    assert ChunkStore(tmp_path, fingerprint).key != a100
    cpu = {"runtime": {"device": "cpu"}, "params": {"eps": 0.3}}
    from clmrepro.core.attacks.state import fingerprint_key
    assert ChunkStore(tmp_path, cpu).key == fingerprint_key(cpu)      # CPU keys as before
