"""benchmarks/pipeline_stages.py on a compiled plan and hand-written benchmark files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from clmrepro.plan.compile import compile_spec
from clmrepro.plan.model import dumps
from clmrepro.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]
# benchmarks/ is not an installed package: load the script by its path
_spec = importlib.util.spec_from_file_location("pipeline_stages",
                                               ROOT / "benchmarks" / "pipeline_stages.py")
pipeline_stages = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(pipeline_stages)
compare, main, read_benchmark = (pipeline_stages.compare, pipeline_stages.main,
                                 pipeline_stages.read_benchmark)
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path: Path, seconds: float, cpu: str = "1.5") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{seconds}\t0:00:01\t1\t1\t1\t1\t0\t0\t50\t{cpu}\n")


@pytest.fixture
def tiny(tmp_path):
    plan = compile_spec(load_spec(ROOT / "specs/tiny.yaml"), "specs/tiny.yaml")
    path = tmp_path / "plan.json"
    path.write_text(dumps(plan.to_dict()))
    return plan, path


def test_read_benchmark(tmp_path):
    path = tmp_path / "b.tsv"
    write_benchmark(path, 12.5, cpu="NA")
    assert read_benchmark(path) == 12.5
    assert read_benchmark(path, "cpu_time") is None
    assert read_benchmark(tmp_path / "missing.tsv") is None


def test_per_stage_sums_and_ratio(tiny, tmp_path):
    plan, path = tiny
    train = plan.stage("train")[0]
    write_benchmark(tmp_path / train.benchmark, train.estimate_s * 2)
    attacks = plan.stage("attack")
    for job in attacks:
        write_benchmark(tmp_path / job.benchmark, job.estimate_s)
    rows = {r["stage"]: r for r in compare(path, tmp_path)}
    assert rows["train"]["measured_jobs"] == 1 and rows["train"]["ratio"] == pytest.approx(0.5, rel=1e-3)
    assert rows["attack"]["measured_jobs"] == len(attacks) and rows["attack"]["ratio"] == pytest.approx(1, rel=1e-3)
    assert rows["retrain"]["measured_jobs"] == 0 and rows["retrain"]["ratio"] is None
    total = rows["total"]
    assert total["measured_s"] == pytest.approx(train.estimate_s * 2 + sum(j.estimate_s for j in attacks))
    assert total["jobs"] == len(plan.jobs)


def test_main_prints_and_appends(tiny, tmp_path, capsys):
    plan, path = tiny
    job = plan.stage("train")[0]
    write_benchmark(tmp_path / job.benchmark, job.estimate_s * 3)
    out = tmp_path / "BENCH.md"
    assert main([str(path), "--root", str(tmp_path), "--append", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| train | 1 / 1 |" in printed and "outside 0.7–1.3" in printed
    text = out.read_text()
    assert text.startswith("### pipeline_stages") and "| total |" in text
    assert main([str(path), "--root", str(tmp_path / "nothing")]) == 1
