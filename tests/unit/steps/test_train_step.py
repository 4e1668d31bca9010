import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from clmrepro.core.checkpoints import load_population_states, safe_load
from clmrepro.core.interrupt import Interrupted
from clmrepro.steps.common import load_job
from clmrepro.steps.population import load_population
from clmrepro.steps.train import main, run_train, state_dir_for, state_every_s

REPO = Path(__file__).resolve().parents[3]

torch.set_num_threads(1)


def job(tmp_path, stage, pop, linking=None, inputs=None, **overrides):
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
            "linking": linking, "adversarial": None, "replicate": 0,
            "execution": {"population": "sequential", "memory_format": "contiguous",
                          "precision": "fp32", "clm_schedule": "sequential"},
        } | overrides,
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
    assert record["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
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


def population_tensors(path):
    _, states = load_population_states(path)
    return states


def identical(a, b):
    return len(a) == len(b) and all(torch.equal(x[k], y[k]) for x, y in zip(a, b) for k in x)


def record_without_time(path):
    record = json.loads(Path(path).read_text())
    record.pop("wall_seconds")
    return record


EXECUTION = {"population": "batched", "memory_format": "contiguous", "precision": "fp32",
             "clm_schedule": "sequential"}


def test_execution_block_and_should_stop_reach_the_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    pop = {"id": "ulm", "regime": "ulm", "size": 2, "from": None}
    (tmp_path / "ref").mkdir()
    reference = job(tmp_path / "ref", "train", pop, execution=EXECUTION)
    stopped = job(tmp_path, "train", pop, execution=EXECUTION)
    assert main(write(tmp_path / "ref", reference)) == 0
    with pytest.raises(Interrupted):
        run_train(load_job(write(tmp_path, stopped)[0]).as_dict(), should_stop=lambda: True)
    assert (state_dir_for(stopped) / "last.pt").exists()
    assert not Path(stopped["outputs"]["population"]).exists()
    # the state of a batched run is not resumed by a sequential one, and vice versa
    assert "'stacked', True" in safe_load(state_dir_for(stopped) / "last.pt")["fingerprint"]["execution"]
    monkeypatch.chdir(tmp_path / "ref")
    sequential = job(tmp_path / "ref", "train", dict(pop, id="seq"),
                     execution=dict(EXECUTION, population="sequential"))
    assert main(write(tmp_path / "ref", sequential)) == 0
    monkeypatch.chdir(tmp_path)
    assert main(write(tmp_path, stopped)) == 0
    assert identical(population_tensors(reference["outputs"]["population"]),
                     population_tensors(stopped["outputs"]["population"]))
    assert not identical(population_tensors(sequential["outputs"]["population"]),
                         population_tensors(stopped["outputs"]["population"]))
    bad = job(tmp_path, "train", pop, execution=dict(EXECUTION, threads=4))
    capsys.readouterr()
    assert main(write(tmp_path, bad)) == 1  # refused by the job check, before any work
    assert "unknown key 'params.execution.threads' (given 4)" in capsys.readouterr().err


def test_state_interval_from_the_environment(monkeypatch):
    monkeypatch.delenv("CLMREPRO_STATE_EVERY_S", raising=False)
    assert state_every_s() == 60.0
    monkeypatch.setenv("CLMREPRO_STATE_EVERY_S", "0")
    assert state_every_s() == 0.0
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("CLMREPRO_STATE_EVERY_S", bad)
        with pytest.raises(ValueError, match="CLMREPRO_STATE_EVERY_S"):
            state_every_s()


def test_sigkill_mid_epoch_then_rerun_gives_the_uninterrupted_population(tmp_path, monkeypatch):
    """The real step in a subprocess, killed with SIGKILL right after its first saved state
    (saving after every minibatch), then rerun: population.pt must equal, tensor for tensor,
    that of a run that was never interrupted."""
    linking = {"alpha": 0.1, "delta": 0.1, "prse_every": 3, "mask": "shared", "layer": "conv1"}
    settings = dict(linking=linking, execution=dict(EXECUTION, population="sequential"),
                    dataset={"name": "mnist-5k", "root": "data", "n_train": 600, "n_test": 40,
                             "split_seed": 0},
                    training={"epochs": 1, "batch_size": 10, "optimizer": "adam", "lr": 1e-3,
                              "momentum": 0.0, "weight_decay": 0.0, "schedule": "none", "t_max": 0,
                              "augment": False, "eval_batch_size": 100})
    pop = {"id": "clm", "regime": "clm", "size": 2, "from": None}
    killed = job(tmp_path, "train", pop, **settings)
    argv = [sys.executable, "-m", "clmrepro.steps.train", write(tmp_path, killed)[0]]
    env = dict(os.environ, PYTHONPATH=str(REPO), CLMREPRO_STATE_EVERY_S="0")
    state = tmp_path / state_dir_for(killed) / "last.pt"
    child = subprocess.Popen(argv, cwd=tmp_path, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while not state.exists():
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no state was saved"
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    assert not Path(killed["outputs"]["population"]).exists()
    progress = safe_load(state)["progress"]
    assert progress["epoch"] == 0 and progress["batch"] > 0  # killed in the middle of epoch 0

    rerun = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert (f"{killed['id']}: resuming from {state.parent.relative_to(tmp_path)}: epoch 1, "
            f"submodel {progress['submodel']}, {progress['batch']} minibatch(es) done") in rerun.stderr
    assert not state.parent.exists()

    (tmp_path / "ref").mkdir()
    monkeypatch.chdir(tmp_path / "ref")
    reference = job(tmp_path / "ref", "train", pop, **settings)
    assert main(write(tmp_path / "ref", reference)) == 0
    assert identical(population_tensors(reference["outputs"]["population"]),
                     population_tensors(killed["outputs"]["population"]))
    assert record_without_time(reference["outputs"]["record"]) == record_without_time(killed["outputs"]["record"])


def test_a_baseline_job_trains_jointly_and_dverge_starts_from_the_population_it_names(
        tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    adp = job(tmp_path, "train", {"id": "adp", "regime": "adp", "size": 2, "from": None},
              diversity={"method": "adp", "alpha": 2.0, "beta": 0.5, "log_offset": 1e-20,
                         "det_offset": 1e-6})
    assert main(write(tmp_path, adp)) == 0
    record = json.loads(open(adp["outputs"]["record"]).read())
    assert record["regime"] == "adp" and record["from"] is None
    assert set(record["diversity"]["terms"][0]) >= {"ce"} and len(record["history"]) == 2
    meta, _ = load_population(adp["outputs"]["population"], "cpu")
    assert meta["regime"] == "adp"

    dverge = job(tmp_path, "retrain", {"id": "dverge", "regime": "dverge", "size": 2, "from": "adp"},
                 inputs={"init": adp["outputs"]["population"]},
                 diversity={"method": "dverge", "eps": 0.3, "step_size": 0.03, "steps": 2,
                            "layers": ["bn2"]})
    assert main(write(tmp_path, dverge)) == 0
    record = json.loads(open(dverge["outputs"]["record"]).read())
    assert record["regime"] == "dverge" and record["from"] == "adp"
    _, start = load_population_states(adp["outputs"]["population"])
    _, trained = load_population_states(dverge["outputs"]["population"])
    moved = (trained[0]["conv1.weight"] - start[0]["conv1.weight"]).abs().max()
    assert 0 < moved < 0.5  # it moved from the ADP population, not from a fresh init
