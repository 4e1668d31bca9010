"""The train / retrain step: ``python -m clmrepro.steps.train JOB.json``.

train: a fresh population (seeds derived from the job seed) trained as the job says.
retrain: the population of ``inputs["init"]`` trained further (CLM from a trained ULM, §2).
Resumable state lives in ``.clmrepro-state/{spec}/{experiment}/{population}`` beside the
outputs, because Snakemake deletes the outputs of a failed job (REFERENCE.md §4); it is
removed once the outputs are written.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from clmrepro.steps.common import Job, prepare_torch, show_progress, step_main

STATE_ROOT = Path(".clmrepro-state")


def state_dir_for(job: Job) -> Path:
    return STATE_ROOT / str(job["spec"]) / str(job["experiment"]) / str(job["params"]["population"]["id"])


def run_train(job: Job) -> None:
    from clmrepro.core.checkpoints import atomic_write_json, save_population
    from clmrepro.core.data import load_dataset
    from clmrepro.core.training import (
        AdversarialConfig,
        LinkingConfig,
        TrainConfig,
        init_population,
        train_population,
    )
    from clmrepro.steps.population import load_population

    device = prepare_torch(job)
    params = job["params"]
    ds, pop, arch = params["dataset"], params["population"], params["architecture"]
    data = load_dataset(ds["name"], ds.get("root", "data"), n_train=ds.get("n_train"),
                        n_test=ds.get("n_test"), split_seed=int(ds.get("split_seed", 0)))
    if job["stage"] == "retrain":
        meta, models = load_population(job["inputs"]["init"], device)
        if meta["architecture"] != arch or len(models) != int(pop["size"]):
            raise ValueError(
                f"{job['inputs']['init']}: holds {len(models)} × {meta['architecture']}, "
                f"but job {job['id']} wants {pop['size']} × {arch}")
    elif job["stage"] == "train":
        models = init_population(arch, int(pop["size"]), in_channels=data.in_channels,
                                 num_classes=data.num_classes, seed=int(job["seed"]))
    else:
        raise ValueError(f"job {job['id']}: stage must be train or retrain (got {job['stage']!r})")
    linking, adversarial = params.get("linking"), params.get("adversarial")
    state_dir = state_dir_for(job)
    record = train_population(
        models, data, training=TrainConfig(**params["training"]),
        linking=LinkingConfig(**linking) if linking else None,
        adversarial=AdversarialConfig(**adversarial) if adversarial else None,
        seed=int(job["seed"]), device=device, state_dir=state_dir, progress=show_progress())
    record.update(regime=pop["regime"], size=len(models))
    meta = {"architecture": arch, "regime": pop["regime"], "size": len(models),
            "in_channels": data.in_channels, "num_classes": data.num_classes, "dataset": ds["name"]}
    save_population(job["outputs"]["population"], models, meta)
    atomic_write_json(job["outputs"]["record"], record)
    shutil.rmtree(state_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    return step_main(run_train, argv)


if __name__ == "__main__":
    sys.exit(main())
