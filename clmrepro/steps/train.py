"""The train / retrain step: ``python -m clmrepro.steps.train JOB.json``.

train: a fresh population (seeds derived from the job seed) trained as the job says.
retrain: the population of ``inputs["init"]`` trained further (CLM from a trained ULM, §2).
Resumable state lives in the population's state folder (``plan.paths.state_dir_of``) beside the
outputs, because Snakemake deletes the outputs of a failed job (docs/reference.md §4); it is
removed once the outputs are written.  It is saved after every epoch, every
``STATE_EVERY_S`` seconds inside one (environment ``CLMREPRO_STATE_EVERY_S`` overrides it;
0 saves after every minibatch), and when a stop is requested (SIGTERM, via
``steps.common.stop_requested``), so a rerun of the same command resumes.

The job's ``params.execution`` block (population, memory_format, precision, clm_schedule)
says how the training is computed (core.training.config); a job without one runs the defaults.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from clmrepro.steps.common import Job, prepare_torch, show_progress, step_main, stop_requested
from clmrepro.steps.verified import consumed, file_sha256

STATE_EVERY_S = 60.0  # seconds between saves inside an epoch: a SIGKILL loses at most this


def state_every_s() -> float:
    text = os.environ.get("CLMREPRO_STATE_EVERY_S")
    if text is None:
        return STATE_EVERY_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"CLMREPRO_STATE_EVERY_S must be a number of seconds >= 0 (got {text!r})")
    return value


def state_dir_for(job: Job) -> Path:
    """The population's state folder (``plan.paths.state_dir_of``): per replicate when the
    spec has replicates, so replicates never resume each other's state."""
    from clmrepro.plan import paths

    return Path(paths.state_dir_of(str(job["outputs"]["population"]), str(job["spec"]),
                                   str(job["experiment"]), str(job["params"]["population"]["id"])))


def run_train(job: Job, should_stop=None) -> None:
    """Train (or retrain) the job's population and write its outputs.  ``should_stop``: see
    core.interrupt (default: ``default_stop_check()``)."""
    from clmrepro.core.checkpoints import atomic_write_json, save_population
    from clmrepro.core.devices import machine
    from clmrepro.core.training.config import ExecutionConfig, TrainConfig
    from clmrepro.core.training.loop import init_population, train_population
    from clmrepro.kinds import regimes
    from clmrepro.steps.data import load_job_dataset
    from clmrepro.steps.population import load_population

    device = prepare_torch(job)
    params = job["params"]
    ds, pop, arch = params["dataset"], params["population"], params["architecture"]
    data = load_job_dataset(ds, job["inputs"].get("data"))
    kwargs = params.get("architecture_kwargs")  # your own architecture's (core.factory)
    if job["stage"] == "retrain":
        meta, models = load_population(job["inputs"]["init"], device)
        if meta["architecture"] != arch or len(models) != int(pop["size"]):
            raise ValueError(
                f"{job['inputs']['init']}: holds {len(models)} × {meta['architecture']}, "
                f"but job {job['id']} wants {pop['size']} × {arch}")
    elif job["stage"] == "train":
        models = init_population(arch, int(pop["size"]), in_channels=data.in_channels,
                                 num_classes=data.num_classes, seed=int(job["seed"]),
                                 kwargs=kwargs)
    else:
        raise ValueError(f"job {job['id']}: stage must be train or retrain (got {job['stage']!r})")
    # the regime's linking / adversarial / joint-loss configs (clmrepro.kinds.regimes)
    regime = regimes.get(pop["regime"]).train_configs(params)
    try:
        execution = ExecutionConfig(**params.get("execution") or {})
    except TypeError as exc:
        raise ValueError(f"job {job['id']}: params.execution: {exc}") from exc
    state_dir = state_dir_for(job)
    record = train_population(
        models, data, training=TrainConfig(**params["training"]), **regime,
        seed=int(job["seed"]), device=device, state_dir=state_dir, progress=show_progress(),
        execution=execution, should_stop=stop_requested if should_stop is None else should_stop,
        state_every_s=state_every_s(),
        on_resume=lambda where: print(
            f"[clmrepro] {job['id']}: resuming from {state_dir}: epoch {where.epoch + 1}, "
            f"submodel {where.submodel}, {where.batch} minibatch(es) done", file=sys.stderr, flush=True))
    # the CPU kernels that rounded these weights: identical numbers need the same ones
    record.update({"regime": pop["regime"], "size": len(models), "from": pop.get("from"),
                   "machine": machine(device)})
    meta = {"architecture": arch, "regime": pop["regime"], "size": len(models),
            "in_channels": data.in_channels, "num_classes": data.num_classes, "dataset": ds["name"]}
    if kwargs is not None:
        meta["architecture_kwargs"] = kwargs
    save_population(job["outputs"]["population"], models, meta)
    # what the next jobs check the population's bytes against (steps.verified), and what
    # this one read
    record.update({"population_sha256": file_sha256(job["outputs"]["population"]),
                   "consumed": consumed(job)})
    atomic_write_json(job["outputs"]["record"], record)
    shutil.rmtree(state_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    return step_main(run_train, argv)


if __name__ == "__main__":
    sys.exit(main())
