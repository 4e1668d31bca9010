"""Scoring, shared by the steps that score: the records of a population on clean images
(Table 1, Fig. 6) and on the adversarial sets of one attack (one record per threat model), and
how they are written.  ``steps.attack`` crafts and then scores with it; ``steps.evaluate`` is the
thin step that scores a population or re-scores a saved adversarial file; ``steps.sanity`` loads
its test images and runtime from here.  Record and file formats: docs/architecture.md.

This module and everything it imports stay free of torchattacks (whose import, with
torch's, took 16 s on a loaded machine): scoring needs forward passes only.
"""

from __future__ import annotations

from clmrepro.plan.samples import images_per_threat
from clmrepro.steps.common import Job
from clmrepro.steps.verified import consumed

SCHEMA_VERSION = 1

# docs/architecture.md: how the scored set was crafted, per threat model.
CRAFTING_BY_THREAT = {"transfer": "each", "adaptive": "population"}


# The adaptive set of the deterministic inference rules in the adversarial file
# (steps.attack.averaged_adaptive_set): crafted on the averaged population.
AVERAGE_SET = "adaptive-average"


def rules_of(params: dict) -> list[str]:
    """The deterministic inference rules the job scores besides random dispatch."""
    return [rule for rule in params.get("inference") or [] if rule != "random"]


def rule_records(job: Job, models, x, y, *, base: dict, threat: str, crafting: str,
                 attack_params: dict | None) -> list[dict]:
    """One record per deterministic inference rule of the job on the set ``x``: the
    population as one classifier (core.ensemble), MRA = its accuracy, ``correct`` one row."""
    from clmrepro.core.ensemble import rule_correctness
    from clmrepro.core.per_image import pack

    p = job["params"]
    records = []
    for rule in rules_of(p):
        correct = rule_correctness(models, x, y, rule, batch_size=int(p["batch_size"]),
                                   device=next(models[0].parameters()).device)
        accuracy = float(correct.double().mean())
        records.append({**base, "threat_model": threat, "inference": rule, "crafting": crafting,
                        "correct": pack(correct.view(1, -1)), "attack_params": attack_params,
                        "mra": accuracy, "per_submodel": [accuracy]})
    return records


def load_test_set(dataset: dict, n_samples: int | None, prepared: str | None = None):
    """The first ``n_samples`` test images in [0, 1] and their labels, from the data job's
    prepared file when the job has one (``steps.data.load_job_dataset``)."""
    from clmrepro.core.data import test_tensors
    from clmrepro.steps.data import load_job_dataset

    return test_tensors(load_job_dataset(dataset, prepared), n_samples)


def runtime_for(job: Job, device):
    from clmrepro.core.runtime import AttackRuntime

    return AttackRuntime.from_execution(job["params"].get("execution"), device)


def base_record(job: Job, n_models: int, n_samples: int) -> dict:
    p = job["params"]
    return {
        "experiment": job.get("experiment"),
        "dataset": p["dataset"]["name"],
        "architecture": p["architecture"],
        "population": p["population"]["id"],
        "regime": p["population"]["regime"],
        "replicate": int(p.get("replicate", 0)),
        "n_submodels": n_models,
        "n_samples": n_samples,
        "paper": None,
        "transfer": None,
        # the sha256s of the data and population this job read (steps.verified): the
        # report's provenance is built from them
        "consumed": consumed(job),
    }


def _score(per_submodel, **fields) -> dict:
    from clmrepro.core.metrics import model_robustness_average

    per = [float(v) for v in per_submodel]
    return {**fields, "mra": model_robustness_average(per), "per_submodel": per}


def attack_records(job: Job, models, blob: dict, runtime) -> list[dict]:
    """One record per threat model of the job, scored on the sets in ``blob`` (the
    adversarial file's layout).  Each threat model's set covers the first N test images,
    N = its own sample size; ``n_samples`` records that N."""
    from clmrepro.core.attacks.kinds import check_perturbation
    from clmrepro.core.metrics import correctness, transfer_correctness, transfer_summary
    from clmrepro.core.per_image import pack

    p = job["params"]
    attack = p["attack"]
    saved = blob["attack"]
    if (saved["kind"], float(saved["eps"]), saved["params"]) != (
            attack["kind"], float(attack["eps"]), attack["params"]):
        raise ValueError(f"{job['id']}: adversarial file was crafted with {saved}, "
                         f"the job asks for {attack}")
    eps = float(attack["eps"])
    bs, device = int(p["batch_size"]), runtime.device
    sizes = images_per_threat(p)
    records = []
    for threat in p["threat_models"]:
        if threat not in blob:
            raise ValueError(f"{job['id']}: adversarial file lacks threat model {threat!r}")
        x_adv = blob[threat]["x_adv"]
        n = int(x_adv.shape[1] if threat == "transfer" else x_adv.shape[0])
        want = sizes[threat]
        if n > len(blob["y"]) or (want is not None and n != min(want, len(blob["y"]))):
            raise ValueError(f"{job['id']}: the {threat} set of the adversarial file holds "
                             f"{n} samples, the job asks for {want}")
        x, y = blob["x"][:n], blob["y"][:n]
        base = base_record(job, len(models), n)
        base.update(attack=attack.get("id", attack["kind"]), attack_kind=attack["kind"], eps=eps)
        if threat == "transfer":
            for i in range(len(models)):
                check_perturbation(x, x_adv[i], eps)
            correct = transfer_correctness(models, x_adv, y, batch_size=bs, device=device,
                                           runtime=runtime)
            summary = transfer_summary(correct.double().mean(dim=-1))
            per = summary.pop("per_submodel")
            records.append(_score(per, **{**base, "transfer": summary}, threat_model=threat,
                                  crafting="each", correct=pack(correct),
                                  attack_params={**attack["params"], "eps": eps}))
            continue
        check_perturbation(x, x_adv, eps)
        correct = correctness(models, x_adv, y, batch_size=bs, device=device, runtime=runtime)
        per = correct.double().mean(dim=1)
        if threat == "paper":
            crafting = blob["paper"].get("crafting", p.get("crafting"))
            params = attack["params"]
        else:
            crafting = CRAFTING_BY_THREAT[threat]
            params = blob[threat].get("params", attack["params"])
        records.append(_score(per.tolist(), **base, threat_model=threat, crafting=crafting,
                              correct=pack(correct), attack_params={**params, "eps": eps}))
        if threat == "paper":  # the same images, answered by the deterministic rules
            records += rule_records(job, models, x_adv, y, base=base, threat=threat,
                                    crafting=crafting, attack_params={**params, "eps": eps})
    if rules_of(p) and "adaptive" in p["threat_models"]:
        if AVERAGE_SET not in blob:
            raise ValueError(f"{job['id']}: adversarial file lacks the set crafted on the "
                             f"averaged population ({AVERAGE_SET!r})")
        x_adv = blob[AVERAGE_SET]["x_adv"]
        n = int(x_adv.shape[0])
        check_perturbation(blob["x"][:n], x_adv, eps)
        base = base_record(job, len(models), n)
        base.update(attack=attack.get("id", attack["kind"]), attack_kind=attack["kind"], eps=eps)
        records += rule_records(job, models, x_adv, blob["y"][:n], base=base, threat="adaptive",
                                crafting="average", attack_params={**attack["params"], "eps": eps})
    return with_ladders(records, blob)


def with_ladders(records: list[dict], blob: dict) -> list[dict]:
    """Each record of a threat model whose set climbed a ladder names the steps of its last
    rung, the ladder ``[[steps, MRA], ...]`` and whether it ``converged``
    (``attack_params``; the convergence check reads them)."""
    for record in records:
        found = blob.get(record["threat_model"]) if record.get("crafting") != "average" else None
        if not isinstance(found, dict) or "ladder" not in found:
            continue
        record["attack_params"] = {**record["attack_params"], "steps": found["ladder"][-1][0],
                                   "ladder": found["ladder"], "converged": found["converged"]}
    return records


def benign_outputs(job: Job, models, runtime) -> tuple[dict, dict]:
    """Table 1's benign MRA record and the Fig. 6 analysis of one population."""
    from clmrepro.core.metrics import correctness
    from clmrepro.core.per_image import pack
    from clmrepro.core.saliency import conv1_std, pairwise_saliency_cosine

    p = job["params"]
    bs = int(p["batch_size"])
    x, y = load_test_set(p["dataset"], p["n_samples"], job["inputs"].get("data"))
    correct = correctness(models, x, y, batch_size=bs, device=runtime.device, runtime=runtime)
    record = _score(correct.double().mean(dim=1).tolist(), **base_record(job, len(models),
                    len(y)), attack="benign", eps=0.0, threat_model="paper", crafting="each",
                    correct=pack(correct), attack_params=None)
    n_sal = int(p.get("saliency_samples") or 0)
    cosines = {}
    if n_sal > 0 and len(models) > 1:
        xs, ys = x[:n_sal], y[:n_sal]
        if len(ys) < n_sal:
            xs, ys = load_test_set(p["dataset"], n_sal, job["inputs"].get("data"))
        cosines = pairwise_saliency_cosine(models, xs, ys, batch_size=bs, runtime=runtime)
    analysis = {
        "schema_version": SCHEMA_VERSION,
        "population": p["population"]["id"],
        "regime": p["population"]["regime"],
        "saliency_cosine": cosines,
        "saliency_samples": n_sal,
        "conv1_std": conv1_std(models),
        "consumed": consumed(job),
    }
    return record, analysis


def benign_scores(job: Job, models, runtime) -> tuple[list[dict], dict]:
    """A benign evaluate job's records (random dispatch, then each deterministic inference
    rule the job asks for, on the same clean images) and its analysis."""
    record, analysis = benign_outputs(job, models, runtime)
    records = [record]
    p = job["params"]
    if rules_of(p):
        x, y = load_test_set(p["dataset"], p["n_samples"], job["inputs"].get("data"))
        base = base_record(job, len(models), len(y))
        base.update(attack="benign", eps=0.0)
        records += rule_records(job, models, x, y, base=base, threat="paper",
                                crafting="each", attack_params=None)
    return records, analysis


def write_scores(path, records: list[dict]) -> None:
    from clmrepro.core.checkpoints import atomic_write_json

    atomic_write_json(path, {"schema_version": SCHEMA_VERSION, "records": records})
