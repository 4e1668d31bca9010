"""The two orders in which a population takes its minibatches.

``sequential`` is Alg. 1 as the authors' code runs it (docs/reference.md §1): for each epoch, for
each submodel i, submodel i makes its full pass while the others wait; its PRSE counter
starts at 0 each epoch and every ``prse_every``-th minibatch triggers one PRSE (eq. 4–5,
core.training.linking) against a partner as it stands at that moment.

``lockstep`` takes minibatch b of every submodel before minibatch b+1 of any, so the
submodels can step as one batched computation.  For ULM that is the same training (the
submodels never interact, and each keeps its own data order, augmentation generator,
optimiser and PGD seeds); for CLM it is a departure from Alg. 1: all counters fire at the
same minibatch, and the PRSEs then run in submodel order 0..n-1, each against its partner
as the earlier PRSEs of that minibatch left it.

Both loops are short: the minibatch, PRSE, end-of-pass and end-of-epoch work lives in
``Run``'s methods, and the step itself in core.training.step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

from clmrepro.core.data import augment_batch
from clmrepro.core.seeding import derive_seed
from clmrepro.core.training.config import (AdversarialConfig, DiversityConfig, Execution,
                                           LinkingConfig, TrainConfig)
from clmrepro.core.training.linking import choose_partner, prse
from clmrepro.core.training.state import Checkpoint, Progress
from clmrepro.core.training.step import accuracy, input_batch, train_step


@dataclass
class Run:
    """One training run's working state (what ``Checkpoint`` saves) and its per-minibatch work."""

    models: list[nn.Module]
    trainees: list  # SingleTrainee per submodel, or one StackedTrainee for all
    data: dict[str, Tensor]  # x_train, y_train, x_test, y_test on the device
    training: TrainConfig
    linking: LinkingConfig | None
    adversarial: AdversarialConfig | None
    execution: Execution
    seed: int
    gens: dict[str, torch.Generator]
    mask: Tensor | None
    monitor: list[int] | None
    record: dict
    progress: Progress
    bar: object
    on_epoch_end: Callable[[int], None] | None
    elapsed: float = 0.0  # wall seconds of earlier sessions of this run
    started: float = field(default_factory=time.perf_counter)
    checkpoint: Checkpoint | None = None
    diversity: DiversityConfig | None = None  # joint training (core.training.joint)

    @property
    def n(self) -> int:
        return len(self.models)

    @property
    def n_batches(self) -> int:
        return -(-len(self.data["y_train"]) // self.training.batch_size)

    def wall_seconds(self) -> float:
        return self.elapsed + time.perf_counter() - self.started

    def snapshot(self) -> dict:
        return {"wall_seconds": self.wall_seconds(), "record": self.record,
                "progress": self.progress.as_dict(),
                "trainees": [t.state_dict() for t in self.trainees],
                "generators": {name: g.get_state() for name, g in self.gens.items()}}

    def restore(self, state: dict) -> None:
        for trainee, saved in zip(self.trainees, state["trainees"]):
            trainee.load_state_dict(saved)
        for name, g in self.gens.items():
            g.set_state(state["generators"][name].cpu())
        self.elapsed, self.record = state["wall_seconds"], state["record"]
        self.progress = Progress(**state["progress"])

    def linked(self) -> list[Tensor]:
        """The counter-linked weights of submodels 0..n-1 (PRSE edits them in place)."""
        return [w for t in self.trainees for w in t.linked_weights()]

    def start_pass(self, members: range) -> None:
        p, device = self.progress, self.data["y_train"].device
        for i in members:
            p.orders[i] = torch.randperm(len(self.data["y_train"]), generator=self.gens[f"order{i}"]).to(device)
        p.loss_sum = torch.zeros(self.n, device=device)
        p.correct = torch.zeros(self.n, dtype=torch.long, device=device)

    def minibatch(self, trainee, epoch: int, b: int) -> None:
        """Minibatch b of ``trainee``'s members: its data, augmentation, PGD and step."""
        p, bs, members = self.progress, self.training.batch_size, trainee.members
        start = b * bs
        idx = torch.stack([p.orders[i][start : start + bs] for i in members])
        x = input_batch(self.data["x_train"], idx, next(self.models[0].parameters()).dtype)
        y = self.data["y_train"][idx]
        if self.training.augment:
            x = torch.stack([augment_batch(x[k], self.gens[f"augment{i}"]) for k, i in enumerate(members)])
        seeds = [derive_seed(self.seed, "pgd", epoch, i, start) for i in members]
        loss, correct = train_step(trainee, x, y, adversarial=self.adversarial, pgd_seeds=seeds,
                                   execution=self.execution)
        p.loss_sum[members.start : members.stop] += loss
        p.correct[members.start : members.stop] += correct

    def counter_fires(self, b: int) -> bool:
        """PRSE after a submodel's (b+1)-th minibatch of the epoch (the counter as the authors'
        code runs it, reset each epoch; docs/reference.md §1)."""
        return self.linking is not None and self.n > 1 and (b + 1) % self.linking.prse_every == 0

    def prse(self, i: int) -> None:
        """Eq. 4–5 on submodel i against a uniformly drawn partner j ≠ i."""
        weights = self.linked()
        j = choose_partner(i, self.n, self.gens["partner"])
        prse(weights[i], weights[j], index=i, alpha=self.linking.alpha, delta=self.linking.delta,
             mask=self.mask)
        self.progress.exams[i] += 1
        if self.monitor is not None:
            self.progress.watched.append(torch.stack([w.detach()[tuple(self.monitor)] for w in weights]))

    def finish_pass(self, epoch: int, members: range) -> None:
        """Scheduler step, test accuracy and history entry of each member after its pass."""
        p, n_train = self.progress, len(self.data["y_train"])
        if p.watched:
            self.record["prse"]["monitored"].extend(torch.stack(p.watched).cpu().tolist())
            p.watched = []
        for trainee in self.trainees:
            if trainee.members.start in members:
                if trainee.scheduler is not None:
                    trainee.scheduler.step()
                trainee.write_to(self.models)
        for i in members:
            test_acc = accuracy(self.models[i], self.data["x_test"], self.data["y_test"],
                                batch_size=self.training.eval_batch_size, device=self.data["x_test"].device)
            self.record["history"].append({"epoch": epoch, "submodel": i,
                                           "loss": float(p.loss_sum[i]) / n_train,
                                           "train_acc": int(p.correct[i]) / n_train, "test_acc": test_acc})
            self.bar.update(1)
            self.bar.set_postfix(epoch=epoch, submodel=i, test_acc=f"{test_acc:.3f}")
        p.orders = {}

    def end_epoch(self, epoch: int) -> None:
        if self.record["prse"] is not None:
            self.record["prse"]["examinations"].append(self.progress.exams)
        self.progress = Progress(epoch=epoch + 1, exams=[0] * self.n)
        self.checkpoint.save()
        if self.on_epoch_end is not None:
            self.on_epoch_end(epoch)


def run_sequential(run: Run) -> None:
    """Alg. 1: each submodel's full pass in turn (``run.trainees[i]`` is submodel i)."""
    for epoch in range(run.progress.epoch, run.training.epochs):
        for i in range(run.progress.submodel, run.n):
            p = run.progress
            if not p.orders:
                run.start_pass(range(i, i + 1))
            for b in range(p.batch, run.n_batches):
                run.minibatch(run.trainees[i], epoch, b)
                if run.counter_fires(b):
                    run.prse(i)
                p.batch = b + 1
                run.checkpoint.after_minibatch()
            run.finish_pass(epoch, range(i, i + 1))
            p.submodel, p.batch = i + 1, 0
        run.end_epoch(epoch)


def run_lockstep(run: Run) -> None:
    """Minibatch b of every submodel, then b+1: the trainees together cover 0..n-1."""
    everyone = range(run.n)
    for epoch in range(run.progress.epoch, run.training.epochs):
        p = run.progress
        if not p.orders:
            run.start_pass(everyone)
        for b in range(p.batch, run.n_batches):
            for trainee in run.trainees:
                run.minibatch(trainee, epoch, b)
            if run.counter_fires(b):
                for i in everyone:
                    run.prse(i)
            p.batch = b + 1
            run.checkpoint.after_minibatch()
        run.finish_pass(epoch, everyone)
        run.end_epoch(epoch)
