"""Every threat model's adversarial set for one attack on one population.

- ``paper`` (eq. 6): each batch (``per-batch``, the authors' code) or sample
  (``per-sample``) crafted on one uniformly drawn submodel;
- ``transfer``: every submodel crafts every image (the n x n matrix);
- ``adaptive``: crafted against the whole population (``core.attacks.adaptive``).

Each threat model's units (``core.attacks.work``) run chunk by chunk through the executor
that ``core.attacks.executors`` picks; every chunk is checked against the eps-ball and
[0, 1], and saved to ``store`` when one is given, so a job resumes after a crash.  Threat
model t covers the first ``sizes[t]`` test images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from clmrepro.core.attacks.adaptive import AdaptiveExecutor, adaptive_params
from clmrepro.core.attacks.executors import make_executor
from clmrepro.core.attacks.ladder import climb
from clmrepro.core.attacks.kinds import THREAT_MODELS, AttackKind, check_params
from clmrepro.core.attacks.work import (
    ChunkStoreLike,
    adaptive_units,
    assemble,
    assign_crafters,
    chunked,
    craft_chunks,
    paper_units,
    transfer_units,
)
from clmrepro.core.interrupt import StopCheck
from clmrepro.core.runtime import AttackRuntime
from clmrepro.core.seeding import derive_seed, generator


def craft_sets(models: Sequence[nn.Module], x: Tensor, y: Tensor, *, kind: AttackKind, attack: dict,
               threat_models: Sequence[str], sizes: dict[str, int | None],
               crafting: str | None, batch_size: int, seed: int, runtime: AttackRuntime,
               store: ChunkStoreLike | None = None,
               should_stop: StopCheck | None = None, progress: bool = False,
               measure: Callable[[str, Tensor], float] | None = None) -> dict[str, Any]:
    """Every threat model's adversarial set for one attack, chunk by chunk (each checked,
    and saved to ``store`` when one is given).  ``kind`` is the module of ``attack["kind"]``
    (``clmrepro.kinds.attacks.get``).  When the params ask to ``converge``, each threat model
    climbs its ladder (``core.attacks.ladder``), ``measure(threat, x_adv)`` giving a set's
    MRA, and its set records ``ladder`` and ``converged``."""
    unknown = sorted(set(threat_models) - set(THREAT_MODELS))
    if unknown:
        raise ValueError(f"threat_models: unknown {unknown}; allowed {list(THREAT_MODELS)}")
    if kind.KIND != attack["kind"]:
        raise ValueError(f"craft_sets: kind {kind.KIND!r} given for attack {attack['kind']!r}")
    eps, params = float(attack["eps"]), attack["params"]
    check_params(kind, params)
    n = len(models)

    def run(threat, chunks, execute, xs):
        with tqdm(total=len(chunks), desc=f"{kind.KIND} {threat}", disable=not progress) as bar:
            return craft_chunks(threat, chunks, execute, x=xs, eps=eps, store=store,
                                should_stop=should_stop, on_chunk=lambda: bar.update(1))

    def converged(threat, chunks, results, execute, xs, out, by_crafter=False):
        """Rung 0's results, or the last rung's and the ladder (``core.attacks.ladder``)."""
        converge = params.get("converge")
        if converge is None:
            return results, {}
        if measure is None:
            raise ValueError("craft_sets: converge needs a measure of the MRA")
        return climb(threat, chunks, results, execute, rungs=kind.ladder_steps(params),
                     tolerance=float(converge["tolerance"]),
                     run=lambda name, cs, ex: run(name, cs, ex, xs),
                     measure=lambda r: measure(threat, assemble(chunks, r, out.clone(),
                                                                by_crafter=by_crafter)))

    sets: dict[str, Any] = {}
    common_kw = dict(kind=kind, eps=eps, params=params, runtime=runtime)
    if "paper" in threat_models:
        xs, ys = x[:sizes["paper"]], y[:sizes["paper"]]
        crafters = assign_crafters(len(xs), n, mode=crafting, batch_size=batch_size,
                                   gen=generator(derive_seed(seed, "crafters")))
        units = paper_units(crafters, n, batch_size=batch_size, seed=derive_seed(seed, "paper"))
        execute = make_executor(models, xs, ys, **common_kw)
        chunks = chunked(units, execute.units_per_call)
        results = run("paper", chunks, execute, xs)
        results, ladder = converged("paper", chunks, results, execute, xs, torch.empty_like(xs))
        x_adv = assemble(chunks, results, torch.empty_like(xs))
        sets["paper"] = {"x_adv": x_adv, "crafter": crafters, "crafting": crafting, **ladder}
    if "transfer" in threat_models:
        xs, ys = x[:sizes["transfer"]], y[:sizes["transfer"]]
        units = transfer_units(n, len(xs), batch_size=batch_size,
                               seed=derive_seed(seed, "transfer"))
        execute = make_executor(models, xs, ys, **common_kw)
        # batched: one batch, all n crafters per chunk (one .each call); sequential: one unit
        chunks = chunked(units, execute.units_per_call)
        results = run("transfer", chunks, execute, xs)
        out = torch.empty((n, *xs.shape), dtype=xs.dtype)
        results, ladder = converged("transfer", chunks, results, execute, xs, out, True)
        sets["transfer"] = {"x_adv": assemble(chunks, results, out, by_crafter=True), **ladder}
    if "adaptive" in threat_models:
        xs, ys = x[:sizes["adaptive"]], y[:sizes["adaptive"]]
        units = adaptive_units(len(xs), batch_size=batch_size,
                               seed=derive_seed(seed, "adaptive"))
        execute = AdaptiveExecutor(models, xs, ys, **common_kw)
        chunks = chunked(units, execute.units_per_call)
        results = run("adaptive", chunks, execute, xs)
        results, ladder = converged("adaptive", chunks, results, execute, xs,
                                    torch.empty_like(xs))
        sets["adaptive"] = {"x_adv": assemble(chunks, results, torch.empty_like(xs)),
                            "params": adaptive_params(kind, eps, params), **ladder}
    return sets
