"""steps.population and steps.inputs on population files, in process (fast twins of the
subprocess corpus in test_broken_inputs.py)."""

from __future__ import annotations

import pytest
import torch
from reliability_helpers import make_job, population_meta

from clmrepro.core.checkpoints import ArtifactError, atomic_torch_save
from clmrepro.steps.inputs import check_inputs
from clmrepro.steps.population import load_population


def save(path, states, meta=None):
    atomic_torch_save({"meta": meta or population_meta(), "states": states}, path)
    return path


def test_a_good_population_loads(tmp_path, lenet_states):
    meta, models = load_population(save(tmp_path / "p.pt", lenet_states), architecture="lenet5",
                                   size=2)
    assert meta["size"] == 2 and len(models) == 2 and not models[0].training


@pytest.mark.parametrize("where, value", [("conv1.weight", float("nan")),
                                          ("fc2.bias", float("-inf")),
                                          ("bn2.running_mean", float("inf"))])
def test_nan_or_inf_anywhere_is_refused(tmp_path, lenet_states, where, value):
    states = [{k: v.clone() for k, v in s.items()} for s in lenet_states]
    states[1][where].view(-1)[0] = value
    path = save(tmp_path / "p.pt", states)
    with pytest.raises(ArtifactError, match=f"submodel 1 has NaN or infinite values in {where}"):
        load_population(path)


def test_architecture_and_size_are_checked_against_the_caller(tmp_path, lenet_states):
    path = save(tmp_path / "p.pt", lenet_states)
    with pytest.raises(ArtifactError, match="holds 2 × lenet5, but the job wants 4 × lenet5"):
        load_population(path, size=4)
    with pytest.raises(ArtifactError, match="wants 2 × resnet18"):
        load_population(path, architecture="resnet18")


def test_weights_that_do_not_fit_are_refused(tmp_path, lenet_states):
    path = save(tmp_path / "p.pt", lenet_states, {**population_meta(), "num_classes": 7})
    with pytest.raises(ArtifactError, match="submodel 0 does not fit a lenet5"):
        load_population(path)
    path = save(tmp_path / "q.pt", lenet_states, {**population_meta(), "architecture": "vgg"})
    with pytest.raises(ArtifactError, match="unknown architecture 'vgg'"):
        load_population(path)


def test_check_inputs_reads_the_job_against_the_file(tmp_path, lenet_states):
    save(tmp_path / "population.pt", lenet_states)
    check_inputs(make_job(tmp_path, "evaluate"))
    with pytest.raises(ArtifactError, match="but job evaluate-test-ulm wants 3 × lenet5"):
        check_inputs(make_job(tmp_path, "evaluate", size=3))
    (tmp_path / "population.pt").write_bytes(b"")
    with pytest.raises(ArtifactError, match="population.pt: file is empty"):
        check_inputs(make_job(tmp_path, "evaluate"))


def test_a_memory_mapped_check_reads_no_tensor(tmp_path, lenet_states, monkeypatch):
    """check_inputs maps the file: it must not need the tensors' bytes (big populations)."""
    path = save(tmp_path / "population.pt", lenet_states)
    calls = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: calls.append(k.get("mmap")) or real(*a, **k))
    check_inputs(make_job(tmp_path, "evaluate"))
    assert calls == [True]
    assert path.exists()
