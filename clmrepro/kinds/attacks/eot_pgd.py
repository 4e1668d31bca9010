"""EOT-PGD (Athalye et al. 2018): PGD whose gradient is averaged over ``eot_iter`` draws of a
randomized model.  The paper reports it but gives no parameters, and the authors' code has
none; ours are stated choices (``departures``).

Against one deterministic submodel (threat models ``paper`` and ``transfer``) torchattacks
``EOTPGD`` adds ``eot_iter`` identical gradients, and sign(k g) = sign(g), so it runs as PGD
with the same step, steps and start: the same adversarial examples, ``eot_iter`` times
cheaper (docs/reference.md §2; checked against ``torchattacks.EOTPGD`` in
tests/unit/core/attacks/test_batched_attacks.py).  Records keep the job's EOT-PGD parameters,
which the result equals.  Only against the random-dispatch defence (``adaptive``) does the
averaging mean something: there it estimates the expectation over dispatch by sampling.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.fields import Count, Step
from clmrepro.kinds.attacks import pgd
from clmrepro.kinds.attacks.base import AttackBase, label, pick

LABEL = "PGD-EOT"  # in the report's tables
KIND = "eot-pgd"


class EotPgd(AttackBase):
    kind: Literal["eot-pgd"] = Field(description="PGD with gradients averaged over eot_iter "
                                     "draws (Athalye et al.); parameters not given by the paper")
    steps: Count = Field(40, le=100_000, description="iterations")
    alpha: Step | None = Field(None, description="step size; null → 0.01 MNIST, 2/255 CIFAR-10")
    eot_iter: Count = Field(10, le=10_000, description="gradient samples per step")
    random_start: bool = Field(True, description="uniform start in the ball")


Spec = EotPgd  # the registry's name for a kind's spec model

PARAM_KEYS = frozenset({"alpha", "steps", "eot_iter", "random_start"})
ADAPTIVE_ONLY = False
BATCHED = True  # as PGD (``deterministic``)


def params(attack: EotPgd, eps: float, pgd_alpha: float) -> dict:
    return {"alpha": pick(attack.alpha, pgd_alpha), "steps": attack.steps,
            "eot_iter": attack.eot_iter, "random_start": attack.random_start}


def departures(attack: EotPgd) -> list[str]:
    alpha = "the dataset's PGD step" if attack.alpha is None else attack.alpha
    return [f"attack {label(attack)}: steps {attack.steps}, alpha {alpha}, eot_iter "
            f"{attack.eot_iter} are our choice (the paper gives no EOT-PGD parameters; the "
            "authors' code has no EOT-PGD)"]


def deterministic(params: dict):
    """PGD with the same step, steps and random start (module docstring)."""
    return pgd, {k: params[k] for k in ("alpha", "steps", "random_start")}


def sign_steps(eps: float, params: dict) -> dict:
    return pgd.sign_steps(eps, deterministic(params)[1])


def build(model, eps: float, params: dict):
    import torchattacks

    return torchattacks.EOTPGD(model, eps=eps, alpha=float(params["alpha"]),
                               steps=int(params["steps"]), eot_iter=int(params["eot_iter"]),
                               random_start=bool(params["random_start"]))


def adaptive_record(eps: float, params: dict) -> dict:
    return dict(params)


def adaptive(models, eps: float, params: dict, runtime):
    """torchattacks ``EOTPGD`` on the deployed defence (``RandomDispatch``): averaging
    ``eot_iter`` gradients estimates the expectation over dispatch by sampling."""
    from clmrepro.core.attacks.adaptive import OnDispatch
    from clmrepro.core.attacks.sequential import Seeded

    return OnDispatch(models, lambda dispatch: Seeded(build(dispatch, eps, params)))


def gradient_steps(params: dict) -> int:
    return int(params["steps"])  # one gradient a step against one submodel (``deterministic``)


def seconds_one(job: dict, u, params: dict) -> float:
    # against one deterministic submodel it runs as PGD: one gradient per step
    return int(params["steps"]) * u.attack_step("pgd")


def seconds_adaptive(job: dict, u, params: dict, n: int, images: int) -> float:
    """``eot_iter`` gradients a step through RandomDispatch of n submodels."""
    return images * (int(params["steps"]) * int(params["eot_iter"])) * u.dispatch(n)


def calibration_params(eps: float, alpha: float) -> tuple[dict, int]:
    return {"steps": 2, "eot_iter": 2, "random_start": True, "alpha": alpha}, 4
