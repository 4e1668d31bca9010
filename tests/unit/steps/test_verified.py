"""Every input checked where it is read (issue 28, item 5): a file changed after the job that
wrote it recorded its sha256 is refused in one line naming the file and what to do."""

from __future__ import annotations

import json

import pytest
import torch

from clmrepro.core.checkpoints import ArtifactError, save_population
from clmrepro.core.models import build_model
from clmrepro.steps.inputs import check_inputs
from clmrepro.steps.verified import consumed, file_sha256

torch.set_num_threads(1)


@pytest.fixture
def files(tmp_path):
    """A prepared dataset with its manifest, and a population with its training record."""
    data = tmp_path / "prepared" / "mnist-5k.pt"
    data.parent.mkdir()
    torch.save({"x": torch.zeros(4, 1, 32, 32, dtype=torch.uint8),
                "y": torch.arange(4)}, data)
    manifest = data.parent / "mnist-5k.manifest.json"
    manifest.write_text(json.dumps({"data": {"path": data.name, "sha256": file_sha256(data)}}))
    torch.manual_seed(0)
    population = tmp_path / "population.pt"
    save_population(population, [build_model("lenet5", in_channels=1).eval()],
                    {"architecture": "lenet5", "regime": "ulm", "size": 1, "in_channels": 1,
                     "num_classes": 10, "dataset": "mnist-5k"})
    record = tmp_path / "training.json"
    record.write_text(json.dumps({"population_sha256": file_sha256(population)}))
    return {"data": data, "manifest": manifest, "population": population, "trained": record}


def job(files, **inputs):
    return {"id": "evaluate-test", "stage": "evaluate",
            "inputs": {name: str(path) for name, path in {**files, **inputs}.items()},
            "params": {"architecture": "lenet5",
                       "population": {"id": "ulm", "regime": "ulm", "size": 1},
                       "dataset": {"name": "mnist-5k"}, "attack": None}}


def test_unchanged_inputs_pass_and_are_named_by_their_sha256(files):
    check_inputs(job(files))
    assert consumed(job(files)) == {"data": file_sha256(files["data"]),
                                    "population": file_sha256(files["population"])}


def test_a_prepared_dataset_changed_by_one_pixel_is_refused_in_one_line(files):
    blob = torch.load(files["data"])
    blob["x"][2, 0, 5, 5] = 1
    torch.save(blob, files["data"])
    with pytest.raises(ArtifactError) as caught:
        check_inputs(job(files))
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith(f"{files['data']}: sha256 ")
    assert f"recorded in {files['manifest']}" in line and "rerun the data job" in line


def test_a_population_changed_after_training_is_refused(files):
    from clmrepro.core.checkpoints import load_population_states
    meta, states = load_population_states(files["population"])
    states[0]["conv1.weight"][0, 0, 0, 0] += 1e-3
    model = build_model("lenet5", in_channels=1)
    model.load_state_dict(states[0])
    save_population(files["population"], [model], meta)
    with pytest.raises(ArtifactError, match=r"population\.pt: sha256 .* recorded in .*training"
                                            r"\.json; the file changed after the job that "
                                            r"trained it"):
        check_inputs(job(files))


def test_a_researchers_weights_are_checked_against_the_compiled_sha256(files):
    pinned = job({k: v for k, v in files.items() if k != "trained"})
    pinned["params"]["population"]["sha256"] = file_sha256(files["population"])
    check_inputs(pinned)
    pinned["params"]["population"]["sha256"] = "0" * 64
    with pytest.raises(ArtifactError, match="recompile the spec if the new weights are meant"):
        check_inputs(pinned)


def test_records_written_before_the_sha256_was_recorded_pass(files):
    files["trained"].write_text(json.dumps({}))
    check_inputs(job(files))
