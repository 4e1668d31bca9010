"""The lock policy (docs/lab.md, Locks; issue 29): a committed dvc.lock is true of the committed
files, and this repository commits none (the demo's outputs are on no remote); `clmrepro run`
names every lock it wrote, the shared data pipelines' too.

DVC itself writes the locks checked here (`dvc commit` over stand-in outputs), so the checker
reads what DVC records, and `dvc status` is asked whether it agrees.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clmrepro import lab
from clmrepro.emit import emit_all
from clmrepro.plan import paths
from clmrepro.plan.compile import compile_spec
from clmrepro.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent


def tool(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    assert result.returncode == 0, f"{args}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result


def git(cwd: Path, *args: str) -> str:
    return tool(cwd, "git", "-c", "user.name=t", "-c", "user.email=t@t", *args).stdout


def committed_locks() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--", "*dvc.lock"], cwd=ROOT,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: which locks are committed cannot be asked")
    return listed.stdout.split()


def test_every_committed_lock_is_true_and_this_repository_commits_none():
    locks = committed_locks()
    for lock in locks:
        assert lab.lock_disagreements(lock, ROOT) == [], lock
    # The policy of this repository: no pushed outputs, so no lock (a lab's own repository
    # commits every lock its runs write; the line above keeps them true).
    assert locks == [], ("this repository commits no dvc.lock (docs/lab.md, Locks): "
                         f"{', '.join(locks)}")


@pytest.fixture
def recorded(tmp_path):
    """specs/tiny.yaml compiled into a fresh git + DVC checkout, every output a stand-in file,
    recorded with `dvc commit` (DVC writes the spec's lock and the data pipeline's)."""
    plan = compile_spec(load_spec(ROOT / "specs/tiny.yaml"), "specs/tiny.yaml")
    git(tmp_path, "init", "-q")
    tool(tmp_path, "dvc", "init", "-q")
    for name in ["specs/tiny.yaml", "specs/paper_tables.yaml", ".dvcignore"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    emit_all(plan, tmp_path)
    for job in plan.jobs:
        for name, path in job.outputs.items():
            target = tmp_path / path
            if name in job.directories:
                target.mkdir(parents=True, exist_ok=True)
                (target / "figure.png").write_text(job.id)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(job.id)
    tool(tmp_path, "dvc", "commit", "-f", "-q")
    return plan, tmp_path


def test_locks_dvc_writes_are_true_until_a_job_file_changes(recorded):
    plan, root = recorded
    locks = lab.locks_of(plan, root)
    assert locks == [paths.compiled_dir("tiny") + "/dvc.lock",
                     paths.data_pipeline_dir("mnist-5k", "data") + "/dvc.lock"]
    assert [lab.lock_disagreements(lock, root) for lock in locks] == [[], []]
    assert "up to date" in tool(root, "dvc", "status").stdout
    # a knob changes in a job file (a recompile after a spec edit) and the lock is not rewritten
    job_file = paths.job_file("tiny", "attack-mnist-ulm-fgsm-0.3")
    job = json.loads((root / job_file).read_text())
    job["params"]["attack"]["params"] = {**job["params"]["attack"].get("params", {}), "x": 1}
    job["seed"] += 1
    (root / job_file).write_text(json.dumps(job))
    found = lab.lock_disagreements(locks[0], root)
    stage = f"{locks[0]}: attack-mnist-ulm-fgsm-0.3"
    assert any(line.startswith(f"{stage}: {job_file} md5 ") for line in found), found
    assert f"{stage}: param seed of {job_file} differs" in found
    assert f"{stage}: param params.attack of {job_file} differs" in found
    assert len(found) == 3 and lab.lock_disagreements(locks[1], root) == []
    changed = json.loads(tool(root, "dvc", "status", "--json").stdout)  # DVC agrees
    assert set(changed) == {f"{paths.spec_dvc_yaml('tiny')}:attack-mnist-ulm-fgsm-0.3"}
    # the spec itself is the report stage's dependency; a stage's command comes from dvc.yaml
    (root / "specs/tiny.yaml").write_text((root / "specs/tiny.yaml").read_text() + "\n")
    dvc_yaml = root / paths.spec_dvc_yaml("tiny")
    dvc_yaml.write_text(dvc_yaml.read_text().replace("clmrepro.steps.train ", "clmrepro.steps.train  "))
    found = lab.lock_disagreements(locks[0], root)
    assert any(line.startswith(f"{locks[0]}: report: specs/tiny.yaml md5 ") for line in found)
    assert f"{locks[0]}: train-mnist-ulm: command differs from {paths.spec_dvc_yaml('tiny')}'s" in found


def test_the_figures_folder_hashes_the_same_with_snakemakes_marker(recorded):
    """Snakemake writes .snakemake_timestamp into a directory output (its job's end, `snakemake
    --touch`); `dvc repro` and `dvc pull` do not.  .dvcignore leaves it out of DVC's hash."""
    plan, root = recorded
    figures = root / paths.report_outputs("tiny")["figures"]
    (figures / ".snakemake_timestamp").touch()
    assert "up to date" in tool(root, "dvc", "status").stdout
    (figures / "another.png").write_text("x")  # a real change still shows
    assert "modified" in tool(root, "dvc", "status").stdout


def test_run_names_every_lock_it_wrote(recorded):
    plan, root = recorded
    hint = lab.commit_hint(plan, root)
    # nothing is committed yet: the spec's folder and the data pipeline's are new as a whole
    # (each named once, its lock inside), and so are the files every spec shares
    add = next(line for line in hint if line.startswith("  git add "))
    assert add.split()[2:] == [paths.DVC_YAML, paths.data_pipeline_dir("mnist-5k", "data") + "/",
                               paths.CONFIG, paths.compiled_dir("tiny") + "/", paths.SCHEMA]
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "tiny recorded")
    assert lab.commit_hint(plan, root) == [
        "[clmrepro] nothing new for git: workflow/compiled/tiny/dvc.lock, "
        "workflow/compiled/_data/mnist-5k/dvc.lock already committed as they are."]
    # a rerun rewrote both locks: both named, nothing else
    for lock in lab.locks_of(plan, root):
        (root / lock).write_text((root / lock).read_text() + "# rewritten\n")
    add = next(line for line in lab.commit_hint(plan, root) if line.startswith("  git add "))
    assert add.split()[2:] == ["workflow/compiled/_data/mnist-5k/dvc.lock",
                               "workflow/compiled/tiny/dvc.lock"]


def test_a_fresh_clone_dvc_status_agrees_with_the_lock_policy(tmp_path):
    """No lock committed: DVC reports every stage of every compiled pipeline as never recorded:
    its job file (a params file) `new`, where a stale lock reports it `modified`, no command
    changed, every output `deleted`.  (A dependency with no recorded hash, such as the spec
    file, DVC calls `modified` either way.)"""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    for name in filter(None, listed.stdout.split("\0")):
        if (ROOT / name).is_file():
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, tmp_path / name)
    git(tmp_path, "init", "-q")
    status = json.loads(tool(tmp_path, "dvc", "status", "--json").stdout)
    stages = {f"{dvc_yaml.relative_to(tmp_path)}:{name}"
              for dvc_yaml in (tmp_path / paths.COMPILED).rglob("dvc.yaml")
              for name in yaml.safe_load(dvc_yaml.read_text())["stages"]}
    assert f"{paths.spec_dvc_yaml('smoke')}:report" in stages
    assert set(status) == stages
    for stage, changes in status.items():
        job_file = None
        for change in changes:
            assert set(change) <= {"changed deps", "changed outs"}, (stage, change)
            for path, what in change.get("changed deps", {}).items():
                if path.startswith(paths.COMPILED):
                    job_file = what
            for path, what in change.get("changed outs", {}).items():
                assert what == "deleted", (stage, path, what)
        assert job_file == "new", stage


def test_restore_pull_takes_the_recorded_specs_with_their_data_pipelines(recorded):
    plan, root = recorded
    assert lab.pull_plan(None, root) == (
        ["tiny"], [paths.spec_dvc_yaml("tiny"), paths.data_dvc_yaml("mnist-5k", "data")], [])
    (root / lab.lock_of(paths.spec_dvc_yaml("tiny"))).unlink()  # never run and committed
    assert lab.pull_plan(["tiny"], root) == ([], [], ["tiny"])
