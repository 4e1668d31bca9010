"""The attack step with ``converge`` (issue 26 item 2): the scores record its ladder, and a job
stopped mid-ladder resumes at the rung it reached and ends bit-identical to an uninterrupted
run (in process: the stop request of ``steps.common`` between chunks, as SIGTERM asks it;
the SIGKILL tests of tests/unit/steps/test_attack_resume.py cover the store itself)."""

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from clmrepro.core.checkpoints import safe_load, save_population
from clmrepro.core.data import load_dataset, test_tensors
from clmrepro.core.interrupt import Interrupted
from clmrepro.core.models import LeNet5
from clmrepro.steps.attack import attack_state_dir, run_attack

N_MODELS, N_SAMPLES, BATCH = 2, 12, 4
DATASET = {"name": "fake-cifar10", "root": "data", "n_train": 0, "n_test": N_SAMPLES,
           "split_seed": 0}
THREATS = ("paper", "transfer", "adaptive")


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    x, y = test_tensors(load_dataset(**DATASET))
    models = []
    for k in range(N_MODELS):
        torch.manual_seed(k)
        model = LeNet5(in_channels=3)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(30):
            opt.zero_grad()
            F.nll_loss(model.train()(x), y).backward()
            opt.step()
        models.append(model.eval())
    path = tmp_path_factory.mktemp("population") / "population.pt"
    save_population(path, models, {"architecture": "lenet5", "regime": "ulm", "size": N_MODELS,
                                   "in_channels": 3, "num_classes": 10,
                                   "dataset": "fake-cifar10"})
    return path


def job_for(population: Path, execution: str, converge: dict | None) -> dict:
    params = {"alpha": 0.5 / 255, "steps": 2, "random_start": True}
    if converge is not None:
        params["converge"] = converge
    return {
        "id": "attack-ladder", "stage": "attack", "spec": "test", "experiment": "cifar",
        "seed": 7, "threads": 1, "device": "cpu", "gpu": False,
        "inputs": {"population": str(population)},
        "outputs": {"adversarial": "out/adversarial.pt", "scores": "out/scores.json"},
        "params": {
            "dataset": DATASET, "architecture": "lenet5",
            "population": {"id": "ulm", "regime": "ulm", "size": N_MODELS, "from": None},
            "attack": {"id": "pgd", "kind": "pgd", "eps": 8 / 255, "params": params},
            "threat_models": list(THREATS), "crafting": "per-batch", "n_samples": N_SAMPLES,
            "batch_size": BATCH, "samples": {t: N_SAMPLES for t in THREATS}, "replicate": 0,
            "execution": {"population": execution, "memory_format": "contiguous",
                          "precision": "fp32", "clm_schedule": "sequential"},
        },
    }


def run_in(folder: Path, job: dict, monkeypatch, should_stop=None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(folder)
    run_attack(copy.deepcopy(job), should_stop=should_stop)


def scores(folder: Path) -> list[dict]:
    return json.loads((folder / "out/scores.json").read_text())["records"]


CAPPED = {"tolerance": 0.001, "max_steps": 8}   # moves of 0.001 points: it climbs to the cap


@pytest.mark.parametrize("execution", ["batched", "sequential"])
def test_stopped_mid_ladder_resumes_at_its_rung_and_ends_bit_identical(
        execution, population, tmp_path, monkeypatch):
    job = job_for(population, execution, CAPPED)
    run_in(tmp_path / "reference", job, monkeypatch)
    calls = []

    def stop_after_rung_0():  # asked after each saved chunk
        calls.append(1)
        state = Path(attack_state_dir(job))
        return any(state.glob("*/paper-steps4-*.pt"))

    with pytest.raises(Interrupted):
        run_in(tmp_path / "resumed", job, monkeypatch, should_stop=stop_after_rung_0)
    saved = sorted(p.name for p in Path(attack_state_dir(job)).glob("*/*.pt"))
    assert any(name.startswith("paper-steps4-") for name in saved)
    assert not any(name.startswith(("paper-steps8-", "transfer", "adaptive")) for name in saved)
    run_in(tmp_path / "resumed", job, monkeypatch)
    a = safe_load(tmp_path / "reference/out/adversarial.pt")
    b = safe_load(tmp_path / "resumed/out/adversarial.pt")
    for threat in THREATS:
        assert a[threat]["x_adv"].numpy().tobytes() == b[threat]["x_adv"].numpy().tobytes()
        assert a[threat]["ladder"] == b[threat]["ladder"]
    assert ((tmp_path / "reference/out/scores.json").read_bytes()
            == (tmp_path / "resumed/out/scores.json").read_bytes())
    assert not Path(attack_state_dir(job)).exists()


def test_the_scores_record_the_ladder_and_score_its_last_rung(population, tmp_path,
                                                              monkeypatch):
    job = job_for(population, "batched", CAPPED)
    run_in(tmp_path / "ladder", job, monkeypatch)
    # re-scoring the adversarial file (steps.evaluate) gives the same records, ladders included
    from clmrepro.steps.evaluate import run_evaluate

    run_evaluate({**job, "stage": "evaluate",
                  "inputs": {**job["inputs"], "adversarial": "out/adversarial.pt"},
                  "outputs": {"scores": "out/rescored.json"}})
    assert ((tmp_path / "ladder/out/rescored.json").read_bytes()
            == (tmp_path / "ladder/out/scores.json").read_bytes())
    run_in(tmp_path / "fixed", job_for(population, "batched", None), monkeypatch)
    records, fixed = scores(tmp_path / "ladder"), scores(tmp_path / "fixed")
    assert {r["threat_model"] for r in records} == set(THREATS)
    for record in records:
        params = record["attack_params"]
        ladder = params["ladder"]
        assert [rung[0] for rung in ladder] == [2, 4, 8][:len(ladder)] and len(ladder) >= 2
        moved = abs(ladder[-1][1] - ladder[-2][1]) * 100
        # it stops at the first move below the tolerance, else at the cap unconverged
        assert params["converged"] is (moved < CAPPED["tolerance"])
        assert all(abs(a[1] - b[1]) * 100 >= CAPPED["tolerance"]
                   for a, b in zip(ladder[:-2], ladder[1:-1]))
        assert params["converged"] or len(ladder) == 3
        assert params["steps"] == ladder[-1][0]
        # the scored set is the last rung: its MRA is the ladder's last value
        assert record["mra"] == pytest.approx(params["ladder"][-1][1], abs=1e-12)
    # this population: paper and adaptive climb to the cap, transfer stops at 4 steps
    assert {r["attack_params"]["converged"] for r in records} == {True, False}
    for record in fixed:
        assert "ladder" not in record["attack_params"]
        assert record["attack_params"]["steps"] == 2
    # rung 0 of the ladder is the fixed-steps attack itself
    by_threat = {r["threat_model"]: r["mra"] for r in fixed}
    for record in records:
        assert record["attack_params"]["ladder"][0][1] == pytest.approx(
            by_threat[record["threat_model"]], abs=1e-12)


@pytest.mark.slow
def test_sigkill_mid_ladder_then_rerun_gives_identical_bytes(population, tmp_path, monkeypatch):
    """A real process killed once a rung above the first has saved a chunk."""
    job = job_for(population, "sequential", CAPPED)
    run_in(tmp_path / "reference", job, monkeypatch)
    folder = tmp_path / "killed"
    folder.mkdir()
    monkeypatch.chdir(folder)
    (folder / "job.json").write_text(json.dumps(job))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3]),
           "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "clmrepro.steps.attack", "job.json"]
    proc = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    state = Path(attack_state_dir(job))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if any(state.glob("*/paper-steps4-*.pt")):
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the job ended before a rung above the first was saved"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=120)
    assert not (folder / "out/adversarial.pt").exists()
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resuming from" in result.stderr
    a = safe_load(tmp_path / "reference/out/adversarial.pt")
    b = safe_load(folder / "out/adversarial.pt")
    for threat in THREATS:
        assert a[threat]["x_adv"].numpy().tobytes() == b[threat]["x_adv"].numpy().tobytes()
    assert ((tmp_path / "reference/out/scores.json").read_bytes()
            == (folder / "out/scores.json").read_bytes())
