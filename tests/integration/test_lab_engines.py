"""`dvc repro`, `dvc pull` and Snakemake agree (issue 29): a lab round trip through a DVC
remote whichever engine built the origin.

lab-a is the smallest spec with a directory output (the report's figures): one origin builds it
with `dvc repro`, another with `clmrepro run` (Snakemake, which writes .snakemake_timestamp into
the folder); each commits what its run names and pushes to its own remote; a fresh clone pulls,
restores, and finds nothing to do for either engine, with the origin's metrics byte for byte.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import clmrepro, lab_checkout
from test_pipeline import dvc, git, snakemake

from clmrepro.plan import paths

pytestmark = pytest.mark.slow
SPEC = "tests/integration/lab/lab-a.yaml"
LOCKS = [f"{paths.compiled_dir('lab-a')}/dvc.lock",
         f"{paths.data_pipeline_dir('mnist-5k', 'data')}/dvc.lock"]
COMPARED = ["reports/lab-a/metrics.json", "reports/lab-a/dvc_metrics.json",
            "reports/lab-a/mra_by_attack.csv", "reports/lab-a/per_image.csv.gz"]


def git_add_line(output: str) -> list[str]:
    """The files a `git add` line of this output names (DVC's hint, or `clmrepro run`'s)."""
    line = next(line for line in output.splitlines() if line.strip().startswith("git add "))
    return shlex.split(line)[2:]


def publish(repo: Path, remote: Path, files: list[str]) -> None:
    """What docs/lab.md says a lab does after a run: commit what the run names, push."""
    git(repo, "add", *files)
    dvc(repo, "remote", "add", "--default", "lab", str(remote))
    git(repo, "add", ".dvc/config")
    git(repo, "commit", "-q", "-m", "lab-a run recorded")
    assert "pushed" in dvc(repo, "push").stdout
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""


@pytest.fixture(scope="module")
def by_dvc(tmp_path_factory) -> Path:
    """lab-a built by `dvc repro` alone, which ends by naming the locks it wrote."""
    repo = lab_checkout(tmp_path_factory.mktemp("by-dvc"), [SPEC])
    repro = dvc(repo, "repro")
    assert len(re.findall(r"^Running stage", repro.stdout, re.M)) == 5
    assert sorted(git_add_line(repro.stdout)) == sorted(LOCKS)  # the data pipeline's too
    assert not (repo / "reports/lab-a/figures/.snakemake_timestamp").exists()
    publish(repo, tmp_path_factory.mktemp("remote-dvc"), git_add_line(repro.stdout))
    return repo


@pytest.fixture(scope="module")
def by_snakemake(tmp_path_factory) -> Path:
    """lab-a built by `clmrepro run` (Snakemake, `dvc commit`, restore), which ends by naming
    what to commit: every lock it wrote."""
    repo = lab_checkout(tmp_path_factory.mktemp("by-snakemake"), [SPEC])
    out = clmrepro(repo, "run", SPEC, "--no-doctor").stdout
    assert sorted(git_add_line(out)) == sorted(LOCKS)  # the pipeline files are committed
    assert (repo / "reports/lab-a/figures/.snakemake_timestamp").is_file()
    publish(repo, tmp_path_factory.mktemp("remote-snakemake"), git_add_line(out))
    return repo


def clone(origin: Path, target: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(origin), str(target)], check=True)
    assert not (target / "results").exists() and not (target / "data").exists()
    return target


def assert_current_and_identical(clone: Path, origin: Path) -> None:
    assert "Nothing to be done" in snakemake(clone, "-n").stdout
    assert "Data and pipelines are up to date" in dvc(clone, "status").stdout
    for path in COMPARED:
        assert (clone / path).read_bytes() == (origin / path).read_bytes(), path
    figures = sorted(p.name for p in (origin / "reports/lab-a/figures").iterdir())
    assert figures and all((clone / "reports/lab-a/figures" / name).read_bytes()
                           == (origin / "reports/lab-a/figures" / name).read_bytes()
                           for name in figures if name != ".snakemake_timestamp")


def test_origin_built_by_dvc_repro_clone_pulled_and_restored(by_dvc: Path, tmp_path):
    repo = clone(by_dvc, tmp_path / "clone")
    pull = dvc(repo, "pull")  # a plain pull: every committed lock's outputs are on the remote
    assert "added" in pull.stdout, pull.stdout
    assert "Data and pipelines are up to date" in dvc(repo, "status").stdout
    clmrepro(repo, "restore")  # Snakemake marks the figures folder: DVC does not see it
    assert (repo / "reports/lab-a/figures/.snakemake_timestamp").is_file()
    assert_current_and_identical(repo, by_dvc)


def test_origin_built_by_snakemake_clone_restored_with_pull_and_reproduced(by_snakemake: Path,
                                                                           tmp_path):
    repo = clone(by_snakemake, tmp_path / "clone")
    # one command: `dvc pull` of the spec's pipeline and the data pipeline it reads, restore
    out = clmrepro(repo, "restore", "--pull").stdout
    assert "added" in out and (repo / "data/prepared/mnist-5k.pt").is_file(), out
    assert "Data and pipelines are up to date" in dvc(repo, "status").stdout
    repro = dvc(repo, "repro")  # DVC in the clone: nothing to run either
    assert not re.search(r"^Running stage", repro.stdout, re.M), repro.stdout
    assert_current_and_identical(repo, by_snakemake)


def test_a_dvc_repro_build_is_current_for_snakemake_after_restore(by_dvc: Path, tmp_path):
    repo = tmp_path / "restored"
    shutil.copytree(by_dvc, repo, symlinks=True)
    clmrepro(repo, "restore")
    assert "Nothing to be done" in snakemake(repo, "-n").stdout
    assert "Data and pipelines are up to date" in dvc(repo, "status").stdout
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""


def outputs_recorded(repo: Path) -> dict[str, str]:
    return {out["path"]: out["md5"]
            for lock in LOCKS
            for stage in yaml.safe_load((repo / lock).read_text())["stages"].values()
            for out in stage.get("outs", [])}


def test_both_engines_record_the_same_outputs(by_dvc: Path, by_snakemake: Path):
    """The same commands on the same machine: the same bytes, the figures folder's hash
    included (.snakemake_timestamp is in .dvcignore).  What differs records the run itself:
    the training record its wall-clock seconds, the report its provenance (the git commit, and
    Snakemake's benchmark costs, which a `dvc repro` build has none of)."""
    a, b = outputs_recorded(by_dvc), outputs_recorded(by_snakemake)
    assert set(a) == set(b) and "reports/lab-a/figures" in a
    assert a["reports/lab-a/figures"].endswith(".dir")
    differ = {path for path in a if a[path] != b[path]}
    report = paths.report_outputs("lab-a")
    assert differ == {paths.training_record("lab-a", "mnist", "ulm"), report["report_md"],
                      report["report_html"]}, differ
    training = [json.loads((repo / paths.training_record("lab-a", "mnist", "ulm")).read_text())
                for repo in (by_dvc, by_snakemake)]
    for record in training:
        record.pop("wall_seconds", None)
    assert training[0] == training[1]
