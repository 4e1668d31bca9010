"""The measuring side of clmrepro.calibration (torch), kept small: one LeNet5, few calls."""

from __future__ import annotations

import sys
import time

import pytest
import torch

from clmrepro.calibration import attacks, startup, units
from clmrepro.calibration.files import check_calibration
from clmrepro.calibration.run import calibrate, default_name

torch.set_num_threads(1)
CPU = torch.device("cpu")


def test_model_units_are_per_image_at_the_spec_batch_sizes():
    measured = units.model_units("lenet5", CPU, repeats=1)
    assert measured["batch_sizes"] == {"train": 100, "attack": 100, "eval": 1000}
    assert set(measured["forward"]) == {"100", "1000"}
    # per image: a LeNet5 step on one image takes microseconds to a few milliseconds
    for value in (measured["train"], measured["grad"], *measured["forward"].values()):
        assert 1e-7 < value < 1e-2


def test_batched_units_cover_every_stacked_call():
    measured = units.batched_units("lenet5", CPU, n=2, repeats=1)
    assert measured["n"] == 2
    assert set(measured) == {"n", "train", "grad_each", "grad_all", "forward_all"}
    assert all(0 < measured[k] < 1e-2 for k in ("train", "grad_each", "grad_all", "forward_all"))


def test_cpu_clock_ignores_waiting():
    def nap():
        time.sleep(0.05)

    assert units.seconds_per_call(nap, CPU, repeats=1, warmup=0) >= 0.04
    units.use_cpu_clock(True)
    try:
        assert units.seconds_per_call(nap, CPU, repeats=1, warmup=0) < 0.02
    finally:
        units.use_cpu_clock(False)


def test_autoattack_units_and_survival_from_component_runs(monkeypatch):
    runs = {
        "standard": {"counts": {"images": 100, "clean": 90, "apgd_ce": 1, "apgd_t": 0, "fab_t": 0,
                                "square": 0},
                     "reached": {"apgd_ce": 100, "apgd_t": 1, "fab_t": 0, "square": 0},
                     "times": {"apgd_ce": 9.0, "apgd_t": 0.1, "fab_t": 0.5, "square": 0.0}},
        "adversarial": {"counts": {"images": 100, "clean": 80, "apgd_ce": 40, "apgd_t": 20,
                                   "fab_t": 10, "square": 10},
                        "reached": {"apgd_ce": 100, "apgd_t": 80, "fab_t": 40, "square": 20},
                        "times": {"apgd_ce": 8.0, "apgd_t": 40.0, "fab_t": 60.0, "square": 4.0}},
    }
    monkeypatch.setattr(attacks, "autoattack_run", lambda model, *a: runs[model])
    steps, queries = 10, 100
    out = attacks.autoattack_costs({"standard": "standard", "adversarial": "adversarial"},
                                   None, None, "lenet5", CPU, steps, queries)
    # APGD-CE: per initially correct point and step, from the run with more such points
    assert out["units"]["apgd_ce"] == pytest.approx(9.0 / (90 * steps))
    # later components: per point that reached them, from the run where most did
    assert out["units"]["apgd_t"] == pytest.approx(40.0 / (80 * steps))
    assert out["units"]["fab_t"] == pytest.approx(60.0 / (40 * steps))
    assert out["units"]["square"] == pytest.approx(4.0 / (20 * queries))
    assert out["survival"]["adversarial"] == {"clean": 0.8, "apgd_ce": 0.4, "apgd_t": 0.2,
                                              "fab_t": 0.1}
    assert out["survival"]["standard"]["apgd_ce"] == 0.01


def test_autoattack_run_follows_multiattack_on_a_real_model():
    torch.manual_seed(0)
    from clmrepro.core.models import build_model

    model = build_model("lenet5", in_channels=1).eval()
    x = torch.rand(8, 1, 32, 32)
    y = model(x).argmax(1).detach()
    run = attacks.autoattack_run(model, x, y, 0.3, CPU, steps=3, n_queries=20)
    counts, reached = run["counts"], run["reached"]
    assert counts["clean"] == 8 and reached["apgd_ce"] == 8
    assert reached["apgd_t"] == counts["apgd_ce"] and reached["fab_t"] == counts["apgd_t"]
    assert counts["square"] <= counts["fab_t"] <= counts["apgd_t"] <= counts["apgd_ce"] <= 8


def test_run_timed_child_cpu_clock():
    done, wall = startup.run_timed([sys.executable, "-c", "import time; time.sleep(0.3)"])
    assert done.returncode == 0 and wall >= 0.3
    _, cpu = startup.run_timed([sys.executable, "-c", "import time; time.sleep(0.3)"], True)
    assert cpu < 0.25


def test_default_names():
    assert default_name("cuda", "NVIDIA H100 80GB HBM3") == "cuda-nvidia-h100-80gb-hbm3"
    assert default_name("cpu", "AMD EPYC").startswith("cpu-") and default_name("cpu", "x").endswith("core")


@pytest.mark.slow
def test_quick_calibration_end_to_end(tmp_path):
    cal = calibrate("cpu", 1, quick=True, progress=False, architectures=("lenet5",),
                    clock="cpu", note="test")
    check_calibration(cal)
    assert cal["clock"] == "cpu" and cal["note"].startswith("test")
    assert set(cal["startup_s"]) == {"train", "attack", "evaluate", "report"}
    aa = cal["attacks"]["lenet5"]["autoattack"]
    assert set(aa["survival"]) == {"standard", "adversarial"}
    assert aa["survival"]["standard"]["clean"] > 0.5  # the quick standard model learned
