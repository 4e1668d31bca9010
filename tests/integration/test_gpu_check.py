"""scripts/gpu-check.sh on a machine without CUDA: it refuses loudly, and with --allow-cpu
runs a tiny spec through every step and writes its numbers (the GPU run is done by hand on a
GPU machine; docs/calibration.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu-check.sh"
TINY = """\
name: gpucheck-tiny
seed: 0
device: cuda
threads: 1
experiments:
  - id: mnist
    dataset: {name: mnist-5k, n_train: 200, n_test: 60}
    architecture: lenet5
    populations:
      - {id: ulm, size: 2, regime: {kind: ulm}, training: {epochs: 1}}
      - {id: clm, size: 2, regime: {kind: clm, from: ulm}, training: {lr: 1.0e-4, epochs: 1}}
    evaluation:
      n_samples: 20
      batch_size: 10
      saliency_samples: 4
      threat_models: [paper, transfer, adaptive]
      attacks:
        - {kind: fgsm, eps: [0.3]}
"""


def cuda_available() -> bool:
    code = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    return subprocess.run([sys.executable, "-c", code]).returncode == 0


def run_script(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.skipif(cuda_available(), reason="a CUDA GPU is visible")
def test_without_cuda_it_stops_with_a_clear_message(tmp_path):
    done = run_script(str(tmp_path / "out"))
    assert done.returncode == 3
    assert "no CUDA GPU visible" in done.stderr and "--allow-cpu" in done.stderr
    assert not (tmp_path / "out" / "summary.md").exists()


def test_bad_option_is_a_usage_error(tmp_path):
    done = run_script(str(tmp_path), "--no-such-option")
    assert done.returncode == 2 and "unknown option --no-such-option" in done.stderr


@pytest.mark.slow
def test_allow_cpu_runs_every_step_of_a_tiny_spec(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(TINY)
    out = tmp_path / "out"
    done = run_script(str(out), "--allow-cpu", "--spec", str(spec), "--parts",
                      "pipeline,reference,resume")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((out / "gpu-check.json").read_text())
    # reference (the CPU run to compare with) is skipped when the check itself runs on the CPU
    assert result["device"] == "cpu"
    assert [p["part"] for p in result["parts"]] == ["pipeline", "resume"]
    assert result["mra_vs_cpu"] is None
    # per step: seconds, peak GPU memory (none on the CPU) and the warnings its process saw
    steps = result["steps"]
    assert {"train-mnist-ulm", "retrain-mnist-clm"} <= set(steps)
    assert all(s["peak_gpu_bytes"] is None and isinstance(s["warnings"], list)
               for s in steps.values())
    assert isinstance(result["warnings_seen"], list)
    # killed after its first saved state, resumed, and equal to the uninterrupted run
    assert result["resume"]["identical"] and result["resume"]["killed_after_a_saved_state"]
    jobs = result["job_seconds"]
    stages = {name.split("-")[0] for name in jobs}
    assert {"train", "retrain", "attack", "evaluate", "report"} <= stages
    assert all(seconds > 0 for seconds in jobs.values())
    summary = (out / "summary.md").read_text()
    assert "| train | 1 / 1 |" in summary and "planned / measured" in summary
    assert (out / "report.md").is_file()
    assert not list(out.glob(".*"))  # no scratch files left in the output folder


def test_the_probe_records_each_processs_warnings_and_gpu_peak(tmp_path):
    """scripts/gpu-check-probe/sitecustomize.py: what every step's process leaves for the JSON."""
    env = {**os.environ, "CLMREPRO_GPU_CHECK_PROBE": str(tmp_path),
           "PYTHONPATH": f"{ROOT / 'scripts' / 'gpu-check-probe'}{os.pathsep}{ROOT}"}
    code = "import warnings, torch; warnings.warn('a test warning'); warnings.warn('again')"
    subprocess.run([sys.executable, "-c", code, "results/x/jobs/train-a.json"], env=env,
                   check=True, capture_output=True)
    [record] = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert record["argv"] == ["results/x/jobs/train-a.json"]
    assert [w.split(" (")[0] for w in record["warnings"]] == ["UserWarning: a test warning",
                                                               "UserWarning: again"]
    assert "peak_gpu_bytes" not in record or cuda_available()
