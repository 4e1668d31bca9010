"""compile_spec(spec, calibration) -> Plan: a pure function; the job list that Snakemake and DVC both run.

One data job per dataset the spec reads from files (``data-<name>``: fetch, check, decode once;
every job of that dataset takes its prepared file as ``inputs.data``).  Per population and
replicate: one train (or retrain) job, one benign evaluate job, and one attack job per (attack,
eps) that crafts and scores (docs/architecture.md, "Job file").  Then the report job.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

from clmrepro.core.digest import content_sha256
from clmrepro.kinds import attacks as attack_kinds
from clmrepro.kinds import regimes
from clmrepro.plan import defaults, paths
from clmrepro.plan.architectures import priced_as
from clmrepro.plan.memory import size_to_card
from clmrepro.plan.departures import departures_from_paper, precision_notes
from clmrepro.calibration.files import calibration_digest
from clmrepro.plan.jobs import (JOB_MODELS, AnyJob, AttackBlock, AttackParams, DataJob,
                                DataParams, Dataset, EvaluateParams, Execution, PopulationBlock,
                                PreparedDataset, ReportAttack, ReportParams, SanityParams,
                                TrainParams, Training, parse_job)
from clmrepro.plan.estimate import (calibration_or_reference, estimate_seconds, memory_mb,
                                    runtime_minutes)
from clmrepro.plan.model import Plan, PlannedJob
from clmrepro.seeds import derive_seed
from clmrepro.spec.checks import population_order
from clmrepro.spec.models import Experiment, Population, Spec

GPU_SLOT = "python -m clmrepro.steps.gpu_slot"
STEP_MODULE = {"data": "data", "train": "train", "retrain": "train", "attack": "attack",
               "evaluate": "evaluate", "sanity": "sanity", "report": "report"}
# The datasets with a data job (core.prepare.PREPARABLE, which imports torch): fake-cifar10 is
# generated at load time from its sizes and split_seed, so it has no file to fetch or check.
PREPARED_DATASETS = ("mnist", "cifar10", "mnist-5k")
# A ResNet18 job (CIFAR batches of 200) keeps a GPU busy on its own; LeNet5 jobs are too small
# to, so several share one GPU (issue 10; `slots_per_gpu` in workflow/profiles/*/config.yaml).
WHOLE_GPU_ARCHITECTURES = ("resnet18",)
# Attacks on the population as a whole (ARC): their jobs run the adaptive threat model only.
ADAPTIVE_ONLY = attack_kinds.ADAPTIVE_ONLY_KINDS


def spec_sha256(spec: Spec) -> str:
    canonical = json.dumps(spec.model_dump(mode="json", by_alias=True), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Replicate:
    """Replicate ``index`` of ``count``: how it shows in job ids, paths and seeds (issue 11)."""

    index: int
    count: int

    def job_id(self, base: str) -> str:
        return base if self.count == 1 else f"{base}-r{self.index}"

    @property
    def folder(self) -> int | None:
        return paths.layout_replicate(self.index, self.count)

    def seed(self, root: int, *names: object) -> int:
        # Replicate 0 keeps the single-run seed, so replicate 0 of K = 3 is the K = 1 run.
        extra = () if self.index == 0 else ("replicate", self.index)
        return derive_seed(root, *names, *extra)


def compile_spec(spec: Spec, spec_path: str, calibration: dict | None = None) -> Plan:
    """The plan of ``spec``, its jobs priced with ``calibration`` (None: the shipped reference
    calibration, ``clmrepro.calibration.files.SHIPPED_CALIBRATION``).  A function of its
    arguments only: no GPU detection, no environment, so the same spec and calibration give the same plan bytes
    on every machine; the plan records which calibration priced it."""
    cal = calibration_or_reference(calibration)
    jobs: list[PlannedJob] = _data_jobs(spec)
    for experiment in spec.experiments:
        for index in range(experiment.replicates):
            jobs += _replicate_jobs(spec, experiment, Replicate(index, experiment.replicates))
    jobs.append(_report_job(spec, spec_path, jobs))
    return Plan(spec=spec.name, spec_path=spec_path, spec_sha256=spec_sha256(spec),
                jobs=[_priced(job, cal) for job in jobs],
                calibration={"name": cal["name"], "sha256": calibration_digest(cal)})


def _priced(job: PlannedJob, calibration: dict) -> PlannedJob:
    """The job with its estimate and the executors' runtime limit from ``calibration``."""
    seconds = estimate_seconds(job.typed.as_dict(), calibration)
    return replace(job, estimate_s=round(seconds, 3),
                   resources={**job.resources, "runtime": runtime_minutes(seconds)})


def _data_jobs(spec: Spec) -> list[PlannedJob]:
    """One per dataset read from files (a spec reads each from one root, spec.checks), in the
    order of first use.  Its job file, log and DVC stage are shared by every compiled spec that
    reads the dataset (plan.paths), so the job holds nothing of the spec: the same bytes
    whichever spec wrote it (the root, too, is written one way: ``data/`` is ``data``)."""
    jobs = {}
    for experiment in spec.experiments:
        name, root = experiment.dataset.name, paths.data_root(experiment.dataset.root)
        if name not in PREPARED_DATASETS or paths.data_key(name, root) in jobs:
            continue
        job = DataJob(id=paths.data_job_id(name), stage="data", spec="", experiment="",
                      threads=1, device="cpu", gpu=False, inputs={},
                      outputs=paths.data_outputs(name, root),
                      params=DataParams(dataset=PreparedDataset(name=name, root=root)))
        job_file = paths.data_job_file(name, root)
        resources = {"gpu": 0, "gpu_whole": False, "mem_mb": memory_mb("", "data"), "threads": 1}
        jobs[paths.data_key(name, root)] = PlannedJob(
            typed=job, job_file=job_file, cmd=f"python -m clmrepro.steps.data {job_file}",
            log=paths.data_log(name, root), benchmark=paths.data_benchmark(name, root),
            resources=resources, estimate_s=0.0)  # priced by compile_spec
    return list(jobs.values())


def _data_input(experiment: Experiment) -> dict:
    """``{"data": prepared file, "manifest": its manifest}`` for the jobs of an experiment
    whose dataset has a data job (the manifest holds the sha256 the job checks the file
    against, steps.verified)."""
    name, root = experiment.dataset.name, experiment.dataset.root
    if name not in PREPARED_DATASETS:
        return {}
    return {"data": paths.prepared_data(name, root),
            "manifest": paths.prepared_manifest(name, root)}


def _shared_inputs(experiment: Experiment) -> dict:
    """What every population job of the experiment reads besides its population: the prepared
    data (``_data_input``) and, for your own architecture, its factory's source file (so that
    editing it reruns the jobs that build it, in Snakemake and in ``dvc status``)."""
    inputs = _data_input(experiment)
    if experiment.architecture_kwargs is not None:
        from clmrepro.core.factory import source_file

        found = source_file(experiment.architecture.factory)
        if found is not None:
            inputs["factory"] = found
    return inputs


def _planned(spec: Spec, job: AnyJob, directories: list[str] | None = None) -> PlannedJob:
    as_file = job.as_dict()
    sized = size_to_card(as_file)  # execution.max_models where the spec's gpu_memory_gb asks
    if sized is not as_file:
        job = parse_job(sized, job.id)
    job_file = paths.job_file(spec.name, job.id)
    step = f"python -m clmrepro.steps.{STEP_MODULE[job.stage]} {job_file}"
    architecture = priced_as(job.as_dict()["params"]) if hasattr(job.params, "architecture") \
        else "lenet5"
    whole_gpu = job.gpu and architecture in WHOLE_GPU_ARCHITECTURES
    if job.gpu:
        step = f"{GPU_SLOT} {'--whole-gpu ' if whole_gpu else ''}-- {step}"
    resources = {"gpu": int(job.gpu), "gpu_whole": whole_gpu,
                 "mem_mb": memory_mb(architecture, job.stage), "threads": job.threads}
    return PlannedJob(typed=job, job_file=job_file, cmd=step, log=paths.log(spec.name, job.id),
                      benchmark=paths.benchmark(spec.name, job.id), resources=resources,
                      estimate_s=0.0, directories=directories or [])  # priced by compile_spec


def _job(spec: Spec, job_id: str, stage: str, experiment: str, seed: int, inputs: dict,
         outputs: dict, params, gpu: bool = True) -> AnyJob:
    return JOB_MODELS[stage](
        id=job_id, stage=stage, spec=spec.name, experiment=experiment, seed=seed,
        threads=spec.threads, device=spec.device, gpu=gpu and spec.device != "cpu",
        inputs=inputs, outputs=outputs, params=params)


def _population_block(population: Population) -> PopulationBlock:
    """The job's population; your own weights (regime pretrained) with the sha256 they have
    now, which the jobs check the file against (steps.verified)."""
    weights = getattr(population.regime, "weights", None)
    return PopulationBlock(id=population.id, regime=population.regime.kind, size=population.size,
                           from_=population.regime.from_,
                           sha256=None if weights is None else content_sha256(weights))


def _replicate_jobs(spec: Spec, experiment: Experiment, rep: Replicate) -> list[PlannedJob]:
    name, exp, at = spec.name, experiment.id, rep.folder
    by_id = {p.id: p for p in experiment.populations}
    common = {"dataset": Dataset(**defaults.dataset_block(experiment.dataset)),
              "architecture": experiment.architecture_name,
              "architecture_kwargs": experiment.architecture_kwargs}
    running = {"execution": Execution(**defaults.execution_block(experiment)),
               "replicate": rep.index}
    jobs = []
    for pop_id in population_order(experiment):
        population = by_id[pop_id]
        if not regimes.trained(population.regime.kind):
            continue  # your own weights: the evaluation jobs read them (no train job)
        source = population.regime.from_
        stage = "retrain" if source else "train"
        # diversity: absent for the paper's regimes (None), so their job files stay as they were
        params = TrainParams(
            **common, population=_population_block(population),
            training=Training(**defaults.training_block(population, experiment)),
            linking=defaults.linking_block(population, experiment),
            adversarial=defaults.adversarial_block(population, experiment), **running,
            diversity=defaults.diversity_block(population, experiment))
        # Replicate r retrains its parent's replicate r, so ULM/CLM pairs stay paired.
        # (with its training record, which holds the sha256 the step checks it against)
        inputs = ({"init": paths.population(name, exp, source, at),
                   "init_record": paths.training_record(name, exp, source, at)}
                  if source else {})
        inputs.update(_shared_inputs(experiment))
        outputs = {"population": paths.population(name, exp, pop_id, at),
                   "record": paths.training_record(name, exp, pop_id, at)}
        job = _job(spec, rep.job_id(f"{stage}-{exp}-{pop_id}"), stage, exp,
                   rep.seed(spec.seed, exp, pop_id), inputs, outputs, params)
        jobs.append(_planned(spec, job))
    jobs += _evaluation_jobs(spec, experiment, rep, {**common, **running})
    return jobs


def _evaluation_jobs(spec: Spec, experiment: Experiment, rep: Replicate,
                     common: dict) -> list[PlannedJob]:
    name, exp, at = spec.name, experiment.id, rep.folder
    evaluation = experiment.evaluation
    scoring_all = {"threat_models": list(evaluation.threat_models),
                   "crafting": evaluation.crafting,
                   "n_samples": defaults.n_samples(experiment), "batch_size": evaluation.batch_size}
    samples_all = defaults.samples_block(experiment)
    chosen = evaluation.populations or [p.id for p in experiment.populations]
    jobs = []
    for population in experiment.populations:
        if population.id not in chosen:
            continue
        pop = population.id
        model = ({"population": paths.population(name, exp, pop, at),
                  "trained": paths.training_record(name, exp, pop, at)}
                 if regimes.trained(population.regime.kind)
                 else {"population": population.regime.weights})
        model.update(_shared_inputs(experiment))
        scoring, samples = _threats_of(population, scoring_all, samples_all)
        base = {**common, "population": _population_block(population), **scoring}
        # the deterministic rules (core.ensemble), only when asked: without them the job
        # files stay as they were
        rules = ({"inference": list(evaluation.inference)} if evaluation.inference != ["random"]
                 else {})  # (plan.jobs: absent when None)
        job = _job(spec, rep.job_id(f"evaluate-{exp}-{pop}-benign"), "evaluate", exp,
                   rep.seed(spec.seed, exp, pop, "evaluate", "benign"), model,
                   {"scores": paths.benign_scores(name, exp, pop, at),
                    "analysis": paths.analysis(name, exp, pop, at)},
                   EvaluateParams(**base, attack=None,
                                  saliency_samples=evaluation.saliency_samples, **rules))
        jobs.append(_planned(spec, job))
        sanity = defaults.sanity_block(experiment, pop)
        if sanity is not None:
            job = _job(spec, rep.job_id(f"sanity-{exp}-{pop}"), "sanity", exp,
                       rep.seed(spec.seed, exp, pop, "sanity"), model,
                       {"sanity": paths.sanity(name, exp, pop, at)},
                       SanityParams(**base, sanity=sanity))
            jobs.append(_planned(spec, job))
        for attack in evaluation.attacks:
            if attack.populations is not None and pop not in attack.populations:
                continue
            label = attack.id or attack.kind
            threats = (scoring, samples)
            if attack.kind in ADAPTIVE_ONLY:  # ARC: the adaptive threat model, maybe a subset
                subset = getattr(attack, "samples", None) or samples["adaptive"]
                adaptive = min(samples["adaptive"], subset)
                threats = ({**scoring, "threat_models": ["adaptive"]}, {"adaptive": adaptive})
            for eps in attack.eps:
                block = AttackBlock(id=label, kind=attack.kind, eps=eps,
                                    params=defaults.attack_params(attack, eps, experiment))
                # One job crafts and scores (issue 10: the separate evaluate jobs cost more
                # in start-up than in scoring); the adversarial file stays an output so a set
                # can be re-scored by `clmrepro.steps.evaluate`.
                job = _job(spec, rep.job_id(f"attack-{exp}-{pop}-{label}-{paths.format_eps(eps)}"),
                           "attack", exp,
                           rep.seed(spec.seed, exp, pop, "attack", label, paths.format_eps(eps)),
                           model,
                           {"adversarial": paths.adversarial(name, exp, pop, label, eps, at),
                            "scores": paths.scores(name, exp, pop, label, eps, at)},
                           AttackParams(**{**base, **threats[0]}, attack=block,
                                        samples=threats[1],
                                        **(rules if attack.kind not in ADAPTIVE_ONLY else {})))
                jobs.append(_planned(spec, job))
    return jobs


def _threats_of(population, scoring: dict, samples: dict) -> tuple[dict, dict]:
    """The threat models a population is scored under: all the evaluation's, but no transfer
    matrix for one model (it has no other member to transfer to)."""
    if population.size > 1 or "transfer" not in scoring["threat_models"]:
        return scoring, samples
    kept = [t for t in scoring["threat_models"] if t != "transfer"]
    return ({**scoring, "threat_models": kept},
            {t: n for t, n in samples.items() if t != "transfer"})


def _report_job(spec: Spec, spec_path: str, jobs: list[PlannedJob]) -> PlannedJob:
    scored = [job for job in jobs if "scores" in job.outputs]
    inputs = {"scores": [job.outputs["scores"] for job in scored],
              "records": [job.outputs["record"] for job in jobs
                          if job.stage in ("train", "retrain")],
              "analyses": [job.outputs["analysis"] for job in scored if "analysis" in job.outputs],
              "sanity": [job.outputs["sanity"] for job in jobs if job.stage == "sanity"],
              # the report names each dataset's manifest (reporting.provenance)
              "manifests": [job.outputs["manifest"] for job in jobs if job.stage == "data"],
              "paper_tables": spec.paper_tables, "spec": spec_path}
    attacks: dict[tuple, ReportAttack] = {}
    for job in jobs:
        if job.stage == "attack":
            block, experiment = job.typed.params.attack, job.typed.experiment
            attacks[(experiment, block.id, block.eps)] = ReportAttack(
                experiment=experiment, **block.model_dump())
    params = ReportParams(
        spec_path=spec_path, spec_name=spec.name, description=spec.description,
        departures=departures_from_paper(spec), precision_notes=precision_notes(spec),
        spec_sha256=spec_sha256(spec),
        # the spec's root seed (every job's seed derives from it) and device setting
        seed=spec.seed, device=spec.device,
        attacks=[attacks[key] for key in sorted(attacks)],
        attack_params=_unambiguous_params(attacks.values()),
        # what each sweep varied, for the report's MRA-against-knob figure
        sweeps=spec.sweeps)
    job = _job(spec, "report", "report", "", derive_seed(spec.seed, "report"), inputs,
               paths.report_outputs(spec.name), params, gpu=False)
    return _planned(spec, job, directories=["figures"])


def _unambiguous_params(blocks) -> dict:
    """attack id -> params, for ids whose params are the same wherever they are used (the
    report's fallback when a scores record lacks them)."""
    seen: dict = {}
    for block in blocks:
        seen.setdefault(block.id, []).append(block.params)
    return {name: found[0] for name, found in sorted(seen.items())
            if all(params == found[0] for params in found)}
