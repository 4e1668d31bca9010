"""Attack jobs survive SIGKILL and SIGTERM (issue 12), and scoring never imports torchattacks.

Real processes: ``python -m clmrepro.steps.attack JOB.json`` on small jobs in a temporary
folder (a tiny LeNet5 population trained to fit 24 fake CIFAR images, so AutoAttack has
work).  A run is killed once a few chunks are saved, rerun, and its adversarial tensors and
scores are compared byte for byte with those of an uninterrupted run.
"""

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
from clmrepro.core.models import LeNet5
from clmrepro.steps.attack import attack_state_dir

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
N_MODELS, N_SAMPLES, BATCH = 3, 24, 4
DATASET = {"name": "fake-cifar10", "root": "data", "n_train": 0, "n_test": N_SAMPLES,
           "split_seed": 0}
ATTACKS = {
    # a chunk (3 units of 4 images) takes ~0.1-0.5 s: long enough to be killed between
    # chunks, short enough for the suite; 2 paper + 6 transfer chunks per run
    "pgd": {"id": "pgd", "kind": "pgd", "eps": 8 / 255,
            "params": {"alpha": 1 / 255, "steps": 40, "random_start": True}},
    "autoattack": {"id": "aa", "kind": "autoattack", "eps": 8 / 255,
                   "params": {"version": "standard", "norm": "Linf", "n_classes": 10,
                              "steps": 10, "n_queries": 20, "n_restarts": 1, "eot_iter": 1}},
}


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    """Three LeNet5s fitted to the test images (all correct: every point is attacked)."""
    x, y = test_tensors(load_dataset(**DATASET))
    models = []
    for k in range(N_MODELS):
        torch.manual_seed(k)
        model = LeNet5(in_channels=3)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(40):
            opt.zero_grad()
            F.nll_loss(model.train()(x), y).backward()
            opt.step()
        models.append(model.eval())
    path = tmp_path_factory.mktemp("population") / "population.pt"
    meta = {"architecture": "lenet5", "regime": "ulm", "size": N_MODELS, "in_channels": 3,
            "num_classes": 10, "dataset": "fake-cifar10"}
    save_population(path, models, meta)
    return path


def write_job(folder: Path, population: Path, attack: str,
              threat_models=("paper", "transfer")) -> tuple[dict, Path]:
    job = {
        "id": f"attack-test-{attack}", "stage": "attack", "spec": "test", "experiment": "cifar",
        "seed": 7, "threads": 1, "device": "cpu", "gpu": False,
        "inputs": {"population": str(population)},
        "outputs": {"adversarial": "out/adversarial.pt", "scores": "out/scores.json"},
        "params": {
            "dataset": DATASET, "architecture": "lenet5",
            "population": {"id": "ulm", "regime": "ulm", "size": N_MODELS, "from": None},
            "attack": ATTACKS[attack], "threat_models": list(threat_models),
            "crafting": "per-batch", "n_samples": N_SAMPLES, "batch_size": BATCH,
            "samples": {t: N_SAMPLES for t in threat_models}, "replicate": 0,
            "execution": {"population": "sequential", "memory_format": "contiguous",
                          "precision": "fp32", "clm_schedule": "sequential"},
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.json"
    path.write_text(json.dumps(job))
    return job, path


def env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
            "PYTHONDONTWRITEBYTECODE": "1"}


def step(folder: Path, *args: str, module="clmrepro.steps.attack") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module, *args], cwd=folder, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{out[-2000:]}\n{err[-4000:]}"
    return err


def interrupt_after_chunks(folder: Path, job: dict, path: Path, sig: int, chunks: int = 3):
    """Start the job, send ``sig`` once ``chunks`` chunk files are saved; its exit code and
    the saved chunk names."""
    state = folder / attack_state_dir(job)
    proc = step(folder, str(path))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if len(list(state.glob("*/*.pt"))) >= chunks or proc.poll() is not None:
            break
        time.sleep(0.01)
    assert proc.poll() is None, f"the job ended before {chunks} chunks were saved"
    proc.send_signal(sig)
    proc.communicate(timeout=120)
    return proc.returncode, sorted(p.name for p in state.glob("*/*.pt"))


def assert_same_outputs(a: Path, b: Path, threat_models):
    adv_a, adv_b = safe_load(a / "out/adversarial.pt"), safe_load(b / "out/adversarial.pt")
    for threat in threat_models:
        ta, tb = adv_a[threat]["x_adv"], adv_b[threat]["x_adv"]
        assert ta.shape == tb.shape and ta.numpy().tobytes() == tb.numpy().tobytes(), threat
    assert torch.equal(adv_a["paper"]["crafter"], adv_b["paper"]["crafter"])
    assert (a / "out/scores.json").read_bytes() == (b / "out/scores.json").read_bytes()


@pytest.fixture(scope="module")
def reference(population, tmp_path_factory):
    """Uninterrupted runs, one folder per attack."""
    folders = {}
    for attack in ATTACKS:
        folder = tmp_path_factory.mktemp(f"reference-{attack}")
        _, path = write_job(folder, population, attack)
        finish(step(folder, str(path)))
        folders[attack] = folder
    return folders


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_sigkill_mid_run_then_rerun_gives_identical_bytes(attack, population, reference,
                                                          tmp_path):
    job, path = write_job(tmp_path, population, attack)
    code, saved = interrupt_after_chunks(tmp_path, job, path, signal.SIGKILL)
    assert code == -signal.SIGKILL and len(saved) >= 3
    assert not (tmp_path / "out/adversarial.pt").exists()
    err = finish(step(tmp_path, str(path)))
    assert f"resuming from {len(saved)} saved chunks" in err
    assert_same_outputs(tmp_path, reference[attack], ("paper", "transfer"))
    assert not (tmp_path / attack_state_dir(job)).exists()


def test_sigterm_saves_state_exits_non_zero_and_resumes(population, reference, tmp_path):
    job, path = write_job(tmp_path, population, "pgd")
    code, saved = interrupt_after_chunks(tmp_path, job, path, signal.SIGTERM, chunks=2)
    # 143 once steps.common handles SIGTERM (the stop is checked between chunks); until
    # then the default handler ends the process (-15).  Either way: non-zero, state kept.
    assert code in (143, -signal.SIGTERM) and len(saved) >= 2
    assert not (tmp_path / "out/adversarial.pt").exists()
    finish(step(tmp_path, str(path)))
    assert_same_outputs(tmp_path, reference["pgd"], ("paper", "transfer"))


IMPORT_CHECK = """
import sys
from clmrepro.steps.{module} import main
code = main([sys.argv[1]])
print("torchattacks" in sys.modules, code)
"""


def run_checking_imports(folder: Path, module: str, job_path: Path) -> str:
    result = subprocess.run([sys.executable, "-c", IMPORT_CHECK.format(module=module),
                             str(job_path)], cwd=folder, env=env(), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout.split()[-2]


def test_scoring_and_batched_crafting_do_not_import_torchattacks(population, tmp_path):
    job, _ = write_job(tmp_path, population, "pgd", ("paper", "transfer", "adaptive"))
    job["params"]["execution"]["population"] = "batched"
    job["params"]["samples"] = {"paper": 8, "transfer": 4, "adaptive": 4}
    (tmp_path / "batched.json").write_text(json.dumps(job))
    assert run_checking_imports(tmp_path, "attack", tmp_path / "batched.json") == "False"
    # re-scoring the adversarial file, and the benign job
    rescore = {**job, "stage": "evaluate", "id": "evaluate-test",
               "inputs": {**job["inputs"], "adversarial": "out/adversarial.pt"},
               "outputs": {"scores": "out/rescored.json"}}
    (tmp_path / "rescore.json").write_text(json.dumps(rescore))
    assert run_checking_imports(tmp_path, "evaluate", tmp_path / "rescore.json") == "False"
    assert ((tmp_path / "out/rescored.json").read_bytes()
            == (tmp_path / "out/scores.json").read_bytes())
    benign = {**rescore, "id": "evaluate-benign", "inputs": job["inputs"],
              "params": {**job["params"], "attack": None, "saliency_samples": 4},
              "outputs": {"scores": "out/benign.json", "analysis": "out/analysis.json"}}
    (tmp_path / "benign.json").write_text(json.dumps(benign))
    assert run_checking_imports(tmp_path, "evaluate", tmp_path / "benign.json") == "False"
    # the probe can tell: a sequential attack job does need torchattacks
    job["params"].update(threat_models=["paper"], samples={"paper": 4})
    job["params"]["execution"]["population"] = "sequential"
    (tmp_path / "sequential.json").write_text(json.dumps(job))
    assert run_checking_imports(tmp_path, "attack", tmp_path / "sequential.json") == "True"
