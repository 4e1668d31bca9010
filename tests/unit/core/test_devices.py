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
