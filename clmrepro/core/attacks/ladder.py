"""Attacks that run until they converge (issue 26 item 2; docs/sanity.md, "Convergence").

A PGD job whose params hold ``converge: {tolerance, max_steps}`` climbs a ladder: after its
``steps`` it doubles them (40 → 80 → 160 ...) until the MRA of the threat model's set moves by
less than ``tolerance`` points from one rung to the next, or the next rung would pass
``max_steps``.  Each rung continues every unit from the iterate the rung below saved: PGD with
a fixed step continued from its own iterate after s steps for s more steps is PGD with 2s
steps from the same random start (no state but the iterate; tests/unit/core/attacks/
test_ladder.py checks it bit for bit on the batched, sequential and adaptive executors), so a
rung costs only the steps it adds and the ladder's total is its last rung's steps.

Every rung's chunks go to the job's store under their own names (``<threat>-steps<S>-<c>``;
rung 0 keeps ``<threat>-<c>``), so a killed job resumes at the rung and chunk it reached and
ends bit-identical to an uninterrupted run.  The scored set is the last rung's iterate, per
image (not the best over rungs); the ladder ``[[steps, MRA], ...]`` and whether it converged
are recorded beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import Tensor

from clmrepro.core.attacks.work import Unit


class Continued:
    """An executor that adds ``steps`` steps to each unit's iterate in ``starts``."""

    def __init__(self, execute, starts: dict[Unit, Tensor], steps: int):
        if not hasattr(execute, "continue_from"):
            raise ValueError(f"{type(execute).__name__} cannot continue an attack")
        self.execute, self.starts, self.steps = execute, starts, int(steps)
        self.units_per_call = execute.units_per_call

    def __call__(self, chunk: list[Unit]) -> list[Tensor]:
        return self.execute.continue_from(chunk, [self.starts[u] for u in chunk], self.steps)


def climb(name: str, chunks: Sequence[list[Unit]], results: list[list[Tensor]], execute, *,
          rungs: Sequence[int], tolerance: float,
          measure: Callable[[list[list[Tensor]]], float],
          run: Callable[[str, Sequence[list[Unit]], object], list[list[Tensor]]]
          ) -> tuple[list[list[Tensor]], dict]:
    """The ladder from rung 0's ``results`` (crafted with ``rungs[0]`` steps; the kind's
    ``ladder_steps`` gives the rungs): the last rung's results and the record
    ``{"ladder": [[steps, MRA], ...], "converged": bool}``.  ``tolerance`` in MRA points;
    ``measure`` gives a rung's MRA (in [0, 1]); ``run(name, chunks, executor)`` crafts (and
    saves) a rung's chunks."""
    ladder = [[int(rungs[0]), float(measure(results))]]
    converged = False
    for previous, now in zip(rungs, rungs[1:]):
        starts = {unit: adv for chunk, advs in zip(chunks, results, strict=True)
                  for unit, adv in zip(chunk, advs, strict=True)}
        results = run(f"{name}-steps{now}", chunks, Continued(execute, starts, now - previous))
        ladder.append([now, float(measure(results))])
        if abs(ladder[-1][1] - ladder[-2][1]) < float(tolerance) / 100.0:
            converged = True
            break
    return results, {"ladder": ladder, "converged": converged}
