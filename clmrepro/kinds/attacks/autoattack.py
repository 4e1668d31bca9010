"""AutoAttack (Croce & Hein 2020), L∞, assembled from its sub-attacks with every parameter
explicit: torchattacks 3.5.1's ``AutoAttack`` class hard-codes 10 APGD/APGD-T/FAB steps where
the original uses 100 (docs/reference.md §2).

``standard`` = APGD-CE, APGD-T (n_classes - 1 targets), FAB-T (multi-targeted) and Square, as
in Croce & Hein; ``steps`` is the APGD/APGD-T/FAB iteration count (original 100),
``n_queries`` Square's budget (original 5000).  ``eot_iter`` is used by ``rand`` only (APGD-CE
+ APGD-DLR with EOT, original 20); ``standard`` runs with ``eot_iter = 1`` as the original
does, since it targets deterministic models.  Against the whole population (``adaptive``) it
runs as ``rand`` on the deployed defence, whatever ``version`` the job names, judged on the
exact expected accuracy twice: between sub-attacks (``core.attacks.adaptive.
ExpectedAccuracyCascade``) and inside each APGD run, which is ours
(``core.attacks.apgd.ExpectedAccuracyAPGD``: which points it attacks and which iterate it
keeps), not torchattacks', which decides both with one random draw (docs/reference.md §2).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.fields import Count
from clmrepro.kinds.attacks.base import AttackBase, label, paper_departures

LABEL = "AutoAttack"  # in the report's tables
KIND = "autoattack"
N_CLASSES = 10  # MNIST and CIFAR-10


class AutoAttack(AttackBase):
    kind: Literal["autoattack"] = Field(description="Croce & Hein, L∞ suite")
    version: Literal["standard", "rand"] = Field("standard", description="standard: APGD-CE, "
                                                 "APGD-T, FAB-T, Square; rand: APGD-CE/DLR with EOT")
    steps: Count = Field(100, le=100_000, description="APGD/FAB steps (original AutoAttack: 100; "
                         "torchattacks 3.5.1 silently uses 10, docs/reference.md §2)")
    n_queries: Count = Field(5000, le=10_000_000, description="Square attack queries")
    n_restarts: Count = Field(1, le=1000, description="restarts per component")
    eot_iter: Count = Field(20, le=10_000, description="EOT iterations of version rand")


Spec = AutoAttack  # the registry's name for a kind's spec model

PARAM_KEYS = frozenset({"version", "norm", "n_classes", "steps", "n_queries", "n_restarts",
                        "eot_iter"})
ADAPTIVE_ONLY = False
BATCHED = False  # data-dependent restarts and a sub-attack cascade: torchattacks, sequential
PAPER = {"version": "standard", "steps": 100, "n_queries": 5000, "n_restarts": 1}
# The seeds below are overwritten before every call (``core.attacks.sequential.seed_attack``);
# 0 is the original AutoAttack's default and keeps a freshly built attack deterministic.
_INITIAL_SUBATTACK_SEED = 0


def params(attack: AutoAttack, eps: float, pgd_alpha: float) -> dict:
    return {"version": attack.version, "norm": "Linf", "n_classes": N_CLASSES,
            "steps": attack.steps, "n_queries": attack.n_queries,
            "n_restarts": attack.n_restarts, "eot_iter": attack.eot_iter}


# Against the whole population APGD is ours, deciding on the exact expected accuracy
# (core.attacks.apgd); recorded with the adaptive parameters and listed as a departure.
APGD_DECISIONS = "expected-accuracy"
ADAPTIVE_DEPARTURE = ("attack {label}: adaptive APGD-CE/DLR decide which images to attack, "
                      "which iterate to keep and where to restart on exact expectations over "
                      "the population (torchattacks/AutoAttack: on one random draw of the "
                      "defence), docs/reference.md §2")


def departures(attack: AutoAttack) -> list[str]:
    return paper_departures(attack, PAPER) + [ADAPTIVE_DEPARTURE.format(label=label(attack))]


def deterministic(params: dict) -> None:
    return None


def sign_steps(eps: float, params: dict) -> None:
    return None


def components(model, eps: float, p: dict) -> list:
    """AutoAttack's sub-attacks in their order, every parameter explicit (``standard``:
    APGD-CE, APGD-T, FAB-T, Square; ``rand``: APGD-CE and APGD-DLR with EOT)."""
    import torchattacks

    if p["norm"] != "Linf":
        # The paper attacks in L-infinity only, and check_perturbation checks that ball.
        raise ValueError(f"autoattack: norm must be 'Linf' (got {p['norm']!r})")
    steps, restarts, n_classes = int(p["steps"]), int(p["n_restarts"]), int(p["n_classes"])
    common = dict(norm="Linf", eps=eps, seed=_INITIAL_SUBATTACK_SEED, verbose=False)
    if p["version"] == "standard":
        return [
            torchattacks.APGD(model, steps=steps, n_restarts=restarts, loss="ce",
                              eot_iter=1, rho=0.75, **common),
            torchattacks.APGDT(model, steps=steps, n_restarts=restarts, eot_iter=1,
                               rho=0.75, n_classes=n_classes, **common),
            torchattacks.FAB(model, steps=steps, n_restarts=restarts, alpha_max=0.1,
                             eta=1.05, beta=0.9, multi_targeted=True, n_classes=n_classes,
                             **common),
            torchattacks.Square(model, n_queries=int(p["n_queries"]), n_restarts=restarts,
                                p_init=0.8, loss="margin", resc_schedule=True, **common),
        ]
    if p["version"] == "rand":
        eot = int(p["eot_iter"])
        return [torchattacks.APGD(model, steps=steps, n_restarts=restarts, loss=loss,
                                  eot_iter=eot, rho=0.75, **common) for loss in ("ce", "dlr")]
    raise ValueError(f"autoattack: version must be 'standard' or 'rand' (got {p['version']!r})")


def build(model, eps: float, params: dict):
    import torchattacks

    # MultiAttack runs the sub-attacks in order on the points still classified correctly
    # and returns the clean image where all fail, as the original AutoAttack does.
    return torchattacks.MultiAttack(components(model, eps, params))


def adaptive_record(eps: float, params: dict) -> dict:
    from clmrepro.core.attacks.adaptive import CASCADE_SUCCESS

    return {**params, "version": "rand", "success": CASCADE_SUCCESS, "apgd": APGD_DECISIONS}


def adaptive_components(dispatch, outputs, eps: float, p: dict) -> list:
    """AutoAttack ``rand``'s sub-attacks, APGD-CE then APGD-DLR with EOT on ``dispatch``, each
    deciding on the exact expectations over ``outputs`` (every submodel's outputs): ours, not
    torchattacks' (``core.attacks.apgd``)."""
    from clmrepro.core.attacks.apgd import ExpectedAccuracyAPGD

    if p["norm"] != "Linf":
        raise ValueError(f"autoattack: norm must be 'Linf' (got {p['norm']!r})")
    return [ExpectedAccuracyAPGD(dispatch, outputs, eps=eps, steps=int(p["steps"]),
                                 n_restarts=int(p["n_restarts"]), loss=loss,
                                 eot_iter=int(p["eot_iter"]), rho=0.75,
                                 seed=_INITIAL_SUBATTACK_SEED)
            for loss in ("ce", "dlr")]


def adaptive(models, eps: float, params: dict, runtime):
    """AutoAttack ``rand`` on the deployed defence, judged on the exact expected accuracy
    between sub-attacks (``core.attacks.adaptive.ExpectedAccuracyCascade``) and inside each
    APGD run (``core.attacks.apgd.ExpectedAccuracyAPGD``)."""
    from clmrepro.core.attacks.adaptive import OnDispatch, cascade
    from clmrepro.core.attacks.apgd import population_outputs

    p = adaptive_record(eps, params)
    outputs = population_outputs(models, runtime)
    return OnDispatch(models, lambda dispatch: cascade(
        models, adaptive_components(dispatch, outputs, eps, p), runtime))


def gradient_steps(params: dict) -> int:
    return int(params["steps"])


def _survival(job: dict, survival: dict) -> dict:
    """The measured survival rates of a PGD-trained population, or of a standard one."""
    from clmrepro.kinds import regimes

    kind = job["params"]["population"].get("regime")
    adversarial = kind is not None and regimes.get(kind).ADVERSARIAL
    return survival["adversarial" if adversarial else "standard"]


def image_seconds(job: dict, u, params: dict, gradient: float | None) -> float:
    """Seconds per image of AutoAttack on one model (gradient None), or of its ``rand``
    version on RandomDispatch (gradient = seconds per dispatch gradient)."""
    units, survival = u.autoattack()
    p = _survival(job, survival)
    steps, restarts = int(params["steps"]), int(params.get("n_restarts", 1))
    if params.get("version") == "rand" or gradient is not None:
        # APGD-CE then APGD-DLR; a step is APGD's own work (its measured step less one
        # gradient) plus eot_iter gradients of the model or the dispatch.  On a population
        # (gradient given) APGD-DLR runs on every point APGD-CE left with any submodel right
        # (core.attacks.adaptive.ExpectedAccuracyCascade), priced as every point correct on
        # clean images (an upper bound: with 10 submodels few points are wrong on all of
        # them); on one model, on APGD-CE's survivors.
        one = u.grad()
        draw = gradient if gradient is not None else one
        per_step = max(units["apgd_ce"] - one, 0.0) + int(params.get("eot_iter", 1)) * draw
        dlr = p["clean"] if gradient is not None else p["apgd_ce"]
        return restarts * steps * per_step * (p["clean"] + dlr)
    return restarts * (p["clean"] * steps * units["apgd_ce"] + p["apgd_ce"] * steps * units["apgd_t"]
                       + p["apgd_t"] * steps * units["fab_t"]
                       + p["fab_t"] * int(params["n_queries"]) * units["square"])


def seconds_one(job: dict, u, params: dict) -> float:
    return image_seconds(job, u, params, None)


def seconds_adaptive(job: dict, u, params: dict, n: int, images: int) -> float:
    return images * image_seconds(job, u, params, u.dispatch(n))


def calibration_params(eps: float, alpha: float) -> None:
    return None  # measured per component (calibration.attacks.autoattack_costs)
