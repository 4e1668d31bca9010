from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clmrepro.cli import main
from clmrepro.plan import paths

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["validate", "compile", "plan", "schema", "restore", "report-index", "run"]


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as done:
        main(([command] if command else []) + ["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: clmrepro")
    if command is None:
        assert all(name in out for name in COMMANDS)


def test_validate_ok_and_bad(capsys):
    assert main(["validate", str(ROOT / "specs/paper.yaml"), str(ROOT / "specs/smoke.yaml")]) == 0
    assert capsys.readouterr().out.count(": ok") == 2
    bad = ROOT / "tests/unit/spec/invalid/eps_negative.yaml"
    assert main(["validate", str(ROOT / "specs/tiny.yaml"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.strip().endswith("must be > 0 (got -0.1)") and len(err.strip().splitlines()) == 1


def test_compile_writes_the_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["compile", "specs/tiny.yaml", "--root", str(tmp_path)]) == 0
    plan = json.loads((tmp_path / paths.plan_file("tiny")).read_text())
    assert plan["spec"] == "tiny" and plan["spec_path"] == "specs/tiny.yaml"
    assert (tmp_path / "dvc.yaml").read_text().startswith("# generated")
    # 9 job files of the spec, and the shared one of its data job
    assert len(list((tmp_path / paths.jobs_dir("tiny")).glob("*.json"))) == len(plan["jobs"]) - 1 == 9
    assert (tmp_path / paths.data_job_file("mnist-5k", "data")).is_file()


def test_plan_shows_jobs_and_estimate(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["plan", "specs/smoke.yaml"]) == 0
    out = capsys.readouterr().out
    assert "attack-mnist-clm-adv-eot-pgd-0.3" in out
    assert re.search(r"^total +34 ", out, re.M)  # 29 jobs, ARC on 4 populations, the data job
    assert "replicates" not in out  # K = 1: nothing to say


def test_plan_shows_what_each_stage_writes(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["plan", "specs/smoke.yaml", "--summary"]) == 0
    out = capsys.readouterr().out
    # 20 attack jobs x (200 clean + 200 paper + 4 x 200 transfer + 200 adaptive images of
    # 1x32x32 float32, + labels and crafters) = 115 MB (tests/unit/plan/test_storage.py), and
    # 4 ARC jobs of 100 adaptive images + the 100 clean ones (~0.8 MB each)
    assert re.search(r"^attack +24 +.+ +118 MB$", out, re.M)
    # the data job: mnist-5k decoded, 5,000 x (1x32x32 float32 + int64 label)
    assert re.search(r"^data +1 +.+ +5.16 MB$", out, re.M)
    assert re.search(r"^total +34 +.+ +129 MB$", out, re.M)
    assert "with DVC's cache 259 MB when it copies (DVC's default), 129 MB when it links" in out


def test_plan_shows_the_cost_of_replicates_and_the_hours_subsets_save(capsys, monkeypatch):
    import clmrepro.plan.summary as summary

    def by_images(job, calibration):
        """A stand-in estimator: one hour per scored image and threat model."""
        samples = job["params"].get("samples")
        return 3600.0 * sum(samples.values()) if samples else 60.0

    monkeypatch.setattr(summary, "estimate_seconds", by_images)
    monkeypatch.chdir(ROOT)
    assert main(["plan", "specs/mnist5k.yaml", "--summary"]) == 0
    out = capsys.readouterr().out
    assert "attack-mnist" not in out                      # --summary: no job table
    # 3 replicates x (40 grid + 8 ARC) jobs: ULM, CLM 5 + 1 ARC each; ULM-Adv, CLM-Adv 10 + 2;
    # the one-model rows 5 + 1 each (issue 27)
    assert re.search(r"^attack +144 ", out, re.M)
    assert re.search(r"^mnist: K = 3 replicates: x3 training, attacks and scoring = .* "
                     r"\(one replicate .*: train .*, retrain .*, evaluate .*, sanity .*, "
                     r"attack .*\)$", out, re.M)
    # 90 population grid jobs of 100 + 40 + 40 images instead of 3 x 100 (90 x 120 h saved),
    # 30 one-model grid jobs of 100 + 40 (no transfer) instead of 2 x 100 (30 x 60 h) and 24
    # ARC jobs of 40 adaptive images instead of 100 (24 x 60 h)
    assert ("mnist: transfer on 40, adaptive on 40, ARC on 40 of 100 test images: saves "
            "14040.0 h (those attack jobs: 21360.0 h, 35400.0 h on every image)") in out


def test_schema_to_stdout(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "experiments" in schema["properties"]


def test_console_script_exits_2_without_traceback():
    result = subprocess.run([sys.executable, "-m", "clmrepro.cli", "validate",
                             str(ROOT / "tests/unit/spec/invalid/yaml_syntax.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "YAML syntax error" in result.stderr and "Traceback" not in result.stderr


def test_report_index_on_an_empty_folder(tmp_path, capsys):
    assert main(["report-index", "--reports", str(tmp_path)]) == 0
    assert (tmp_path / "index.html").is_file()
    assert "0 report(s)" in capsys.readouterr().out
