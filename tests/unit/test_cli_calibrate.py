"""The CLI's calibration parts: `calibrate`, `plan --calibration`, `compile --calibration`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from clmrepro import cli
from clmrepro.plan import paths
from clmrepro.plan.estimate import estimate_seconds
from clmrepro.plan.jobs import parse_job
from clmrepro.plan.model import Plan, PlannedJob

ROOT = Path(__file__).resolve().parents[2]
SEQUENTIAL = {"population": "sequential", "memory_format": "contiguous", "precision": "fp32",
              "clm_schedule": "sequential"}


def calibration(device="cpu", **changes) -> dict:
    """The round-number calibration of tests/unit/plan/test_estimate.py."""
    cal = json.loads((ROOT / "tests/unit/plan/fixtures/round-numbers.json").read_text())
    cal["machine"]["device"] = device
    return {**cal, **changes}


def attack_job(samples: dict, execution: dict) -> dict:
    """A complete attack job (plan.jobs): a PlannedJob holds the typed job."""
    return {"id": "attack-x", "stage": "attack", "spec": "x", "experiment": "mnist", "seed": 1,
            "device": "auto", "threads": 1, "gpu": True,
            "inputs": {"population": "p.pt"}, "outputs": {"adversarial": "a", "scores": "s"},
            "params": {"dataset": {"name": "mnist-5k", "root": "data", "split_seed": 0,
                                   "n_train": 4000, "n_test": 1000},
                       "architecture": "lenet5", "n_samples": 100, "batch_size": 100,
                       "crafting": "per-batch", "replicate": 0,
                       "population": {"id": "ulm", "regime": "ulm", "size": 4, "from": None},
                       "attack": {"id": "pgd", "kind": "pgd", "eps": 0.3,
                                  "params": {"alpha": 0.01, "steps": 10, "random_start": True}},
                       "threat_models": list(samples), "samples": samples,
                       "execution": execution}}


@pytest.fixture
def slow_calibration(tmp_path):
    cal = calibration(name="slowbox", startup_s={"train": 600.0, "attack": 600.0,
                                                 "evaluate": 600.0, "report": 600.0})
    path = tmp_path / "slowbox.json"
    path.write_text(json.dumps(cal))
    return path


def test_plan_with_a_calibration_names_it_and_uses_it(slow_calibration, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert cli.main(["plan", "specs/tiny.yaml", "--summary", "--calibration",
                     str(slow_calibration)]) == 0
    out = capsys.readouterr().out
    assert "calibration slowbox" in out and "start-up included" in out
    # 10 jobs (the data job; attack jobs craft and score) of at least 600 s start-up each
    total = re.search(r"^total +10 +([\d.]+) (min|h)", out, re.M)
    assert total, out
    seconds = float(total.group(1)) * (60 if total.group(2) == "min" else 3600)
    assert seconds >= 10 * 600


def test_plan_with_a_bad_calibration_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    (tmp_path / "bad.json").write_text("[]")
    assert cli.main(["plan", "specs/tiny.yaml", "--calibration", str(tmp_path / "bad.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bad.json" in err and "JSON object" in err


def test_compile_writes_runtime_limits_from_the_calibration(slow_calibration, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    root = tmp_path / "root"
    assert cli.main(["compile", "specs/tiny.yaml", "--root", str(root), "--calibration",
                     str(slow_calibration)]) == 0
    plan = json.loads((root / paths.plan_file("tiny")).read_text())
    assert all(job["resources"]["runtime"] >= 30 for job in plan["jobs"])  # 3 × 600 s
    # the plan names the calibration that priced it; without one, the shipped reference
    assert plan["calibration"]["name"] == json.loads(slow_calibration.read_text())["name"]
    assert cli.main(["compile", "specs/tiny.yaml", "--root", str(root)]) == 0
    plan = json.loads((root / paths.plan_file("tiny")).read_text())
    assert plan["calibration"]["name"] == "cpu-2core"


def test_calibrate_writes_the_file(tmp_path, monkeypatch, capsys):
    import clmrepro.calibration.run as run

    seen = {}

    def fake(device, threads, **kwargs):
        seen.update(device=device, threads=threads, **kwargs)
        return {**calibration(), "calibrate_seconds": 1.0}

    monkeypatch.setattr(run, "calibrate", fake)
    out = tmp_path / "mine.json"
    assert cli.main(["calibrate", "--device", "cpu", "--threads", "2", "--out", str(out),
                     "--clock", "cpu", "--quiet", "--note", "hello"]) == 0
    assert json.loads(out.read_text())["name"] == "test"
    assert seen["device"] == "cpu" and seen["threads"] == 2 and seen["clock"] == "cpu"
    assert seen["note"] == "hello" and seen["progress"] is False
    assert f"--calibration {out}" in capsys.readouterr().out


def test_summary_shows_the_authors_settings_beside_the_chosen_ones():
    cal = calibration(device="cuda")

    def planned(job):
        return PlannedJob(typed=parse_job(job), job_file="j", cmd="c", log="l", benchmark="b", resources={},
                          estimate_s=estimate_seconds(job, cal))

    fast = attack_job(samples={"paper": 100, "transfer": 10},
                      execution={**SEQUENTIAL, "population": "batched", "precision": "bf16"})
    plan = Plan(spec="x", spec_path="x", spec_sha256="", jobs=[planned(fast)])
    note = cli._estimate_note(plan, cal)
    assert "With the authors' settings (fp32, sequential, full samples)" in note
    authors = attack_job(samples={"paper": 100, "transfer": 100}, execution=SEQUENTIAL)
    plan = Plan(spec="x", spec_path="x", spec_sha256="", jobs=[planned(authors)])
    assert "authors' settings" not in cli._estimate_note(plan, cal)
