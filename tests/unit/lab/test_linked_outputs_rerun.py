"""A linking DVC cache leaves outputs as read-only hard links; Snakemake refuses to rerun a job
whose old output a (non-root) user cannot write.  `clmrepro run` deletes those of the jobs the
run will rerun first (clmrepro.lab.release_linked_outputs); the cache keeps them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from clmrepro import lab
from clmrepro.emit import emit_all
from clmrepro.plan.compile import compile_spec
from clmrepro.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]
SUMMARY = ("output_file\tdate\trule\tlog-file(s)\tstatus\tplan\n"
           "results/tiny/mnist/ulm/population.pt\tWed Dec  2 22:50:18 2026\tjob_tiny__train\t"
           "results/tiny/logs/t.log\tok\tno update\n"
           "reports/tiny/report.md\t-\tjob_tiny__report\t-\tmissing\tupdate pending\n")


@pytest.fixture
def tiny(tmp_path):
    plan = compile_spec(load_spec(ROOT / "specs/tiny.yaml"), "specs/tiny.yaml")
    return plan, tmp_path


def write(root: Path, path: str, linked: bool) -> Path:
    """An output; ``linked``: as DVC leaves it, a read-only second link to a cache file."""
    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    full.write_text("old result\n")
    if linked:
        cache = root / ".dvc" / "cache" / path.replace("/", "_")
        cache.parent.mkdir(parents=True, exist_ok=True)
        os.link(full, cache)
        full.chmod(0o444)
    return full


@pytest.fixture
def not_root(monkeypatch):
    """os.access as a non-root user sees it: a read-only file is not writable (root's always is)."""
    real = os.access
    monkeypatch.setattr(lab.os, "access", lambda path, mode: real(path, mode) and not (
        mode & os.W_OK and not os.stat(path).st_mode & 0o200))


def test_parse_summary():
    assert lab.parse_summary(SUMMARY) == {"reports/tiny/report.md"}


def test_read_only_links_are_what_snakemake_would_call_write_protected(tiny, not_root):
    plan, root = tiny
    population = plan.by_id("train-mnist-ulm").outputs["population"]
    record = plan.by_id("train-mnist-ulm").outputs["record"]
    report = plan.by_id("report").outputs["report_md"]
    write(root, population, linked=True)
    write(root, record, linked=False)                     # DVC copied it: writable
    (root / report).parent.mkdir(parents=True)
    (root / report).symlink_to(write(root, "elsewhere", linked=True))  # Snakemake skips symlinks
    assert lab.read_only_links(plan, root) == [population]


def test_root_sees_no_protected_output(tiny):
    plan, root = tiny
    write(root, plan.by_id("train-mnist-ulm").outputs["population"], linked=True)
    if os.geteuid() == 0:
        assert lab.read_only_links(plan, root) == []


def test_only_the_linked_outputs_of_jobs_to_rerun_are_deleted(tiny, not_root):
    plan, root = tiny
    train = plan.by_id("train-mnist-ulm").outputs
    stays = write(root, train["population"], linked=True)     # no update pending
    goes = write(root, train["record"], linked=True)          # update pending
    asked = []

    def pending(name, where):
        asked.append(name)
        return {train["record"], "reports/tiny/report.md"}

    assert lab.release_linked_outputs(plan, root, pending=pending) == [train["record"]]
    assert asked == ["tiny"] and stays.exists() and not goes.exists()
    cache = root / ".dvc" / "cache" / train["record"].replace("/", "_")
    assert cache.read_text() == "old result\n"                # the cache keeps it


def test_no_snakemake_call_without_linked_outputs(tiny):
    plan, root = tiny

    def pending(name, where):
        raise AssertionError("asked Snakemake although no output is a read-only link")

    assert lab.release_linked_outputs(plan, root, pending=pending) == []


def test_pending_outputs_asks_snakemake(tmp_path):
    """A real `snakemake --summary` in a checkout where nothing is built: every output pending."""
    plan = compile_spec(load_spec(ROOT / "specs/tiny.yaml"), "specs/tiny.yaml")
    emit_all(plan, tmp_path)
    shutil.copy(ROOT / "Snakefile", tmp_path / "Snakefile")
    shutil.copytree(ROOT / "workflow" / "rules", tmp_path / "workflow" / "rules")
    shutil.copytree(ROOT / "specs", tmp_path / "specs")
    pending = lab.pending_outputs("tiny", tmp_path)
    assert pending == set(plan.final_outputs())
