import pytest
import torch

from clmrepro.core.seeding import generator
from clmrepro.core.training.linking import choose_partner, make_mask, prse

torch.set_num_threads(1)


def hand_made():
    # values chosen so that +/- 0.5 is exact in float32
    w_i = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]], [[[0.0, 1.0], [2.0, 3.0]]]])  # (2,1,2,2)
    w_j = torch.tensor([[[[0.25, 1.0], [9.0, 3.125]]], [[[5.0, 1.25], [2.0, 7.0]]]])
    return w_i, w_j


@pytest.mark.parametrize("index,sign", [(0, 1.0), (1, -1.0), (2, 1.0), (7, -1.0)])
def test_prse_moves_only_masked_close_weights_by_alpha(index, sign):
    w_i, w_j = hand_made()
    before_i, before_j = w_i.clone(), w_j.clone()
    mask = torch.tensor([[[1.0, 1.0], [1.0, 0.0]]])  # shared (in, k, k)
    beta = prse(w_i, w_j, index=index, alpha=0.5, delta=0.3, mask=mask)
    close = (before_i - before_j).abs() < 0.3
    expected_beta = close.float()
    assert torch.equal(beta, expected_beta)
    moved = close & (mask.expand_as(w_i) > 0)
    # filter 0: (0,0), (0,1) close and masked, (1,0) masked but far, (1,1) close but
    # unmasked; filter 1: (0,1), (1,0) close and masked
    assert close.sum() == 5 and moved.sum() == 4
    assert torch.equal(w_i[moved], before_i[moved] + sign * 0.5)
    assert torch.equal(w_i[~moved], before_i[~moved])
    assert torch.equal(w_j, before_j)  # the partner never changes


def test_prse_per_weight_mask():
    w_i, w_j = hand_made()
    before = w_i.clone()
    mask = torch.zeros_like(w_i)
    mask[1, 0, 0, 1] = 1.0
    prse(w_i, w_j, index=0, alpha=0.5, delta=0.3, mask=mask)
    diff = w_i - before
    assert diff[1, 0, 0, 1] == 0.5 and diff.abs().sum() == 0.5


def test_prse_bypasses_autograd_and_optimiser():
    layer = torch.nn.Conv2d(1, 2, 2)
    other = torch.nn.Conv2d(1, 2, 2)
    with torch.no_grad():
        other.weight.copy_(layer.weight)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-3)
    layer(torch.rand(1, 1, 3, 3)).sum().backward()
    opt.step()
    state_before = {k: v.clone() for k, v in opt.state[layer.weight].items()}
    grad_before = layer.weight.grad.clone()
    with torch.no_grad():
        other.weight.copy_(layer.weight)
    mask = torch.ones(1, 2, 2)
    prse(layer.weight, other.weight, index=1, alpha=0.1, delta=0.1, mask=mask)
    assert torch.allclose(layer.weight, other.weight - 0.1)
    for k, v in opt.state[layer.weight].items():
        assert torch.equal(v, state_before[k])
    assert torch.equal(layer.weight.grad, grad_before)
    assert layer.weight.requires_grad and layer.weight.grad_fn is None


def test_make_mask_shapes_and_determinism():
    shared = make_mask((6, 1, 5, 5), "shared", generator(3))
    assert shared.shape == (1, 5, 5)
    assert set(shared.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(shared, make_mask((6, 1, 5, 5), "shared", generator(3)))
    full = make_mask((64, 3, 3, 3), "per-weight", generator(3))
    assert full.shape == (64, 3, 3, 3)
    big = make_mask((500, 10, 5, 5), "per-weight", generator(1))
    assert abs(big.mean().item() - 0.5) < 0.02  # Bernoulli(0.5)
    with pytest.raises(ValueError, match="per-weight"):
        make_mask((6, 1, 5, 5), "random", generator(0))


def test_choose_partner_uniform_and_never_self():
    gen = generator(11)
    n = 5
    for i in range(n):
        draws = [choose_partner(i, n, gen) for _ in range(2000)]
        assert i not in draws
        counts = torch.bincount(torch.tensor(draws), minlength=n).float()
        others = counts[[k for k in range(n) if k != i]]
        assert ((others / 2000 - 0.25).abs() < 0.04).all()
    assert choose_partner(0, 2, gen) == 1 and choose_partner(1, 2, gen) == 0
    with pytest.raises(ValueError):
        choose_partner(0, 1, gen)
