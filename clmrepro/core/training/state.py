"""Resumable training state: what is saved, when, and which saved state may be resumed.

A run saves everything that determines its future to ``state_dir/last.pt`` (atomically):
weights, optimiser and scheduler states, every generator, the record so far, and where it
stands inside the epoch (``Progress``: submodel, minibatch, the data orders of the pass under
way, the running loss/accuracy sums, PRSE counts).  It saves

- after every epoch (as before);
- inside an epoch every ``every_s`` seconds (checked after each minibatch), so a SIGKILL
  loses at most that much work; ``every_s = 0`` saves after every minibatch;
- when ``should_stop()`` turns true after a minibatch, then raises ``Interrupted``.

A rerun with the same fingerprint continues from there and ends bit-identical to an
uninterrupted run (same device): the next minibatch sees the same weights, optimiser
moments, data order, augmentation draws and PGD seeds as it would have.

Writing does not stall training (issue 30): a save copies the state to host memory
(:func:`to_host`: one device-to-host copy, the only wait on the GPU) and a writer thread
serialises, fsyncs and renames it while training goes on.  One write at a time: the next save
first waits for the previous one (and raises its error, e.g. a full disk); a stop request waits
for its write before ``Interrupted`` is raised, and ``Checkpoint.wait`` (called by
core.training.loop when the run ends, also by an exception) leaves no write behind.  What is
saved is the state at the save point, so resuming stays bit-identical.  Why not save less often:
the interval bounds the work a SIGKILL loses, and the cost (about 1.3 GB for 10 ResNet18s with
Adam) is the write, not the copy (docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from clmrepro.core.checkpoints import atomic_torch_save, safe_load
from clmrepro.core.devices import device_identity
from clmrepro.core.interrupt import Interrupted, StopCheck

STATE_FILE = "last.pt"


@dataclass
class Progress:
    """Where a run stands.  ``submodel``: the pass under way in Alg. 1 (0 in lockstep);
    ``batch``: minibatches of that pass already taken; ``orders``: the data order of each
    submodel in the pass (empty until the pass starts); ``loss_sum`` / ``correct``: per
    submodel, this pass; ``exams``: PRSEs per submodel this epoch; ``watched``: monitored
    weights after each PRSE, not yet in the record; ``terms``: joint training's loss terms summed
    over this pass (core.training.joint)."""

    epoch: int = 0
    submodel: int = 0
    batch: int = 0
    orders: dict[int, Tensor] = field(default_factory=dict)
    loss_sum: Tensor | None = None
    correct: Tensor | None = None
    exams: list[int] = field(default_factory=list)
    watched: list[Tensor] = field(default_factory=list)
    terms: dict[str, Tensor] = field(default_factory=dict)  # joint training: loss terms this pass

    def as_dict(self) -> dict:
        return dict(vars(self))  # shallow: tensors are saved as they are


def _weights_digest(models: list[nn.Module]) -> str:
    digest = hashlib.sha256()
    for model in models:
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def fingerprint(models, data, training, linking, adversarial, seed, execution,
                diversity=None) -> dict:
    """Everything that must match for a saved state to be resumed; ``epochs`` may grow.

    The initial weights and the data count too (a retrain whose starting population
    changed, or a run on another split, must not resume), and so does the resolved
    execution: batched vs one at a time, the memory format and the precision change float
    rounding, the schedule changes the science; on CUDA the GPU model does too
    (core.devices.device_identity)."""
    train = {k: v for k, v in asdict(training).items() if k != "epochs"}
    labels = hashlib.sha256(data.y_train.numpy().tobytes() + data.y_test.numpy().tobytes())
    return {"train": repr(sorted(train.items())), "seed": int(seed), "size": len(models),
            "data": f"{data.name}:{len(data.y_train)}:{len(data.y_test)}:{labels.hexdigest()}",
            "init": _weights_digest(models),
            "linking": repr(linking and sorted(asdict(linking).items())),
            "adversarial": repr(adversarial and sorted(asdict(adversarial).items())),
            # an unset field (max_models None) leaves the fingerprint as before it existed
            "execution": repr(sorted((k, v) for k, v in asdict(execution).items()
                                     if v is not None)),
            "model": type(models[0]).__name__,
            # the method and its knobs, written as before the loss became a field
            **({"diversity": repr(sorted({"method": diversity.method,
                                          "params": diversity.params}.items()))}
               if diversity else {}),
            **device_identity(next(models[0].parameters()).device)}


def to_host(obj: Any) -> Any:
    """A copy of ``obj`` on the CPU that training can no longer change: every tensor copied
    (``detach().to("cpu", copy=True)``, its memory format kept), dicts, lists and tuples rebuilt,
    anything else (numbers, strings, None) as it is."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return type(obj)((key, to_host(value)) for key, value in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_host(value) for value in obj)
    return obj


class Checkpoint:
    """Saves a run's state (from ``snapshot()``) at the points listed in the module docstring."""

    def __init__(self, state_dir: str | Path | None, fingerprint: dict, *, every_s: float,
                 should_stop: StopCheck | None, snapshot: Callable[[], dict]):
        self.path = Path(state_dir) / STATE_FILE if state_dir is not None else None
        self.fingerprint = fingerprint
        self.every_s = every_s
        self.should_stop = should_stop
        self.snapshot = snapshot
        self.last_save = time.monotonic()
        self._writer: threading.Thread | None = None
        self._error: BaseException | None = None

    def load(self, device) -> dict | None:
        """The saved state when it belongs to this run; None for none or a stale one."""
        if self.path is None or not self.path.exists():
            return None
        state = safe_load(self.path, map_location=device)
        return state if state.get("fingerprint") == self.fingerprint else None

    def save(self, *, wait: bool = False) -> None:
        """The state now, copied to the host; written by a thread unless ``wait``."""
        if self.path is not None:
            self.wait()
            state = to_host({"fingerprint": self.fingerprint, **self.snapshot()})
            self._writer = threading.Thread(target=self._write, args=(state,), daemon=True,
                                            name="checkpoint-writer")
            self._writer.start()
            if wait:
                self.wait()
        self.last_save = time.monotonic()

    def _write(self, state: dict) -> None:
        try:
            atomic_torch_save(state, self.path)
        except BaseException as error:  # raised in the training thread by wait()
            self._error = error

    def wait(self) -> None:
        """Until the write under way (if any) is on disk; raises its error."""
        if self._writer is not None:
            self._writer.join()
            self._writer = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def after_minibatch(self) -> None:
        """The safe point: save when asked to stop or when ``every_s`` has passed."""
        stop = self.should_stop is not None and self.should_stop()
        if stop or time.monotonic() - self.last_save >= self.every_s:
            self.save(wait=stop)
        if stop:
            raise Interrupted(saved=str(self.path) if self.path is not None
                              else "nothing (the run has no state folder)")
