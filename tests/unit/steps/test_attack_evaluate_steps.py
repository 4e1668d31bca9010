"""Attack and evaluate steps end to end on a tiny LeNet5 population and fake CIFAR data."""

import json
import os

import pytest
import torch

from clmrepro.core.checkpoints import safe_load, save_population
from clmrepro.core.interrupt import Interrupted
from clmrepro.core.metrics import per_submodel_accuracy
from clmrepro.core.models import build_model
from clmrepro.steps.attack import attack_state_dir, run_attack
from clmrepro.steps.evaluate import run_evaluate
from clmrepro.steps.scoring import load_test_set
from clmrepro.steps.population import load_population

torch.set_num_threads(1)

N_MODELS, N_SAMPLES = 3, 12
DATASET = {"name": "fake-cifar10", "root": "data", "n_train": 0, "n_test": N_SAMPLES,
           "split_seed": 0}


@pytest.fixture
def population(tmp_path):
    torch.manual_seed(0)
    models = [build_model("lenet5", in_channels=3).eval() for _ in range(N_MODELS)]
    path = tmp_path / "population.pt"
    meta = {"architecture": "lenet5", "regime": "ulm", "size": N_MODELS, "in_channels": 3,
            "num_classes": 10, "dataset": "fake-cifar10"}
    save_population(path, models, meta)
    return path


def job(stage, tmp_path, population, attack, inputs, outputs, saliency=0, **params):
    return {
        "id": f"{stage}-test", "stage": stage, "spec": "test", "experiment": "cifar",
        "seed": 42, "threads": 1, "device": "cpu", "gpu": False,
        "inputs": {"population": str(population), **inputs},
        "outputs": {k: str(tmp_path / v) for k, v in outputs.items()},
        "params": {
            "dataset": DATASET, "architecture": "lenet5",
            "population": {"id": "ulm", "regime": "ulm", "size": N_MODELS, "from": None},
            "attack": attack, "threat_models": ["paper", "transfer", "adaptive"],
            "crafting": "per-batch", "n_samples": N_SAMPLES, "batch_size": 5,
            "saliency_samples": saliency, "replicate": 0,
            "execution": {"population": "sequential", "memory_format": "contiguous",
                          "precision": "fp32", "clm_schedule": "sequential"}, **params,
        },
    }


PGD = {"id": "pgd", "kind": "pgd", "eps": 8 / 255,
       "params": {"alpha": 2 / 255, "steps": 3, "random_start": True}}


def test_attack_then_evaluate_writes_consistent_records(tmp_path, population):
    attack_job = job("attack", tmp_path, population, PGD, {}, {"adversarial": "adv.pt"})
    run_attack(attack_job)
    blob = safe_load(tmp_path / "adv.pt")
    assert set(blob) == {"x", "y", "attack", "paper", "transfer", "adaptive"}
    assert blob["transfer"]["x_adv"].shape == (N_MODELS, N_SAMPLES, 3, 32, 32)
    crafter = blob["paper"]["crafter"]
    assert len(set(crafter[:5].tolist())) == 1  # per-batch: one crafter per batch of 5
    assert (blob["paper"]["x_adv"] - blob["x"]).abs().max() <= 8 / 255 + 1e-6

    eval_job = job("evaluate", tmp_path, population, PGD,
                   {"adversarial": str(tmp_path / "adv.pt")}, {"scores": "scores.json"})
    run_evaluate(eval_job)
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["schema_version"] == 1
    assert all(r["replicate"] == 0 for r in scores["records"])
    by_threat = {r["threat_model"]: r for r in scores["records"]}
    assert set(by_threat) == {"paper", "transfer", "adaptive"}
    _, models = load_population(population, "cpu")
    paper = by_threat["paper"]
    per = per_submodel_accuracy(models, blob["paper"]["x_adv"], blob["y"], batch_size=5,
                                device="cpu")
    assert paper["per_submodel"] == pytest.approx(per.tolist())
    assert paper["mra"] == pytest.approx(per.mean().item())
    assert paper["crafting"] == "per-batch" and paper["attack"] == "pgd"
    assert paper["attack_params"] == {**PGD["params"], "eps": PGD["eps"]}
    assert paper["n_submodels"] == N_MODELS and paper["n_samples"] == N_SAMPLES
    assert paper["paper"] is None and paper["transfer"] is None
    transfer = by_threat["transfer"]
    matrix = torch.tensor(transfer["transfer"]["matrix"])
    assert matrix.shape == (N_MODELS, N_MODELS)
    assert transfer["mra"] == pytest.approx(transfer["transfer"]["off_diagonal_mean"])
    assert transfer["crafting"] == "each"
    assert by_threat["adaptive"]["crafting"] == "population"

    # the same job twice gives the same file: the step is deterministic
    run_attack(attack_job)
    again = safe_load(tmp_path / "adv.pt")
    assert torch.equal(again["paper"]["x_adv"], blob["paper"]["x_adv"])
    assert torch.equal(again["adaptive"]["x_adv"], blob["adaptive"]["x_adv"])


def test_evaluate_refuses_a_file_crafted_with_other_parameters(tmp_path, population):
    run_attack(job("attack", tmp_path, population, PGD, {}, {"adversarial": "adv.pt"}))
    other = {**PGD, "params": {**PGD["params"], "steps": 4}}
    eval_job = job("evaluate", tmp_path, population, other,
                   {"adversarial": str(tmp_path / "adv.pt")}, {"scores": "scores.json"})
    with pytest.raises(ValueError, match="crafted with"):
        run_evaluate(eval_job)


def test_benign_evaluate_writes_mra_and_analysis(tmp_path, population):
    benign = job("evaluate", tmp_path, population, None, {},
                 {"scores": "benign.json", "analysis": "analysis.json"}, saliency=4)
    run_evaluate(benign)
    record = json.loads((tmp_path / "benign.json").read_text())["records"][0]
    assert (record["attack"], record["eps"], record["threat_model"]) == ("benign", 0.0, "paper")
    x, y = load_test_set(DATASET, N_SAMPLES)
    _, models = load_population(population, "cpu")
    per = per_submodel_accuracy(models, x, y, batch_size=5, device="cpu")
    assert record["per_submodel"] == pytest.approx(per.tolist())
    analysis = json.loads((tmp_path / "analysis.json").read_text())
    assert analysis["schema_version"] == 1
    assert sorted(analysis["saliency_cosine"]) == ["0-1", "0-2", "1-2"]
    assert all(len(v) == 4 for v in analysis["saliency_cosine"].values())
    assert len(analysis["conv1_std"]) == N_MODELS


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the state folder is relative to the working directory
    return tmp_path


def fused(tmp_path, population, attack=PGD, **params):
    return job("attack", tmp_path, population, attack, {},
               {"adversarial": "adv.pt", "scores": "scores.json"}, **params)


def test_fused_attack_job_scores_what_evaluate_scores(in_tmp, population):
    """docs/architecture.md "Jobs and replicates": one attack job crafts and scores; evaluate re-scoring its
    file gives the same records, byte for byte."""
    attack_job = fused(in_tmp, population, replicate=0)
    run_attack(attack_job)
    fused_scores = (in_tmp / "scores.json").read_text()
    assert not attack_state_dir(attack_job).exists()  # removed once the outputs exist
    run_evaluate(job("evaluate", in_tmp, population, PGD,
                     {"adversarial": str(in_tmp / "adv.pt")}, {"scores": "rescored.json"}))
    assert (in_tmp / "rescored.json").read_text() == fused_scores


def test_samples_per_threat_model_and_replicate(in_tmp, population):
    samples = {"paper": 12, "transfer": 5, "adaptive": 7}
    # replicate 2 of K >= 2 in the results/ layout: the state folder follows the population's
    placed = in_tmp / "results/test/cifar/ulm/r2/population.pt"
    placed.parent.mkdir(parents=True)
    placed.write_bytes(population.read_bytes())
    attack_job = fused(in_tmp, "results/test/cifar/ulm/r2/population.pt", samples=samples,
                       replicate=2)
    attack_job["id"] = "attack-test-r2"
    assert attack_state_dir(attack_job).parts[-2:] == ("r2", "attack-pgd-eps0.0313725")
    run_attack(attack_job)
    blob = safe_load(in_tmp / "adv.pt")
    assert blob["paper"]["x_adv"].shape[0] == 12
    assert blob["transfer"]["x_adv"].shape[:2] == (N_MODELS, 5)
    assert blob["adaptive"]["x_adv"].shape[0] == 7
    records = json.loads((in_tmp / "scores.json").read_text())["records"]
    assert {r["threat_model"]: r["n_samples"] for r in records} == samples
    assert all(r["replicate"] == 2 for r in records)
    # the first N test images: the transfer set is crafted on x[:5]
    assert (blob["transfer"]["x_adv"] - blob["x"][:5]).abs().max() <= PGD["eps"] + 1e-6
    # re-scoring with other sample sizes is refused
    other = job("evaluate", in_tmp, population, PGD, {"adversarial": str(in_tmp / "adv.pt")},
                {"scores": "s.json"}, samples={**samples, "transfer": 6})
    with pytest.raises(ValueError, match="transfer set"):
        run_evaluate(other)


def test_stop_between_chunks_saves_state_and_a_rerun_gives_the_same_bytes(in_tmp, population):
    reference_dir = in_tmp / "reference"
    reference_dir.mkdir()
    reference = fused(reference_dir, population)
    run_attack(reference)

    attack_job = fused(in_tmp, population)
    calls = []
    with pytest.raises(Interrupted) as stopped:
        run_attack(attack_job, should_stop=lambda: calls.append(1) or len(calls) >= 2)
    state = attack_state_dir(attack_job)
    assert stopped.value.saved.startswith(str(state))
    assert len(list(state.glob("*/*.pt"))) == 2 and not (in_tmp / "adv.pt").exists()
    run_attack(attack_job)
    a, b = safe_load(in_tmp / "adv.pt"), safe_load(reference_dir / "adv.pt")
    for threat in ("paper", "transfer", "adaptive"):
        assert a[threat]["x_adv"].numpy().tobytes() == b[threat]["x_adv"].numpy().tobytes()
    assert (in_tmp / "scores.json").read_text() == (reference_dir / "scores.json").read_text()
    assert not state.exists()


def test_a_changed_job_does_not_resume_stale_chunks(in_tmp, population):
    attack_job = fused(in_tmp, population)
    with pytest.raises(Interrupted):
        run_attack(attack_job, should_stop=lambda: True)
    state = attack_state_dir(attack_job)
    (old,) = [p.name for p in state.iterdir()]
    changed = fused(in_tmp, population, execution={"population": "batched",
                                                   "memory_format": "contiguous",
                                                   "precision": "fp32",
                                                   "clm_schedule": "sequential"})
    with pytest.raises(Interrupted):
        run_attack(changed, should_stop=lambda: True)
    assert [p.name for p in state.iterdir()] != [old]


@pytest.mark.numerics
def test_batched_execution_job_matches_sequential(in_tmp, population):
    run_attack(fused(in_tmp, population))
    sequential = safe_load(in_tmp / "adv.pt")
    seq_scores = json.loads((in_tmp / "scores.json").read_text())["records"]
    os.remove(in_tmp / "adv.pt")
    run_attack(fused(in_tmp, population, execution={"population": "batched"}))
    batched = safe_load(in_tmp / "adv.pt")
    bat_scores = json.loads((in_tmp / "scores.json").read_text())["records"]
    for threat in ("paper", "transfer", "adaptive"):
        diff = (sequential[threat]["x_adv"] != batched[threat]["x_adv"]).double().mean()
        assert diff <= 0.01, f"{threat}: {diff:.2e} of the pixels differ"
    assert [r["mra"] for r in seq_scores] == pytest.approx([r["mra"] for r in bat_scores],
                                                            abs=1 / N_SAMPLES)


AUTOATTACK = {"id": "aa", "kind": "autoattack", "eps": 8 / 255,
              "params": {"version": "standard", "norm": "Linf", "n_classes": 10, "steps": 2,
                         "n_queries": 3, "n_restarts": 1, "eot_iter": 2}}


@pytest.mark.numerics
@pytest.mark.parametrize("population_mode", ["sequential", "batched"])
@pytest.mark.parametrize("attack", [PGD, AUTOATTACK], ids=["pgd", "autoattack"])
def test_bf16_channels_last_jobs_run_on_cpu(in_tmp, population, attack, population_mode):
    execution = {"population": population_mode, "memory_format": "channels_last",
                 "precision": "bf16", "clm_schedule": "sequential"}
    run_attack(fused(in_tmp, population, attack, execution=execution))
    blob = safe_load(in_tmp / "adv.pt")
    for threat in ("paper", "adaptive"):
        assert (blob[threat]["x_adv"] - blob["x"]).abs().max() <= attack["eps"] + 1e-6
    records = json.loads((in_tmp / "scores.json").read_text())["records"]
    assert len(records) == 3 and all(0 <= r["mra"] <= 1 for r in records)
    benign = job("evaluate", in_tmp, population, None, {},
                 {"scores": "benign.json", "analysis": "analysis.json"}, saliency=3,
                 execution=execution)
    run_evaluate(benign)
    assert len(json.loads((in_tmp / "analysis.json").read_text())["saliency_cosine"]) == 3
