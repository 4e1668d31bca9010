"""End to end: compiled specs through Snakemake and DVC, in temporary copies of the repository.

The tiny spec (specs/tiny.yaml) runs the real steps; the paper spec only dry-runs.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from clmrepro.plan import load_plan, paths

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "CLMREPRO_GPUS": "0", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-6000:]}")
    return result


def copy_repo(target: Path) -> Path:
    """The tracked (and not ignored) files of the repository, as a fresh git repository."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git(target, "init", "-q")
    git(target, "add", "-A")
    git(target, "commit", "-q", "-m", "copy")
    return target


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout


def snakemake(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(BIN / "snakemake"), *args], cwd, check=check)


def dvc(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return run([str(BIN / "dvc"), *args], cwd)


def planned_jobs(output: str) -> dict[str, int]:
    """Job counts of a Snakemake dry run ("job  count" table)."""
    counts = {}
    for line in output.splitlines():
        match = re.match(r"^(job_\S+|data_\S+|all|total)\s+(\d+)$", line.strip())
        if match:
            counts[match.group(1)] = int(match.group(2))
    return counts


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """tiny compiled and built by Snakemake, outputs recorded by DVC, a local DVC remote."""
    repo = copy_repo(tmp_path_factory.mktemp("repo"))
    # a checkout with tiny alone (the copy holds the committed demo spec too; docs/lab.md)
    run([sys.executable, "-m", "clmrepro.cli", "remove", "smoke"], repo)
    run([sys.executable, "-m", "clmrepro.cli", "compile", "specs/tiny.yaml"], repo)
    snakemake(repo, "-j2", "--resources", "gpu=1")
    dvc(repo, "commit", "-f", "-q")
    # as `make demo` does: dvc commit rewrites the outputs, restore puts their times in DAG order
    run([sys.executable, "-m", "clmrepro.cli", "restore"], repo)
    remote = tmp_path_factory.mktemp("remote")
    dvc(repo, "remote", "add", "-d", "local", str(remote))
    dvc(repo, "push", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tiny results recorded")
    return repo


@pytest.mark.slow
def test_tiny_pipeline_writes_metrics(tiny_run: Path):
    metrics = json.loads((tiny_run / "reports/tiny/metrics.json").read_text())
    strongest = [r for r in metrics["records"] if r["attack"] == "strongest"]
    records = [r for r in metrics["records"] if r["attack"] != "strongest"]
    # 2 populations × (benign + 2 attacks × 3 threat models), and per population and threat
    # model the strongest attack per image, never above the attacks it is taken over
    assert len(records) == 2 * (1 + 2 * 3) and len(strongest) == 2 * 3
    for best in strongest:
        same = [r["mra"] for r in records if r["attack"] != "benign" and
                (r["population"], r["threat_model"]) == (best["population"], best["threat_model"])]
        assert len(same) == 2 and best["mra"] <= min(same) + 1e-12
    keys = {(r["population"], r["attack"], r["threat_model"]) for r in records}
    assert ("clm", "pgd", "adaptive") in keys and ("ulm", "benign", "paper") in keys
    for record in records:
        assert 0.0 <= record["mra"] <= 1.0
        assert len(record["per_submodel"]) == record["n_submodels"] == 2
        assert record["n_samples"] == 40
    assert (tiny_run / "reports/tiny/report.html").is_file()
    assert (tiny_run / "results/tiny/benchmarks/train-mnist-ulm.tsv").is_file()
    assert "Nothing to be done" in snakemake(tiny_run, "-n").stdout


@pytest.mark.slow
def test_dvc_is_current_after_snakemake(tiny_run: Path):
    assert "up to date" in dvc(tiny_run, "status").stdout
    repro = dvc(tiny_run, "repro")
    assert "didn't change, skipping" in repro.stdout or "up to date" in repro.stdout
    assert not re.search(r"^Running stage", repro.stdout, re.M)


@pytest.mark.slow
def test_changing_one_eps_reruns_only_that_attack(tiny_run: Path, tmp_path):
    repo = tmp_path / "edit"
    shutil.copytree(tiny_run, repo, symlinks=True)
    spec = repo / "specs/tiny.yaml"
    spec.write_text(spec.read_text().replace("{kind: pgd, eps: [0.3]", "{kind: pgd, eps: [0.25]"))
    run([sys.executable, "-m", "clmrepro.cli", "compile", "specs/tiny.yaml"], repo)
    counts = planned_jobs(snakemake(repo, "-n").stdout)
    # Snakemake rule names carry the spec; DVC names a stage by its spec's dvc.yaml
    # (an attack job crafts and scores: no separate evaluate job)
    assert counts == {"job_tiny__attack_mnist_ulm_pgd_0_25": 1,
                      "job_tiny__attack_mnist_clm_pgd_0_25": 1,
                      "job_tiny__report": 1, "all": 1, "total": 4}
    status = dvc(repo, "status", "--json").stdout
    changed = set(json.loads(status))
    stage = f"{paths.spec_dvc_yaml('tiny')}:"
    assert changed == {stage + s for s in ["attack-mnist-ulm-pgd-0.25", "attack-mnist-clm-pgd-0.25",
                                           "report"]}


@pytest.mark.slow
def test_fresh_clone_pull_and_restore_leaves_nothing_to_do(tiny_run: Path, tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(tiny_run), str(clone)], check=True)
    assert not (clone / "results").exists()
    dvc(clone, "pull", "-q")
    assert (clone / paths.population("tiny", "mnist", "clm")).is_file()
    run([sys.executable, "-m", "clmrepro.cli", "restore"], clone)
    assert "Nothing to be done" in snakemake(clone, "-n").stdout
    assert "up to date" in dvc(clone, "status").stdout
    assert (json.loads((clone / "reports/tiny/metrics.json").read_text())
            == json.loads((tiny_run / "reports/tiny/metrics.json").read_text()))


@pytest.mark.slow
def test_dvc_repro_alone_restores_and_reruns(tiny_run: Path, tmp_path):
    """`dvc repro` alone: missing outputs come back from the cache; forced stages run the very
    commands Snakemake ran and reproduce the same scores (a full rebuild would double the cost)."""
    repo = tmp_path / "repro"
    shutil.copytree(tiny_run, repo, symlinks=True)
    adversarial = repo / paths.adversarial("tiny", "mnist", "ulm", "fgsm", 0.3)
    scores = repo / paths.scores("tiny", "mnist", "ulm", "fgsm", 0.3)
    before = json.loads(scores.read_text())
    adversarial.unlink()
    shutil.rmtree(repo / "reports/tiny")
    dvc(repo, "repro")
    assert adversarial.is_file() and (repo / "reports/tiny/metrics.json").is_file()
    chain = [f"{paths.spec_dvc_yaml('tiny')}:{stage}"
             for stage in ["attack-mnist-ulm-fgsm-0.3", "report"]]
    repro = dvc(repo, "repro", "--force", "--single-item", *chain)
    assert re.findall(r"^Running stage '([^']+)'", repro.stdout, re.M) == chain
    assert json.loads(scores.read_text()) == before
    # 14 records and 6 strongest-attack rows (test_tiny_pipeline_writes_metrics)
    assert len(json.loads((repo / "reports/tiny/metrics.json").read_text())["records"]) == 20
    assert "up to date" in dvc(repo, "status").stdout


def _paper_copy(tmp_path: Path) -> Path:
    for name in ["Snakefile", "specs/paper.yaml", "specs/paper_tables.yaml"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "workflow/rules", tmp_path / "workflow/rules")
    run([sys.executable, "-m", "clmrepro.cli", "compile", "specs/paper.yaml"], tmp_path)
    return tmp_path


def test_paper_dag_dry_runs(tmp_path):
    repo = _paper_copy(tmp_path)
    counts = planned_jobs(snakemake(repo, "-n").stdout)
    plan = load_plan(repo / paths.plan_file("paper"))
    # 2 data jobs (mnist, cifar10) + 8 trains (with the one-model rows, issue 27) + 4 retrains
    # + 96 fused attack-and-score jobs (80 for the grid: 2 datasets x (6 pops x 5 attacks + 2
    # adversarial pops x 5 at the larger budget); 16 ARC) + 12 evaluates + 12 sanity checks
    # (one per population) + 1 report, and Snakemake's `all`.
    kinds = Counter(job.job["id"].split("-")[0] for job in plan.jobs)
    assert kinds == {"data": 2, "train": 8, "retrain": 4, "attack": 96, "evaluate": 12,
                     "sanity": 12, "report": 1}
    assert counts["total"] == len(plan.jobs) + 1 == 136
    assert counts["data_mnist"] == counts["data_cifar10"] == 1
    assert counts["job_paper__report"] == 1 and counts["job_paper__train_cifar10_ulm"] == 1


@pytest.mark.slow
def test_paper_noop_snakemake_is_fast(tmp_path):
    repo = _paper_copy(tmp_path)
    plan = load_plan(repo / paths.plan_file("paper"))
    stamp = time.time() + 5
    for index, job in enumerate(plan.jobs):  # the plan lists producers before consumers
        for name, path in job.outputs.items():
            target = repo / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if name in job.directories:
                target.mkdir(exist_ok=True)
            else:
                target.touch()
            os.utime(target, (stamp + index, stamp + index))
    start, cpu_start = time.perf_counter(), _children_cpu()
    result = snakemake(repo, "-j1")
    elapsed, cpu = time.perf_counter() - start, _children_cpu() - cpu_start
    assert "Nothing to be done" in result.stdout + result.stderr
    print(f"no-op snakemake on the paper DAG ({len(plan.jobs)} jobs): {elapsed:.2f} s wall, "
          f"{cpu:.2f} s CPU")
    # CPU time, not wall time: other test runs share the 2 cores and stretch the wall clock.
    assert cpu < 5.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
