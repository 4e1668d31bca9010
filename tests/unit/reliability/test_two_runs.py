"""Two runs in one checkout at once: the second stops at once with one line naming the first,
and the first finishes with the same results as a run alone.  Also: Snakemake's own lock left
by a killed run does not block the next `clmrepro run`.

End to end in temporary copies of the repository (a 5-job spec), so marked slow.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from reliability_helpers import REPO

BIN = Path(sys.executable).parent
SPEC = """\
name: lock-tiny
description: Two LeNet5 submodels, one epoch on 200 digits, FGSM on 20 test images.
seed: 0
device: cpu
threads: 1
experiments:
  - id: mnist
    dataset: {name: mnist-5k, n_train: 200, n_test: 40}
    architecture: lenet5
    populations:
      - {id: ulm, size: 2, regime: {kind: ulm}, training: {epochs: 1}}
    evaluation:
      n_samples: 20
      batch_size: 20
      saliency_samples: 4
      threat_models: [paper]
      attacks:
        - {kind: fgsm, eps: [0.3]}
"""
METRICS = Path("reports/lock-tiny/metrics.json")


def env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO), "CLMREPRO_GPUS": "0", "OMP_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"}


def copy_repo(target: Path) -> Path:
    """The tracked (and not ignored) files of the repository, plus the test spec."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    (target / "specs" / "lock-tiny.yaml").write_text(SPEC)
    return target


def clmrepro(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clmrepro.cli", *args], cwd=cwd, env=env(),
                          capture_output=True, text=True, timeout=timeout)


RUN = ("run", "specs/lock-tiny.yaml", "--cores", "1", "--no-dvc")


@pytest.mark.slow
def test_a_second_run_is_refused_and_the_first_finishes_as_if_alone(tmp_path_factory):
    alone = copy_repo(tmp_path_factory.mktemp("alone"))
    solo = clmrepro(*RUN, cwd=alone)
    assert solo.returncode == 0, solo.stderr[-3000:]

    repo = copy_repo(tmp_path_factory.mktemp("busy"))
    first = subprocess.Popen([sys.executable, "-m", "clmrepro.cli", *RUN], cwd=repo, env=env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = repo / ".clmrepro-state" / "run.lock"
    deadline = time.monotonic() + 120
    while not (lock.exists() and f'"pid": {first.pid}' in lock.read_text()):
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.1)

    started = time.monotonic()
    second = clmrepro(*RUN, cwd=repo, timeout=60)
    assert time.monotonic() - started < 30
    assert second.returncode == 75
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"[clmrepro] clmrepro run: another run holds this checkout (pid {first.pid}")
    compile_ = clmrepro("compile", "specs/lock-tiny.yaml", cwd=repo, timeout=60)
    assert compile_.returncode == 75 and "another run holds this checkout" in compile_.stderr
    # a plain snakemake is stopped too: by Snakemake's own lock while jobs run, or by the
    # Snakefile's onstart hook between them
    bare = subprocess.run([str(BIN / "snakemake"), "--cores", "1"], cwd=repo, env=env(),
                          capture_output=True, text=True, timeout=120)
    assert bare.returncode != 0
    assert "LockException" in bare.stderr + bare.stdout or \
        "another run holds this checkout" in bare.stderr

    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-3000:]
    assert (repo / METRICS).read_bytes() == (alone / METRICS).read_bytes()
    print("second run:", lines[0])
    print("compile:", compile_.stderr.strip())
    print("bare snakemake:", [line for line in (bare.stderr + bare.stdout).splitlines()
                              if "Lock" in line or "another run" in line][:2])

    # Snakemake's own lock outlives a SIGKILLed run; `clmrepro run` clears it (it holds the
    # run lock, so no run is live) where a plain snakemake would refuse to start.
    locks = repo / ".snakemake" / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    (locks / "0.output.lock").write_text("results/lock-tiny/mnist/ulm/population.pt\n")
    again = clmrepro(*RUN, cwd=repo)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "[clmrepro] clearing Snakemake's lock left by a run that was killed" in again.stderr
    assert not locks.exists() or not any(locks.iterdir())
    assert (repo / METRICS).read_bytes() == (alone / METRICS).read_bytes()
