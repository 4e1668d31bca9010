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
    assert len(list((tmp_path / paths.jobs_dir("tiny")).glob("*.json"))) == len(plan["jobs"]) == 13


def test_plan_shows_jobs_and_estimate(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["plan", "specs/smoke.yaml"]) == 0
    out = capsys.readouterr().out
    assert "attack-mnist-clm-adv-eot-pgd-0.3" in out
    assert re.search(r"^total +49 ", out, re.M)


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
