"""step_main in process: usage, known failures in one line, the debug switch, signals."""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from clmrepro.core.checkpoints import ArtifactError
from clmrepro.core.interrupt import Interrupted
from clmrepro.steps import common
from clmrepro.steps.common import known_failure, step_main, stop_requested
from clmrepro.steps.inputs import JobFileError, check_adversarial_set, read_job

# a complete report job (step_main refuses a job file with a missing or unknown key)
JOB = {"id": "report-x", "stage": "report", "spec": "x", "experiment": "", "seed": 1,
       "threads": 1, "device": "cpu", "gpu": False, "inputs": {"paper_tables": "tables.yaml"},
       "outputs": {},
       "params": {"spec_path": "x.yaml", "spec_name": "x", "description": "", "departures": [],
                  "precision_notes": [], "spec_sha256": "", "seed": 1, "device": "cpu",
                  "attacks": [], "attack_params": {}, "sweeps": []}}
COMPILE = "regenerate it with `clmrepro compile SPEC` (job files are written by the compiler)"


def write(tmp_path, job=JOB, name="job.json"):
    """The job file (and the one input a report job needs) in tmp_path, the cwd."""
    (tmp_path / "tables.yaml").write_text("{}\n")
    path = tmp_path / name
    path.write_text(json.dumps(job) if isinstance(job, dict) else job)
    return str(path)


@pytest.fixture(autouse=True)
def keep_cwd(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)


def lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_usage_errors_exit_2(capsys):
    assert step_main(lambda job: None, []) == 2
    assert step_main(lambda job: None, ["a.json", "b.json"]) == 2
    assert "usage: python -m clmrepro.steps.<stage> [--debug] JOB.json" in capsys.readouterr().err


def test_a_job_that_runs_returns_0_and_announces_itself(tmp_path, capsys):
    seen = []
    assert step_main(seen.append, [write(tmp_path)]) == 0
    assert seen == [JOB]
    assert lines(capsys) == ["[clmrepro] report report-x"]


def test_a_typed_step_gets_the_model_of_its_stage(tmp_path):
    from clmrepro.plan.jobs import ReportJob

    seen = []
    assert step_main(seen.append, [write(tmp_path)], typed=True) == 0
    assert isinstance(seen[0], ReportJob) and seen[0].as_dict() == JOB


def test_a_known_failure_is_one_line_and_exit_1(tmp_path, capsys):
    def run(job):
        raise ArtifactError("results/x/population.pt: file is empty (0 bytes); delete it")

    assert step_main(run, [write(tmp_path)]) == 1
    assert lines(capsys)[1:] == ["[clmrepro] report-x: results/x/population.pt: file is empty "
                                 "(0 bytes); delete it"]


def test_the_debug_switch_lets_the_exception_through(tmp_path, monkeypatch):
    def run(job):
        raise ArtifactError("broken")

    with pytest.raises(ArtifactError):
        step_main(run, ["--debug", write(tmp_path)])
    monkeypatch.setenv("CLMREPRO_DEBUG", "1")
    with pytest.raises(ArtifactError):
        step_main(run, [write(tmp_path)])
    with pytest.raises(JobFileError):
        step_main(run, [write(tmp_path, "{not json")])


def test_a_bug_keeps_its_traceback(tmp_path):
    with pytest.raises(ZeroDivisionError):
        step_main(lambda job: 1 / 0, [write(tmp_path)])


def test_bad_job_files_are_one_line(tmp_path, capsys):
    assert step_main(lambda job: None, [write(tmp_path, "[1, 2]")]) == 1
    assert step_main(lambda job: None, [write(tmp_path, {**JOB, "stage": "deploy"})]) == 1
    assert step_main(lambda job: None, [write(tmp_path, {**JOB, "inputs": []})]) == 1
    path = tmp_path / "job.json"
    assert lines(capsys) == [
        f"[clmrepro] {path}: job file must hold a JSON object (got list); {COMPILE}",
        f"[clmrepro] {path}: key 'stage' is 'deploy'; allowed: data, train, retrain, attack, "
        f"evaluate, sanity, report; {COMPILE}",
        f"[clmrepro] {path}: key 'inputs' should be a valid dictionary (given []); {COMPILE}"]


def test_an_unknown_missing_or_mistyped_key_is_refused_before_any_work(tmp_path, capsys):
    ran = []
    params = JOB["params"]
    without = {key: value for key, value in params.items() if key != "sweeps"}
    cases = {"unknown": {**JOB, "params": {**params, "sweep": []}},
             "missing": {**JOB, "params": without},
             "mistyped": {**JOB, "seed": "7"}}
    for name, job in cases.items():
        assert step_main(ran.append, [write(tmp_path, job, f"{name}.json")]) == 1
    assert ran == []
    assert lines(capsys) == [
        f"[clmrepro] {tmp_path / 'unknown.json'}: unknown key 'params.sweep' (given []); {COMPILE}",
        f"[clmrepro] {tmp_path / 'missing.json'}: key 'params.sweeps' is missing; {COMPILE}",
        f"[clmrepro] {tmp_path / 'mistyped.json'}: key 'seed' should be a valid integer "
        f"(given '7'); {COMPILE}"]


def test_read_job_names_a_missing_input_the_stage_reads(tmp_path):
    job = {**JOB, "inputs": {}}
    with pytest.raises(JobFileError, match="report job lacks inputs.paper_tables"):
        read_job(write(tmp_path, job))


def test_sigterm_sets_stop_requested_and_interrupted_exits_143(tmp_path, capsys):
    def run(job):
        os.kill(os.getpid(), signal.SIGTERM)
        deadline = time.monotonic() + 5
        while not stop_requested():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        raise Interrupted(saved=".clmrepro-state/x/last.pt")

    before = {sig: signal.getsignal(sig) for sig in common.STOP_SIGNALS}
    assert step_main(run, [write(tmp_path)]) == 143
    assert lines(capsys)[1:] == ["[clmrepro] report-x: stopped by SIGTERM; saved "
                                 ".clmrepro-state/x/last.pt; rerun the same command to resume"]
    # handlers are put back and the flag is clear for the next step (tests run many)
    assert {sig: signal.getsignal(sig) for sig in common.STOP_SIGNALS} == before
    assert step_main(lambda job: None, [write(tmp_path)]) == 0
    assert not stop_requested()


def test_known_failures_cover_full_disks_and_gpu_memory():
    line = known_failure(OSError(errno.ENOSPC, "No space left on device", "results/a.pt"))
    assert line == "results/a.pt: cannot write: no space left on device; free some space and rerun"
    oom = type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory. Tried 2 GiB\nmore")
    assert known_failure(oom).startswith("the GPU ran out of memory (CUDA out of memory. Tried "
                                         "2 GiB); ")
    assert known_failure(ValueError("a bug")) is None


def adversarial_job(samples=None):
    params = {"dataset": {"name": "fake-cifar10", "n_test": 4}, "architecture": "lenet5",
              "population": {"size": 2}, "n_samples": 4, "threat_models": ["paper", "transfer"],
              "attack": {"kind": "fgsm", "eps": 0.1, "params": {}}}
    if samples:
        params["samples"] = samples
    return {"id": "evaluate-x", "params": params}


def blob(n=4, n_transfer=4, shift=0.1):
    x = torch.full((n, 3, 32, 32), 0.5)
    return {"x": x, "y": torch.zeros(n, dtype=torch.long),
            "attack": {"kind": "fgsm", "eps": 0.1, "params": {}},
            "paper": {"x_adv": x + shift}, "transfer": {"x_adv": (x[:n_transfer] - shift).expand(
                2, n_transfer, 3, 32, 32).clone()}}


def test_check_adversarial_set_accepts_a_set_on_the_eps_boundary():
    check_adversarial_set(blob(), adversarial_job(), "adv.pt")
    # per-threat sample counts (attack jobs that craft fewer transfer images)
    check_adversarial_set(blob(n_transfer=2), adversarial_job({"paper": 4, "transfer": 2}),
                          "adv.pt")


@pytest.mark.parametrize("broken, expected", [
    (lambda b: b["paper"].update(x_adv=b["x"] + 0.2), "paper set leaves the eps-ball"),
    (lambda b: b["paper"].update(x_adv=b["x"] * 3), "leaves the eps-ball"),
    (lambda b: b["transfer"]["x_adv"].__setitem__((1, 0, 0, 0, 0), float("nan")),
     "transfer set (crafted by submodel 1) holds NaN or infinite values"),
    (lambda b: b.pop("transfer"), "lacks the 'transfer' set"),
    (lambda b: b.update(x=b["x"][:, :1]), "clean images of shape (4, 1, 32, 32)"),
    (lambda b: b["attack"].update(eps=0.3),
     "crafted with fgsm eps=0.3 (), but job evaluate-x asks for fgsm eps=0.1 ()"),
    (lambda b: b["attack"].update(eps="lots"), "crafted with fgsm eps='lots' ()"),
])
def test_check_adversarial_set_names_what_is_wrong(broken, expected):
    data = blob()
    broken(data)
    with pytest.raises(ArtifactError, match=r"^adv\.pt: ") as caught:
        check_adversarial_set(data, adversarial_job(), "adv.pt")
    assert expected in str(caught.value)


@pytest.mark.parametrize("spec", ["paper", "mnist5k"])
def test_every_compiled_job_file_passes_the_steps_job_check(tmp_path, spec):
    # a stage the compiler writes but the steps' check does not know fails every such job
    # (the sanity stage did, in a real run)
    from clmrepro.plan.compile import compile_spec
    from clmrepro.spec import load_spec
    from clmrepro.steps.inputs import read_job

    root = Path(__file__).resolve().parents[3]
    plan = compile_spec(load_spec(root / f"specs/{spec}.yaml"), f"specs/{spec}.yaml")
    stages = set()
    for job in plan.jobs:
        path = tmp_path / f"{job.id}.json"
        path.write_text(json.dumps(job.job))
        assert read_job(path) == job.typed
        stages.add(job.stage)
    assert {"data", "sanity", "attack", "report"} <= stages
