"""core.training.diversity: ADP, GAL, TRS and DVERGE losses against hand-computed values,
finite differences, what each regulariser rewards, and the global RNG left alone.

The hand values are written out in plain Python floats (float64) from the equations: tiny
linear members (m, C, D) whose logits are W_k x, so ∇_x CE_k = W_kᵀ (softmax(W_k x) − e_y) / B
for a batch-mean CE."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clmrepro.core.models import LeNet5
from clmrepro.core.seeding import generator
from clmrepro.core.training.diversity import (
    adp_loss,
    dverge_distill,
    dverge_loss,
    gal_loss,
    input_gradients,
    layer_features,
    trs_loss,
    trs_smoothness_points,
)

torch.set_num_threads(1)
D64 = torch.float64

W = [[[1.0, -0.5], [0.2, 0.8], [-0.7, 0.3]],
     [[-0.4, 0.9], [0.6, -0.2], [0.5, 0.5]],
     [[0.3, 0.3], [-0.8, 0.1], [0.2, -0.6]]]  # three members, C=3, D=2
X = [[0.2, 0.9], [0.7, 0.4]]  # B=2, in [0, 1]
Y = [0, 1]


def linear(w: torch.Tensor):
    """Members k: logits = w[k] x, over inputs (m, B, D)."""
    return lambda xs: torch.einsum("mbd,mcd->mbc", xs, w)


def tensors(m=2):
    return torch.tensor(W[:m], dtype=D64), torch.tensor(X, dtype=D64), torch.tensor(Y)


# plain-float arithmetic for the hand values
def softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def dot(a, b):
    return sum(u * v for u, v in zip(a, b))


def cos(a, b):
    return dot(a, b) / math.sqrt(dot(a, a) * dot(b, b))


def logits(w, x):
    return [dot(row, x) for row in w]


def ce(w, xs, ys):
    """Batch-mean CE of one linear member."""
    return sum(-math.log(softmax(logits(w, x))[y]) for x, y in zip(xs, ys)) / len(xs)


def input_grad(w, x, y, batch):
    """∇_x of a batch-mean CE at example x."""
    p = softmax(logits(w, x))
    return [sum((p[c] - (c == y)) * w[c][d] for c in range(len(w))) / batch for d in range(len(x))]


# ---- ADP ----------------------------------------------------------------------------------

Z = [[[1.0, 0.5, -0.5], [0.2, 0.1, 0.9]],
     [[0.3, -1.0, 0.8], [1.5, -0.2, 0.4]]]  # logits (m=2, B=2, C=3)
ZY = [0, 2]


def adp_by_hand(z, ys, alpha=2.0, beta=0.5, det_offset=1e-6):
    total = 0.0
    for b, y in enumerate(ys):
        p0, p1 = softmax(z[0][b]), softmax(z[1][b])
        ce_sum = -math.log(p0[y]) - math.log(p1[y])
        mean = [(u + v) / 2 for u, v in zip(p0, p1)]
        entropy = -sum(q * math.log(q + 1e-20) for q in mean)
        n0 = [q for c, q in enumerate(p0) if c != y]
        n1 = [q for c, q in enumerate(p1) if c != y]
        c01 = cos(n0, n1)  # Gram of the unit rows: [[1, c], [c, 1]] (+ det_offset I)
        det = (1 + det_offset) ** 2 - c01 ** 2
        total += ce_sum - alpha * entropy - beta * math.log(det)
    return total / len(ys)


@pytest.mark.parametrize("as_log_probs", [False, True])
def test_adp_equals_hand_computed_value(as_log_probs):
    out = torch.tensor(Z, dtype=D64)
    if as_log_probs:  # LeNet5 returns log_softmax: the same loss
        out = out.log_softmax(-1)
    loss, parts = adp_loss(out, torch.tensor(ZY))
    assert loss.item() == pytest.approx(adp_by_hand(Z, ZY), abs=1e-6)
    assert set(parts) == {"ce", "ensemble_entropy", "log_det"}
    assert not parts["ce"].requires_grad
    loss, _ = adp_loss(out, torch.tensor(ZY), alpha=0.7, beta=1.3)
    assert loss.item() == pytest.approx(adp_by_hand(Z, ZY, alpha=0.7, beta=1.3), abs=1e-6)


def test_adp_gradient_matches_finite_differences():
    w, x, y = tensors()
    w.requires_grad_(True)
    xs = x.expand(2, *x.shape)
    assert torch.autograd.gradcheck(lambda w: adp_loss(linear(w)(xs), y)[0], (w,))


def test_adp_prefers_members_with_different_non_true_predictions():
    y = torch.tensor([0])
    same = torch.tensor([[[2.0, 1.0, -5.0]], [[2.0, 1.0, -5.0]]], dtype=D64)
    diverse = torch.tensor([[[2.0, 1.0, -5.0]], [[2.0, -5.0, 1.0]]], dtype=D64)  # same CEs
    loss_same, parts_same = adp_loss(same, y)
    loss_diverse, parts_diverse = adp_loss(diverse, y)
    assert parts_same["ce"] == pytest.approx(parts_diverse["ce"].item(), abs=1e-12)
    assert parts_diverse["log_det"] > parts_same["log_det"] + 5
    assert parts_diverse["ensemble_entropy"] > parts_same["ensemble_entropy"]
    assert loss_diverse < loss_same


# ---- input gradients, GAL ----------------------------------------------------------------------

def test_input_gradients_are_each_members_own():
    w, x, y = tensors(3)
    out, ce_, grads = input_gradients(linear(w), x, y, 3)
    assert out.shape == (3, 2, 3) and ce_.shape == (3,) and grads.shape == (3, 2, 2)
    assert grads.requires_grad  # create_graph: the regulariser reaches the parameters
    for k in range(3):
        assert ce_[k].item() == pytest.approx(ce(W[k], X, Y), abs=1e-12)
        for b in range(2):
            assert grads[k, b].tolist() == pytest.approx(input_grad(W[k], X[b], Y[b], 2), abs=1e-12)


def gal_by_hand(members, lam=0.5):
    per_example = []
    for b in range(len(X)):
        g = [input_grad(w, X[b], Y[b], len(X)) for w in members]
        pairs = [(i, j) for i in range(len(g)) for j in range(i + 1, len(g))]
        per_example.append(math.log(sum(math.exp(cos(g[i], g[j])) for i, j in pairs) + 1e-20))
    coherence = sum(per_example) / len(X)
    return sum(ce(w, X, Y) for w in members) + lam * coherence, coherence


@pytest.mark.parametrize("m", [2, 3])
def test_gal_equals_hand_computed_value(m):
    w, x, y = tensors(m)
    loss, out, parts = gal_loss(linear(w), x, y, m)
    expected, coherence = gal_by_hand(W[:m])
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert parts["coherence"].item() == pytest.approx(coherence, abs=1e-6)
    assert out.shape == (m, 2, 3)
    loss, _, _ = gal_loss(linear(w), x, y, m, lam=2.0)
    assert loss.item() == pytest.approx(gal_by_hand(W[:m], lam=2.0)[0], abs=1e-6)


def test_gal_cosine_is_per_example_not_of_the_flattened_batch():
    g = [[input_grad(W[k], X[b], Y[b], 2) for b in range(2)] for k in range(2)]
    flat = cos(g[0][0] + g[0][1], g[1][0] + g[1][1])  # list concatenation: the whole batch
    per_example = gal_by_hand(W[:2])[1]
    assert abs(flat - per_example) > 1e-2  # so the hand-value test tells the two apart


def test_gal_gradient_matches_finite_differences():
    w, x, y = tensors(3)
    w.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda w: gal_loss(linear(w), x, y, 3)[0], (w,))


def directional(a0, a1):
    """Two members with logits (a_k·x, 0, 0): at x = 0 with label 1, CE = log 3 for both and
    ∇_x CE_k = a_k / 3, so the gradients' angle is the angle of a_0 and a_1."""
    w = torch.zeros(2, 3, 2, dtype=D64)
    w[0, 0], w[1, 0] = torch.tensor(a0, dtype=D64), torch.tensor(a1, dtype=D64)
    return linear(w), torch.zeros(1, 2, dtype=D64), torch.tensor([1])


def test_gal_penalises_aligned_gradients():
    losses, coherences = [], []
    for a1 in ([1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]):  # aligned, orthogonal, opposite
        forward, x, y = directional([1.0, 0.0], a1)
        loss, _, parts = gal_loss(forward, x, y, 2)
        losses.append(loss.item())
        coherences.append(parts["coherence"].item())
    assert coherences == pytest.approx([1.0, 0.0, -1.0], abs=1e-9)
    assert losses[0] > losses[1] > losses[2]


def test_pairwise_terms_need_two_members():
    w, x, y = tensors(1)
    with pytest.raises(ValueError):
        gal_loss(linear(w), x, y, 1)


# ---- TRS ----------------------------------------------------------------------------------------

def trs_by_hand(members, xs, ys, points, scale=5.0, coeff=2.0, lamda=2.0):
    """TRS on the batch (xs, ys) with the smoothness measured at ``points``."""
    cos_sum = 0.0
    for b in range(len(xs)):
        g = [input_grad(w, xs[b], ys[b], len(xs)) for w in members]
        pairs = [(i, j) for i in range(len(g)) for j in range(i + 1, len(g))]
        cos_sum += sum(abs(cos(g[i], g[j])) for i, j in pairs) / len(pairs)
    cos_loss = cos_sum / len(xs)
    smooth = 0.0
    for w in members:
        grads = [input_grad(w, points[b], ys[b], len(xs)) for b in range(len(xs))]
        smooth += 2 * sum(dot(g, g) for g in grads) / len(xs)
    smooth /= len(members)
    ce_sum = sum(ce(w, xs, ys) for w in members)
    return ce_sum + scale * (coeff * cos_loss + lamda * smooth), cos_loss, smooth


@pytest.mark.parametrize("m", [2, 3])
def test_trs_without_perturbation_equals_hand_computed_value(m):
    w, x, y = tensors(m)
    loss, out, parts = trs_loss(linear(w), x, y, m, eps=0.0, gen=generator(0))
    expected, cos_loss, smooth = trs_by_hand(W[:m], X, Y, X)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    assert parts["cos"].item() == pytest.approx(cos_loss, abs=1e-6)
    assert parts["smooth"].item() == pytest.approx(smooth, abs=1e-6)
    loss, _, _ = trs_loss(linear(w), x, y, m, scale=1.5, coeff=0.3, lamda=4.0, eps=0.0, gen=generator(0))
    assert loss.item() == pytest.approx(trs_by_hand(W[:m], X, Y, X, 1.5, 0.3, 4.0)[0], abs=1e-6)


TRS_X = [[0.23, 0.41], [0.37, 0.18], [0.4, 0.52], [0.61, 0.39]]  # B=4: the last two are perturbed
TRS_Y = [2, 0, 1, 2]


def magnitude_sum(w, xb, yb):
    """Σ_k 2·mean_b ‖∇_x CE_k‖² (batch-mean CE) in torch, for autograd in the hand PGD."""
    p = torch.softmax(torch.einsum("bd,mcd->mbc", xb, w), -1)
    g = torch.einsum("mbc,mcd->mbd", p - F.one_hot(yb, 3).to(D64), w) / len(xb)
    return 2 * g.pow(2).sum(-1).mean(-1).sum()


def pgd_by_hand(w, x, y, eps, steps, seed, accumulate=True):
    x0, y0 = x[2:], y[2:]
    noise = torch.empty(x0.shape, dtype=D64).uniform_(-eps, eps, generator=generator(seed))
    adv, total = (x0 + noise).clamp(0, 1), torch.zeros_like(x0)
    for _ in range(steps):
        a = adv.clone().requires_grad_(True)
        grad = torch.autograd.grad(magnitude_sum(w, a, y0), a)[0]
        total = total + grad if accumulate else grad
        adv = torch.min(torch.max(adv + eps / 3 * total.sign(), x0 - eps), x0 + eps).clamp(0, 1)
    return torch.cat([x[:2], adv])


def test_trs_smoothness_points_follow_their_pgd():
    w, y = torch.tensor(W[:2], dtype=D64), torch.tensor(TRS_Y)
    x = torch.tensor(TRS_X, dtype=D64)
    points = trs_smoothness_points(linear(w), x, y, 2, eps=0.2, gen=generator(5), steps=6)
    expected = pgd_by_hand(w, x, y, 0.2, 6, seed=5)
    assert torch.allclose(points, expected, atol=1e-12, rtol=0)
    # the authors' loop never clears adv.grad: the gradients add up, and here that shows
    assert not torch.allclose(points, pgd_by_hand(w, x, y, 0.2, 6, seed=5, accumulate=False))
    assert torch.equal(points[:2], x[:2])
    assert (points - x).abs().max() <= 0.2 + 1e-12 and points.min() >= 0 and points.max() <= 1
    assert (points[2:] - x[2:]).abs().max() > 0.1
    assert 0 < points.min() and points.max() < 1  # inside: accumulated gradients cancelled
    again = trs_smoothness_points(linear(w), x, y, 2, eps=0.2, gen=generator(5), steps=6)
    assert torch.equal(points, again)


def test_trs_with_perturbation_measures_smoothness_at_those_points():
    w, x, y = torch.tensor(W[:2], dtype=D64), torch.tensor(TRS_X, dtype=D64), torch.tensor(TRS_Y)
    points = trs_smoothness_points(linear(w), x, y, 2, eps=0.2, gen=generator(9)).tolist()
    assert points != TRS_X
    expected, _, smooth = trs_by_hand(W[:2], TRS_X, TRS_Y, points)
    loss, _, parts = trs_loss(linear(w), x, y, 2, eps=0.2, gen=generator(9))
    assert parts["smooth"].item() == pytest.approx(smooth, abs=1e-6)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_trs_gradient_matches_finite_differences(eps):
    w, x, y = torch.tensor(W, dtype=D64), torch.tensor(TRS_X, dtype=D64), torch.tensor(TRS_Y)
    w.requires_grad_(True)

    def loss(w):  # the perturbed points are constants (their code detaches them)
        return trs_loss(linear(w), x, y, 3, eps=eps, gen=generator(1))[0]

    assert torch.autograd.gradcheck(loss, (w,))


def test_trs_penalises_aligned_gradients():
    results = {}
    for name, a1 in (("aligned", [1.0, 0.0]), ("orthogonal", [0.0, 1.0]), ("opposite", [-1.0, 0.0])):
        forward, x, y = directional([1.0, 0.0], a1)
        loss, _, parts = trs_loss(forward, x, y, 2, eps=0.0, gen=generator(0))
        results[name] = (loss.item(), parts["cos"].item())
    assert results["aligned"][1] == pytest.approx(1.0) and results["opposite"][1] == pytest.approx(1.0)
    assert results["orthogonal"][1] == pytest.approx(0.0, abs=1e-12)
    assert results["aligned"][0] > results["orthogonal"][0]
    assert results["opposite"][0] == pytest.approx(results["aligned"][0])  # |cos|


# ---- DVERGE -------------------------------------------------------------------------------------

def lenets(n=3):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return [LeNet5(in_channels=1).eval() for _ in range(n)]


def images(seed, n=4):
    return torch.rand((n, 1, 32, 32), generator=generator(seed))


def test_layer_features_are_the_named_layers_output_of_each_member():
    models = lenets(2)
    x = torch.stack([images(1), images(2)])
    features = layer_features(models, "bn2")
    feats = features(x)
    assert len(features) == 2 and feats.shape == (2, 4, 16 * 10 * 10)
    for k, net in enumerate(models):
        h = F.max_pool2d(F.relu(net.bn1(net.conv1(x[k]))), 2)
        assert torch.allclose(feats[k], net.bn2(net.conv2(h)).flatten(1))
        assert not net.bn2._forward_hooks  # hooks removed
    unused = nn.Sequential(nn.Linear(2, 2))
    unused.add_module("spare", nn.Linear(2, 2))
    unused.forward = lambda x: unused[0](x)
    with pytest.raises(RuntimeError):
        layer_features([unused], "spare")(torch.zeros(1, 1, 2))
    assert not unused.spare._forward_hooks


@pytest.mark.parametrize("random_start", [False, True])
def test_distilled_examples_stay_in_the_ball_and_move_toward_the_target(random_start):
    models = lenets(2)
    features = layer_features(models, "bn2")
    source, target = images(3), images(4)
    out = dverge_distill(features, source, target, eps=0.07, step_size=0.007, steps=10,
                         gen=generator(0), random_start=random_start)
    assert out.shape == (2, *source.shape)
    assert (out - source).abs().max() <= 0.07 + 1e-6
    assert out.min() >= 0 and out.max() <= 1
    with torch.no_grad():
        t = features(target.expand(2, *target.shape))
        before = (features(source.expand(2, *source.shape)) - t).pow(2).sum(-1)
        after = (features(out) - t).pow(2).sum(-1)
    assert (after < before).all()  # every member, every example


def test_distillation_is_reproducible_per_generator_and_per_member():
    models = lenets(3)
    source, target = images(3), images(4)

    def run(members, seed):
        return dverge_distill(layer_features(members, "conv2"), source, target, eps=0.07,
                              step_size=0.007, steps=3, gen=generator(seed), random_start=True)

    a = run(models[:2], 7)
    assert torch.equal(a, run(models[:2], 7))
    assert not torch.equal(a, run(models[:2], 8))
    other = run([models[0], models[2]], 7)
    assert torch.equal(a[0], other[0])  # block k depends on member k alone


def test_distillation_steps_by_hand():
    """Linear features f_k(x) = v_k·x, eps 0.15, step 0.1, 2 steps, momentum (mu 1): g sums
    the L1-normalised gradients ±v_k/‖v_k‖₁, so a residual that flips sign after step 1
    gives g = 0 and the example stays; one that keeps its sign moves again (then clipped)."""
    v = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=D64)
    features = lambda xs: torch.einsum("mbd,md->mb", xs, v).unsqueeze(-1)  # noqa: E731
    source = torch.tensor([[0.5, 0.5], [0.2, 0.3]], dtype=D64)
    target = torch.tensor([[0.45, 0.5], [0.9, 0.9]], dtype=D64)
    out = dverge_distill(features, source, target, eps=0.15, step_size=0.1, steps=2, m=2)
    expected = torch.tensor([[[0.4, 0.4], [0.35, 0.45]],   # member 0: flips, keeps sign (clipped)
                             [[0.4, 0.6], [0.3, 0.2]]], dtype=D64)  # member 1: both flip
    assert torch.allclose(out, expected, atol=1e-12, rtol=0)
    plain = dverge_distill(features, source, target, eps=0.15, step_size=0.1, steps=2, m=2,
                           momentum=False)
    assert torch.allclose(plain[0, 0], source[0], atol=1e-12)  # without momentum it steps back


def cross_by_hand(members, distilled, ys):
    return [sum(ce(members[i], distilled[j], ys) for j in range(len(members)) if j != i)
            for i in range(len(members))]


@pytest.mark.parametrize("m", [2, 3])
def test_dverge_loss_equals_hand_computed_value(m):
    w = torch.tensor(W[:m], dtype=D64)
    distilled = [[[0.1, 0.8], [0.6, 0.3]], [[0.9, 0.2], [0.4, 0.4]], [[0.0, 1.0], [0.7, 0.7]]][:m]
    y = torch.tensor(Y)
    loss, out, parts = dverge_loss(linear(w), torch.tensor(distilled, dtype=D64), y)
    cross = cross_by_hand(W[:m], distilled, Y)  # summed over j ≠ i, not averaged
    assert loss.item() == pytest.approx(sum(cross), abs=1e-6)
    assert parts["distilled_ce"].item() == pytest.approx(sum(cross), abs=1e-6)
    assert out.shape == (m - 1, m, 2, 3)
    for s in range(1, m):
        for i in range(m):
            expected = torch.tensor(distilled[(i - s) % m], dtype=D64) @ w[i].T
            assert torch.allclose(out[s - 1, i], expected)
    adv = [[[0.3, 0.3], [0.5, 0.9]], [[0.2, 0.6], [0.8, 0.1]], [[0.4, 0.0], [0.6, 0.6]]][:m]
    loss, _, parts = dverge_loss(linear(w), torch.tensor(distilled, dtype=D64), y,
                                 plus_adv=torch.tensor(adv, dtype=D64), coeff=0.5)
    expected = sum(0.5 * cross[i] + ce(W[i], adv[i], Y) for i in range(m))
    assert loss.item() == pytest.approx(expected, abs=1e-6)


def test_dverge_loss_gradient_matches_finite_differences():
    w = torch.tensor(W, dtype=D64, requires_grad=True)
    distilled = torch.rand((3, 2, 2), generator=generator(2), dtype=D64)
    y = torch.tensor(Y)
    assert torch.autograd.gradcheck(lambda w: dverge_loss(linear(w), distilled, y)[0], (w,))


# ---- no global RNG -------------------------------------------------------------------------------

def test_no_function_draws_from_the_global_rng():
    models = lenets(2)
    state = torch.random.get_rng_state()
    w, x, y = tensors(3)
    xt, yt = torch.tensor(TRS_X, dtype=D64), torch.tensor(TRS_Y)
    adp_loss(linear(w)(x.expand(3, *x.shape)), y)
    input_gradients(linear(w), x, y, 3)
    gal_loss(linear(w), x, y, 3)
    trs_smoothness_points(linear(w), xt, yt, 3, eps=0.2, gen=generator(0))
    trs_loss(linear(w), xt, yt, 3, eps=0.2, gen=generator(0))
    features = layer_features(models, "bn2")
    distilled = dverge_distill(features, images(1), images(2), eps=0.07, step_size=0.007,
                               steps=2, gen=generator(0), random_start=True)
    dverge_loss(lambda xs: torch.stack([net(xs[k]) for k, net in enumerate(models)]),
                distilled, torch.tensor([0, 1, 2, 3]))
    assert torch.equal(torch.random.get_rng_state(), state)
