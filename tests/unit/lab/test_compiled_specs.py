"""workflow/compiled/<spec>/ is the list of compiled specs: select, merge for Snakemake, remove one."""

from __future__ import annotations

from pathlib import Path

import pytest

from clmrepro.cli import main
from clmrepro.emit import emit_all
from clmrepro.compiled import (UnknownSpec, compiled_specs, load_plans, parse_selection,
                                    remove_spec, snakemake_plan, spec_rule_name)
from clmrepro.plan import paths
from clmrepro.plan.compile import compile_spec
from clmrepro.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def two_specs(tmp_path) -> Path:
    for name in ("tiny", "smoke"):
        emit_all(compile_spec(load_spec(ROOT / f"specs/{name}.yaml"), f"specs/{name}.yaml"),
                 tmp_path)
    return tmp_path


def test_selection(two_specs):
    assert compiled_specs(two_specs) == ["smoke", "tiny"]
    assert parse_selection("all", two_specs) == ["smoke", "tiny"]
    assert parse_selection("tiny", two_specs) == ["tiny"]
    assert parse_selection("tiny, smoke", two_specs) == ["tiny", "smoke"]
    with pytest.raises(UnknownSpec, match="spec 'paper' is not compiled here; compiled: smoke, tiny"):
        parse_selection("tiny,paper", two_specs)


def test_snakemake_rule_names_carry_the_spec(two_specs):
    plans = load_plans("all", two_specs)
    merged = snakemake_plan(plans)
    # both specs plan data-mnist-5k: one shared job (one job file, one rule)
    assert len(merged.jobs) == sum(len(p.jobs) for p in plans.values()) - 1
    names = [job.rule_name for job in merged.jobs]
    assert len(set(names)) == len(names)
    assert "job_tiny__train_mnist_ulm" in names and "job_smoke__train_mnist_ulm" in names
    assert names.count("data_mnist_5k") == 1
    assert set(merged.final_outputs()) == {p for plan in plans.values() for p in plan.final_outputs()}
    assert spec_rule_name("slurm-tiny") == "spec_slurm_tiny"


def test_remove_one_spec_leaves_the_other(two_specs):
    before = {p: p.read_bytes() for p in (two_specs / paths.compiled_dir("smoke")).rglob("*")
              if p.is_file()}
    (two_specs / "results/tiny/mnist").mkdir(parents=True)
    assert remove_spec("tiny", two_specs) == [paths.compiled_dir("tiny")]
    assert (two_specs / "results/tiny/mnist").is_dir()  # outputs stay unless asked
    assert compiled_specs(two_specs) == ["smoke"]
    assert {p: p.read_bytes() for p in before} == before
    assert (two_specs / paths.DVC_YAML).is_file() and (two_specs / paths.CONFIG).is_file()
    with pytest.raises(UnknownSpec):
        remove_spec("tiny", two_specs)


def test_shared_data_pipeline_goes_with_the_last_spec_that_reads_it(two_specs):
    shared = two_specs / paths.data_pipeline_dir("mnist-5k", "data")
    assert (shared / "job.json").is_file() and (shared / "dvc.yaml").is_file()
    (two_specs / "data/prepared").mkdir(parents=True)
    (two_specs / "data/prepared/mnist-5k.pt").write_bytes(b"prepared")
    remove_spec("tiny", two_specs)
    assert (shared / "dvc.yaml").is_file()           # smoke still reads mnist-5k
    assert remove_spec("smoke", two_specs) == [paths.compiled_dir("smoke"),
                                               paths.data_pipeline_dir("mnist-5k", "data")]
    assert not shared.exists()
    assert (two_specs / "data/prepared/mnist-5k.pt").read_bytes() == b"prepared"  # data stays


def test_remove_with_outputs(two_specs):
    for folder in ("results/tiny/mnist", "reports/tiny", ".clmrepro-state/tiny/mnist",
                   "results/smoke/mnist"):
        (two_specs / folder).mkdir(parents=True)
    removed = remove_spec("tiny", two_specs, outputs=True)
    assert removed == [paths.compiled_dir("tiny"), "results/tiny", "reports/tiny",
                       ".clmrepro-state/tiny"]
    assert (two_specs / "results/smoke/mnist").is_dir()


def test_cli_list_quick_and_remove(two_specs, monkeypatch, capsys):
    monkeypatch.chdir(two_specs)
    assert main(["list", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "smoke" in out and "tiny" in out and "(not built)" in out
    assert main(["remove", "nope"]) == 1
    assert "not compiled here" in capsys.readouterr().err
    assert main(["remove", "tiny"]) == 0
    assert "tiny: removed workflow/compiled/tiny" in capsys.readouterr().out
    assert main(["status", "--quick"]) == 0
    assert "tiny" not in capsys.readouterr().out
