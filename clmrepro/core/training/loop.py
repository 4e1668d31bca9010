"""Training a population: ULM (independent), CLM (Alg. 1 with PRSE), and their PGD variants.

``train_population`` sets a run up and hands it to one of two schedules
(core.training.schedules): Alg. 1 as the authors' code runs it (each submodel's full pass in
turn; PRSE every ``prse_every``-th minibatch of a submodel, core.training.linking, eq. 4–5), or
lockstep (every submodel takes minibatch b before any takes b+1), which lets the population
step as one batched computation (core.stacked).  ULM is the same loop without PRSE, so the
two regimes differ only by eq. 4–5; for ULM the two schedules are the same training.

Which schedule and kernels run is the job's ``execution`` block (core.training.config):
population auto|sequential|batched (auto = batched on CUDA), memory format, precision, and
the CLM schedule (Alg. 1 by default; lockstep is a departure from the paper).

Every random draw of ours comes from a generator derived from the job seed: data order and
augmentation per submodel, one partner generator, one mask generator, and the PGD random
start per (epoch, submodel, minibatch).  The run's state goes to ``state_dir/last.pt`` after
every epoch, every ``state_every_s`` seconds inside one, and when ``should_stop()`` asks
(core.training.state), so an interrupted run resumes and ends with bit-identical weights (on the
same device).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm import tqdm

from clmrepro.core.data import DataBundle
from clmrepro.core.interrupt import StopCheck
from clmrepro.core.models import build_model, counter_linked_layer
from clmrepro.core.seeding import derive_seed, generator
from clmrepro.core.training.config import (
    AdversarialConfig,
    DiversityConfig,
    ExecutionConfig,
    LinkingConfig,
    TrainConfig,
)
from clmrepro.core.training.joint import run_joint
from clmrepro.core.training.linking import make_mask
from clmrepro.core.training.schedules import Run, run_lockstep, run_sequential
from clmrepro.core.training.state import Checkpoint, Progress, fingerprint
from clmrepro.core.training.step import SingleTrainee, StackedTrainee, accuracy

__all__ = ["init_population", "monitored_index", "train_population"]

STATE_EVERY_S = 60.0  # a SIGKILL loses at most about this much training (plus one minibatch)


def init_population(
    architecture: str, size: int, *, in_channels: int, num_classes: int, seed: int,
    kwargs: dict | None = None,
) -> list[nn.Module]:
    """``size`` freshly initialised models, submodel i from seed derive_seed(seed, "init", i).

    PyTorch's initialisers draw from the global RNG; fork it so the caller's RNG is untouched."""
    models = []
    for i in range(size):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "init", i))
            models.append(build_model(architecture, in_channels=in_channels,
                                      num_classes=num_classes, kwargs=kwargs))
    return models


def monitored_index(mask: torch.Tensor, weight_shape: tuple[int, ...]) -> list[int] | None:
    """The weight followed in Fig. 5: the first masked position of filter 0 (the first masked
    weight at all when filter 0 has none); None when the mask is empty."""
    full = mask.expand(weight_shape) if mask.dim() < len(weight_shape) else mask
    hits = full.nonzero()
    return [int(v) for v in hits[0]] if len(hits) else None


def groups(n: int, size: int | None) -> list[range]:
    """Submodels 0..n-1 in consecutive stacks of at most ``size`` (None: one stack)."""
    size = n if size is None else max(1, min(size, n))
    return [range(k, min(k + size, n)) for k in range(0, n, size)]


def _regime(linking, adversarial, diversity=None) -> str:
    if diversity is not None:
        return diversity.method
    return ("clm" if linking else "ulm") + ("-adv" if adversarial else "")


def train_population(
    models: list[nn.Module],
    data: DataBundle,
    *,
    training: TrainConfig,
    linking: LinkingConfig | None,
    adversarial: AdversarialConfig | None,
    seed: int,
    device: torch.device,
    state_dir: Path | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
    execution: ExecutionConfig | None = None,
    should_stop: StopCheck | None = None,
    state_every_s: float = STATE_EVERY_S,
    on_resume: Callable[[Progress], None] | None = None,
    diversity: DiversityConfig | None = None,
) -> dict:
    """Train ``models`` in place and return the training record (docs/architecture.md).

    ``on_epoch_end(epoch)`` is called after each epoch's state is saved.  ``should_stop()``
    is asked after every minibatch; when true the state is saved and ``Interrupted`` raised
    (core.interrupt).  ``state_every_s``: seconds between saves inside an epoch (0: after
    every minibatch).  ``on_resume(progress)`` is called when a saved state is resumed.
    ``diversity``: train the members jointly under a baseline's loss (core.training.joint)."""
    n = len(models)
    if linking is not None and linking.layer != "conv1":
        raise ValueError(f"linking.layer must be 'conv1' (got {linking.layer!r})")
    if diversity is not None and (linking is not None or adversarial is not None):
        raise ValueError("a diversity baseline trains without counter-linking or PGD training")
    resolved = (execution or ExecutionConfig()).resolve(device, linked=linking is not None)
    if diversity is not None:  # one shared pass per epoch; each member on its own kernels
        resolved = replace(resolved, schedule="joint", stacked=False, max_models=None)
    models = [m.to(device) for m in models]
    shape = tuple(counter_linked_layer(models[0]).weight.shape)
    mask = make_mask(shape, linking.mask, generator(derive_seed(seed, "mask"))) if linking else None
    monitor = monitored_index(mask, shape) if mask is not None else None
    gens = {f"order{i}": generator(derive_seed(seed, "order", i)) for i in range(n)}
    gens.update({f"augment{i}": generator(derive_seed(seed, "augment", i)) for i in range(n)})
    gens["partner"] = generator(derive_seed(seed, "partner"))
    if diversity is not None:
        gens["target"] = generator(derive_seed(seed, "target"))
        gens["diversity"] = generator(derive_seed(seed, "diversity"))
    record = {
        "schema_version": 1, "regime": _regime(linking, adversarial, diversity), "size": n,
        "seed": int(seed),
        "history": [],
        "prse": None if linking is None else {
            "examinations": [], "mask": mask.tolist(), "monitored_index": monitor, "monitored": []},
        "conv1": [], "test_accuracy": [], "wall_seconds": 0.0,
    }
    if diversity is not None:
        record["diversity"] = {"method": diversity.method, "params": diversity.params, "terms": []}
    key = fingerprint(models, data, training, linking, adversarial, seed, resolved, diversity)
    trainees = ([StackedTrainee(models, members, training, resolved)
                 for members in groups(n, resolved.max_models)] if resolved.stacked else
                [SingleTrainee(m, i, training, resolved) for i, m in enumerate(models)])
    tensors = {name: getattr(data, name).to(device) for name in ("x_train", "y_train", "x_test", "y_test")}
    run = Run(models=models, trainees=trainees, data=tensors, training=training, linking=linking,
              adversarial=adversarial, execution=resolved, seed=seed, gens=gens, mask=mask,
              monitor=monitor, record=record, progress=Progress(exams=[0] * n), bar=None,
              on_epoch_end=on_epoch_end, diversity=diversity)
    run.checkpoint = Checkpoint(state_dir, key, every_s=state_every_s, should_stop=should_stop,
                                snapshot=run.snapshot)
    state = run.checkpoint.load(device)
    if state is not None:  # a state of other settings is stale: start over
        run.restore(state)
        if on_resume is not None:
            on_resume(run.progress)
    done = run.progress.epoch * n + (run.progress.submodel if resolved.schedule == "sequential" else 0)
    run.bar = tqdm(total=max(training.epochs * n - done, 0), disable=not progress,
                   desc=run.record["regime"], unit="pass")
    schedules = {"lockstep": run_lockstep, "sequential": run_sequential, "joint": run_joint}
    try:
        schedules[resolved.schedule](run)
    finally:  # the last state on disk before the run returns or raises
        run.checkpoint.wait()
    run.bar.close()
    return _finish(run)


def _finish(run: Run) -> dict:
    """Final weights into the caller's modules (contiguous, eval mode) and the record's tail."""
    for trainee in run.trainees:
        trainee.write_to(run.models)
    for model in run.models:
        model.to(memory_format=torch.contiguous_format).eval()
    record = run.record
    # the filters of Fig. 4 (a first conv); an architecture linked on a linear layer has none
    # worth drawing, and its weight matrix would swell the record
    layers = [counter_linked_layer(m) for m in run.models]
    record["conv1"] = ([layer.weight.detach().cpu().tolist() for layer in layers]
                       if all(isinstance(layer, nn.Conv2d) for layer in layers) else None)
    # nothing touches submodel i after its last pass, so its last test accuracy is final
    epochs = run.training.epochs
    last = {h["submodel"]: h["test_acc"] for h in record["history"] if h["epoch"] == epochs - 1}
    record["test_accuracy"] = [
        last[i] if i in last else
        accuracy(m, run.data["x_test"], run.data["y_test"], batch_size=run.training.eval_batch_size,
                 device=run.data["x_test"].device)
        for i, m in enumerate(run.models)]
    record["wall_seconds"] = run.wall_seconds()
    return record
