import os
import subprocess
import sys

import torch

from clmrepro.core.devices import describe_machine, machine
from clmrepro.reporting.provenance import training_machines


def test_machine_names_the_capability_aten_dispatches_to():
    assert machine()["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert "gpu" not in machine("cpu")


def test_a_capped_capability_and_its_variables_are_recorded():
    """ATEN_CPU_CAPABILITY=default makes ATen pick its non-vector kernels (issue 17)."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}
    env.pop("MKL_ENABLE_INSTRUCTIONS", None)
    code = ("from clmrepro.core.devices import machine, describe_machine\n"
            "print(describe_machine(machine()))")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True)
    assert done.stdout.strip() == ("DEFAULT (ATEN_CPU_CAPABILITY=default, "
                                   "ONEDNN_MAX_CPU_ISA=SSE41)")


def test_describe_machine_and_the_training_jobs_summary():
    assert describe_machine({"cpu_capability": "AVX512"}) == "AVX512"
    assert (describe_machine({"cpu_capability": "AVX2", "gpu": "NVIDIA H100"})
            == "AVX2; NVIDIA H100")
    records = [{"machine": {"cpu_capability": "AVX512"}}] * 2 + [
        {"machine": {"cpu_capability": "AVX2"}}, {"regime": "ulm"}]
    assert training_machines(records) == ("AVX2 (1 of 4 training jobs); AVX512 (2 of 4 "
                                          "training jobs); not recorded (1 of 4 training jobs)")
    assert training_machines([]) == "not recorded"


# --- CUDA set-up without a GPU: torch.cuda faked in a child process (issue 30) ---------------

SPY = """
import json, os, torch
seen = []
def spy_available():
    seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
    return True                                  # a GPU, as far as prepare_torch can tell
def spy_init():
    seen.append(os.environ.get("CUBLAS_WORKSPACE_CONFIG"))
torch.cuda.is_available = spy_available
torch.cuda._lazy_init = spy_init
torch.cuda.init = spy_init
torch.cuda.get_device_name = lambda device=None: "NVIDIA H100 80GB HBM3"
torch.cuda.get_device_capability = lambda device=None: (9, 0)
from clmrepro.core.devices import machine, prepare_torch, describe_machine
device = prepare_torch(1, "{device}")
info = machine(device)
print(json.dumps({{"seen": seen, "device": device.type, "info": info,
                  "line": describe_machine(info),
                  "fill": torch.utils.deterministic.fill_uninitialized_memory,
                  "conv": torch.backends.cudnn.conv.fp32_precision,
                  "matmul": torch.backends.cuda.matmul.fp32_precision}}))
"""


def spied(device: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    done = subprocess.run([sys.executable, "-c", SPY.format(device=device)], env=env,
                          capture_output=True, text=True, check=True)
    import json
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cublas_workspace_is_set_before_the_first_cuda_call():
    out = spied("cuda")
    assert out["device"] == "cuda"
    assert out["seen"] and set(out["seen"]) == {":4096:8"}, out["seen"]


def test_fp32_on_cuda_is_ieee_and_recorded_only_on_cuda():
    out = spied("cuda")
    assert out["conv"] == "ieee" and out["matmul"] == "ieee"      # cuDNN's TF32 default is off
    assert out["fill"] is False
    assert out["info"]["cuda_matmul_fp32"] == "ieee" and out["info"]["cudnn_conv_fp32"] == "ieee"
    assert out["info"]["gpu_capability"] == "9.0"
    assert out["line"].endswith("; NVIDIA H100 80GB HBM3 (matmul ieee, conv ieee)")
    cpu = spied("cpu")
    assert cpu["device"] == "cpu" and cpu["conv"] == "tf32"       # a CPU job leaves CUDA alone
    assert cpu["fill"] is True
    assert not [k for k in cpu["info"] if k.startswith(("gpu", "cuda", "cudnn"))]  # as before
