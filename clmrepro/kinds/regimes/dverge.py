"""DVERGE: Diversifying Vulnerabilities (Yang et al., NeurIPS 2020; code: zjysteven/DVERGE).
A diversity baseline trained jointly (core.training.joint): each minibatch is paired with one
of a second shuffled order (the distillation targets), every member is trained on the
feature-distilled images of every other (``core.training.diversity.dverge_distill`` and
``dverge_loss``), on one layer drawn per epoch (:func:`layer`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from clmrepro.fields import Budget, Count, SafeId, Step, Strict
from clmrepro.kinds.regimes import common

KIND = "dverge"
LABEL = "DVERGE"
BASELINE = True
PAPER_SIZE = None
SOURCE = "DVERGE, Yang et al. NeurIPS 2020"
LINKED = False
ADVERSARIAL = False
CIFAR_EPOCHS_OPEN = False
MIN_SIZE = 2  # each member distils the others' features
# DVERGE distils one layer's features, drawn per epoch from these (the outputs before a ReLU
# where the architecture has them; ResNet18's blocks end in theirs).
LAYERS = {"lenet5": ["bn1", "bn2", "bn3"],
          "resnet18": [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]}
# A distillation step priced as this many PGD steps: the source's features with their
# gradient, and the target's again.
DISTILL_STEP = 1.5



def activation_factor(n: int) -> float:
    """Saved activations per image and member against plain training (plan.memory): each
    member trains on the n - 1 others' distilled images."""
    return float(n - 1)

class Dverge(Strict):
    """Yang et al., NeurIPS 2020 (code: zjysteven/DVERGE)."""

    kind: Literal["dverge"] = Field(description="each member trained on the feature-distilled "
                                    "examples of the others")
    from_: SafeId | None = Field(None, alias="from", description="population to start from "
                                 "(the method starts from trained baselines: a ULM); null → scratch")
    eps: Budget | None = Field(None, description="L∞ budget of the feature distillation; "
                               "null → 0.35 MNIST (TRS repository's DVERGE), 0.07 CIFAR-10")
    step_size: Step | None = Field(None, description="distillation step; null → eps / 10")
    steps: Count | None = Field(None, le=10_000, description="distillation steps; null → 10")
    layer: str | None = Field(None, pattern=r"^[a-z0-9_.]+$", description="the layer whose "
                              "features are distilled (a module name, e.g. bn2); null → one "
                              "drawn per epoch (authors' code) from bn1, bn2, bn3 (LeNet5) or "
                              "the eight residual blocks (ResNet18)")


MODEL = Dverge


def params(regime: Dverge, *, mnist: bool, architecture: str) -> dict:
    eps = common.pick(regime.eps, 0.35 if mnist else 0.07)
    layers = [regime.layer] if regime.layer else LAYERS[architecture]
    diversity = {"method": KIND, "eps": eps,
                 "step_size": common.pick(regime.step_size, round(eps / 10, 10)),
                 "steps": common.pick(regime.steps, 10), "layers": layers}
    return {"linking": None, "adversarial": None, "diversity": diversity}


def reference(regime: Dverge) -> Dverge:
    return regime


def layer(knobs: dict, seed: int, epoch: int) -> str:
    """The layer DVERGE distils in ``epoch``: drawn uniformly from ``layers`` per epoch, as the
    authors' code does unless the layer is fixed (a one-element list)."""
    import torch

    from clmrepro.core.seeding import derive_seed, generator

    layers = knobs["layers"]
    pick = torch.randint(len(layers), (1,), generator=generator(derive_seed(seed, "layer", epoch)))
    return layers[int(pick)]


def joint_loss(knobs: dict, forward, models, x, y, x_target, gen, *, epoch: int, epochs: int,
               seed: int):
    import torch

    from clmrepro.core.training import diversity

    features = diversity.layer_features(models, layer(knobs, seed, epoch))
    autocast = getattr(forward, "autocast", None)  # precision: bf16 (core.training.joint)
    if autocast is not None:  # the distillation's forwards in bf16 too, its cost in fp32
        hidden = features

        def features(xs):
            with autocast(xs.device):
                out = hidden(xs)
            return out.float()
    distilled = diversity.dverge_distill(features, x, x_target, eps=knobs["eps"],
                                         step_size=knobs["step_size"], steps=knobs["steps"],
                                         gen=gen, m=len(models))
    loss, _, terms = diversity.dverge_loss(forward, distilled, y)
    m = len(models)
    with torch.no_grad():
        out = forward(x.unsqueeze(0).expand(m, *x.shape))
    return loss, out, terms


def train_configs(job_params: dict) -> dict:
    # target_order: each minibatch is paired with one of a second shuffled order
    return common.train_configs(job_params, loss=joint_loss, target_order=True)


def price(job_params: dict, units) -> float:
    """Every member: ``steps`` feature-distillation gradients, a training step on each other
    member's distilled batch, and a forward on the clean batch for the record."""
    p = job_params
    n = int(p["population"]["size"])
    per_image = n * (int(p["diversity"]["steps"]) * DISTILL_STEP * units.attack_step("pgd")
                     + (n - 1) * units.train(False)
                     + units.forward(int(p["training"]["batch_size"]), False))
    return common.joint_seconds(p, units, per_image)


warnings = common.no_warnings
