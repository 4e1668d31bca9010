"""Every broken input gives one line and a non-zero exit, through the real step entry points.

Each case builds its files in a temporary folder and runs ``python -m clmrepro.steps.<stage>
JOB.json`` as Snakemake does.  stderr must hold exactly one line besides the step's start line:
it names the broken file and says what is wrong; no traceback.  The subprocesses run two at a
time (a module fixture), the assertions per case.  Marked slow: 22 Python processes that each
import torch (~40 s of CPU); test_population_checks.py, core/test_checkpoints.py and
steps/test_common.py check the same diagnoses in process.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest

from reliability_helpers import (
    N_MODELS,
    N_SAMPLES,
    PGD,
    make_job,
    problem_lines,
    run_step,
    write_job,
)


@dataclass
class Case:
    name: str
    stage: str
    build: Callable[[Path, dict], dict]  # writes the files, returns the job
    names: Callable[[Path], str]  # the file the line must name
    expect: str
    code: int = 1
    extra: dict = field(default_factory=dict)


def _population(root: Path, data: bytes) -> None:
    (root / "population.pt").write_bytes(data)


def _states(root: Path, states, meta=None) -> None:
    from clmrepro.core.checkpoints import atomic_torch_save
    from reliability_helpers import population_meta

    atomic_torch_save({"meta": meta or population_meta(), "states": states},
                      root / "population.pt")


def _adversarial(root: Path, *, attack=PGD, shift=0.05, rows=N_SAMPLES, crafters=N_MODELS):
    import torch

    from clmrepro.core.checkpoints import atomic_torch_save

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(N_SAMPLES, 3, 32, 32, generator=gen) * 0.5 + 0.25
    x_adv = (x[:rows] + shift).clamp(0, 1)
    atomic_torch_save({"x": x, "y": torch.zeros(N_SAMPLES, dtype=torch.long), "attack": attack,
                       "paper": {"x_adv": x_adv, "crafter": torch.zeros(rows, dtype=torch.long),
                                 "crafting": "per-batch"},
                       "transfer": {"x_adv": torch.stack([x_adv] * crafters)}},
                      root / "adversarial.pt")


class Evil:
    """Unpickling this runs a shell command: the file must be refused, the command not run."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _benign(root, _=None):
    return make_job(root, "evaluate")


def _missing(root, fx):
    return _benign(root)


def _empty(root, fx):
    _population(root, b"")
    return _benign(root)


def _truncated(root, fx):
    _population(root, fx["population"][: len(fx["population"]) // 2])
    return _benign(root)


def _random(root, fx):
    _population(root, os.urandom(4096))
    return _benign(root)


def _pickle_runs_code(root, fx):
    import torch

    torch.save({"meta": {}, "states": [Evil(root / "PWNED")]}, root / "population.pt")
    return _benign(root)


def _wrong_architecture(root, fx):
    _population(root, fx["population"])
    return make_job(root, "evaluate", architecture="resnet18")


def _wrong_size(root, fx):
    _population(root, fx["population"])
    return make_job(root, "evaluate", size=3)


def _not_a_population(root, fx):
    from clmrepro.core.checkpoints import atomic_torch_save

    atomic_torch_save({"weights": [1, 2, 3]}, root / "population.pt")
    return _benign(root)


def _nan(root, fx):
    import torch

    states = [{k: v.clone() for k, v in s.items()} for s in fx["states"]]
    states[1]["conv2.weight"][0, 0, 0, 0] = float("nan")
    _states(root, states)
    return _benign(root)


def _inf(root, fx):
    states = [{k: v.clone() for k, v in s.items()} for s in fx["states"]]
    states[0]["bn1.running_var"][2] = float("inf")
    _states(root, states)
    return _benign(root)


def _misfit(root, fx):
    from reliability_helpers import population_meta

    meta = {**population_meta(), "in_channels": 1}  # weights are for 3 channels
    _states(root, fx["states"], meta)
    return _benign(root)


def _adv_outside_ball(root, fx):
    _population(root, fx["population"])
    _adversarial(root, shift=0.3)
    return make_job(root, "evaluate", attack=PGD)


def _adv_wrong_shape(root, fx):
    _population(root, fx["population"])
    _adversarial(root, rows=N_SAMPLES - 2)
    return make_job(root, "evaluate", attack=PGD)


def _adv_wrong_crafters(root, fx):
    _population(root, fx["population"])
    _adversarial(root, crafters=N_MODELS + 1)
    return make_job(root, "evaluate", attack=PGD)


def _adv_other_attack(root, fx):
    _population(root, fx["population"])
    _adversarial(root, attack={**PGD, "params": {**PGD["params"], "steps": 40}})
    return make_job(root, "evaluate", attack=PGD)


def _adv_truncated(root, fx):
    _population(root, fx["population"])
    _adversarial(root)
    data = (root / "adversarial.pt").read_bytes()
    (root / "adversarial.pt").write_bytes(data[: len(data) - 100])
    return make_job(root, "evaluate", attack=PGD)


def _job_not_json(root, fx):
    (root / "evaluate-test-ulm.json").write_text('{"id": "evaluate-test-ulm", "stage": \n')
    return {"id": "evaluate-test-ulm", "stage": "evaluate", "raw": True}


def _job_lacks_params(root, fx):
    job = _benign(root)
    del job["params"]
    write_job(root, job)
    return {**job, "raw": True}


def _job_lacks_dataset(root, fx):
    job = _benign(root)
    del job["params"]["dataset"]
    write_job(root, job)
    return {**job, "raw": True}


def _job_missing(root, fx):
    return {"id": "evaluate-test-ulm", "stage": "evaluate", "raw": True}


def _dataset_corrupt(root, fx):
    raw = root / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(os.urandom(1000))
    job = make_job(root, "train", inputs={},
                   dataset={"name": "mnist", "root": str(root / "data"), "n_train": 10,
                            "n_test": 10, "split_seed": 0})
    job.update(stage="train", id="train-test-ulm",
               outputs={"population": str(root / "out" / "population.pt"),
                        "record": str(root / "out" / "training.json")})
    job["params"]["training"] = {"epochs": 1, "batch_size": 5, "optimizer": "adam", "lr": 1e-3,
                                 "momentum": 0.0, "weight_decay": 0.0, "schedule": "none",
                                 "t_max": 0, "augment": False, "eval_batch_size": 10}
    job["params"].update(linking=None, adversarial=None)
    for key in ("attack", "threat_models", "crafting", "n_samples", "batch_size",
                "saliency_samples"):  # an evaluate job's keys: a train job has none of them
        del job["params"][key]
    return job


def _report_truncated_scores(root, fx):
    scores = root / "scores.json"
    scores.write_text('{"schema_version": 1, "records": [{"experiment": "mn')
    (root / "tables.yaml").write_text("{}\n")
    return {"id": "report-test", "stage": "report", "spec": "test", "experiment": "", "seed": 1,
            "threads": 1, "device": "cpu", "gpu": False, "inputs": {
                "scores": [str(scores)], "records": [], "analyses": [],
                "paper_tables": str(root / "tables.yaml"), "spec": str(root / "tables.yaml")},
            "outputs": {"metrics": str(root / "out" / "metrics.json")},
            "params": {"spec_path": "spec.yaml", "spec_name": "test", "description": "",
                       "departures": [], "precision_notes": [], "spec_sha256": "", "seed": 1,
                       "device": "cpu", "attacks": [], "attack_params": {}, "sweeps": []}}


POP = lambda root: str(root / "population.pt")  # noqa: E731
ADV = lambda root: str(root / "adversarial.pt")  # noqa: E731
JOB = lambda root: str(root / "evaluate-test-ulm.json")  # noqa: E731

CASES = [
    Case("population-missing", "evaluate", _missing, POP, "file not found"),
    Case("population-empty", "evaluate", _empty, POP, "file is empty (0 bytes)"),
    Case("population-truncated", "evaluate", _truncated, POP, "truncated or corrupt"),
    Case("population-random-bytes", "evaluate", _random, POP, "not a PyTorch file"),
    Case("population-pickle-runs-code", "evaluate", _pickle_runs_code, POP,
         "refused for safety: loading it would run code (posix.system)"),
    Case("population-not-a-population", "evaluate", _not_a_population, POP,
         "not a population file"),
    Case("population-wrong-architecture", "evaluate", _wrong_architecture, POP,
         "holds 2 × lenet5, but job evaluate-test-ulm wants 2 × resnet18"),
    Case("population-wrong-size", "evaluate", _wrong_size, POP,
         "holds 2 × lenet5, but job evaluate-test-ulm wants 3 × lenet5"),
    Case("population-weights-misfit", "evaluate", _misfit, POP,
         "submodel 0 does not fit a lenet5 with 1 input channel(s)"),
    Case("population-nan", "evaluate", _nan, POP,
         "submodel 1 has NaN or infinite values in conv2.weight"),
    Case("population-inf", "evaluate", _inf, POP,
         "submodel 0 has NaN or infinite values in bn1.running_var"),
    Case("adversarial-outside-eps-ball", "evaluate", _adv_outside_ball, ADV,
         "paper set leaves the eps-ball: max |x_adv - x| = 0.3"),
    Case("adversarial-wrong-shape", "evaluate", _adv_wrong_shape, ADV,
         "paper set of shape (4, 3, 32, 32), but the clean images give (6, 3, 32, 32)"),
    Case("adversarial-wrong-crafters", "evaluate", _adv_wrong_crafters, ADV,
         "transfer set of shape (3, 6, 3, 32, 32), but the population has 2 submodels"),
    Case("adversarial-other-attack", "evaluate", _adv_other_attack, ADV,
         "crafted with pgd eps=0.1 (alpha=0.05, random_start=True, steps=40), but job "
         "evaluate-test-ulm asks for pgd eps=0.1 (alpha=0.05, random_start=True, steps=2)"),
    Case("adversarial-truncated", "evaluate", _adv_truncated, ADV, "truncated or corrupt"),
    Case("job-not-json", "evaluate", _job_not_json, JOB, "job file is not valid JSON"),
    Case("job-lacks-params", "evaluate", _job_lacks_params, JOB, "key 'params' is missing"),
    Case("job-lacks-dataset", "evaluate", _job_lacks_dataset, JOB,
         "key 'params.dataset' is missing"),
    Case("job-file-missing", "evaluate", _job_missing, JOB, "job file not found"),
    Case("dataset-folder-corrupt", "train", _dataset_corrupt,
         lambda root: str(root / "data" / "MNIST" / "raw"),
         "dataset 'mnist' is there but cannot be read"),
    Case("report-scores-truncated", "report", _report_truncated_scores,
         lambda root: str(root / "scores.json"), "not valid JSON"),
]


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, population_bytes, lenet_states):
    fixture = {"population": population_bytes, "states": lenet_states}

    def one(case: Case):
        root = tmp_path_factory.mktemp(case.name)
        job = case.build(root, fixture)
        job_file = root / f"{job['id']}.json"
        if not job.pop("raw", False):
            write_job(root, job)
        return root, job, run_step(case.stage, job_file, root, **case.extra)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip((c.name for c in CASES), pool.map(one, CASES)))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_broken_input_gives_one_line(case: Case, outcomes):
    root, job, result = outcomes[case.name]
    raw = "params" not in job or "raw" in job
    lines = problem_lines(result.stderr, None if raw else job)
    assert result.returncode == case.code, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("[clmrepro] ")
    assert case.names(root) in line, line
    assert case.expect in line, line
    assert not (root / "out").exists() or not any((root / "out").iterdir())


def test_refused_pickle_did_not_run_its_code(outcomes):
    root, _, result = outcomes["population-pickle-runs-code"]
    assert result.returncode == 1
    assert not (root / "PWNED").exists()


def test_debug_switch_shows_the_traceback(tmp_path, population_bytes):
    (tmp_path / "population.pt").write_bytes(population_bytes[:100])
    job_file = write_job(tmp_path, make_job(tmp_path, "evaluate"))
    result = run_step("evaluate", job_file, tmp_path, CLMREPRO_DEBUG="1")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ArtifactError" in result.stderr


def test_corpus_covers_every_issue_case():
    names = {c.name for c in CASES}
    for wanted in ("population-missing", "population-empty", "population-truncated",
                   "population-random-bytes", "population-pickle-runs-code",
                   "population-wrong-architecture", "population-wrong-size", "population-nan",
                   "population-inf", "adversarial-outside-eps-ball", "adversarial-wrong-shape",
                   "job-not-json", "job-lacks-params", "dataset-folder-corrupt"):
        assert wanted in names
    assert json.dumps([c.expect for c in CASES])  # every case says what it expects
