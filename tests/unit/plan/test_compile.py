from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from clmrepro.plan import paths
from clmrepro.plan.compile import compile_spec
from clmrepro.plan.departures import departures_from_paper
from clmrepro.seeds import derive_seed
from clmrepro.spec import load_spec, parse_spec

ROOT = Path(__file__).resolve().parents[3]
COMMON_KEYS = {"id", "stage", "spec", "experiment", "seed", "threads", "device", "gpu", "inputs",
               "outputs", "params"}
RUNNING = {"execution", "replicate"}
STAGE_PARAMS = {
    "train": {"dataset", "architecture", "population", "training", "linking", "adversarial",
              *RUNNING},
    "retrain": {"dataset", "architecture", "population", "training", "linking", "adversarial",
                *RUNNING},
    "attack": {"dataset", "architecture", "population", "attack", "threat_models", "crafting",
               "n_samples", "batch_size", "samples", *RUNNING},
    "evaluate": {"dataset", "architecture", "population", "attack", "threat_models", "crafting",
                 "n_samples", "batch_size", "saliency_samples", *RUNNING},
    "sanity": {"dataset", "architecture", "population", "threat_models", "crafting",
               "n_samples", "batch_size", "sanity", *RUNNING},
}
EXECUTION_DEFAULTS = {"population": "auto", "memory_format": "contiguous", "precision": "fp32",
                      "clm_schedule": "sequential"}
ATTACK_PARAMS = {"fgsm": set(), "pgd": {"alpha", "steps", "random_start"},
                 "mifgsm": {"alpha", "steps", "decay"},
                 "eot-pgd": {"alpha", "steps", "eot_iter", "random_start"},
                 "autoattack": {"version", "norm", "n_classes", "steps", "n_queries",
                                "n_restarts", "eot_iter"},
                 "arc": {"steps", "step_size", "candidates", "topk", "rho", "start",
                         "start_steps", "start_alpha", "start_random_start"}}
SANITY_PARAMS = {"checks", "threat_models", "samples", "eps", "pgd", "restarts", "noise_draws",
                 "square_queries", "square_p_init", "unbounded",
                 "margin_points"}   # the margin-loss check is a default one (issue 26)


def plan_of(name: str):
    path = f"specs/{name}.yaml"
    return compile_spec(load_spec(ROOT / path), path)


def test_paper_jobs_per_stage_and_compile_time():
    spec = load_spec(ROOT / "specs/paper.yaml")
    start = time.perf_counter()
    plan = compile_spec(spec, "specs/paper.yaml")
    assert time.perf_counter() - start < 1.0
    # 2 experiments × (ULM, ULM-Adv and the two one-model rows trained; CLM, CLM-Adv
    # retrained); attacks (crafting and scoring): 6 (the paper's five and ARC) × 6 pops at the
    # base eps + 6 × 2 adversarial pops at the larger eps = 48 per experiment; one benign
    # evaluate job and one sanity job per population; one data job per dataset.
    assert Counter(job.stage for job in plan.jobs) == {
        "data": 2, "train": 8, "retrain": 4, "attack": 96, "evaluate": 12, "sanity": 12,
        "report": 1}


def test_smoke_and_tiny_jobs_per_stage():
    assert Counter(j.stage for j in plan_of("smoke").jobs) == {
        "data": 1, "train": 2, "retrain": 2, "attack": 24, "evaluate": 4, "report": 1}
    assert Counter(j.stage for j in plan_of("tiny").jobs) == {
        "data": 1, "train": 1, "retrain": 1, "attack": 4, "evaluate": 2, "report": 1}


@pytest.mark.parametrize("name", ["paper", "smoke"])
def test_job_files_follow_the_contract(name):
    plan = plan_of(name)
    for job in plan.jobs:
        if job.stage == "data":  # shared by every spec that reads the dataset: no spec, no seed
            dataset = job.job["params"]["dataset"]
            assert set(job.job) == COMMON_KEYS - {"seed"}
            assert job.job["spec"] == "" and job.job["gpu"] is False and job.inputs == {}
            assert job.id == f"data-{dataset['name']}" and set(dataset) == {"name", "root"}
            assert job.outputs == {"data": f"data/prepared/{dataset['name']}.pt",
                                   "manifest": f"data/prepared/{dataset['name']}.manifest.json"}
            assert job.job_file == f"workflow/compiled/_data/{dataset['name']}/job.json"
            continue
        assert set(job.job) == COMMON_KEYS
        assert job.job_file == paths.job_file(plan.spec, job.id)
        if job.stage == "report":
            assert set(job.inputs) == {"scores", "records", "analyses", "sanity", "manifests",
                                       "paper_tables", "spec"}
            assert job.inputs["sanity"] == [j.outputs["sanity"] for j in plan.stage("sanity")]
            assert job.inputs["manifests"] == [j.outputs["manifest"] for j in plan.stage("data")]
            assert set(job.outputs) == {"metrics", "report_md", "report_html", "mra_csv", "figures",
                                        "dvc_metrics", "mra_by_attack", "per_image"}
            continue
        params = job.job["params"]
        assert set(params) == STAGE_PARAMS[job.stage]
        # every job that reads images reads the data job's prepared file
        assert job.inputs["data"] == f"data/prepared/{params['dataset']['name']}.pt"
        assert params["execution"] == EXECUTION_DEFAULTS and params["replicate"] == 0
        attack = params.get("attack")
        if attack:
            # converge (issue 26): present only where the spec runs the attack to convergence
            assert set(attack["params"]) - {"converge"} == ATTACK_PARAMS[attack["kind"]]
            assert "converge" not in attack["params"] or attack["kind"] == "pgd"
            # every knob resolved; ARC's topk is null by design with candidates: all
            assert all(value is not None for key, value in attack["params"].items()
                       if (attack["kind"], key) != ("arc", "topk"))
        if job.stage == "attack":
            assert set(job.outputs) == {"adversarial", "scores"}
            assert set(params["samples"]) == set(params["threat_models"])
            if attack["kind"] == "arc":  # the whole population only, on a stated subset
                assert params["threat_models"] == ["adaptive"]
                assert params["samples"]["adaptive"] <= params["n_samples"]
            else:
                assert set(params["samples"].values()) == {params["n_samples"]}
        if job.stage == "sanity":
            # each read file with the record of its sha256 (steps.verified, issue 28)
            assert set(job.outputs) == {"sanity"}
            assert set(job.inputs) == {"population", "trained", "data", "manifest"}
            assert set(params["sanity"]) == SANITY_PARAMS
        if job.stage == "evaluate":
            assert params["attack"] is None and job.id.endswith("-benign")
            assert set(job.outputs) == {"scores", "analysis"}
        if job.stage in ("train", "retrain"):
            assert None not in job.job["params"]["training"].values()
            assert set(job.outputs) == {"population", "record"}
            assert set(job.inputs) == ({"init", "init_record", "data", "manifest"}
                                       if job.stage == "retrain" else {"data", "manifest"})


def test_ids_are_unique_and_safe_as_file_names():
    plan = plan_of("paper")
    ids = [job.id for job in plan.jobs]
    assert len(ids) == len(set(ids))
    assert all("/" not in i and " " not in i for i in ids)
    assert "attack-cifar10-ulm-adv-pgd-0.0627451" in ids


def test_effective_values_fill_every_null():
    plan = plan_of("paper")
    cifar_clm = plan.by_id("retrain-cifar10-clm").job["params"]
    assert cifar_clm["training"]["optimizer"] == "sgd"
    assert cifar_clm["training"]["lr"] == 1e-2 and cifar_clm["training"]["t_max"] == 200
    assert cifar_clm["linking"] == {"alpha": 0.5, "delta": 0.1, "prse_every": 10,
                                    "mask": "shared", "layer": "conv1"}
    mifgsm = plan.by_id("attack-mnist-ulm-mifgsm-0.3").job["params"]["attack"]["params"]
    assert mifgsm["alpha"] == pytest.approx(0.3 / 5)
    pgd = plan.by_id("attack-cifar10-clm-eot-pgd-0.0313725").job["params"]["attack"]["params"]
    assert pgd["alpha"] == pytest.approx(2 / 255)
    mnist_adv = plan.by_id("retrain-mnist-clm-adv").job["params"]
    assert mnist_adv["adversarial"] == {"eps": 0.3, "alpha": 0.01, "steps": 100,
                                        "random_start": True}
    assert mnist_adv["linking"]["prse_every"] == 1


def test_seeds_are_stable_across_machines_and_shared_with_the_science():
    from clmrepro.core.seeding import derive_seed as torch_derive_seed

    # pinned values: a change of formula would silently change every result
    assert derive_seed(0, "mnist", "ulm") == 8616713434935184002
    assert derive_seed(7, "a", 1, 0.3) == 730745410608024160
    for args in [(0, "mnist", "ulm"), (7, "a", 1, 0.3), (2**40, "x")]:
        assert derive_seed(*args) == torch_derive_seed(*args)
    job = plan_of("smoke").by_id("train-mnist-ulm")
    assert job.job["seed"] == derive_seed(0, "mnist", "ulm")


def test_dependencies_flow_from_producers():
    plan = plan_of("smoke")
    produced = {path: job.id for job in plan.jobs for path in job.output_paths()}
    order = {job.id: index for index, job in enumerate(plan.jobs)}
    for job in plan.jobs:
        for path in job.input_paths():
            if path.startswith(("results/", "data/")):
                assert order[produced[path]] < order[job.id]
    assert sum(job.inputs.get("data") == "data/prepared/mnist-5k.pt" for job in plan.jobs) == 32
    report = plan.by_id("report")
    # 4 populations × (benign + the paper's five attacks + ARC)
    assert len(report.inputs["scores"]) == 28 and len(report.inputs["records"]) == 4
    # the report's provenance: the spec's root seed and device setting
    spec = parse_spec((ROOT / "specs/smoke.yaml").read_text())
    assert (report.job["params"]["seed"], report.job["params"]["device"]) == (spec.seed, spec.device)


def test_changing_one_eps_changes_only_that_attacks_jobs():
    text = (ROOT / "specs/tiny.yaml").read_text()
    before = compile_spec(parse_spec(text), "specs/tiny.yaml")
    after = compile_spec(parse_spec(text.replace("{kind: pgd, eps: [0.3]", "{kind: pgd, eps: [0.25]")),
                         "specs/tiny.yaml")
    old = {job.id: job.job for job in before.jobs}
    new = {job.id: job.job for job in after.jobs}
    changed = {i for i in new if old.get(i) != new[i]}
    assert changed == {"attack-mnist-ulm-pgd-0.25", "attack-mnist-clm-pgd-0.25", "report"}


def test_cpu_device_makes_no_gpu_jobs():
    plan = plan_of("tiny")
    assert all(not job.job["gpu"] and job.resources["gpu"] == 0 for job in plan.jobs)
    assert all(not job.cmd.startswith("python -m clmrepro.steps.gpu_slot") for job in plan.jobs)
    smoke = plan_of("smoke")
    assert smoke.by_id("train-mnist-ulm").cmd.startswith("python -m clmrepro.steps.gpu_slot -- ")
    assert smoke.by_id("report").resources["gpu"] == 0


def test_departures():
    smoke = departures_from_paper(load_spec(ROOT / "specs/smoke.yaml"))
    assert "mnist: ulm: 4 submodels (paper: 10)" in smoke
    assert "mnist: attack autoattack: steps = 10 (paper/code: 100)" in smoke
    assert not any("attack pgd:" in note for note in smoke)  # smoke runs PGD as the paper
    assert any("eot-pgd: steps 20, alpha 0.02, eot_iter 2" in note for note in smoke)
    assert any("200 test images" in note for note in smoke)
    paper = departures_from_paper(load_spec(ROOT / "specs/paper.yaml"))
    assert not any("submodels" in note or "test images" in note for note in paper)
    assert any("EOT-PGD" in note for note in paper)


def test_plan_round_trips_through_json(tmp_path):
    from clmrepro.plan import load_plan
    from clmrepro.plan.model import dumps

    plan = plan_of("smoke")
    (tmp_path / "plan.json").write_text(dumps(plan.to_dict()))
    assert load_plan(tmp_path / "plan.json") == plan


FAST = ("    execution: {population: batched, memory_format: channels_last, precision: bf16,\n"
        "                clm_schedule: lockstep}\n")


def test_execution_block_reaches_every_population_job_and_departures():
    text = (ROOT / "specs/tiny.yaml").read_text()
    fast = text.replace("    architecture: lenet5\n", "    architecture: lenet5\n" + FAST)
    plan = compile_spec(parse_spec(fast), "specs/tiny.yaml")
    for job in plan.jobs:
        if job.stage in ("report", "data"):
            assert "execution" not in job.job["params"]
        else:
            assert job.job["params"]["execution"] == {
                "population": "batched", "memory_format": "channels_last", "precision": "bf16",
                "clm_schedule": "lockstep"}
    notes = departures_from_paper(parse_spec(fast))
    assert any("execution.precision = bf16" in note for note in notes)
    assert any("execution.clm_schedule = lockstep" in note for note in notes)
    assert not any("channels_last" in note or "batched" in note for note in notes)
    # lockstep changes nothing without a linked population
    unlinked = fast.replace("      - {id: clm, size: 2, regime: {kind: clm, from: ulm, alpha: 0.1, "
                            "delta: 0.1, prse_every: 10},\n         training: {lr: 1.0e-4, "
                            "epochs: 1}}\n", "")
    notes = departures_from_paper(parse_spec(unlinked))
    assert not any("lockstep" in note for note in notes)
    assert any("bf16" in note for note in notes)
    assert not any("execution" in note for note in departures_from_paper(parse_spec(text)))


def test_resnet18_jobs_take_a_whole_gpu_and_lenet5_jobs_a_slot():
    plan = plan_of("paper")
    cifar = plan.by_id("train-cifar10-ulm")
    assert cifar.resources["gpu_whole"] is True
    assert cifar.cmd.startswith("python -m clmrepro.steps.gpu_slot --whole-gpu -- ")
    mnist = plan.by_id("attack-mnist-ulm-pgd-0.3")
    assert mnist.resources["gpu_whole"] is False
    assert mnist.cmd.startswith("python -m clmrepro.steps.gpu_slot -- ")
    assert plan.by_id("report").resources == {**plan.by_id("report").resources, "gpu": 0,
                                              "gpu_whole": False}


def test_baselines_carry_their_resolved_loss_and_the_paper_regimes_none():
    plan = plan_of("baselines-mnist5k")
    trains = {j.job["params"]["population"]["id"]: j for j in plan.jobs
              if j.stage in ("train", "retrain") and j.job["params"]["replicate"] == 0}
    for paper_regime in ("ulm", "clm"):  # their job files stay as they were before baselines
        assert "diversity" not in trains[paper_regime].job["params"]
    assert trains["adp"].job["params"]["diversity"] == {
        "method": "adp", "alpha": 2.0, "beta": 0.5, "log_offset": 1e-20, "det_offset": 1e-6}
    assert trains["trs"].job["params"]["diversity"] == {
        "method": "trs", "scale": 5.0, "coeff": 2.0, "lamda": 2.0, "init_eps": 0.1,
        "adv_eps": 0.2, "steps": 6}
    assert trains["dverge"].job["params"]["diversity"] == {
        "method": "dverge", "eps": 0.35, "step_size": 0.035, "steps": 10,
        "layers": ["bn1", "bn2", "bn3"]}
    # DVERGE starts from the ULM of its replicate, at the method's own rate (not the paper's
    # retraining rate); the joint methods cost more than the ULM's training
    dverge = trains["dverge"]
    assert dverge.stage == "retrain" and dverge.inputs["init"] == trains["ulm"].outputs["population"]
    assert dverge.job["params"]["training"]["lr"] == 1e-3
    assert trains["clm"].job["params"]["training"]["lr"] == 1e-4
    for kind in ("gal", "trs", "dverge"):
        assert trains[kind].estimate_s > trains["ulm"].estimate_s
    notes = departures_from_paper(load_spec(ROOT / "specs/baselines-mnist5k.yaml"))
    assert any(n.startswith("mnist: dverge: a baseline the paper does not run (DVERGE")
               for n in notes)
    assert not any(n.startswith("mnist: adp: 10 submodels") for n in notes)


def test_inference_rules_reach_the_scoring_jobs_only_when_asked():
    text = (ROOT / "specs/tiny.yaml").read_text().replace(
        "      threat_models: [paper, transfer, adaptive]\n",
        "      threat_models: [paper, transfer, adaptive]\n      inference: [random, vote]\n")
    assert "inference: [random, vote]" in text
    asked = compile_spec(parse_spec(text, "tiny.yaml"), "tiny.yaml")
    plain = plan_of("tiny")
    for job in asked.jobs:
        params = job.job["params"]
        if job.stage in ("attack", "evaluate"):
            assert params["inference"] == ["random", "vote"]
        else:
            assert "inference" not in params
    assert not any("inference" in job.job["params"] for job in plain.jobs)
