import json

import torch

from clmrepro.core.checkpoints import load_population_states
from clmrepro.steps.population import load_population
from clmrepro.steps.train import main, state_dir_for

torch.set_num_threads(1)


def job(tmp_path, stage, pop, linking=None, inputs=None):
    out = tmp_path / "results" / "smoke" / "mnist" / pop["id"]
    return {
        "id": f"{stage}-mnist-{pop['id']}", "stage": stage, "spec": "smoke", "experiment": "mnist",
        "seed": 42, "threads": 1, "device": "cpu", "gpu": False,
        "inputs": inputs or {},
        "outputs": {"population": str(out / "population.pt"), "record": str(out / "training.json")},
        "params": {
            "dataset": {"name": "mnist-5k", "root": "data", "n_train": 200, "n_test": 40, "split_seed": 0},
            "architecture": "lenet5", "population": pop,
            "training": {"epochs": 1, "batch_size": 20, "optimizer": "adam", "lr": 1e-3,
                         "momentum": 0.0, "weight_decay": 0.0, "schedule": "none", "t_max": 0,
                         "augment": False, "eval_batch_size": 100},
            "linking": linking, "adversarial": None,
        },
    }


def write(tmp_path, j):
    path = tmp_path / f"{j['id']}.json"
    path.write_text(json.dumps(j, indent=2, sort_keys=True) + "\n")
    return [str(path)]


def test_train_then_retrain_writes_population_and_record(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ulm = job(tmp_path, "train", {"id": "ulm", "regime": "ulm", "size": 2, "from": None})
    assert main(write(tmp_path, ulm)) == 0
    meta, models = load_population(ulm["outputs"]["population"], "cpu")
    assert meta == {"architecture": "lenet5", "regime": "ulm", "size": 2, "in_channels": 1,
                    "num_classes": 10, "dataset": "mnist-5k"}
    assert len(models) == 2 and not models[0].training
    record = json.loads(open(ulm["outputs"]["record"]).read())
    assert record["regime"] == "ulm" and record["prse"] is None and len(record["history"]) == 2
    assert not state_dir_for(ulm).exists()  # state is dropped once the outputs are written

    clm = job(tmp_path, "retrain", {"id": "clm", "regime": "clm", "size": 2, "from": "ulm"},
              linking={"alpha": 0.1, "delta": 0.1, "prse_every": 2, "mask": "shared", "layer": "conv1"},
              inputs={"init": ulm["outputs"]["population"]})
    assert main(write(tmp_path, clm)) == 0
    record = json.loads(open(clm["outputs"]["record"]).read())
    assert record["regime"] == "clm" and record["prse"]["examinations"] == [[5, 5]]
    _, states = load_population_states(clm["outputs"]["population"])
    # retraining started from the ULM: its conv1 moved from there, not from a fresh init
    _, ulm_models = load_population(ulm["outputs"]["population"], "cpu")
    start = ulm_models[0].conv1.weight
    assert (states[0]["conv1.weight"] - start).abs().max() < 0.5
    assert not torch.equal(states[0]["conv1.weight"], start)

    wrong = job(tmp_path, "retrain", {"id": "clm4", "regime": "clm", "size": 4, "from": "ulm"},
                inputs={"init": ulm["outputs"]["population"]})
    assert main(write(tmp_path, wrong)) == 1  # one line naming the file (steps.inputs)
    assert "population.pt: holds 2 × lenet5, but job retrain-mnist-clm4 wants 4" in \
        capsys.readouterr().err


def test_same_job_twice_gives_identical_population(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = job(tmp_path / "a", "train", {"id": "ulm", "regime": "ulm", "size": 2, "from": None})
    b = job(tmp_path / "b", "train", {"id": "ulm", "regime": "ulm", "size": 2, "from": None})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    main(write(tmp_path / "a", a))
    main(write(tmp_path / "b", b))
    _, sa = load_population_states(a["outputs"]["population"])
    _, sb = load_population_states(b["outputs"]["population"])
    assert all(torch.equal(x[k], y[k]) for x, y in zip(sa, sb) for k in x)


def test_usage_error_without_job_file():
    assert main([]) == 2
