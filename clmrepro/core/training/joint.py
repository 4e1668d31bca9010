"""Joint training: every member takes the same minibatch and one loss over all members.

The field's ensemble-diversity methods (ADP, GAL, TRS, DVERGE; core.training.diversity)
train their members together, unlike ULM (independent submodels, each with its own data
order) and CLM (Alg. 1).  One epoch is one pass over the training set in one shared order
(generator ``order0``); DVERGE also draws its distillation targets from a second,
independent order (generator ``target``), as the authors' code draws them from a second
shuffled loader.  Each member keeps its own optimiser (Adam and SGD act elementwise, so n
optimisers after one backward pass are one optimiser over all parameters) and runs its own
kernels (``SingleTrainee``): DVERGE reads a hidden layer through forward hooks.

The minibatch's record is each member's cross-entropy and correct count on what it trained
on (clean images for ADP, GAL, TRS; for DVERGE the clean images, scored without gradient),
and the epoch's mean of every term of the loss (``record["diversity"]["terms"]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from clmrepro.core.data import augment_batch
from clmrepro.core.seeding import derive_seed, generator
from clmrepro.core.training import diversity
from clmrepro.core.training.config import DiversityConfig
from clmrepro.core.training.step import input_batch

METHODS = ("adp", "gal", "trs", "dverge")


def population_forward(trainees, execution=None):
    """(m, B, ...) -> (m, B, classes): block k through member k, over all the trainees.  Under
    ``precision: bf16`` the members run in bf16 autocast and their outputs come back in fp32:
    the regimes' losses (ADP's log-determinant, TRS's gradient cosines) stay in fp32."""
    def forward(xs: Tensor) -> Tensor:
        return torch.cat([t.forward(xs[t.members.start:t.members.stop]) for t in trainees])

    if execution is None or not execution.bf16:
        return forward

    def forward_bf16(xs: Tensor) -> Tensor:
        with execution.autocast(xs.device):
            out = forward(xs)
        return out.float()
    return forward_bf16


def trs_eps(params: dict, epoch: int, epochs: int) -> float:
    """TRS's smoothness radius in ``epoch``: init_eps growing linearly towards adv_eps (their
    ``eps = init_eps + (adv_eps - init_eps) * epoch / epochs``)."""
    return params["init_eps"] + (params["adv_eps"] - params["init_eps"]) * epoch / epochs


def dverge_layer(params: dict, seed: int, epoch: int) -> str:
    """The layer DVERGE distils in ``epoch``: drawn uniformly from ``layers`` per epoch, as the
    authors' code does unless the layer is fixed (a one-element list)."""
    layers = params["layers"]
    pick = torch.randint(len(layers), (1,), generator=generator(derive_seed(seed, "layer", epoch)))
    return layers[int(pick)]


def joint_loss(cfg: DiversityConfig, forward, models, x: Tensor, y: Tensor,
               x_target: Tensor | None, gen: torch.Generator, *, epoch: int, epochs: int,
               seed: int) -> tuple[Tensor, Tensor, dict]:
    """The method's loss on the shared batch x (B, ...), y (B,) in ``epoch`` of ``epochs``:
    (loss, outputs (m, B, classes) on the clean batch, the loss's terms)."""
    m, k = len(models), cfg.params
    if cfg.method == "adp":
        out = forward(x.unsqueeze(0).expand(m, *x.shape))
        loss, terms = diversity.adp_loss(out, y, alpha=k["alpha"], beta=k["beta"],
                                         log_offset=k["log_offset"], det_offset=k["det_offset"])
        return loss, out, terms
    if cfg.method == "gal":
        loss, out, terms = diversity.gal_loss(forward, x, y, m, lam=k["lam"])
        return loss, out, terms
    if cfg.method == "trs":
        loss, out, terms = diversity.trs_loss(
            forward, x, y, m, scale=k["scale"], coeff=k["coeff"], lamda=k["lamda"],
            eps=trs_eps(k, epoch, epochs), steps=k["steps"], gen=gen)
        return loss, out, terms
    if cfg.method == "dverge":
        features = diversity.layer_features(models, dverge_layer(k, seed, epoch))
        distilled = diversity.dverge_distill(features, x, x_target, eps=k["eps"],
                                             step_size=k["step_size"], steps=k["steps"], gen=gen)
        loss, _, terms = diversity.dverge_loss(forward, distilled, y)
        with torch.no_grad():
            out = forward(x.unsqueeze(0).expand(m, *x.shape))
        return loss, out, terms
    raise ValueError(f"diversity.method must be one of {', '.join(METHODS)} (got {cfg.method!r})")


def start_joint_pass(run) -> None:
    p, device = run.progress, run.data["y_train"].device
    size = len(run.data["y_train"])
    p.orders = {0: torch.randperm(size, generator=run.gens["order0"]).to(device)}
    if run.diversity.method == "dverge":
        p.orders[-1] = torch.randperm(size, generator=run.gens["target"]).to(device)
    p.loss_sum = torch.zeros(run.n, device=device)
    p.correct = torch.zeros(run.n, dtype=torch.long, device=device)
    p.terms = {}


def joint_minibatch(run, epoch: int, b: int) -> None:
    """Minibatch b of the shared order: one loss over all members, one step of each."""
    p, bs = run.progress, run.training.batch_size
    dtype = next(run.models[0].parameters()).dtype
    idx = p.orders[0][b * bs:(b + 1) * bs]
    x = input_batch(run.data["x_train"], idx, dtype)
    y = run.data["y_train"][idx]
    if run.training.augment:
        x = augment_batch(x, run.gens["augment0"])
    x_target = None
    if -1 in p.orders:
        x_target = input_batch(run.data["x_train"], p.orders[-1][b * bs:(b + 1) * bs], dtype)
        x_target = x_target[: len(y)]
    for trainee in run.trainees:
        trainee.train(True)
        trainee.optimizer.zero_grad(set_to_none=True)
    loss, out, terms = joint_loss(run.diversity, population_forward(run.trainees, run.execution),
                                  run.models, x, y, x_target, run.gens["diversity"], epoch=epoch,
                                  epochs=run.training.epochs, seed=run.seed)
    loss.backward()
    for trainee in run.trainees:
        trainee.optimizer.step()
    with torch.no_grad():
        per_member = F.cross_entropy(out.detach().flatten(0, 1), y.repeat(run.n),
                                     reduction="none").view(run.n, -1)
        p.loss_sum += per_member.sum(1)
        p.correct += (out.detach().argmax(-1) == y).sum(-1)
    # summed on the device in float64 (no host sync per term and minibatch); the same IEEE
    # double arithmetic as float(value) * len(y) summed in Python, so the same numbers
    for name, value in terms.items():
        p.terms[name] = p.terms.get(name, 0.0) + value.detach().double() * len(y)


def run_joint(run) -> None:
    """Every epoch: the shared pass, then each member's scheduler step and test accuracy."""
    everyone = range(run.n)
    for epoch in range(run.progress.epoch, run.training.epochs):
        p = run.progress
        if not p.orders:
            start_joint_pass(run)
        for b in range(p.batch, run.n_batches):
            joint_minibatch(run, epoch, b)
            p.batch = b + 1
            run.checkpoint.after_minibatch()
        n_train = len(run.data["y_train"])
        run.record["diversity"]["terms"].append(
            {name: float(total) / n_train for name, total in p.terms.items()})
        run.finish_pass(epoch, everyone)
        run.end_epoch(epoch)
