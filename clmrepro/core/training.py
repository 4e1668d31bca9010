"""Training a population: ULM (independent), CLM (Alg. 1 with PRSE), and their PGD variants.

Alg. 1 as the authors' code runs it (REFERENCE.md §1): for each epoch, for each submodel i,
submodel i makes a full pass over the data while the others wait; its PRSE counter starts
at 0 each epoch and every ``prse_every``-th minibatch triggers one PRSE (core.linking).
ULM is the same loop without PRSE, so the two regimes differ only by eq. 4–5.

Every random draw of ours comes from a generator derived from the job seed: data order and
augmentation per submodel, one partner generator, one mask generator.  After each finished
epoch the full state goes to ``state_dir/last.pt``, so an interrupted run resumes and ends
with bit-identical weights (on the same device).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from clmrepro.core.checkpoints import atomic_torch_save, safe_load
from clmrepro.core.data import DataBundle, augment_batch, to_unit
from clmrepro.core.linking import choose_partner, make_mask, prse
from clmrepro.core.models import build_model, counter_linked_layer
from clmrepro.core.seeding import derive_seed, generator

STATE_FILE = "last.pt"


@dataclass
class TrainConfig:
    epochs: int
    batch_size: int
    optimizer: str  # "adam" | "sgd"
    lr: float
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "none"  # "none" | "cosine" (stepped once per epoch, as the authors' code)
    t_max: int = 0  # cosine period in epochs; 0 means ``epochs``
    augment: bool = False  # random crop (padding 4) + horizontal flip, CIFAR-10 only
    eval_batch_size: int = 500


@dataclass
class LinkingConfig:
    alpha: float  # α of eq. 5
    delta: float  # δ of eq. 4
    prse_every: int  # one PRSE every this many minibatches of a submodel
    mask: str = "shared"  # "shared" (authors' code) | "per-weight" (paper text)
    layer: str = "conv1"  # l = 1; the only layer the paper counter-links


@dataclass
class AdversarialConfig:
    eps: float
    alpha: float
    steps: int
    random_start: bool = True


def init_population(
    architecture: str, size: int, *, in_channels: int, num_classes: int, seed: int
) -> list[nn.Module]:
    """``size`` freshly initialised models, submodel i from seed derive_seed(seed, "init", i).

    PyTorch's initialisers draw from the global RNG; fork it so the caller's RNG is untouched."""
    models = []
    for i in range(size):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(seed, "init", i))
            models.append(build_model(architecture, in_channels=in_channels, num_classes=num_classes))
    return models


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int, device) -> float:
    """Fraction of ``x`` (float [0, 1] or uint8) classified as ``y``; restores the model's mode."""
    was_training = model.training
    model.eval()
    correct = 0
    for k in range(0, len(y), batch_size):
        xb = x[k : k + batch_size].to(device)
        xb = to_unit(xb) if xb.dtype == torch.uint8 else xb
        correct += int((model(xb).argmax(1) == y[k : k + batch_size].to(device)).sum())
    model.train(was_training)
    return correct / max(len(y), 1)


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    raise ValueError(f"optimizer must be adam or sgd (got {cfg.optimizer!r})")


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer):
    if cfg.schedule == "none":
        return None
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.t_max or cfg.epochs)
    raise ValueError(f"schedule must be none or cosine (got {cfg.schedule!r})")


def monitored_index(mask: torch.Tensor, weight_shape: tuple[int, ...]) -> list[int] | None:
    """The weight followed in Fig. 5: the first masked position of filter 0 (the first masked
    weight at all when filter 0 has none); None when the mask is empty."""
    full = mask.expand(weight_shape) if mask.dim() < len(weight_shape) else mask
    hits = full.nonzero()
    return [int(v) for v in hits[0]] if len(hits) else None


def _regime(linking, adversarial) -> str:
    return ("clm" if linking else "ulm") + ("-adv" if adversarial else "")


def _weights_digest(models: list[nn.Module]) -> str:
    digest = hashlib.sha256()
    for model in models:
        for name, tensor in model.state_dict().items():
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _fingerprint(models, data, training, linking, adversarial, seed) -> dict:
    # everything that must match for a saved state to be resumed; ``epochs`` may grow.  The
    # initial weights and the data count too: a retrain whose starting population changed,
    # or a run on another split, must not resume.
    train = {k: v for k, v in asdict(training).items() if k != "epochs"}
    labels = hashlib.sha256(data.y_train.numpy().tobytes() + data.y_test.numpy().tobytes())
    return {"train": repr(sorted(train.items())), "seed": int(seed), "size": len(models),
            "data": f"{data.name}:{len(data.y_train)}:{len(data.y_test)}:{labels.hexdigest()}",
            "init": _weights_digest(models),
            "linking": repr(linking and sorted(asdict(linking).items())),
            "adversarial": repr(adversarial and sorted(asdict(adversarial).items())),
            "model": type(models[0]).__name__}


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
) -> dict:
    """Train ``models`` in place (Alg. 1) and return the training record (docs/architecture.md).

    ``on_epoch_end(epoch)`` is called after each epoch's state is saved (tests use it to
    simulate an interruption)."""
    n = len(models)
    if linking is not None and linking.layer != "conv1":
        raise ValueError(f"linking.layer must be 'conv1' (got {linking.layer!r})")
    models = [m.to(device) for m in models]
    opts = [make_optimizer(training, m) for m in models]
    scheds = [make_scheduler(training, o) for o in opts]
    gens = {f"order{i}": generator(derive_seed(seed, "order", i)) for i in range(n)}
    gens.update({f"augment{i}": generator(derive_seed(seed, "augment", i)) for i in range(n)})
    gens["partner"] = generator(derive_seed(seed, "partner"))
    layers = [counter_linked_layer(m) for m in models]
    shape = tuple(layers[0].weight.shape)
    mask = make_mask(shape, linking.mask, generator(derive_seed(seed, "mask"))) if linking else None
    monitor = monitored_index(mask, shape) if mask is not None else None
    record = {
        "schema_version": 1, "regime": _regime(linking, adversarial), "size": n, "seed": int(seed),
        "history": [],
        "prse": None if linking is None else {
            "examinations": [], "mask": mask.tolist(), "monitored_index": monitor, "monitored": []},
        "conv1": [], "test_accuracy": [], "wall_seconds": 0.0,
    }
    fingerprint = _fingerprint(models, data, training, linking, adversarial, seed)
    start_epoch, elapsed = 0, 0.0
    state_path = Path(state_dir) / STATE_FILE if state_dir is not None else None
    if state_path is not None and state_path.exists():
        state = safe_load(state_path, map_location=device)
        if state["fingerprint"] == fingerprint:  # a state of other settings is stale: start over
            for m, s in zip(models, state["models"]):
                m.load_state_dict(s)
            for o, s in zip(opts, state["optimizers"]):
                o.load_state_dict(s)
            for sch, s in zip(scheds, state["schedulers"]):
                if sch is not None:
                    sch.load_state_dict(s)
            for name, g in gens.items():
                g.set_state(state["generators"][name].cpu())
            start_epoch, elapsed, record = state["epoch"], state["wall_seconds"], state["record"]

    x_train, y_train = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    attacks = [_pgd(m, adversarial) for m in models] if adversarial else None
    bs, n_train = training.batch_size, len(data.y_train)
    bar = tqdm(total=max(training.epochs - start_epoch, 0) * n, disable=not progress,
               desc=record["regime"], unit="pass")
    t0 = time.perf_counter()
    for epoch in range(start_epoch, training.epochs):
        exams = [0] * n
        for i, (model, opt) in enumerate(zip(models, opts)):
            model.train()
            order = torch.randperm(n_train, generator=gens[f"order{i}"]).to(device)
            # accumulated on the device: no host sync per minibatch (matters on a GPU)
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.long, device=device)
            counter, watched = 0, []
            for start in range(0, n_train, bs):
                idx = order[start : start + bs]
                x, y = to_unit(x_train[idx]), y_train[idx]
                if training.augment:
                    x = augment_batch(x, gens[f"augment{i}"])
                if attacks is not None:
                    # torchattacks draws its random start from the global RNG (REFERENCE.md §2)
                    torch.manual_seed(derive_seed(seed, "pgd", epoch, i, start))
                    x = attacks[i](x, y)  # crafted on the submodel being trained (authors' code)
                opt.zero_grad(set_to_none=True)
                out = model(x)
                # log_softmax is idempotent, so cross-entropy is right for LeNet5's log-probs
                # and ResNet18's logits alike
                loss = F.cross_entropy(out, y)
                loss.backward()
                opt.step()
                loss_sum += loss.detach() * len(y)
                correct += (out.argmax(1) == y).sum()
                counter += 1
                if linking is not None and n > 1 and counter % linking.prse_every == 0:
                    j = choose_partner(i, n, gens["partner"])
                    prse(layers[i].weight, layers[j].weight, index=i, alpha=linking.alpha,
                         delta=linking.delta, mask=mask)
                    exams[i] += 1
                    if monitor is not None:
                        watched.append(torch.stack([la.weight.detach()[tuple(monitor)] for la in layers]))
            if watched:
                record["prse"]["monitored"].extend(torch.stack(watched).cpu().tolist())
            if scheds[i] is not None:
                scheds[i].step()
            test_acc = accuracy(model, x_test, y_test, batch_size=training.eval_batch_size, device=device)
            record["history"].append({"epoch": epoch, "submodel": i, "loss": float(loss_sum) / n_train,
                                      "train_acc": int(correct) / n_train, "test_acc": test_acc})
            bar.update(1)
            bar.set_postfix(epoch=epoch, submodel=i, test_acc=f"{test_acc:.3f}")
        if record["prse"] is not None:
            record["prse"]["examinations"].append(exams)
        if state_path is not None:
            atomic_torch_save({
                "epoch": epoch + 1, "fingerprint": fingerprint,
                "wall_seconds": elapsed + time.perf_counter() - t0, "record": record,
                "models": [m.state_dict() for m in models],
                "optimizers": [o.state_dict() for o in opts],
                "schedulers": [s.state_dict() if s is not None else {} for s in scheds],
                "generators": {name: g.get_state() for name, g in gens.items()},
            }, state_path)
        if on_epoch_end is not None:
            on_epoch_end(epoch)
    bar.close()
    for model in models:
        model.eval()
    record["conv1"] = [layer.weight.detach().cpu().tolist() for layer in layers]
    # nothing touches submodel i after its last pass, so its last test accuracy is final
    last = {h["submodel"]: h["test_acc"] for h in record["history"] if h["epoch"] == training.epochs - 1}
    record["test_accuracy"] = [
        last[i] if i in last else
        accuracy(m, x_test, y_test, batch_size=training.eval_batch_size, device=device)
        for i, m in enumerate(models)]
    record["wall_seconds"] = elapsed + time.perf_counter() - t0
    return record


def _pgd(model: nn.Module, cfg: AdversarialConfig):
    import torchattacks

    # every parameter explicit: torchattacks 3.5.1 defaults differ from 2.14 (REFERENCE.md §2)
    return torchattacks.PGD(model, eps=cfg.eps, alpha=cfg.alpha, steps=cfg.steps,
                            random_start=cfg.random_start)
