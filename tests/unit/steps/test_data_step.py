"""The data step (python -m clmrepro.steps.data JOB.json) and how the other steps read its file."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from clmrepro.core import sources
from clmrepro.core.data import load_dataset
from clmrepro.plan import paths
from clmrepro.steps.data import load_job_dataset, main
from clmrepro.steps.scoring import load_test_set

DATASET = {"name": "mnist-5k", "root": "data", "n_train": 400, "n_test": 100, "split_seed": 2}


def data_job(root: Path) -> dict:
    """A data job as plan.compile writes it, with its root moved under the test's folder."""
    outputs = {k: str(root / v) for k, v in paths.data_outputs("mnist-5k", "data").items()}
    return {"id": "data-mnist-5k", "stage": "data", "spec": "", "experiment": "", "threads": 1,
            "device": "cpu", "gpu": False, "inputs": {}, "outputs": outputs,
            "params": {"dataset": {"name": "mnist-5k", "root": str(root / "data")}}}


def test_step_writes_the_outputs_the_other_steps_read(tmp_path, capsys):
    job = data_job(tmp_path)
    job_file = tmp_path / "data-mnist-5k.json"
    job_file.write_text(json.dumps(job))
    assert main([str(job_file)]) == 0
    manifest = json.loads(Path(job["outputs"]["manifest"]).read_text())
    assert manifest["dataset"] == "mnist-5k" and Path(job["outputs"]["data"]).is_file()
    assert "[clmrepro] data-mnist-5k: " in capsys.readouterr().err
    dataset = {**DATASET, "root": str(tmp_path / "data")}
    prepared = load_job_dataset(dataset, job["outputs"]["data"])
    direct = load_dataset("mnist-5k", tmp_path / "data", n_train=400, n_test=100, split_seed=2)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(prepared, field), getattr(direct, field))


def test_steps_read_the_prepared_file_not_the_sources(tmp_path):
    """A prepared file that differs from the real digits shows it is the one read."""
    path = tmp_path / "mnist-5k.pt"
    torch.save({"x": torch.full((5000, 1, 32, 32), 7, dtype=torch.uint8),
                "y": torch.arange(5000) % 10}, path)
    bundle = load_job_dataset(DATASET, str(path))
    assert bool((bundle.x_train == 7).all()) and len(bundle.y_test) == 100
    x, y = load_test_set(DATASET, 10, str(path))
    assert x.shape == (10, 1, 32, 32) and torch.allclose(x, torch.full_like(x, 7 / 255))
    # without inputs.data (a job file from before the data stage): the files under root
    x, _ = load_test_set({**DATASET, "root": str(tmp_path / "data")}, 10)
    assert not torch.allclose(x, torch.full_like(x, 7 / 255))


def test_failure_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sources, "MNIST5K_SHA256", "0" * 64)
    job = data_job(tmp_path)
    job_file = tmp_path / "data-mnist-5k.json"
    job_file.write_text(json.dumps(job))
    assert main([str(job_file)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0] == "[clmrepro] data data-mnist-5k"
    assert err[1].startswith("[clmrepro] data-mnist-5k: ") and "mnist_5k.csv.gz: sha256 " in err[1]
    assert "Traceback" not in "\n".join(err) and not Path(job["outputs"]["data"]).exists()
