"""The paper's five attacks through torchattacks 3.5.1, and the paper's crafting protocol.

Every attack parameter comes from the job (``params``); nothing here fills a default,
because torchattacks changed its defaults since the paper's 2.14.2 (REFERENCE.md §2):
MI-FGSM went from 5 steps of eps/5 to 10 steps of 2/255, PGD lost its 40 steps, and
3.5.1's ``AutoAttack`` class hard-codes 10 APGD/APGD-T/FAB steps where the original uses
100.  So AutoAttack is assembled here from its sub-attacks with explicit step counts.

``params`` per kind (exact keys, checked by :func:`build_attack`):

- ``fgsm``: ``{}``
- ``pgd``: ``{alpha, steps, random_start}``
- ``mifgsm``: ``{alpha, steps, decay}``
- ``eot-pgd``: ``{alpha, steps, eot_iter, random_start}``.  Against one deterministic
  submodel (threat models ``paper`` and ``transfer``) EOT-PGD is plain PGD at ``eot_iter``
  times the cost (REFERENCE.md §2); it is kept there because the paper reports it under
  that protocol.  It means something only in ``adaptive`` (see ``core.adaptive``).
- ``autoattack``: ``{version, norm, n_classes, steps, n_queries, n_restarts, eot_iter}``.
  ``standard`` = APGD-CE, APGD-T (n_classes - 1 targets), FAB-T (multi-targeted) and
  Square, as in Croce & Hein (2020); ``steps`` is the APGD/APGD-T/FAB iteration count
  (original 100), ``n_queries`` Square's budget (original 5000).  ``eot_iter`` is used
  by ``rand`` only (APGD-CE + APGD-DLR with EOT, original 20); ``standard`` runs with
  ``eot_iter = 1`` as the original does, since it targets deterministic models.

The paper's protocol (eq. 6; the authors' code, REFERENCE.md §1): each test batch of the
adversarial set is crafted on one uniformly random submodel (``per-batch``), or each
sample on its own random submodel (``per-sample``, the other reading of the text).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torchattacks
from torch import Tensor, nn
from torchattacks.attack import Attack
from tqdm import tqdm

from clmrepro.core.seeding import derive_seed

ATTACK_KINDS = ("fgsm", "pgd", "autoattack", "mifgsm", "eot-pgd")

REQUIRED_PARAMS: dict[str, frozenset[str]] = {
    "fgsm": frozenset(),
    "pgd": frozenset({"alpha", "steps", "random_start"}),
    "mifgsm": frozenset({"alpha", "steps", "decay"}),
    "eot-pgd": frozenset({"alpha", "steps", "eot_iter", "random_start"}),
    "autoattack": frozenset(
        {"version", "norm", "n_classes", "steps", "n_queries", "n_restarts", "eot_iter"}
    ),
}

CRAFTING_MODES = ("per-batch", "per-sample")

# The seeds below are overwritten before every call (``seed_attack``); 0 is the original
# AutoAttack's default and keeps a freshly built attack deterministic.
_INITIAL_SUBATTACK_SEED = 0


class PerturbationError(ValueError):
    """An adversarial batch left the L-infinity eps-ball or the pixel range [0, 1]."""


def check_params(kind: str, params: dict) -> None:
    if kind not in REQUIRED_PARAMS:
        raise ValueError(f"attack kind must be one of {', '.join(ATTACK_KINDS)} (got {kind!r})")
    given = set(params)
    missing = sorted(REQUIRED_PARAMS[kind] - given)
    unknown = sorted(given - REQUIRED_PARAMS[kind])
    if missing or unknown:
        raise ValueError(
            f"attack {kind!r}: params must have exactly the keys "
            f"{sorted(REQUIRED_PARAMS[kind])}; missing {missing}, unknown {unknown}"
        )


def build_attack(kind: str, model: nn.Module, eps: float, params: dict) -> Attack:
    """A torchattacks attack on ``model`` with every parameter taken from ``params``."""
    check_params(kind, params)
    if not eps > 0:
        raise ValueError(f"attack {kind!r}: eps must be > 0 (got {eps})")
    eps = float(eps)
    p = params
    if kind == "fgsm":
        return torchattacks.FGSM(model, eps=eps)
    if kind == "pgd":
        return torchattacks.PGD(
            model, eps=eps, alpha=float(p["alpha"]), steps=int(p["steps"]),
            random_start=bool(p["random_start"]),
        )
    if kind == "mifgsm":
        return torchattacks.MIFGSM(
            model, eps=eps, alpha=float(p["alpha"]), steps=int(p["steps"]),
            decay=float(p["decay"]),
        )
    if kind == "eot-pgd":
        return torchattacks.EOTPGD(
            model, eps=eps, alpha=float(p["alpha"]), steps=int(p["steps"]),
            eot_iter=int(p["eot_iter"]), random_start=bool(p["random_start"]),
        )
    return _build_autoattack(model, eps, p)


def _build_autoattack(model: nn.Module, eps: float, p: dict) -> torchattacks.MultiAttack:
    if p["norm"] != "Linf":
        # The paper attacks in L-infinity only, and check_perturbation checks that ball.
        raise ValueError(f"autoattack: norm must be 'Linf' (got {p['norm']!r})")
    steps, restarts, n_classes = int(p["steps"]), int(p["n_restarts"]), int(p["n_classes"])
    common = dict(norm="Linf", eps=eps, seed=_INITIAL_SUBATTACK_SEED, verbose=False)
    if p["version"] == "standard":
        attacks = [
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
    elif p["version"] == "rand":
        eot = int(p["eot_iter"])
        attacks = [
            torchattacks.APGD(model, steps=steps, n_restarts=restarts, loss=loss,
                              eot_iter=eot, rho=0.75, **common)
            for loss in ("ce", "dlr")
        ]
    else:
        raise ValueError(f"autoattack: version must be 'standard' or 'rand' (got {p['version']!r})")
    # MultiAttack runs the sub-attacks in order on the points still classified correctly
    # and returns the clean image where all fail, as the original AutoAttack does.
    return torchattacks.MultiAttack(attacks)


def seed_attack(attack: Attack, seed: int) -> None:
    """Make the next call of ``attack`` deterministic: torchattacks draws random starts
    from the global RNG and APGD/FAB/Square reseed it from their own ``seed``."""
    torch.manual_seed(seed)
    for sub in getattr(attack, "attacks", [attack]):
        if hasattr(sub, "seed"):
            sub.seed = seed


def check_perturbation(x: Tensor, x_adv: Tensor, eps: float, atol: float = 1e-6) -> None:
    """Raise :class:`PerturbationError` unless ``x_adv`` is within ``eps`` of ``x`` in
    L-infinity and inside [0, 1] (3.5.x no longer checks the range; REFERENCE.md §2)."""
    if x.shape != x_adv.shape:
        raise PerturbationError(f"shape changed: {tuple(x.shape)} -> {tuple(x_adv.shape)}")
    if not torch.isfinite(x_adv).all():
        raise PerturbationError("adversarial batch holds NaN or infinite values")
    if x_adv.numel() == 0:
        return
    dist = (x_adv.detach().cpu().double() - x.detach().cpu().double()).abs().max().item()
    if dist > eps + atol:
        raise PerturbationError(f"L-inf distance {dist:.8g} exceeds eps {eps:.8g}")
    low, high = x_adv.min().item(), x_adv.max().item()
    if low < -atol or high > 1 + atol:
        raise PerturbationError(f"values span [{low:.8g}, {high:.8g}], outside [0, 1]")


def assign_crafters(n_samples: int, n_models: int, *, mode: str, batch_size: int,
                    gen: torch.Generator) -> Tensor:
    """Which submodel crafts each sample: uniform over submodels, drawn once per test
    batch (the authors' code) or once per sample."""
    if mode not in CRAFTING_MODES:
        raise ValueError(f"crafting must be one of {CRAFTING_MODES} (got {mode!r})")
    if n_models < 1 or batch_size < 1:
        raise ValueError(f"need n_models >= 1 and batch_size >= 1 (got {n_models}, {batch_size})")
    if mode == "per-sample":
        return torch.randint(n_models, (n_samples,), generator=gen)
    n_batches = math.ceil(n_samples / batch_size)
    per_batch = torch.randint(n_models, (n_batches,), generator=gen)
    return per_batch.repeat_interleave(batch_size)[:n_samples]


def _craft_indices(attack, x, y, index: Tensor, *, eps, batch_size, seed, device, out,
                   bar) -> None:
    for start in range(0, len(index), batch_size):
        chunk = index[start:start + batch_size]
        xb, yb = x[chunk].to(device), y[chunk].to(device)
        seed_attack(attack, derive_seed(seed, start))
        adv = attack(xb, yb).detach()
        check_perturbation(xb, adv, eps)
        out[chunk] = adv.to(out.device, out.dtype)
        bar.update(1)


def craft_paper(models: Sequence[nn.Module], x: Tensor, y: Tensor, *, kind: str, eps: float,
                params: dict, crafters: Tensor, batch_size: int, seed: int, device,
                progress: bool = False) -> Tensor:
    """The adversarial set of eq. 6: sample j crafted on submodel ``crafters[j]``.

    Work is grouped by crafting submodel (one attack object per submodel); with
    ``per-batch`` crafters the groups split back into the authors' test batches.
    """
    if crafters.shape != (len(x),):
        raise ValueError(f"crafters must have shape ({len(x)},), got {tuple(crafters.shape)}")
    out = torch.empty_like(x)
    groups = [(k, (crafters == k).nonzero().squeeze(1)) for k in range(len(models))]
    total = sum(math.ceil(len(idx) / batch_size) for _, idx in groups)
    with tqdm(total=total, desc=f"{kind} paper", disable=not progress) as bar:
        for k, idx in groups:
            if len(idx) == 0:
                continue
            attack = build_attack(kind, models[k], eps, params)
            _craft_indices(attack, x, y, idx, eps=eps, batch_size=batch_size,
                           seed=derive_seed(seed, "paper", k), device=device, out=out, bar=bar)
    return out


def craft_transfer(models: Sequence[nn.Module], x: Tensor, y: Tensor, *, kind: str, eps: float,
                   params: dict, batch_size: int, seed: int, device,
                   progress: bool = False) -> Tensor:
    """Every submodel crafts the whole set: shape (n, N, C, H, W), [i] crafted on i."""
    n = len(models)
    out = torch.empty((n, *x.shape), dtype=x.dtype)
    index = torch.arange(len(x))
    total = n * math.ceil(len(x) / batch_size)
    with tqdm(total=total, desc=f"{kind} transfer", disable=not progress) as bar:
        for i, model in enumerate(models):
            attack = build_attack(kind, model, eps, params)
            _craft_indices(attack, x, y, index, eps=eps, batch_size=batch_size,
                           seed=derive_seed(seed, "transfer", i), device=device, out=out[i],
                           bar=bar)
    return out
