"""Training losses of four ensemble-diversity methods, for a joint step over a population.

All m members see the SAME minibatch and one loss over all members is minimised.  A
population's ``forward`` takes (m, B, ...) — block k is member k's input — and returns
(m, B, classes), logits or log-probabilities (softmax, log_softmax and cross-entropy are
applied to either).  Inputs are images in [0, 1].  Random draws take a ``torch.Generator``;
nothing here touches the global RNG.  Each loss returns ``parts``: detached 0-dim tensors for
logging (no host sync).

- ADP: Pang et al., ICML 2019, "Improving Adversarial Robustness via Promoting Ensemble
  Diversity"; code github.com/P2333/Adaptive-Diverse-Ensemble (Keras, ``Loss_withEE_DPP``).
- GAL: Kariyappa & Qureshi 2019, "Improving Adversarial Robustness of Ensembles with Diversity
  Training" (arXiv 1901.09981); no official code, so the PyTorch versions in
  github.com/zjysteven/DVERGE (train/train_gal.py, arguments.py) and
  github.com/AI-secure/Transferability-Reduced-Smooth-Ensemble (train/Empirical/trainer.py).
- TRS: Yang et al., NeurIPS 2021, "TRS: Transferability Reduced Ensemble via Promoting Gradient
  Diversity and Model Smoothness"; code github.com/AI-secure/Transferability-Reduced-Smooth-
  Ensemble (train/Empirical/trainer.py ``TRS_Trainer``/``PGD``, utils/Empirical/utils_ensemble.py
  ``Cosine``/``Magnitude``, utils/Empirical/script_train.py for the values run).
- DVERGE: Yang et al., NeurIPS 2020, "DVERGE: Diversifying Vulnerabilities for Enhanced Robust
  Generation of Ensembles"; code github.com/zjysteven/DVERGE (distillation.py
  ``Linf_distillation``, train/train_dverge.py, arguments.py).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Forward = Callable[[Tensor], Tensor]


def _member_ce(out: Tensor, y: Tensor) -> Tensor:
    """Mean cross-entropy over the batch of each member: out (m, B, C), y (B,) -> (m,)."""
    m, b, c = out.shape
    return F.cross_entropy(out.reshape(m * b, c), y.repeat(m), reduction="none").view(m, b).mean(1)


def _parts(**values: Tensor) -> dict[str, Tensor]:
    return {name: value.detach() for name, value in values.items()}


def _uniform(like: Tensor, eps: float, gen: torch.Generator) -> Tensor:
    """U[−eps, eps] shaped like ``like``, drawn on the generator's device (a CPU generator
    serves CUDA data, as the authors' CPU draws did), moved to ``like``'s."""
    noise = torch.empty(like.shape, dtype=like.dtype, device=gen.device)
    return noise.uniform_(-eps, eps, generator=gen).to(like.device)


def _pairs(m: int) -> tuple[Tensor, Tensor]:
    if m < 2:
        raise ValueError(f"a pairwise diversity term needs at least 2 members, got {m}")
    a, b = torch.triu_indices(m, m, 1)
    return a, b


def adp_loss(out: Tensor, y: Tensor, *, alpha: float = 2.0, beta: float = 0.5,
             log_offset: float = 1e-20, det_offset: float = 1e-6
             ) -> tuple[Tensor, dict[str, Tensor]]:
    """ADP: L = Σ_k CE_k − α·H(p̄) − β·log det(M̃ M̃ᵀ + det_offset·I), averaged over the batch.

    p_k = softmax(out_k), p̄ = mean_k p_k, H(p) = −Σ_c p_c log(p_c + log_offset); M̃ (m, C−1)
    holds each member's non-true-label probabilities, each row L2-normalised.  As the code
    (``Ensemble_Entropy``, ``log_det``, ``Loss_withEE_DPP``): CE summed (not averaged) over
    members, log_offset inside the entropy's log, det_offset·I added to the Gram matrix (not to
    M̃), every term per example then averaged over the batch.  α=2, β=0.5 are the paper's
    ADP_{2,0.5} and the README's command (the Keras flags default to 1.0 and 0.5).  Not copied:
    Keras's categorical_crossentropy clips p to [1e-7, 1−1e-7]; we use the exact CE.
    """
    m, b, c = out.shape
    ce = _member_ce(out, y)
    p = out.softmax(-1)
    mean_p = p.mean(0)
    entropy = -(mean_p * torch.log(mean_p + log_offset)).sum(-1)  # (B,)
    keep = torch.ones(b, 1, c, dtype=torch.bool, device=out.device)
    keep[torch.arange(b, device=out.device), 0, y] = False
    non_true = p.transpose(0, 1).masked_select(keep).view(b, m, c - 1)
    unit = non_true / non_true.norm(dim=-1, keepdim=True)
    eye = torch.eye(m, dtype=out.dtype, device=out.device)
    gram = unit @ unit.transpose(1, 2) + det_offset * eye
    log_det = torch.logdet(gram)  # (B,)
    loss = ce.sum() - alpha * entropy.mean() - beta * log_det.mean()
    return loss, _parts(ce=ce.sum(), ensemble_entropy=entropy.mean(), log_det=log_det.mean())


def _gradients(forward: Forward, xs: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    out = forward(xs)
    ce = _member_ce(out, y)
    return out, ce, torch.autograd.grad(ce.sum(), xs, create_graph=True)[0]


def input_gradients(forward: Forward, x: Tensor, y: Tensor, m: int
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """out (m, B, C), ce (m,) and grads (m, B, ...) with grads[k] = ∇_x CE_k(x), CE_k the batch
    mean of member k on the shared batch x (B, ...).  Each member gets its own copy of x, so
    block k's gradient is member k's alone; create_graph=True for double backprop."""
    xs = x.detach().unsqueeze(0).expand(m, *x.shape).clone().requires_grad_(True)
    return _gradients(forward, xs, y)


def gal_loss(forward: Forward, x: Tensor, y: Tensor, m: int, *, lam: float = 0.5,
             log_offset: float = 1e-20) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """GAL: L = Σ_k CE_k + λ·mean_b log(Σ_{a<b} exp(cos(g_a(x_b), g_b(x_b))) + log_offset),
    g_k = ∇_x CE_k.

    The cosine is per example (the paper's loss is per input; both public re-implementations
    take F.cosine_similarity over each example's flattened gradient), then averaged over the
    batch.  λ=0.5: DVERGE arguments.py ``--lambda`` (citing the paper) and TRS script_train.py
    ``gal_coeff``; log_offset 1e-20 from both.  CE is summed over members as TRS's GAL_Trainer
    (DVERGE's train_gal.py divides it by m instead).
    """
    out, ce, grads = input_gradients(forward, x, y, m)
    g = grads.flatten(2)
    a, b = _pairs(m)
    cos = F.cosine_similarity(g[a], g[b], dim=-1)  # (pairs, B)
    coherence = torch.log(cos.exp().sum(0) + log_offset).mean()
    loss = ce.sum() + lam * coherence
    return loss, out, _parts(ce=ce.sum(), coherence=coherence)


def _magnitude(grads: Tensor) -> Tensor:
    """TRS ``Magnitude`` of each member: 2·mean_b ‖g_b‖² -> (m,)."""
    return 2 * grads.flatten(2).pow(2).sum(-1).mean(-1)


def trs_smoothness_points(forward: Forward, x: Tensor, y: Tensor, m: int, *, eps: float,
                          gen: torch.Generator, steps: int = 6) -> Tensor:
    """The points where TRS measures smoothness: the first ⌊B/2⌋ examples as they are, the rest
    moved by TRS's ``PGD``: x' ∈ [0,1], ‖x' − x‖∞ ≤ eps, uniform random start in [−eps, eps]
    (drawn from ``gen``), ``steps`` (6) steps of eps/3 ascending Σ_k Magnitude_k(x') along
    sign(Σ_{t'≤t} ∇) — their loop never clears ``adv.grad``, so the gradients accumulate."""
    n = x.shape[0] // 2
    x0 = x[n:].detach()
    adv = (x0 + _uniform(x0, eps, gen)).clamp(0, 1)
    total = torch.zeros_like(x0)
    for _ in range(steps):
        xs = adv.unsqueeze(0).expand(m, *adv.shape).clone().requires_grad_(True)
        _, _, grads = _gradients(forward, xs, y[n:])
        total = total + torch.autograd.grad(_magnitude(grads).mean(), xs)[0].sum(0)
        adv = torch.min(torch.max(adv + eps / 3 * total.sign(), x0 - eps), x0 + eps).clamp(0, 1)
    return torch.cat([x[:n].detach(), adv.detach()])


def trs_loss(forward: Forward, x: Tensor, y: Tensor, m: int, *, scale: float = 5.0,
             coeff: float = 2.0, lamda: float = 2.0, eps: float = 0.1, steps: int = 6,
             gen: torch.Generator) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """TRS: L = Σ_k CE_k + scale·(coeff·L_cos + lamda·L_smooth), as ``TRS_Trainer``.

    L_cos = mean over pairs a<b and examples of |cos(∇_x CE_a, ∇_x CE_b)| (``Cosine``);
    L_smooth = mean_k Magnitude_k at :func:`trs_smoothness_points` (their ``plus_adv`` branch;
    eps=0 gives their other branch, the clean batch), Magnitude_k = 2·mean_b ‖∇_x CE_k‖² with
    CE_k the batch mean, so the term scales as 1/B².  Their code divides Σ_k by 3 (m=3 only); we
    take the mean.  Values: scale 5, coeff 2, lamda 2 (train_trs.py argparse defaults; its
    launcher script_train.py runs the same, with no per-dataset values for MNIST or CIFAR-10);
    eps grows linearly from init_eps 0.1 to adv_eps 0.2 over training,
    eps = 0.1 + 0.1·epoch/epochs (epoch from 0) — the caller passes it.
    """
    out, ce, grads = input_gradients(forward, x, y, m)
    g = grads.flatten(2)
    a, b = _pairs(m)
    cos = F.cosine_similarity(g[a], g[b], dim=-1).abs().mean()
    if eps == 0:
        smooth_grads = grads  # the same points, the same graph
    else:
        points = trs_smoothness_points(forward, x, y, m, eps=eps, gen=gen, steps=steps)
        smooth_grads = input_gradients(forward, points, y, m)[2]
    smooth = _magnitude(smooth_grads).mean()
    loss = ce.sum() + scale * (coeff * cos + lamda * smooth)
    return loss, out, _parts(ce=ce.sum(), cos=cos, smooth=smooth)


class _Captured(Exception):
    def __init__(self, output: Tensor):
        self.output = output


def _capture(module: nn.Module, inputs: tuple, output: Tensor) -> None:
    raise _Captured(output)


class _LayerFeatures:
    """See :func:`layer_features`; ``len()`` is the number of members."""

    def __init__(self, models: list[nn.Module], layer: str):
        self.models, self.layer = list(models), layer

    def __len__(self) -> int:
        return len(self.models)

    def __call__(self, x: Tensor) -> Tensor:
        blocks = []
        for k, model in enumerate(self.models):
            handle = model.get_submodule(self.layer).register_forward_hook(_capture)
            try:
                model(x[k])
            except _Captured as captured:
                blocks.append(captured.output.flatten(1))
            else:
                raise RuntimeError(f"layer {self.layer!r} did not run in member {k}'s forward")
            finally:
                handle.remove()
        return torch.stack(blocks)


def layer_features(models: list[nn.Module], layer: str) -> Callable[[Tensor], Tensor]:
    """features(x (m, B, ...)) -> (m, B, F): the output of submodule ``layer`` (a name of
    ``named_modules``, e.g. LeNet5's "bn2", before its ReLU as DVERGE's ``before_relu=True``)
    of member k on block k, flattened.  A forward hook captures it and stops the forward there,
    as DVERGE's ``get_features`` runs only the layers up to the one asked for.  ``len()`` of
    the result is m, which :func:`dverge_distill` reads when it is not told m."""
    return _LayerFeatures(models, layer)


def dverge_distill(features: Callable[[Tensor], Tensor], x_source: Tensor, x_target: Tensor,
                   *, eps: float, step_size: float, steps: int, gen: torch.Generator | None = None,
                   random_start: bool = False, momentum: bool = True, mu: float = 1.0,
                   m: int | None = None) -> Tensor:
    """Feature distillation: for each member k, x'_k ≈ argmin_{‖x' − x_s‖∞ ≤ eps, x' ∈ [0,1]}
    MSE(f_k(x'), f_k(x_t)), by ``Linf_distillation``: start at x_s (plus uniform noise in
    [−eps, eps] from ``gen`` if random_start, default off), then ``steps`` times
    g ← mu·g + ∇/‖∇‖₁ (‖·‖₁ per example; momentum on by default, mu 1; g = ∇ without it),
    x' ← clip_{[0,1]}(clip_{x_s±eps}(x' − step_size·sign(g))).  The target's features are
    taken again at every step after the source's, as theirs (BatchNorm in train mode sees the
    same forwards).  Defaults of theirs: CIFAR-10 eps 0.07, step 0.007, 10 steps (DVERGE
    arguments.py); MNIST eps 0.35, step 0.035, 10 steps (TRS repo train_dverge.py).
    x_source, x_target (B, ...) -> (m, B, ...); m defaults to ``len(features)``."""
    m = len(features) if m is None else m
    src = x_source.detach().unsqueeze(0).expand(m, *x_source.shape)
    tgt = x_target.detach().unsqueeze(0).expand(m, *x_target.shape)
    adv = src.clone()
    if random_start:
        if gen is None:
            raise ValueError("random_start needs a generator")
        adv = adv + _uniform(src, eps, gen)
    adv = adv.clamp(0, 1)
    g = torch.zeros_like(adv)
    for _ in range(steps):
        xs = adv.clone().requires_grad_(True)
        out = features(xs)
        with torch.no_grad():
            target = features(tgt)
        cost = (out - target).pow(2).flatten(1).mean(1).sum()  # member k: MSELoss on block k
        grad = torch.autograd.grad(cost, xs)[0]
        if momentum:
            l1 = grad.flatten(2).abs().sum(-1).clamp_min(1e-12)
            g = mu * g + grad / l1.view(*l1.shape, *([1] * (grad.dim() - 2)))
            grad = g
        adv = torch.min(torch.max(adv - step_size * grad.sign(), src - eps), src + eps).clamp(0, 1)
    return adv.detach()


def dverge_loss(forward: Forward, distilled: Tensor, y: Tensor, *, plus_adv: Tensor | None = None,
                coeff: float = 1.0) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
    """DVERGE: L = Σ_i L_i, L_i = Σ_{j≠i} CE(member_i(x'_j), y) — summed over j as the code
    (train_dverge.py), not averaged; y the source labels.  With ``plus_adv``
    (m, B, ...), member i's PGD examples, L_i = coeff·L_i + CE(member_i(plus_adv_i), y) (their
    ``--plus-adv``, ``--dverge-coeff`` 1.0).  Member i's L_i reaches only member i's parameters,
    so one backward of L is their m per-member optimiser steps' gradients.

    out (m−1, m, B, C): out[s−1] = forward(distilled.roll(s, 0)), member i on x'_{(i−s) mod m};
    one forward per shift, so BatchNorm sees each x'_j alone, as theirs."""
    m = distilled.shape[0]
    _pairs(m)
    cross = torch.zeros(m, dtype=distilled.dtype, device=distilled.device)
    outs = []
    for s in range(1, m):
        out = forward(distilled.roll(s, 0))
        cross = cross + _member_ce(out, y)
        outs.append(out)
    per_member = cross
    parts = {"distilled_ce": cross.sum()}
    if plus_adv is not None:
        adv_ce = _member_ce(forward(plus_adv), y)
        per_member = coeff * cross + adv_ce
        parts["adv_ce"] = adv_ce.sum()
    return per_member.sum(), torch.stack(outs), _parts(**parts)
