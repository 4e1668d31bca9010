"""Inference rules (core.ensemble) on hand-made outputs."""

import pytest
import torch
from torch import nn

from clmrepro.core.ensemble import AveragedPopulation, rule_correctness, vote


class Fixed(nn.Module):
    """Returns the same outputs for every image of a batch of B images: ``rows`` (B, classes)."""

    def __init__(self, rows):
        super().__init__()
        self.rows = torch.tensor(rows, dtype=torch.float64)

    def forward(self, x):
        return self.rows[: len(x)]


def test_vote_is_the_plurality_and_a_tie_goes_to_the_lowest_label():
    preds = torch.tensor([[2, 1, 0, 3],
                          [2, 2, 1, 1],
                          [0, 2, 1, 3]])
    # image 0: 2,2,0 -> 2; image 1: 1,2,2 -> 2; image 2: 0,1,1 -> 1; image 3: 3,1,3 -> 3
    assert vote(preds, 4).tolist() == [2, 2, 1, 3]
    tie = torch.tensor([[3], [1]])  # one vote each: the lower label wins
    assert vote(tie, 4).tolist() == [1]


def test_average_and_vote_can_disagree_and_random_is_not_either():
    # three submodels, one image, three classes, true label 0
    a = Fixed([[0.4, 0.6, 0.0]])   # votes 1 (barely)
    b = Fixed([[0.45, 0.55, 0.0]]) # votes 1 (barely)
    c = Fixed([[1.0, 0.0, 0.0]])   # votes 0 (sure)
    models = [a, b, c]
    x, y = torch.zeros(1, 1), torch.tensor([0])
    # average: (1.85/3, 1.15/3, 0) -> label 0, right; vote: 1, 1, 0 -> label 1, wrong
    assert rule_correctness(models, x, y, "average", batch_size=1, device="cpu",
                            num_classes=3).tolist() == [True]
    assert rule_correctness(models, x, y, "vote", batch_size=1, device="cpu",
                            num_classes=3).tolist() == [False]
    averaged = AveragedPopulation(models)(x)
    torch.testing.assert_close(averaged, torch.tensor([[1.85 / 3, 1.15 / 3, 0.0]],
                                                      dtype=torch.float64))
    with pytest.raises(ValueError, match="random is scored per submodel"):
        rule_correctness(models, x, y, "random", batch_size=1, device="cpu")


def test_the_averaged_population_is_differentiable_in_its_input():
    torch.manual_seed(0)
    models = [nn.Linear(3, 2, bias=False) for _ in range(2)]
    x = torch.randn(4, 3, requires_grad=True)
    AveragedPopulation(models)(x).sum().backward()
    expected = (models[0].weight.sum(0) + models[1].weight.sum(0)) / 2
    torch.testing.assert_close(x.grad, expected.expand(4, 3))
