"""Compiling is a pure function of the spec and the calibration (issue 25): a GPU in the machine,
$CLMREPRO_CALIBRATION or the core count change no committed file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clmrepro.calibration import files
from clmrepro.emit import emit_all
from clmrepro.plan.compile import compile_spec
from clmrepro.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]
SMOKE = "specs/smoke.yaml"


def _emitted(root: Path) -> dict[str, bytes]:
    plan = compile_spec(load_spec(ROOT / SMOKE), SMOKE)
    return {relative: (root / relative).read_bytes() for relative in emit_all(plan, root)}


@pytest.fixture
def gpu_machine(tmp_path, monkeypatch):
    """This machine as a 64-core one with an H100 visible and a calibration named in the
    environment (a CUDA one, as `clmrepro calibrate` writes on such a machine)."""
    cuda = json.loads((ROOT / "calibration/cpu-2core.json").read_text())
    cuda["name"], cuda["machine"] = "h100", {**cuda["machine"], "device": "cuda",
                                             "device_name": "NVIDIA H100 80GB HBM3"}
    cuda["startup_s"] = {stage: 100.0 for stage in cuda["startup_s"]}
    path = tmp_path / "h100.json"
    path.write_text(json.dumps(cuda))
    monkeypatch.setattr(files, "local_gpu_name", lambda: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setenv(files.ENV_VARIABLE, str(path))
    files.machine_calibration.cache_clear()
    yield
    files.machine_calibration.cache_clear()


def test_the_stub_is_seen_where_the_machine_is_asked(gpu_machine):
    """The stubs reach the machine-dependent path (`clmrepro plan`'s calibration): the test
    below would pass vacuously otherwise."""
    from clmrepro.plan.estimate import for_this_machine

    assert for_this_machine("auto")["name"] == "h100"


def test_compiling_the_demo_with_a_gpu_visible_changes_no_committed_file(gpu_machine, tmp_path):
    emitted = _emitted(tmp_path / "checkout")
    assert "workflow/compiled/smoke/plan.json" in emitted
    changed = [relative for relative, data in emitted.items()
               if (ROOT / relative).read_bytes() != data]
    assert changed == []


def test_the_plan_records_the_calibration_that_priced_it(gpu_machine):
    plan = compile_spec(load_spec(ROOT / SMOKE), SMOKE)
    assert plan.calibration["name"] == "cpu-2core"
    committed = json.loads((ROOT / "workflow/compiled/smoke/plan.json").read_text())
    assert committed["calibration"] == plan.calibration
