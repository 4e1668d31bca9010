"""One training step, shared by every schedule: the submodels of a *trainee* take one minibatch.

A trainee is what one optimiser step updates: one submodel (``SingleTrainee``) or several
stacked into one batched computation (``StackedTrainee``, core.stacked).  Both take inputs
shaped (m, B, ...) — block k for their k-th member — and return (m, B, classes), so the step
below, the PGD crafting and the loss are the same code whether a submodel trains alone
(Alg. 1) or beside the others.

Adversarial training (Madry et al.'s PGD, as the authors' code runs it: crafted on the
submodel being trained, in eval mode, docs/reference.md §1) is :func:`pgd_examples`, a
step-for-step copy of ``torchattacks.PGD`` 3.5.1 (a test pins it bit for bit) that crafts all m
blocks at once.  torchattacks draws its random start from the global RNG, so our loop used to reseed
that per (epoch, submodel, minibatch) (the authors' code sets no seeds); here block k draws
from its own generator with that same seed, which gives the very numbers the global RNG gave
and leaves the global RNG alone.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clmrepro.core.data import to_unit
from clmrepro.core.models import batch_norm_statistics_in_contiguous_memory, counter_linked_layer
from clmrepro.core.seeding import generator
from clmrepro.core.stacked import StackedPopulation
from clmrepro.core.training.config import (
    AdversarialConfig,
    Execution,
    TrainConfig,
    make_optimizer,
    make_scheduler,
)


class SingleTrainee:
    """One submodel (population index ``index``) with its own optimiser and scheduler."""

    def __init__(self, model: nn.Module, index: int, cfg: TrainConfig, execution: Execution):
        self.model = model.to(memory_format=execution.memory_format)  # before the optimiser sees it
        if (execution.memory_format == torch.channels_last
                and next(model.parameters()).device.type == "cpu"):
            batch_norm_statistics_in_contiguous_memory(self.model)
        self.members = range(index, index + 1)
        self.memory_format = execution.memory_format
        self.optimizer = make_optimizer(cfg, model)
        self.scheduler = make_scheduler(cfg, self.optimizer)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x[0].contiguous(memory_format=self.memory_format)).unsqueeze(0)

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    def linked_weights(self) -> list[Tensor]:
        return [counter_linked_layer(self.model).weight]

    def write_to(self, models: list[nn.Module]) -> None:
        pass  # trains the caller's module itself

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), **_opt_state(self)}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        _load_opt_state(self, state)


class StackedTrainee:
    """Submodels ``members`` as one StackedPopulation and one optimiser over its stacked
    parameters (elementwise, so slice k moves as submodel k's own optimiser would move it)."""

    def __init__(self, models: list[nn.Module], members: range, cfg: TrainConfig, execution: Execution):
        self.members = members
        group = [models[i] for i in members]
        self.population = StackedPopulation(group, requires_grad=True,
                                            memory_format=execution.memory_format)
        self.optimizer = make_optimizer(cfg, self.population.parameters())
        self.scheduler = make_scheduler(cfg, self.optimizer)
        layer = counter_linked_layer(group[0])
        self.linked_name = next(f"{name}.weight" for name, m in group[0].named_modules() if m is layer)

    def forward(self, x: Tensor) -> Tensor:
        return self.population.each(x)

    def train(self, mode: bool = True) -> None:
        self.population.train(mode)

    def linked_weights(self) -> list[Tensor]:
        stacked = self.population.params[self.linked_name]
        return [stacked[k] for k in range(len(self.members))]  # views: PRSE edits them in place

    def write_to(self, models: list[nn.Module]) -> None:
        self.population.write_to([models[i] for i in self.members])

    def state_dict(self) -> dict:
        return {"params": self.population.params, "buffers": self.population.buffers, **_opt_state(self)}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for mine, theirs in ((self.population.params, state["params"]),
                                 (self.population.buffers, state["buffers"])):
                for name, tensor in mine.items():
                    tensor.copy_(theirs[name])
        _load_opt_state(self, state)


def _opt_state(trainee) -> dict:
    sched = trainee.scheduler
    return {"optimizer": trainee.optimizer.state_dict(),
            "scheduler": sched.state_dict() if sched is not None else {}}


def _load_opt_state(trainee, state: dict) -> None:
    trainee.optimizer.load_state_dict(state["optimizer"])
    if trainee.scheduler is not None:
        trainee.scheduler.load_state_dict(state["scheduler"])


def input_batch(x_train: Tensor, idx: Tensor, dtype: torch.dtype) -> Tensor:
    """uint8 images at ``idx`` (m, B) -> float (m, B, C, H, W) in [0, 1]."""
    return to_unit(x_train[idx]).to(dtype)


def pgd_examples(trainee, x: Tensor, y: Tensor, cfg: AdversarialConfig, seeds: list[int],
                 execution: Execution) -> Tensor:
    """PGD (L∞, eps, step alpha, ``steps`` steps, optional uniform random start) against each
    member on its own block: the computation of ``torchattacks.PGD(...)(x[k], y[k])`` with the
    global RNG seeded ``seeds[k]`` (bit for bit for a single submodel), the trainee in eval
    mode meanwhile, as torchattacks puts it.

    Block k's loss depends on member k alone, so the gradient of the summed loss is each
    block's own gradient and every block gets exactly its own attack."""
    images = x.detach()
    adv = images.clone()
    if cfg.random_start:
        noise = [torch.empty_like(images[k]).uniform_(-cfg.eps, cfg.eps, generator=generator(s, x.device))
                 for k, s in enumerate(seeds)]
        adv = torch.clamp(adv + torch.stack(noise), min=0, max=1).detach()
    trainee.train(False)
    for _ in range(cfg.steps):
        adv.requires_grad_(True)
        with execution.autocast(x.device):
            cost = block_losses(trainee.forward(adv), y).sum()
        grad = torch.autograd.grad(cost, adv)[0]
        adv = adv.detach() + cfg.alpha * grad.sign()
        delta = torch.clamp(adv - images, min=-cfg.eps, max=cfg.eps)
        adv = torch.clamp(images + delta, min=0, max=1).detach()
    trainee.train(True)
    return adv


def block_losses(out: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy of each block (m,) of ``out`` (m, B, classes).

    One block is exactly the authors' ``CrossEntropyLoss()(model(x), y)``; several take one
    kernel (a GPU step of n LeNet5s is short enough for n launches per PGD step to show).
    log_softmax is idempotent, so cross-entropy is right for LeNet5's log-probabilities and
    ResNet18's logits alike."""
    if len(y) == 1:
        return F.cross_entropy(out[0], y[0]).unsqueeze(0)
    per_sample = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none")
    return per_sample.view(y.shape).mean(1)


def train_step(trainee, x: Tensor, y: Tensor, *, adversarial: AdversarialConfig | None,
               pgd_seeds: list[int], execution: Execution) -> tuple[Tensor, Tensor]:
    """One optimiser step of every member on its block of (x, y); x (m, B, ...) in [0, 1].

    Returns each member's summed loss and correct count on the (possibly adversarial) batch,
    kept on the device (no host sync per minibatch: that matters on a GPU)."""
    # training mode for every step: a retrained population arrives in eval mode (loaded from
    # population.pt), and the per-epoch test pass restores whatever mode it found
    trainee.train(True)
    if adversarial is not None:
        x = pgd_examples(trainee, x, y, adversarial, pgd_seeds, execution)
    trainee.optimizer.zero_grad(set_to_none=True)
    with execution.autocast(x.device):
        out = trainee.forward(x)
        losses = block_losses(out, y)
    losses.sum().backward()  # block k's loss reaches member k's parameters only
    trainee.optimizer.step()
    return losses.detach() * y.shape[1], (out.argmax(-1) == y).sum(-1)


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, device) -> float:
    """Fraction of ``x`` (float [0, 1] or uint8) classified as ``y``; restores the model's mode."""
    was_training = model.training
    model.eval()
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    correct = 0
    for k in range(0, len(y), batch_size):
        xb = x[k : k + batch_size].to(device)
        xb = to_unit(xb) if xb.dtype == torch.uint8 else xb
        correct += int((model(xb.to(dtype)).argmax(1) == y[k : k + batch_size].to(device)).sum())
    model.train(was_training)
    return correct / max(len(y), 1)
