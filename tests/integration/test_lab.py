"""A lab's checkout: two specs compiled and run side by side, each with its own pipeline.

Both are current for Snakemake and DVC, rerunning either does nothing, DVC's comparison
commands work on our outputs, and removing one leaves the other intact.  (docs/lab.md)
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from conftest import clmrepro
from test_pipeline import dvc, git, planned_jobs, snakemake

from clmrepro.plan import paths

pytestmark = pytest.mark.slow


def copy_of(repo: Path, target: Path) -> Path:
    shutil.copytree(repo, target, symlinks=True)
    return target


def nothing_to_do(repo: Path, *args: str) -> bool:
    return "Nothing to be done" in snakemake(repo, "-n", *args).stdout


def test_both_specs_are_current_for_snakemake_and_dvc(lab_run: Path):
    assert nothing_to_do(lab_run)
    assert nothing_to_do(lab_run, "--config", "spec=lab-a")
    assert nothing_to_do(lab_run, "spec_lab_b")
    assert "Data and pipelines are up to date" in dvc(lab_run, "status").stdout
    # `dvc repro` from the top reproduces every compiled spec: here, nothing to run
    repro = dvc(lab_run, "repro")
    assert not re.search(r"^Running stage", repro.stdout, re.M)
    skipped = set(re.findall(r"^Stage '([^']+)' didn't change", repro.stdout, re.M))
    # both specs' stages and the one data stage they share (mnist-5k)
    assert {s.split(":")[0] for s in skipped} == {paths.spec_dvc_yaml("lab-a"),
                                                  paths.spec_dvc_yaml("lab-b"),
                                                  paths.data_dvc_yaml("mnist-5k", "data")}
    listing = clmrepro(lab_run, "list").stdout
    for name in ("lab-a", "lab-b"):
        row = next(line for line in listing.splitlines() if line.startswith(name))
        assert row.count("up to date") == 2 and f"reports/{name}/report.html" in row, listing


def test_rerunning_either_spec_does_nothing(lab_run: Path, tmp_path):
    repo = copy_of(lab_run, tmp_path / "rerun")
    # a job that runs writes its log (not a DVC output, so `dvc commit` leaves it alone)
    before = {p: p.stat().st_mtime_ns for p in (repo / "results").rglob("logs/*.log")}
    planned = {job["log"] for name in ("lab-a", "lab-b")
               for job in json.loads((repo / paths.plan_file(name)).read_text())["jobs"]}
    # every job of both specs ran once; both plan data-mnist-5k, one shared job (one log)
    assert set(map(str, before)) == {str(repo / log) for log in planned}
    for spec in ("tests/integration/lab/lab-a.yaml", "tests/integration/lab/lab-b.yaml"):
        result = clmrepro(repo, "run", spec)
        assert "Nothing to be done" in result.stdout + result.stderr
    assert {p: p.stat().st_mtime_ns for p in before} == before
    assert "Data and pipelines are up to date" in dvc(repo, "status").stdout
    assert nothing_to_do(repo)


def test_sweep_members_and_figure(lab_run: Path):
    plan = json.loads((lab_run / paths.plan_file("lab-b")).read_text())
    assert [j["job"]["id"] for j in plan["jobs"] if j["job"]["stage"] == "train"] == [
        "train-mnist-clm-alpha0.05", "train-mnist-clm-alpha0.5"]
    figure = lab_run / "reports/lab-b/figures/sweep-mnist-clm.png"
    assert figure.is_file()
    assert "sweep-mnist-clm.png" in (lab_run / "reports/lab-b/report.md").read_text()
    metrics = json.loads((lab_run / "reports/lab-b/dvc_metrics.json").read_text())
    assert {"mnist/clm-alpha0.05/fgsm/0.3/paper", "mnist/clm-alpha0.5/fgsm/0.3/paper"} <= set(metrics)


def test_dvc_metrics_show_reads_both_specs(lab_run: Path):
    shown = json.loads(dvc(lab_run, "metrics", "show", "--json").stdout)
    files = shown[""]["data"]  # the workspace
    assert set(files) == {"reports/lab-a/dvc_metrics.json", "reports/lab-b/dvc_metrics.json"}
    assert files["reports/lab-a/dvc_metrics.json"]["data"]["mnist/ulm/fgsm/0.3/paper"] >= 0


def test_metrics_params_and_plots_diff_after_a_changed_seed(lab_run: Path, tmp_path):
    repo = copy_of(lab_run, tmp_path / "diff")
    spec = repo / "tests/integration/lab/lab-a.yaml"
    spec.write_text(spec.read_text().replace("\nseed: 0\n", "\nseed: 5\n"))
    clmrepro(repo, "run", "tests/integration/lab/lab-a.yaml")
    assert nothing_to_do(repo)
    assert "Data and pipelines are up to date" in dvc(repo, "status").stdout
    diff = json.loads(dvc(repo, "metrics", "diff", "--json").stdout)
    assert set(diff) == {"reports/lab-a/dvc_metrics.json"}  # lab-b did not change
    changed = diff["reports/lab-a/dvc_metrics.json"]
    assert "mnist/ulm/fgsm/0.3/paper" in changed
    for key, values in changed.items():
        assert values["new"] != values["old"] and values["diff"] == pytest.approx(
            values["new"] - values["old"]), key
    params = json.loads(dvc(repo, "params", "diff", "--json").stdout)
    train = params[paths.job_file("lab-a", "train-mnist-ulm")]
    assert set(train) == {"seed"}  # the derived seed is the only knob that moved
    assert not any(path.startswith(paths.jobs_dir("lab-b")) for path in params)
    plots = json.loads(dvc(repo, "plots", "diff", "HEAD", "--json").stdout)
    (plot,) = plots["data"]["reports/lab-a/mra_by_attack.csv"]
    assert set(plot["revisions"]) == {"HEAD", "workspace"}


def test_removing_one_spec_leaves_the_other(lab_run: Path, tmp_path):
    repo = copy_of(lab_run, tmp_path / "remove")
    kept = {p: p.read_bytes() for p in [*(repo / paths.compiled_dir("lab-b")).rglob("*"),
                                         *(repo / "results/lab-b").rglob("*"),
                                         *(repo / "reports/lab-b").rglob("*")] if p.is_file()}
    out = clmrepro(repo, "remove", "lab-a", "--outputs").stdout
    assert out.startswith("lab-a: removed workflow/compiled/lab-a, results/lab-a, reports/lab-a")
    assert not (repo / paths.compiled_dir("lab-a")).exists()
    assert {p: p.read_bytes() for p in kept} == kept
    assert nothing_to_do(repo)
    assert "Data and pipelines are up to date" in dvc(repo, "status").stdout
    assert planned_jobs(snakemake(repo, "-n", "--config", "spec=lab-b").stdout) == {}
    assert "Running stage" not in dvc(repo, "repro").stdout
    # git sees exactly one spec's pipeline gone; the other's dvc.lock is untouched
    changes = git(repo, "status", "--porcelain").splitlines()
    assert changes and all(line[3:].startswith(paths.compiled_dir("lab-a")) for line in changes)
