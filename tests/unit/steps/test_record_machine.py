"""Attack and evaluate records state the GPU's effective fp32 precision on CUDA only; CPU
records stay as they were (issue 30)."""

import json

import torch

from clmrepro.core import devices
from clmrepro.steps.attack import run_attack
from clmrepro.steps.evaluate import run_evaluate, with_machine
from test_attack_evaluate_steps import PGD, job, population  # noqa: F401  (same folder)

CUDA_MACHINE = {"cpu_capability": "AVX2", "gpu": "NVIDIA H100", "gpu_capability": "9.0",
                "cuda_matmul_fp32": "ieee", "cudnn_conv_fp32": "ieee"}


def test_record_machine_is_empty_on_the_cpu():
    assert devices.record_machine("cpu") == {}


def test_record_machine_on_cuda_states_the_gpu_and_its_fp32_precision(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    machine = devices.record_machine(torch.device("cuda"))["machine"]
    assert machine["gpu"] == "NVIDIA H100" and machine["gpu_capability"] == "9.0"
    assert machine["cuda_matmul_fp32"] in ("ieee", "tf32")
    assert machine["cudnn_conv_fp32"] in ("ieee", "tf32")


def test_cpu_records_carry_no_machine(tmp_path, population):  # noqa: F811
    run_attack(job("attack", tmp_path, population, PGD, {},
                   {"adversarial": "adv.pt", "scores": "fused.json"}))
    run_evaluate(job("evaluate", tmp_path, population, None, {}, {"scores": "benign.json",
                                                                   "analysis": "a.json"}))
    for name in ("fused.json", "benign.json"):
        records = json.loads((tmp_path / name).read_text())["records"]
        assert records and all("machine" not in r for r in records)


def test_steps_add_the_machine_to_every_record_on_cuda(tmp_path, population, monkeypatch):  # noqa: F811
    seen = []

    def fake(device):
        seen.append(torch.device(device).type)
        return {"machine": CUDA_MACHINE}

    monkeypatch.setattr(devices, "record_machine", fake)
    run_attack(job("attack", tmp_path, population, PGD, {},
                   {"adversarial": "adv.pt", "scores": "fused.json"}))
    records = json.loads((tmp_path / "fused.json").read_text())["records"]
    assert len(records) == 3 and all(r["machine"] == CUDA_MACHINE for r in records)
    assert seen == ["cpu"]
    assert with_machine([{"a": 1}], "cpu") == [{"a": 1, "machine": CUDA_MACHINE}]
