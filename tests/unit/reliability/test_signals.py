"""SIGTERM / SIGINT (Slurm time limit, preemption, Ctrl-C): a step stops at its next safe point,
says what it saved in one line, exits 143, and the same command resumes.

The fake step (fake_long_step.py) runs through the real ``step_main`` in a subprocess; the
real train step is SIGTERM'd too.  Training and attack resume themselves are tested by their
own packages; here the step's handling of the signal is what is under test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_helpers import REPO, problem_lines, step_env

HERE = Path(__file__).resolve().parent


def fake_job(root: Path, mode: str, total: int = 60, tick: float = 0.05) -> tuple[Path, dict]:
    # a complete train job: the job checks of step_main apply as to a real one; the fake's
    # own knobs are in an input file (a job file takes no unknown key)
    knobs = root / "fake.json"
    knobs.write_text(json.dumps({"mode": mode, "total": total, "tick": tick,
                                 "state": str(root / "state.txt"),
                                 "started": str(root / "started")}))
    job, _ = train_job(root)
    job = {**json.loads(job.read_text()), "id": f"fake-{mode}", "inputs": {"knobs": str(knobs)},
           "outputs": {"count": str(root / "count.json")}}
    path = root / "job.json"
    path.write_text(json.dumps(job))
    return path, job


def start(args: list[str], cwd: Path, **env: str) -> subprocess.Popen:
    environment = step_env(**env)
    environment["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE)])
    return subprocess.Popen([sys.executable, *args], cwd=cwd, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60,
             pattern: str | None = None) -> None:
    """Until ``path`` exists (or, with ``pattern``, holds a file matching it)."""
    deadline = time.monotonic() + timeout
    while not (any(path.glob(pattern)) if pattern else path.exists()):
        if process.poll() is not None:
            raise AssertionError(f"exited early ({process.returncode}): {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def stop_and_wait(process: subprocess.Popen, sig: int = signal.SIGTERM,
                  limit: float = 10) -> tuple[int, str, float]:
    sent = time.monotonic()
    process.send_signal(sig)
    try:
        _, err = process.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"still running {limit} s after {signal.Signals(sig).name}")
    return process.returncode, err, time.monotonic() - sent


def test_sigterm_saves_state_exits_143_and_the_rerun_resumes(tmp_path):
    job_file, job = fake_job(tmp_path, "cooperative")
    process = start(["-m", "fake_long_step", str(job_file)], tmp_path)
    wait_for(tmp_path / "started", process)
    code, err, took = stop_and_wait(process)
    assert code == 143
    assert took < 5
    (line,) = problem_lines(err, job)
    saved = int((tmp_path / "state.txt").read_text())
    assert 1 <= saved < 60
    assert line == (f"[clmrepro] fake-cooperative: stopped by SIGTERM; saved "
                    f"{tmp_path / 'state.txt'} (tick {saved}); rerun the same command to resume")
    assert not (tmp_path / "count.json").exists()

    rerun = start(["-m", "fake_long_step", str(job_file)], tmp_path)
    _, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert json.loads((tmp_path / "count.json").read_text()) == {"count": 60,
                                                                "resumed_from": saved}
    assert not (tmp_path / "state.txt").exists()


def test_sigint_is_a_stop_request_too(tmp_path):
    job_file, job = fake_job(tmp_path, "cooperative", total=10_000)
    process = start(["-m", "fake_long_step", str(job_file)], tmp_path)
    wait_for(tmp_path / "started", process)
    code, err, _ = stop_and_wait(process, signal.SIGINT)
    assert code == 130
    (line,) = problem_lines(err, job)
    assert "stopped by SIGINT; saved" in line and "KeyboardInterrupt" not in err


def test_a_second_sigterm_exits_at_once_without_saving(tmp_path):
    job_file, job = fake_job(tmp_path, "slow-save", total=10_000)
    process = start(["-m", "fake_long_step", str(job_file)], tmp_path)
    wait_for(tmp_path / "started", process)
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)  # the step is "saving" (a 60 s sleep)
    code, err, took = stop_and_wait(process)
    assert code == 143 and took < 3
    (line,) = problem_lines(err, job)
    assert line == ("[clmrepro] fake-slow-save: second SIGTERM: exiting now without saving; "
                    "rerun the same command to resume from the last saved state")
    assert not (tmp_path / "state.txt").exists()


def test_a_step_without_a_safe_point_exits_after_the_grace_period(tmp_path):
    job_file, job = fake_job(tmp_path, "stubborn", total=10_000)
    process = start(["-m", "fake_long_step", str(job_file)], tmp_path,
                    CLMREPRO_STOP_GRACE_S="1")
    wait_for(tmp_path / "started", process)
    code, err, took = stop_and_wait(process)
    assert code == 143 and 0.9 < took < 5
    (line,) = problem_lines(err, job)
    assert line == ("[clmrepro] fake-stubborn: stopped by SIGTERM; no safe point within 1 s, "
                    "so nothing more was saved; rerun the same command to resume from the last "
                    "saved state")


def train_job(root: Path) -> tuple[Path, dict]:
    job = {
        "id": "train-test-ulm", "stage": "train", "spec": "test", "experiment": "cifar",
        "seed": 3, "threads": 1, "device": "cpu", "gpu": False, "inputs": {},
        "outputs": {"population": str(root / "out" / "population.pt"),
                    "record": str(root / "out" / "training.json")},
        "params": {
            "dataset": {"name": "fake-cifar10", "root": "data", "n_train": 400, "n_test": 20,
                        "split_seed": 0},
            "architecture": "lenet5",
            "population": {"id": "ulm", "regime": "ulm", "size": 2, "from": None},
            "training": {"epochs": 500, "batch_size": 50, "optimizer": "adam", "lr": 1e-3,
                         "momentum": 0.0, "weight_decay": 0.0, "schedule": "none", "t_max": 0,
                         "augment": False, "eval_batch_size": 20},
            "linking": None, "adversarial": None, "replicate": 0,
            "execution": {"population": "sequential", "memory_format": "contiguous",
                          "precision": "fp32", "clm_schedule": "sequential"},
        },
    }
    path = root / "train.json"
    path.write_text(json.dumps(job))
    return path, job


@pytest.mark.slow
def test_real_train_step_stops_cleanly_on_sigterm(tmp_path):
    job_file, job = train_job(tmp_path)
    grace = 3
    process = start(["-m", "clmrepro.steps.train", str(job_file)], tmp_path,
                    CLMREPRO_STOP_GRACE_S=str(grace))
    state = tmp_path / ".clmrepro-state" / "test" / "cifar" / "ulm"
    wait_for(state, process, timeout=120, pattern="*.pt")  # the state of the first epoch
    code, err, took = stop_and_wait(process, limit=15)
    assert code == 143, err
    assert "Traceback" not in err
    (line,) = problem_lines(err, job)
    assert line.startswith("[clmrepro] train-test-ulm: stopped by SIGTERM; ")
    # the training loop checks should_stop after every minibatch: it stops at the next one,
    # saves its mid-epoch state and names it
    assert took < grace, f"no stop at a safe point within {took:.1f} s: {line}"
    assert "; saved " in line and line.endswith("; rerun the same command to resume")
    assert any(state.glob("*.pt"))  # resumable state survives (Snakemake deletes only outputs)
    assert not (tmp_path / "out" / "population.pt").exists()
