"""benchmarks/storage.py on a compiled plan and hand-made output files."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from clmrepro.plan.compile import compile_spec
from clmrepro.plan.model import dumps
from clmrepro.plan.storage import plan_bytes
from clmrepro.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]
# benchmarks/ is not an installed package: load the script by its path
_spec = importlib.util.spec_from_file_location("storage_benchmark", ROOT / "benchmarks" / "storage.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_planned_against_files_on_disk(tmp_path, capsys):
    plan = compile_spec(load_spec(ROOT / "specs/tiny.yaml"), "specs/tiny.yaml")
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(dumps(plan.to_dict()))
    assert bench.main([str(plan_path), "--root", str(tmp_path)]) == 1  # nothing built yet
    sizes = {job.id: job for job in plan_bytes(plan).jobs}
    train = sizes["train-mnist-ulm"]
    for name, planned in train.outputs.items():                        # half the planned bytes
        path = tmp_path / train.paths[name]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * (planned // 2))
    figures = tmp_path / sizes["report"].paths["figures"]              # a folder: its files
    figures.mkdir(parents=True)
    (figures / "a.png").write_bytes(b"x" * 1000)
    (figures / "b.png").write_bytes(b"x" * 500)
    rows, outputs = bench.compare(plan_path, tmp_path)
    by_stage = {row["stage"]: row for row in rows}
    assert by_stage["train"]["found"] == by_stage["train"]["outputs"] == 2
    assert abs(by_stage["train"]["ratio"] - 2.0) < 0.01
    assert by_stage["retrain"]["found"] == 0 and by_stage["retrain"]["ratio"] is None
    figure_row = next(r for r in outputs if r["output"] == "figures")
    assert figure_row["measured"] == 1500
    assert bench.main([str(plan_path), "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| train | 2 / 2 |" in out and "2.00 (outside 0.8–1.2)" in out
    assert "DVC: none in this checkout" in out


def test_cache_line_counts_hard_links_shared_with_the_workspace(tmp_path):
    import os

    cache = tmp_path / ".dvc" / "cache" / "files" / "md5" / "ab"
    cache.mkdir(parents=True)
    (tmp_path / ".dvc" / "config").write_text("[cache]\n    type = \"hardlink,copy\"\n")
    (cache / "shared").write_bytes(b"x" * 300)
    os.link(cache / "shared", tmp_path / "output.pt")
    (cache / "own").write_bytes(b"y" * 50)
    line = bench.cache_line(tmp_path)
    assert "350 bytes" in line and "300 of them hard links shared" in line and "50 its own" in line
    assert "(links)" in line
