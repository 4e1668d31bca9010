"""Joint training: every member takes the same minibatch and one loss over all members.

The field's ensemble-diversity methods (ADP, GAL, TRS, DVERGE; core.training.diversity)
train their members together, unlike ULM (independent submodels, each with its own data
order) and CLM (Alg. 1).  One epoch is one pass over the training set in one shared order
(generator ``order0``); DVERGE also draws its distillation targets from a second,
independent order (generator ``target``), as the authors' code draws them from a second
shuffled loader.  Each member keeps its own optimiser (Adam and SGD act elementwise, so n
optimisers after one backward pass are one optimiser over all parameters) and runs its own
kernels (``SingleTrainee``): DVERGE reads a hidden layer through forward hooks.

Which loss a run minimises is its ``DiversityConfig.loss`` (core.training.config.JointLoss),
built by the regime's module (clmrepro.kinds.regimes) from the losses of
core.training.diversity; ``target_order`` asks for DVERGE's second order.

The minibatch's record is each member's cross-entropy and correct count on what it trained
on (clean images for ADP, GAL, TRS; for DVERGE the clean images, scored without gradient),
and the epoch's mean of every term of the loss (``record["diversity"]["terms"]``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from clmrepro.core.data import augment_batch
from clmrepro.core.training.step import input_batch


def population_forward(trainees, execution=None):
    """(m, B, ...) -> (m, B, classes): block k through member k, over all the trainees.  Under
    ``precision: bf16`` the members run in bf16 autocast and their outputs come back in fp32:
    the regimes' losses (ADP's log-determinant, TRS's gradient cosines) stay in fp32.  The bf16
    forward carries ``autocast(device)``, the context it runs under, for DVERGE's distillation."""
    def forward(xs: Tensor) -> Tensor:
        return torch.cat([t.forward(xs[t.members.start:t.members.stop]) for t in trainees])

    if execution is None or not execution.bf16:
        return forward

    def forward_bf16(xs: Tensor) -> Tensor:
        with execution.autocast(xs.device):
            out = forward(xs)
        return out.float()
    # a loss that runs the members by another way (DVERGE's feature distillation reads a hidden
    # layer through hooks) enters the same autocast through this attribute
    forward_bf16.autocast = execution.autocast
    return forward_bf16


def start_joint_pass(run) -> None:
    p, device = run.progress, run.data["y_train"].device
    size = len(run.data["y_train"])
    p.orders = {0: torch.randperm(size, generator=run.gens["order0"]).to(device)}
    if run.diversity.target_order:
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
    loss, out, terms = run.diversity.loss(run.diversity.params,
                                          population_forward(run.trainees, run.execution),
                                          run.models, x, y, x_target, run.gens["diversity"],
                                          epoch=epoch, epochs=run.training.epochs, seed=run.seed)
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
