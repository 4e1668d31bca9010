"""Evaluate step: score a population on a saved adversarial file, or on clean data.

``python -m clmrepro.steps.evaluate JOB.json``.  With ``params.attack`` set, it reads
``inputs.adversarial`` (written by the attack step) and writes one record per threat
model to ``outputs.scores``; with ``params.attack`` null it writes the benign record
(Table 1) and ``outputs.analysis`` (Fig. 6 saliency cosines, conv1 spread).  Record and
file formats: docs/architecture.md.  ``paper`` stays null; the report step fills it.
"""

from __future__ import annotations

from clmrepro.steps import attack as attack_step
from clmrepro.steps.common import Job, prepare_torch, step_main

SCHEMA_VERSION = 1

# docs/architecture.md: how the scored set was crafted, per threat model.
CRAFTING_BY_THREAT = {"transfer": "each", "adaptive": "population"}


def _base_record(job: Job, n_models: int, n_samples: int) -> dict:
    p = job["params"]
    return {
        "experiment": job.get("experiment"),
        "dataset": p["dataset"]["name"],
        "architecture": p["architecture"],
        "population": p["population"]["id"],
        "regime": p["population"]["regime"],
        "n_submodels": n_models,
        "n_samples": n_samples,
        "paper": None,
        "transfer": None,
    }


def _score(per_submodel, **fields) -> dict:
    from clmrepro.core.metrics import model_robustness_average

    per = [float(v) for v in per_submodel]
    return {**fields, "mra": model_robustness_average(per), "per_submodel": per}


def attack_records(job: Job, models, blob: dict, device) -> list[dict]:
    """One record per threat model present in both the job and the adversarial file."""
    from clmrepro.core.attacks import check_perturbation
    from clmrepro.core.metrics import per_submodel_accuracy, transfer_matrix, transfer_summary

    p = job["params"]
    attack = p["attack"]
    saved = blob["attack"]
    if (saved["kind"], float(saved["eps"]), saved["params"]) != (
            attack["kind"], float(attack["eps"]), attack["params"]):
        raise ValueError(f"{job['id']}: adversarial file was crafted with {saved}, "
                         f"the job asks for {attack}")
    eps, x, y = float(attack["eps"]), blob["x"], blob["y"]
    bs = int(p["batch_size"])
    base = _base_record(job, len(models), len(y))
    base.update(attack=attack.get("id", attack["kind"]), attack_kind=attack["kind"], eps=eps)
    records = []
    for threat in p["threat_models"]:
        if threat not in blob:
            raise ValueError(f"{job['id']}: adversarial file lacks threat model {threat!r}")
        x_adv = blob[threat]["x_adv"]
        if threat == "transfer":
            for i in range(len(models)):
                check_perturbation(x, x_adv[i], eps)
            matrix = transfer_matrix(models, x_adv, y, batch_size=bs, device=device)
            summary = transfer_summary(matrix)
            per = summary.pop("per_submodel")
            records.append(_score(per, **{**base, "transfer": summary}, threat_model=threat,
                                  crafting="each",
                                  attack_params={**attack["params"], "eps": eps}))
            continue
        check_perturbation(x, x_adv, eps)
        per = per_submodel_accuracy(models, x_adv, y, batch_size=bs, device=device)
        if threat == "paper":
            crafting = blob["paper"].get("crafting", p.get("crafting"))
            params = attack["params"]
        else:
            crafting = CRAFTING_BY_THREAT[threat]
            params = blob[threat].get("params", attack["params"])
        records.append(_score(per.tolist(), **base, threat_model=threat, crafting=crafting,
                              attack_params={**params, "eps": eps}))
    return records


def benign_outputs(job: Job, models, device) -> tuple[dict, dict]:
    """Table 1's benign MRA record and the Fig. 6 analysis of one population."""
    from clmrepro.core.metrics import per_submodel_accuracy
    from clmrepro.core.saliency import conv1_std, pairwise_saliency_cosine

    p = job["params"]
    x, y = attack_step.load_test_set(p["dataset"], p["n_samples"])
    per = per_submodel_accuracy(models, x, y, batch_size=int(p["batch_size"]), device=device)
    record = _score(per.tolist(), **_base_record(job, len(models), len(y)), attack="benign",
                    eps=0.0, threat_model="paper", crafting="each", attack_params=None)
    n_sal = int(p.get("saliency_samples") or 0)
    cosines = {}
    if n_sal > 0 and len(models) > 1:
        xs, ys = attack_step.load_test_set(p["dataset"], n_sal)
        cosines = pairwise_saliency_cosine(models, xs.to(device), ys.to(device),
                                           batch_size=int(p["batch_size"]))
    analysis = {
        "schema_version": SCHEMA_VERSION,
        "population": p["population"]["id"],
        "regime": p["population"]["regime"],
        "saliency_cosine": cosines,
        "saliency_samples": n_sal,
        "conv1_std": conv1_std(models),
    }
    return record, analysis


def run_evaluate(job: Job) -> None:
    from clmrepro.core.checkpoints import atomic_write_json, safe_load

    device = prepare_torch(job)
    _, models = attack_step.load_population(job["inputs"]["population"], device)
    if job["params"]["attack"] is None:
        record, analysis = benign_outputs(job, models, device)
        atomic_write_json(job["outputs"]["analysis"], analysis)
        records = [record]
    else:
        blob = safe_load(job["inputs"]["adversarial"])
        records = attack_records(job, models, blob, device)
    atomic_write_json(job["outputs"]["scores"],
                      {"schema_version": SCHEMA_VERSION, "records": records})


def main(argv: list[str] | None = None) -> int:
    return step_main(run_evaluate, argv)


if __name__ == "__main__":
    raise SystemExit(main())
