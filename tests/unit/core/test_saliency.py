"""Saliency maps (eq. 8), pairwise cosine (eq. 7) and conv1 spread."""

import pytest
import torch
from torch import nn

from clmrepro.core.models import build_model
from clmrepro.core.saliency import conv1_std, pairwise_saliency_cosine, saliency_maps
from clmrepro.core.seeding import generator

# two computations that round differently: run again with other CPUs' kernels (Makefile)
pytestmark = pytest.mark.numerics

torch.set_num_threads(1)


def linear(weight):
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    with torch.no_grad():
        model[1].weight.copy_(weight)
        model[1].bias.fill_(0.5)
    return model.eval()


def test_saliency_of_a_linear_model_is_the_weight_row_of_the_label():
    w = torch.randn(3, 16, generator=generator(0))
    x = torch.rand(4, 1, 4, 4, generator=generator(1))
    y = torch.tensor([0, 2, 1, 2])
    maps = saliency_maps(linear(w), x, y, batch_size=3)
    assert maps.shape == x.shape
    assert torch.allclose(maps.flatten(1), w[y])


def test_pairwise_cosine_has_every_pair_and_known_values():
    w = torch.randn(3, 16, generator=generator(2))
    other = torch.randn(3, 16, generator=generator(3))
    models = [linear(w), linear(2 * w), linear(-w), linear(other)]
    x = torch.rand(5, 1, 4, 4, generator=generator(4))
    y = torch.tensor([0, 1, 2, 0, 1])
    cos = pairwise_saliency_cosine(models, x, y)
    assert sorted(cos) == ["0-1", "0-2", "0-3", "1-2", "1-3", "2-3"]  # (n^2 - n)/2 = 6
    assert cos["0-1"] == pytest.approx([1.0] * 5)
    assert cos["0-2"] == pytest.approx([-1.0] * 5)
    want = nn.functional.cosine_similarity(w[y], other[y], dim=1)
    assert cos["0-3"] == pytest.approx(want.tolist(), abs=1e-6)


def test_saliency_on_lenet5_does_not_depend_on_batching_and_keeps_mode():
    torch.manual_seed(0)
    model = build_model("lenet5", in_channels=1)
    model.train()
    x = torch.rand(6, 1, 32, 32, generator=generator(5))
    y = torch.arange(6)
    a = saliency_maps(model, x, y, batch_size=6)
    b = saliency_maps(model, x, y, batch_size=1)
    assert torch.allclose(a, b, atol=1e-6) and a.abs().sum() > 0
    assert model.training


def test_conv1_std_per_submodel():
    torch.manual_seed(0)
    models = [build_model("lenet5", in_channels=1) for _ in range(2)]
    with torch.no_grad():
        models[0].conv1.weight.fill_(0.25)
        models[1].conv1.weight.copy_(torch.arange(150.0).view(6, 1, 5, 5))
    std = conv1_std(models)
    assert std[0] == pytest.approx(0.0)
    assert std[1] == pytest.approx(torch.arange(150.0).std().item())
