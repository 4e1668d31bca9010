"""The GPU slot wrapper on a CPU machine: fake GPUs (CLMREPRO_GPUS), K slots per GPU
(CLMREPRO_SLOTS_PER_GPU), concurrent slot and whole-GPU jobs, killed jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from clmrepro.steps.gpu_slot import is_claimed
from clmrepro.steps.gpu_slot import Gpu, lock_dir, slots_per_gpu, visible_gpus

RECORD = ("import json, os, sys, time; t0 = time.time(); time.sleep(0.6); "
          "print(json.dumps({'gpu': os.environ.get('CUDA_VISIBLE_DEVICES'), 't0': t0, "
          "'t1': time.time()}))")


def wrapped(env: dict, code: str, whole: bool = False) -> subprocess.Popen:
    flag = ["--whole-gpu"] if whole else []
    return subprocess.Popen([sys.executable, "-m", "clmrepro.steps.gpu_slot", *flag, "--",
                             sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finished(jobs) -> list[dict]:
    runs = []
    for job, whole in jobs:
        out, err = job.communicate(timeout=120)
        assert job.returncode == 0, err
        runs.append({**json.loads(out), "whole": whole})
    return runs


def most_at_once(runs: list[dict], gpu: str) -> int:
    """The largest number of runs on ``gpu`` whose [t0, t1] intervals overlap."""
    events = sorted([(r["t0"], 1) for r in runs if r["gpu"] == gpu]
                    + [(r["t1"], -1) for r in runs if r["gpu"] == gpu], key=lambda e: (e[0], e[1]))
    now = peak = 0
    for _, step in events:
        now += step
        peak = max(peak, now)
    return peak


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
    none = lambda env: None                                   # noqa: E731  (no nvidia-smi)
    assert [g.export for g in visible_gpus({"CLMREPRO_GPUS": "3"})] == ["0", "1", "2"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2,5"}, none) == [Gpu("2", "2"), Gpu("5", "5")]
    assert visible_gpus({"CLMREPRO_GPUS": "0", "CUDA_VISIBLE_DEVICES": "1"}) == []


def test_module_does_not_import_torch():
    code = ("import sys, clmrepro.steps.gpu_slot, clmrepro.plan, clmrepro.cli; "
            "print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_slot_jobs_share_a_gpu_but_never_more_than_k(tmp_path):
    env = {**base_env(tmp_path, "2"), "CLMREPRO_SLOTS_PER_GPU": "3"}
    runs = finished([(wrapped(env, RECORD), False) for _ in range(9)])
    peaks = {gpu: most_at_once(runs, gpu) for gpu in ("0", "1")}
    assert max(peaks.values()) <= 3
    # slots fill the lowest GPU first: GPU 0 really was shared
    assert peaks["0"] >= 2, peaks


def test_whole_gpu_job_never_shares_its_gpu(tmp_path):
    env = {**base_env(tmp_path, "2"), "CLMREPRO_SLOTS_PER_GPU": "2"}
    jobs = []
    for index in range(8):
        whole = index % 3 == 0
        jobs.append((wrapped(env, RECORD, whole=whole), whole))
    runs = finished(jobs)
    for gpu in ("0", "1"):
        assert most_at_once(runs, gpu) <= 2
    for a in (run for run in runs if run["whole"]):
        for b in runs:
            if b is not a and b["gpu"] == a["gpu"]:
                assert not (a["t0"] < b["t1"] and b["t0"] < a["t1"]), (a, b)


def test_a_waiting_whole_gpu_job_is_not_starved_by_new_slot_jobs(tmp_path):
    env = {**base_env(tmp_path, "1"), "CLMREPRO_SLOTS_PER_GPU": "2"}
    first = wrapped(env, "import time; print('ready', flush=True); time.sleep(1.5)")
    assert first.stdout.readline().strip() == "ready"
    whole = wrapped(env, RECORD, whole=True)
    deadline = time.time() + 30
    while not is_claimed(tmp_path / "locks", "0"):     # the whole-GPU job waits and claims GPU 0
        assert time.time() < deadline
        time.sleep(0.05)
    late = wrapped(env, RECORD)              # a free slot exists, but the GPU is claimed
    first.communicate(timeout=60)
    runs = finished([(whole, True), (late, False)])
    assert runs[1]["t0"] >= runs[0]["t1"], runs


@pytest.mark.parametrize("whole", [False, True])
def test_a_killed_job_frees_its_slots(tmp_path, whole):
    env = {**base_env(tmp_path, "1"), "CLMREPRO_SLOTS_PER_GPU": "2"}
    holders = [wrapped(env, "import time; print('ready', flush=True); time.sleep(60)", whole)
               for _ in range(1 if whole else 2)]
    for holder in holders:
        assert holder.stdout.readline().strip() == "ready"
    for holder in holders:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    start = time.time()
    runs = finished([(wrapped(env, RECORD, whole=True), True)])
    assert runs[0]["gpu"] == "0" and time.time() - start < 10


def test_slots_per_gpu_setting():
    assert slots_per_gpu({}) == 1
    assert slots_per_gpu({"CLMREPRO_SLOTS_PER_GPU": "4"}) == 4
    for bad in ("0", "x", "65"):
        with pytest.raises(ValueError, match="slots_per_gpu"):
            slots_per_gpu({"CLMREPRO_SLOTS_PER_GPU": bad})


# --- which GPU, named how: fake nvidia-smi, hidden GPUs, Slurm, MIG (issue 30) ----------------

FAKE_SMI = """#!/bin/sh
[ "$1" = "-L" ] || exit 9
cat <<'LIST'
GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-aaaaaaaa-0000)
GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-bbbbbbbb-1111)
LIST
"""
FAKE_SMI_MIG = """#!/bin/sh
cat <<'LIST'
GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaaaaaaa-0000)
  MIG 3g.20gb     Device  0: (UUID: MIG-11111111-aaaa)
  MIG 3g.20gb     Device  1: (UUID: MIG-22222222-bbbb)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-bbbbbbbb-1111)
LIST
"""


def fake_smi(tmp_path, script: str) -> str:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    (folder / "nvidia-smi").write_text(script)
    (folder / "nvidia-smi").chmod(0o755)
    return f"{folder}:{os.environ['PATH']}"


def with_smi(tmp_path, script: str, **extra) -> dict:
    env = base_env(tmp_path, None)
    env["PATH"] = fake_smi(tmp_path, script)
    env.update(extra)
    return env


@pytest.mark.parametrize("hide", ["", "-1", "-1,0"])
def test_hidden_gpus_run_on_the_cpu_even_where_nvidia_smi_sees_gpus(tmp_path, hide):
    env = with_smi(tmp_path, FAKE_SMI, CUDA_VISIBLE_DEVICES=hide)
    assert visible_gpus(env) == []
    job = wrapped(env, RECORD)
    out, err = job.communicate(timeout=60)
    assert job.returncode == 0, err
    assert json.loads(out)["gpu"] == hide                 # left as it was, not "0"
    assert not (tmp_path / "locks").exists()


def test_nvidia_smi_gpus_are_named_and_exported_by_uuid(tmp_path):
    path = fake_smi(tmp_path, FAKE_SMI)
    assert visible_gpus({"PATH": path}) == [Gpu("GPU-aaaaaaaa-0000", "GPU-aaaaaaaa-0000"),
                                Gpu("GPU-bbbbbbbb-1111", "GPU-bbbbbbbb-1111")]
    # an index someone set is kept for CMD, its lock named by the GPU's UUID
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "1", "PATH": path}) == [
        Gpu("1", "GPU-bbbbbbbb-1111")]
    assert visible_gpus({"PATH": str(tmp_path / "empty")}) == []         # no nvidia-smi


def test_mig_instances_are_places_exported_by_their_uuid(tmp_path):
    env = with_smi(tmp_path, FAKE_SMI_MIG)
    assert [g.export for g in visible_gpus(env)] == ["MIG-11111111-aaaa", "MIG-22222222-bbbb",
                                                     "GPU-bbbbbbbb-1111"]
    runs = finished([(wrapped(env, RECORD), False) for _ in range(3)])
    assert sorted(r["gpu"] for r in runs) == ["GPU-bbbbbbbb-1111", "MIG-11111111-aaaa",
                                              "MIG-22222222-bbbb"]


def slurm_env(tmp_path, job: str) -> dict:
    # a site that confines each job to its GPU: every job sees its GPU as 0, and nvidia-smi
    # (as the job sees it) lists that one GPU as GPU 0
    one_gpu = FAKE_SMI.replace("GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-bbbbbbbb-1111)\n", "")
    return with_smi(tmp_path, one_gpu, CUDA_VISIBLE_DEVICES="0", SLURM_JOB_ID=job,
                    SLURM_STEP_GPUS=job[-1])


def test_two_slurm_jobs_each_seeing_gpu_0_do_not_wait_on_each_other(tmp_path):
    assert lock_dir(slurm_env(tmp_path, "1001")) != lock_dir(slurm_env(tmp_path, "1002"))
    assert lock_dir(slurm_env(tmp_path, "1001")).parent == tmp_path / "locks"
    a = wrapped(slurm_env(tmp_path, "1001"), RECORD)
    b = wrapped(slurm_env(tmp_path, "1002"), RECORD)
    runs = finished([(a, False), (b, False)])
    assert [r["gpu"] for r in runs] == ["0", "0"]
    assert runs[0]["t0"] < runs[1]["t1"] and runs[1]["t0"] < runs[0]["t1"], runs  # at once
    assert {p.name for p in (tmp_path / "locks").iterdir()} == {"slurm-1001", "slurm-1002"}


def test_rules_inside_one_slurm_job_still_take_turns(tmp_path):
    env = slurm_env(tmp_path, "1001")
    runs = finished([(wrapped(env, RECORD), False) for _ in range(2)])
    a, b = runs
    assert not (a["t0"] < b["t1"] and b["t0"] < a["t1"]), runs
