"""The GPU slot wrapper on a CPU machine: a fake GPU count, concurrent jobs, killed jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from clmrepro.steps.gpu_slot import visible_gpus

RECORD = ("import json, os, sys, time; t0 = time.time(); time.sleep(0.6); "
          "print(json.dumps({'gpu': os.environ.get('CUDA_VISIBLE_DEVICES'), 't0': t0, "
          "'t1': time.time()}))")


def wrapped(env: dict, code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "clmrepro.steps.gpu_slot", "--",
                             sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def base_env(tmp_path, gpus: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    env["CLMREPRO_GPU_LOCK_DIR"] = str(tmp_path / "locks")
    env["PATH"] = "/nonexistent-no-nvidia-smi"
    if gpus is not None:
        env["CLMREPRO_GPUS"] = gpus
    return env


def test_concurrent_jobs_never_share_a_gpu(tmp_path):
    env = base_env(tmp_path, "2")
    jobs = [wrapped(env, RECORD) for _ in range(5)]
    runs = []
    for job in jobs:
        out, err = job.communicate(timeout=60)
        assert job.returncode == 0, err
        runs.append(json.loads(out))
    assert {run["gpu"] for run in runs} == {"0", "1"}
    for i, a in enumerate(runs):
        for b in runs[i + 1:]:
            overlap = a["t0"] < b["t1"] and b["t0"] < a["t1"]
            assert not (overlap and a["gpu"] == b["gpu"]), (a, b)
    # 5 jobs of 0.6 s on 2 GPUs need at least 3 rounds.
    assert max(r["t1"] for r in runs) - min(r["t0"] for r in runs) >= 3 * 0.6 - 0.05


def test_no_gpu_runs_the_command_unchanged(tmp_path):
    env = base_env(tmp_path, None)
    env["CUDA_VISIBLE_DEVICES"] = ""
    job = wrapped(env, RECORD)
    out, err = job.communicate(timeout=60)
    assert job.returncode == 0, err
    assert json.loads(out)["gpu"] == ""
    assert not (tmp_path / "locks").exists()


def test_lock_dies_with_a_killed_job(tmp_path):
    env = base_env(tmp_path, "1")
    holder = wrapped(env, "import time; print('ready', flush=True); time.sleep(60)")
    assert holder.stdout.readline().strip() == "ready"
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    start = time.time()
    job = wrapped(env, RECORD)
    out, err = job.communicate(timeout=30)
    assert job.returncode == 0, err
    assert json.loads(out)["gpu"] == "0"
    assert time.time() - start < 10


def test_exit_code_of_the_job_is_kept(tmp_path):
    job = wrapped(base_env(tmp_path, "1"), "import sys; sys.exit(3)")
    job.communicate(timeout=30)
    assert job.returncode == 3


def test_visible_gpus_sources():
    assert visible_gpus({"CLMREPRO_GPUS": "3"}) == ["0", "1", "2"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,5", "PATH": "/nonexistent"}) == ["2", "5"]
    assert visible_gpus({"CLMREPRO_GPUS": "0", "CUDA_VISIBLE_DEVICES": "1"}) == []


def test_module_does_not_import_torch():
    code = ("import sys, clmrepro.steps.gpu_slot, clmrepro.plan, clmrepro.cli; "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
