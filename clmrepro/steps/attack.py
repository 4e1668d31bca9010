"""Attack step: craft one attack's adversarial sets on one population, and score them.

``python -m clmrepro.steps.attack JOB.json``.  Reads ``inputs.population``, crafts every
threat model in ``params.threat_models`` on the first N test images (N per threat model:
``params.samples``, else ``params.n_samples``), checks every chunk against the eps-ball and
[0, 1], and writes

- ``outputs.adversarial``: the sets, so that they can be re-scored without attacking again
  (``steps.evaluate``)::

    {"x": clean x (the largest N), "y": y, "attack": {kind, id, eps, params},
     "paper": {"x_adv", "crafter", "crafting"}, "transfer": {"x_adv": (n, N, ...)},
     "adaptive": {"x_adv", "params": effective adaptive params}}   (those asked for)

- ``outputs.scores`` (when the job names it): one record per threat model
  (``steps.evaluate.attack_records``; docs/architecture.md).

Execution (``params.execution``, ``core.attack_runtime``): ``population`` sequential
(torchattacks, one submodel at a time) or batched (``core.batched_attacks``; AutoAttack and
the random-dispatch adaptive attacks stay sequential); ``precision``; ``memory_format``.

Resumable (issue 12): finished chunks go to the job's state folder
(:func:`attack_state_dir`), keyed by a fingerprint of everything that determines the
result (``core.attack_state``); a rerun after a crash or SIGKILL continues from them and
writes the same bytes as an uninterrupted run.  ``should_stop`` is asked between chunks;
when it says stop, the step raises ``Interrupted`` naming the state folder.  The folder is
removed once the outputs are written.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

from clmrepro.core.interrupt import StopCheck
from clmrepro.steps import common
from clmrepro.steps.common import Job, prepare_torch, show_progress, step_main
from clmrepro.steps.evaluate import load_test_set, runtime_for, sample_sizes  # noqa: F401

THREAT_MODELS = ("paper", "transfer", "adaptive")
STATE_ROOT = Path(".clmrepro-state")
# Bump when a change of this code changes the adversarial sets: old state is then stale.
STATE_FORMAT = 1


def attack_state_dir(job: Job) -> Path:
    """``.clmrepro-state/{spec}/{exp}/{pop}[/r{r}]/attack-{attack}-eps{eps}``: beside the
    population's training state, per replicate where the plan has replicates (job ids
    ending in ``-r{r}``, docs/architecture.md).  Not a declared output: Snakemake deletes those of
    a failed job (REFERENCE.md §4)."""
    p = job["params"]
    folder = STATE_ROOT / str(job["spec"]) / str(job["experiment"]) / str(p["population"]["id"])
    replicate = int(p.get("replicate", 0))
    if str(job["id"]).endswith(f"-r{replicate}"):
        folder = folder / f"r{replicate}"
    attack = p["attack"]
    return folder / f"attack-{attack.get('id', attack['kind'])}-eps{float(attack['eps']):.6g}"


def _fingerprint(job: Job, runtime, population_path: str, x, y) -> dict:
    """Everything that determines the adversarial sets; output paths and the job id do not."""
    from importlib.metadata import version

    import torch

    from clmrepro.core.attack_state import file_digest, tensor_digest

    return {
        "format": STATE_FORMAT,
        "params": job["params"],
        "seed": int(job["seed"]),
        "threads": int(job.get("threads", 1)),
        "population": file_digest(population_path),
        "test_data": tensor_digest(x, y),
        "runtime": runtime.describe(),
        "versions": {"torch": torch.__version__, "torchattacks": version("torchattacks")},
    }


def craft_sets(models, x, y, *, attack: dict, threat_models, sizes: dict[str, int | None],
               crafting: str | None, batch_size: int, seed: int, runtime, store=None,
               should_stop: StopCheck | None = None, progress: bool = False) -> dict[str, Any]:
    """Every threat model's adversarial set for one attack, chunk by chunk (each checked,
    and saved to ``store`` when one is given)."""
    import torch
    from tqdm import tqdm

    from clmrepro.core import crafting as plan
    from clmrepro.core.seeding import derive_seed, generator

    unknown = sorted(set(threat_models) - set(THREAT_MODELS))
    if unknown:
        raise ValueError(f"threat_models: unknown {unknown}; allowed {list(THREAT_MODELS)}")
    kind, eps, params = attack["kind"], float(attack["eps"]), attack["params"]
    plan.check_params(kind, params)
    n = len(models)

    def run(threat, chunks, execute, xs):
        with tqdm(total=len(chunks), desc=f"{kind} {threat}", disable=not progress) as bar:
            return plan.craft_chunks(threat, chunks, execute, x=xs, eps=eps, store=store,
                                     should_stop=should_stop, on_chunk=lambda: bar.update(1))

    sets: dict[str, Any] = {}
    common_kw = dict(kind=kind, eps=eps, params=params, runtime=runtime)
    if "paper" in threat_models:
        xs, ys = x[:sizes["paper"]], y[:sizes["paper"]]
        crafters = plan.assign_crafters(len(xs), n, mode=crafting, batch_size=batch_size,
                                        gen=generator(derive_seed(seed, "crafters")))
        units = plan.paper_units(crafters, n, batch_size=batch_size,
                                 seed=derive_seed(seed, "paper"))
        execute = plan.make_executor(models, xs, ys, **common_kw)
        chunks = plan.chunked(units, execute.units_per_call)
        results = run("paper", chunks, execute, xs)
        x_adv = plan.assemble(chunks, results, torch.empty_like(xs))
        sets["paper"] = {"x_adv": x_adv, "crafter": crafters, "crafting": crafting}
    if "transfer" in threat_models:
        xs, ys = x[:sizes["transfer"]], y[:sizes["transfer"]]
        units = plan.transfer_units(n, len(xs), batch_size=batch_size,
                                    seed=derive_seed(seed, "transfer"))
        execute = plan.make_executor(models, xs, ys, **common_kw)
        # batched: one batch, all n crafters per chunk (one .each call); sequential: one unit
        chunks = plan.chunked(units, execute.units_per_call)
        results = run("transfer", chunks, execute, xs)
        out = torch.empty((n, *xs.shape), dtype=xs.dtype)
        sets["transfer"] = {"x_adv": plan.assemble(chunks, results, out, by_crafter=True)}
    if "adaptive" in threat_models:
        from clmrepro.core.adaptive import AdaptiveExecutor, adaptive_params

        xs, ys = x[:sizes["adaptive"]], y[:sizes["adaptive"]]
        units = plan.adaptive_units(len(xs), batch_size=batch_size,
                                    seed=derive_seed(seed, "adaptive"))
        execute = AdaptiveExecutor(models, xs, ys, **common_kw)
        chunks = plan.chunked(units, execute.units_per_call)
        results = run("adaptive", chunks, execute, xs)
        sets["adaptive"] = {"x_adv": plan.assemble(chunks, results, torch.empty_like(xs)),
                            "params": adaptive_params(kind, eps, params)}
    return sets


def run_attack(job: Job, should_stop: StopCheck | None = None) -> None:
    from clmrepro.core.attack_state import ChunkStore
    from clmrepro.core.checkpoints import atomic_torch_save
    from clmrepro.steps.evaluate import attack_records, write_scores
    from clmrepro.steps.population import load_population

    device = prepare_torch(job)
    p = job["params"]
    attack = p["attack"]
    if attack is None:
        raise ValueError(f"{job['id']}: an attack job needs params.attack")
    runtime = runtime_for(job, device)
    threat_models = list(p["threat_models"])
    sizes = {t: n for t, n in sample_sizes(p).items() if t in threat_models}
    population_path = job["inputs"]["population"]
    _, models = load_population(population_path, device)
    models = runtime.prepare(models)
    largest = None if None in sizes.values() else max(sizes.values(), default=0)
    x, y = load_test_set(p["dataset"], largest)
    state_dir = attack_state_dir(job)
    store = ChunkStore(state_dir, _fingerprint(job, runtime, population_path, x, y))
    saved = store.names()
    if saved:
        print(f"[clmrepro] {job['id']}: resuming from {len(saved)} saved chunks in {store.where}",
              file=sys.stderr, flush=True)
    sets = craft_sets(models, x, y, attack=attack, threat_models=threat_models, sizes=sizes,
                      crafting=p.get("crafting"), batch_size=int(p["batch_size"]),
                      seed=int(job["seed"]), runtime=runtime, store=store,
                      should_stop=should_stop, progress=show_progress())
    blob = {"x": x, "y": y, "attack": dict(attack), **sets}
    atomic_torch_save(blob, job["outputs"]["adversarial"])
    if "scores" in job["outputs"]:  # the fused attack job (docs/architecture.md, "Jobs and replicates")
        write_scores(job["outputs"]["scores"], attack_records(job, models, blob, runtime))
    store.remove()


def main(argv: list[str] | None = None) -> int:
    return step_main(functools.partial(run_attack, should_stop=common.stop_requested), argv)


if __name__ == "__main__":
    raise SystemExit(main())
