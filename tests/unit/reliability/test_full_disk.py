"""A step that hits a full disk says so in one line and leaves the previous outputs intact."""

from __future__ import annotations

import errno
import os

from reliability_helpers import make_job, problem_lines, write_job

from clmrepro.core import checkpoints
from clmrepro.steps import evaluate


def test_evaluate_on_a_full_disk_prints_one_line_and_keeps_old_outputs(
        tmp_path, population_bytes, monkeypatch, capsys):
    (tmp_path / "population.pt").write_bytes(population_bytes)
    job = make_job(tmp_path, "evaluate")
    out = tmp_path / "out"
    out.mkdir()
    for name in ("scores.json", "analysis.json"):
        (out / name).write_text("from the previous run\n")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoints.os, "fsync", no_space)
    assert evaluate.main([str(write_job(tmp_path, job))]) == 1
    (line,) = problem_lines(capsys.readouterr().err, job)
    assert line == (f"[clmrepro] evaluate-test-ulm: {out / 'analysis.json'}: cannot write: no "
                    f"space left on device; nothing was written (the previous file is intact); "
                    f"free some space (or move results/ and .clmrepro-state/ to a larger disk) "
                    f"and rerun")
    assert sorted(p.name for p in out.iterdir()) == ["analysis.json", "scores.json"]
    assert all((out / n).read_text() == "from the previous run\n" for n in ("scores.json",
                                                                            "analysis.json"))
