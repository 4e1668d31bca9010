"""The cost model of clmrepro.plan.estimate on a hand-made calibration with round numbers,
so each expected value can be checked by hand against the module docstring's formulas."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from clmrepro.calibration import files
from clmrepro.calibration.files import CalibrationError, choose_calibration, load_calibration
from clmrepro.kinds import regimes
from clmrepro.kinds.checks.square import SQUARE_SURVIVAL
from clmrepro.plan import estimate
from clmrepro.plan.compile import compile_spec
from clmrepro.plan.estimate import authors_settings, estimate_seconds, runtime_minutes
from clmrepro.spec import load_spec

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = Path(__file__).parent / "fixtures" / "round-numbers.json"


def calibration(device="cpu", **changes) -> dict:
    """fixtures/round-numbers.json: T 1e-3, F(100) 1e-4, F(1000) 2e-4, G 2e-3, batched T 5e-4,
    G_each = G_all 1e-3, F_all 5e-5; bf16 T 2.5e-4, G 1e-3; attack steps 3e-3 (FGSM 4e-3);
    D(4) 6e-3, D(10) 9e-3; start-up 2 / 3 / 4 / 5 s; threads 2 run 1.6x faster."""
    cal = json.loads(FIXTURE.read_text())
    cal["machine"]["device"] = device
    cal.update(changes)
    return files.check_calibration(cal)


def train_job(size=2, epochs=3, adversarial=None, linking=None, execution=None, threads=1,
              stage="train"):
    params = {"dataset": {"name": "mnist-5k", "n_train": 100, "n_test": 50, "root": "data",
                          "split_seed": 0},
              "architecture": "lenet5",
              "population": {"id": "p", "regime": "ulm", "size": size, "from": None},
              "training": {"epochs": epochs, "batch_size": 100, "eval_batch_size": 1000},
              "linking": linking, "adversarial": adversarial}
    if execution is not None:
        params["execution"] = execution
    return {"id": "train-x-p", "stage": stage, "device": "auto", "threads": threads,
            "inputs": {}, "outputs": {}, "params": params}


def attack_job(kind="pgd", params=None, samples=None, regime="ulm", size=4, fused=True,
               execution=None):
    p = {"dataset": {"name": "mnist-5k", "n_train": 100, "n_test": 1000},
         "architecture": "lenet5",
         "population": {"id": regime, "regime": regime, "size": size, "from": None},
         "attack": {"id": kind, "kind": kind, "eps": 0.3,
                    "params": params if params is not None else {"alpha": 0.01, "steps": 10,
                                                                  "random_start": True}},
         "threat_models": list((samples or {"paper": 0}).keys()), "crafting": "per-batch",
         "n_samples": 100, "batch_size": 100}
    if samples is not None:
        p["samples"] = samples
    if execution is not None:
        p["execution"] = execution
    outputs = {"adversarial": "a.pt", **({"scores": "s.json"} if fused else {})}
    return {"id": "attack-x", "stage": "attack", "device": "auto", "threads": 1,
            "inputs": {"population": "p.pt"}, "outputs": outputs, "params": p}


SEQUENTIAL = {"population": "sequential", "memory_format": "contiguous", "precision": "fp32",
              "clm_schedule": "sequential"}


def test_plan_and_estimate_import_no_torch():
    code = ("import sys, clmrepro.plan, clmrepro.plan.estimate, clmrepro.calibration.files; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_train_formula_and_startup():
    cal = calibration()
    # S + E * n * (N_train * T + N_test * F(1000)) = 2 + 3 * 2 * (100 * 1e-3 + 50 * 2e-4)
    assert estimate_seconds(train_job(), cal) == pytest.approx(2 + 6 * (0.1 + 0.01))
    # adversarial training adds k PGD steps per training image
    adv = train_job(adversarial={"eps": 0.3, "alpha": 0.01, "steps": 10, "random_start": True})
    assert estimate_seconds(adv, cal) == pytest.approx(2 + 6 * (100 * (1e-3 + 10 * 3e-3) + 0.01))
    assert estimate_seconds(train_job(stage="retrain"), cal) == pytest.approx(2.66)


def test_batched_training_only_where_it_runs_batched():
    cpu, gpu = calibration(), calibration(device="cuda")
    batched = 2 + 6 * (100 * 5e-4 + 50 * 5e-5)
    sequential = 2 + 6 * (0.1 + 0.01)
    assert estimate_seconds(train_job(), gpu) == pytest.approx(batched)  # auto on CUDA
    assert estimate_seconds(train_job(), cpu) == pytest.approx(sequential)  # auto on CPU
    assert estimate_seconds(train_job(execution={**SEQUENTIAL, "population": "batched"}), cpu) \
        == pytest.approx(batched)
    # CLM keeps Alg. 1's sequential order unless the lockstep schedule is asked for
    link = {"alpha": 0.1, "delta": 0.1, "prse_every": 10}
    clm = train_job(linking=link, execution={**SEQUENTIAL, "population": "batched"})
    assert estimate_seconds(clm, gpu) == pytest.approx(sequential)
    clm["params"]["execution"]["clm_schedule"] = "lockstep"
    assert estimate_seconds(clm, gpu) == pytest.approx(batched)


def test_precision_variant_and_its_fallback():
    cal = calibration()
    bf16 = train_job(execution={**SEQUENTIAL, "precision": "bf16"})
    assert estimate_seconds(bf16, cal) == pytest.approx(2 + 6 * (100 * 2.5e-4 + 0.01))
    # channels_last was not measured: the bf16 contiguous costs stand in
    bf16["params"]["execution"]["memory_format"] = "channels_last"
    assert estimate_seconds(bf16, cal) == pytest.approx(2 + 6 * (100 * 2.5e-4 + 0.01))


def test_threads_scale_by_the_measured_speedup():
    cal = calibration()
    one, two = estimate_seconds(train_job(), cal), estimate_seconds(train_job(threads=2), cal)
    assert two - 2 == pytest.approx((one - 2) / 1.6)
    assert estimate_seconds(train_job(threads=8), cal) == pytest.approx(two)  # capped at 2
    busy = calibration(thread_speedup={"lenet5": {"1": 1.0, "2": 0.03}})
    assert estimate_seconds(train_job(threads=2), busy) == pytest.approx(one)


def test_attack_per_threat_model_with_samples_and_scoring():
    cal = calibration()
    n, steps = 4, 10
    job = attack_job(samples={"paper": 100, "transfer": 20, "adaptive": 10})
    craft = 100 * steps * 3e-3 + 20 * n * steps * 3e-3 + 10 * n * steps * 2e-3
    score = (n * 100 + n * n * 20 + n * 10) * 1e-4
    assert estimate_seconds(job, cal) == pytest.approx(3 + craft + score)
    unfused = attack_job(samples={"paper": 100, "transfer": 20, "adaptive": 10}, fused=False)
    assert estimate_seconds(unfused, cal) == pytest.approx(3 + craft)
    # without "samples", every threat model takes n_samples (the earlier layout)
    old = attack_job(fused=False)
    old["params"]["threat_models"] = ["paper", "transfer"]
    assert estimate_seconds(old, cal) == pytest.approx(3 + 100 * steps * 3e-3 * (1 + n))


def test_batched_transfer_and_adaptive():
    cal = calibration(device="cuda")
    job = attack_job(samples={"transfer": 20, "adaptive": 10}, fused=False)
    assert estimate_seconds(job, cal) == pytest.approx(3 + 20 * 4 * 10 * 1e-3 + 10 * 4 * 10 * 1e-3)
    eot = attack_job("eot-pgd", {"alpha": 0.01, "steps": 5, "eot_iter": 2, "random_start": True},
                     samples={"adaptive": 10}, fused=False)
    assert estimate_seconds(eot, cal) == pytest.approx(3 + 10 * 5 * 2 * 6e-3)  # D(4)


def test_autoattack_depends_on_survival_of_the_regime():
    cal = calibration()
    params = {"version": "standard", "norm": "Linf", "n_classes": 10, "steps": 10,
              "n_queries": 100, "n_restarts": 1, "eot_iter": 20}
    standard = estimate_seconds(attack_job("autoattack", params, {"paper": 10}, "ulm", fused=False), cal)
    robust = estimate_seconds(attack_job("autoattack", params, {"paper": 10}, "ulm-adv", fused=False), cal)
    assert standard == pytest.approx(3 + 10 * (1.0 * 10 * 1e-2))
    assert robust == pytest.approx(3 + 10 * (10 * 1e-2 + 0.5 * 10 * 1e-1 + 0.5 * 10 * 2e-1
                                             + 0.25 * 100 * 1e-3))
    # adaptive: AutoAttack rand on RandomDispatch, APGD-CE + APGD-DLR with eot_iter draws
    rand = estimate_seconds(attack_job("autoattack", params, {"adaptive": 10}, "ulm-adv",
                                       fused=False), cal)
    # per step: APGD's own work (U_ce - G) and 20 dispatch gradients D(4); APGD-DLR on every
    # point correct on clean images (judged on the expected accuracy, not APGD-CE's
    # one-draw survivors: 1.0, not 0.5)
    assert rand == pytest.approx(3 + 10 * 10 * ((1e-2 - 2e-3) + 20 * 6e-3) * (1.0 + 1.0))


def test_benign_evaluate_and_report():
    cal = calibration()
    job = attack_job(fused=False)
    job.update(stage="evaluate", outputs={"scores": "s", "analysis": "a"})
    job["params"].update(attack=None, saliency_samples=8)
    assert estimate_seconds(job, cal) == pytest.approx(4 + 4 * 100 * 1e-4 + 4 * 8 * 2e-3)
    report = {"id": "report", "stage": "report", "params": {}, "outputs": {},
              "inputs": {"scores": ["x/benign.json", "x/pgd-eps0.3.json"], "records": ["c"],
                         "analyses": ["d"], "spec": "s"}}
    assert estimate_seconds(report, cal) == pytest.approx(5 + 4 * 0.5)  # 4 input files
    # three replicates of the same files: one set of figures and cells, priced once
    replicated = {**report, "inputs": {
        key: [path.replace("x/", f"x/r{r}/") if key == "scores" else f"{path}/r{r}/training.json"
              for r in range(3) for path in paths] if key != "spec" else paths
        for key, paths in report["inputs"].items()}}
    assert len(replicated["inputs"]["scores"]) == 6
    assert estimate_seconds(replicated, cal) == pytest.approx(5 + 4 * 0.5)


def test_authors_settings():
    job = attack_job(samples={"paper": 100, "transfer": 20},
                     execution={**SEQUENTIAL, "population": "batched", "precision": "bf16"})
    authors = authors_settings(job)
    assert authors["params"]["samples"] == {"paper": 100, "transfer": 100}
    assert authors["params"]["execution"] == SEQUENTIAL
    assert job["params"]["samples"]["transfer"] == 20  # the original is untouched
    cal = calibration(device="cuda")
    assert estimate_seconds(authors, cal) > estimate_seconds(job, cal)
    plain = train_job()
    assert authors_settings(plain) is plain


def test_runtime_minutes_keeps_its_contract():
    assert runtime_minutes(0) == 10 and runtime_minutes(600) == 30 and runtime_minutes(601) == 31


def test_choose_calibration_matches_the_machine():
    def cal(name, device, cores=2, gpu="", created="2026-01-01"):
        return {"name": name, "created": created,
                "machine": {"device": device, "cpu_count": cores, "device_name": gpu}}

    found = [cal("cpu-2", "cpu"), cal("cpu-16", "cpu", 16), cal("h100", "cuda", gpu="NVIDIA H100"),
             cal("h200", "cuda", gpu="NVIDIA H200"), cal("cpu-2-new", "cpu", created="2026-02-01")]
    assert choose_calibration(found, "cpu", cpu_count=2)["name"] == "cpu-2-new"
    assert choose_calibration(found, "cpu", cpu_count=12)["name"] == "cpu-16"
    assert choose_calibration(found, "cuda", gpu_name="NVIDIA H200")["name"] == "h200"
    assert choose_calibration(found, "cuda", gpu_name="Tesla T4")["machine"]["device"] == "cuda"
    assert choose_calibration(found[:2], "cuda") is None


def test_compile_prices_with_the_calibration_passed_in_and_records_it():
    spec = load_spec(ROOT / "specs/smoke.yaml")
    slow = calibration(startup_s={"train": 1000.0, "attack": 1000.0, "evaluate": 1000.0,
                                  "report": 1000.0})
    plan = compile_spec(spec, "specs/smoke.yaml", slow)
    assert all(job.estimate_s >= 1000 for job in plan.jobs)
    assert all(job.resources["runtime"] >= 50 for job in plan.jobs)
    assert plan.calibration == {"name": "test", "sha256": files.calibration_digest(slow)}
    reference = compile_spec(spec, "specs/smoke.yaml")
    assert reference.calibration["name"] == files.reference_calibration()["name"] == "cpu-2core"
    assert reference.jobs[1].estimate_s < 1000


def test_the_calibration_digest_is_its_content_not_its_place(tmp_path):
    one, two = tmp_path / "a.json", tmp_path / "b.json"
    one.write_text(json.dumps(calibration()))
    two.write_text(json.dumps(calibration(), indent=4))
    assert (files.calibration_digest(load_calibration(one))
            == files.calibration_digest(load_calibration(two)))
    assert (files.calibration_digest(calibration(threads=3))
            != files.calibration_digest(calibration()))


def test_this_machine_is_priced_with_the_env_override(tmp_path, monkeypatch):
    """`clmrepro plan` (never a compile) reads $CLMREPRO_CALIBRATION."""
    slow = calibration(startup_s={"train": 1000.0, "attack": 1000.0, "evaluate": 1000.0,
                                  "report": 1000.0})
    path = tmp_path / "slow.json"
    path.write_text(json.dumps(slow))
    monkeypatch.setenv(files.ENV_VARIABLE, str(path))
    files.machine_calibration.cache_clear()
    try:
        assert estimate.for_this_machine("auto")["name"] == "test"
    finally:
        monkeypatch.delenv(files.ENV_VARIABLE)
        files.machine_calibration.cache_clear()


def test_bad_calibration_files_say_what_is_wrong(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(CalibrationError, match=r"bad.json:1: not JSON"):
        load_calibration(bad)
    incomplete = copy.deepcopy(calibration())
    del incomplete["startup_s"]
    bad.write_text(json.dumps(incomplete))
    with pytest.raises(CalibrationError, match="lacks startup_s"):
        load_calibration(bad)
    with pytest.raises(CalibrationError, match="cannot read"):
        load_calibration(tmp_path / "missing.json")


def test_missing_architecture_falls_back_to_builtin_constants():
    cal = calibration()
    job = train_job()
    job["params"]["architecture"] = "resnet18"
    # built-in CPU ResNet18: T = 2e-2, F = 5e-3 (clmrepro.plan.estimate._builtin)
    assert estimate_seconds(job, cal) == pytest.approx(2 + 6 * (100 * 2e-2 + 50 * 5e-3))


def test_shipped_calibrations_are_valid():
    shipped = sorted(files.SHIPPED_DIR.glob("*.json"))
    assert shipped, "calibration/*.json: no shipped calibration"
    for path in shipped:
        cal = load_calibration(path)
        assert cal["name"] == path.stem
        for arch in ("lenet5", "resnet18"):
            assert cal["units"][arch]["fp32-contiguous"]["train"] > 0


def test_eot_pgd_on_one_submodel_costs_pgd_and_on_the_dispatch_eot_draws():
    """Against one deterministic submodel (paper, transfer) EOT-PGD runs as PGD (one gradient
    per step, core.crafting); only the adaptive attack on random dispatch draws eot_iter."""
    cal = calibration()
    pgd = {"alpha": 0.01, "steps": 10, "random_start": True}
    eot = {**pgd, "eot_iter": 10}
    for threat in ("paper", "transfer"):
        same = [estimate_seconds(attack_job(kind, params, samples={threat: 100}), cal)
                for kind, params in (("pgd", pgd), ("eot-pgd", eot))]
        assert same[0] == pytest.approx(same[1])
    adaptive = [estimate_seconds(attack_job("eot-pgd", {**eot, "eot_iter": k},
                                            samples={"adaptive": 100}), cal) for k in (1, 2, 3)]
    # each more draw adds the same crafting cost: the estimate is linear in eot_iter
    assert adaptive[2] - adaptive[1] == pytest.approx(adaptive[1] - adaptive[0])
    assert adaptive[1] > adaptive[0]


def test_joint_training_of_the_baselines_by_hand():
    cal = calibration()
    job = train_job()

    def baseline(diversity):
        job["params"]["population"]["regime"] = diversity["method"]
        job["params"]["diversity"] = diversity
        return estimate_seconds(job, cal)

    # ADP: S + E * (N_train * n * factor * T + n * N_test * F(1000)) with factor 1.0
    assert baseline({"method": "adp"}) == pytest.approx(2 + 3 * (100 * 2 * 1e-3 + 2 * 50 * 2e-4))
    factor = regimes.get("trs").COST_FACTOR
    assert baseline({"method": "trs"}) == pytest.approx(
        2 + 3 * (100 * 2 * factor * 1e-3 + 2 * 50 * 2e-4))
    # DVERGE: each member `steps` distillation gradients (a PGD step each), a training step
    # on each other member's batch, a forward for the record (F at batch 100)
    per_image = 2 * (10 * regimes.get("dverge").DISTILL_STEP * 3e-3 + 1 * 1e-3 + 1e-4)
    assert baseline({"method": "dverge", "steps": 10}) == pytest.approx(
        2 + 3 * (100 * per_image + 2 * 50 * 2e-4))


def test_each_regime_prices_its_own_training():
    """The price is the regime's (clmrepro.kinds.regimes), looked up by the job's regime: a
    regime the registry does not know is an error that names the known ones."""
    cal = calibration()
    job = train_job()
    ulm = estimate_seconds(job, cal)
    job["params"]["population"]["regime"] = "clm"
    assert estimate_seconds(job, cal) == pytest.approx(ulm)  # no PRSE cost in the model
    job["params"]["population"]["regime"] = "madeup"
    with pytest.raises(ValueError, match="unknown regime kind 'madeup'; known: ulm, clm"):
        estimate_seconds(job, cal)


def test_deterministic_inference_rules_add_the_averaged_adaptive_attack_and_their_scoring():
    cal = calibration()
    plain = attack_job(samples={"paper": 100, "adaptive": 20})
    ruled = copy.deepcopy(plain)
    ruled["params"]["inference"] = ["random", "average", "vote"]
    # adaptive images * n * (steps * A_pgd) + rules * (adaptive + paper images) * n * F(100)
    extra = 20 * 4 * (10 * 3e-3) + 2 * (20 + 100) * 4 * 1e-4
    assert estimate_seconds(ruled, cal) - estimate_seconds(plain, cal) == pytest.approx(extra)
    ruled["params"]["inference"] = ["random"]
    assert estimate_seconds(ruled, cal) == pytest.approx(estimate_seconds(plain, cal))


def test_square_in_the_checks_is_priced_on_the_share_it_leaves_correct():
    def sanity_job(regime, checks):
        job = attack_job(regime=regime, samples={"paper": 10})
        job["stage"] = "sanity"
        job["params"]["sanity"] = {"checks": checks, "threat_models": ["paper"], "samples": 10,
                                   "pgd": {"steps": 5}, "square_queries": 100}
        return job
    cal = calibration()
    for regime, share in (("ulm", 0.4), ("ulm-adv", 0.5)):
        with_square = estimate_seconds(sanity_job(regime, ["square"]), cal)
        without = estimate_seconds(sanity_job(regime, []), cal)
        # images * (queries * m * F(100) * share + one more set scored on all n)
        assert with_square - without == pytest.approx(10 * (100 * 1 * 1e-4 * share + 4 * 1e-4))
        assert SQUARE_SURVIVAL["adversarial" if "adv" in regime else "standard"] == share
