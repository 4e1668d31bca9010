"""Your factory's source file is an input of every job that builds the model (issue 28):
editing it reruns those jobs in Snakemake, and `dvc status` reports those stages changed."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from clmrepro.emit import emit_all
from clmrepro.plan.compile import compile_spec
from clmrepro.spec import parse_spec

ROOT = Path(__file__).resolve().parents[3]
SPEC = """
name: mine
seed: 0
experiments:
  - id: mnist
    dataset: {name: mnist-5k, n_train: 200, n_test: 100}
    architecture: {kind: python, factory: "mymodels.net:build", kwargs: {hidden: 8}}
    populations:
      - {id: ulm, size: 2, regime: {kind: ulm}}
      - {id: clm, size: 2, regime: {kind: clm, from: ulm}}
    evaluation:
      n_samples: 20
      attacks:
        - {kind: fgsm, eps: [0.3]}
"""


def dry_run(where: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "snakemake", "-n"], cwd=where, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout + done.stderr


def test_editing_the_factory_reruns_every_job_that_builds_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "mymodels").mkdir()
    (tmp_path / "mymodels" / "__init__.py").write_text("")
    shutil.copy(ROOT / "examples" / "mlp" / "model.py", tmp_path / "mymodels" / "net.py")
    for name in ("Snakefile",):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "workflow" / "rules", tmp_path / "workflow" / "rules")
    (tmp_path / "specs").mkdir()
    shutil.copy(ROOT / "specs" / "paper_tables.yaml", tmp_path / "specs" / "paper_tables.yaml")
    (tmp_path / "specs" / "mine.yaml").write_text(SPEC)
    plan = compile_spec(parse_spec(SPEC, "specs/mine.yaml"), "specs/mine.yaml")
    emit_all(plan, tmp_path)
    builders = [job for job in plan.jobs if job.stage not in ("data", "report")]
    assert builders and all(job.inputs["factory"] == "mymodels/net.py" for job in builders)
    # every output exists and is newer than every input: nothing to do
    later = time.time() + 60
    for job in plan.jobs:
        for path in job.output_paths():
            target = tmp_path / path
            if job.directories and any(path == job.outputs[d] for d in job.directories):
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.touch()
            os.utime(target, (later, later))
    assert "Nothing to be done" in dry_run(tmp_path)
    # an edit of the factory's source: every job that builds the model is out of date
    edited = tmp_path / "mymodels" / "net.py"
    edited.write_text(edited.read_text() + "\n# edited\n")
    os.utime(edited, (later + 60, later + 60))
    output = dry_run(tmp_path)
    for job in builders:
        assert f"job_mine__{job.rule_name[len('job_'):]}" in output, output[-3000:]
    table = re.search(r"Job stats:\n(.*?)\n\n", output, re.S).group(1)
    assert "data_mnist_5k" not in table                 # the data job does not build it
    # DVC: recorded with `dvc commit`, then the same edit: `dvc status` names those stages
    edited.write_text(edited.read_text().replace("\n# edited\n", ""))
    tool(tmp_path, "git", "init", "-q")
    tool(tmp_path, sys.executable, "-m", "dvc", "init", "-q")
    tool(tmp_path, sys.executable, "-m", "dvc", "commit", "-f", "-q")
    assert "up to date" in tool(tmp_path, sys.executable, "-m", "dvc", "status").stdout
    edited.write_text(edited.read_text() + "\n# edited again\n")
    changed = json.loads(tool(tmp_path, sys.executable, "-m", "dvc", "status", "--json").stdout)
    stages = {name.split(":")[-1] for name in changed}
    assert stages == {job.id for job in builders}, changed


def tool(where: Path, *command: str) -> subprocess.CompletedProcess:
    done = subprocess.run(list(command), cwd=where, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done
