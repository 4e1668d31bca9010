"""MRA (eq. 6) and the transfer matrix on hand-built classifiers with known answers."""

import pytest
import torch
from torch import nn

from clmrepro.core.metrics import (
    model_robustness_average,
    per_submodel_accuracy,
    predictions,
    transfer_matrix,
    transfer_summary,
)

torch.set_num_threads(1)


class Lookup(nn.Module):
    """Answers sample j (its id is stored in pixel [0, 0, 0]) with table[j]."""

    def __init__(self, table):
        super().__init__()
        self.register_buffer("table", torch.as_tensor(table))

    def forward(self, x):
        ids = x[:, 0, 0, 0].round().long()
        return nn.functional.one_hot(self.table[ids], 10).float()


def ids_input(n):
    x = torch.zeros(n, 1, 4, 4)
    x[:, 0, 0, 0] = torch.arange(n).float()
    return x


def test_mra_of_lookup_classifiers_has_known_answer():
    y = torch.tensor([0, 1, 2, 3])
    models = [Lookup([0, 1, 2, 3]), Lookup([0, 1, 9, 9]), Lookup([9, 9, 9, 3])]
    per = per_submodel_accuracy(models, ids_input(4), y, batch_size=3, device="cpu")
    assert per.tolist() == [1.0, 0.5, 0.25]
    assert model_robustness_average(per) == pytest.approx((1.0 + 0.5 + 0.25) / 3)
    assert model_robustness_average([0.2, 0.4]) == pytest.approx(0.3)


def test_predictions_shape_and_batches_do_not_matter():
    models = [Lookup([5, 6, 7, 8, 9]), Lookup([0, 0, 1, 1, 2])]
    for bs in (1, 2, 5, 7):
        preds = predictions(models, ids_input(5), batch_size=bs, device="cpu")
        assert preds.tolist() == [[5, 6, 7, 8, 9], [0, 0, 1, 1, 2]]


def test_mra_rejects_empty_population():
    with pytest.raises(ValueError):
        model_robustness_average([])


def test_transfer_matrix_rows_are_crafters_columns_scorers():
    y = torch.tensor([0, 1])
    models = [Lookup([0, 1, 0, 0]), Lookup([0, 0, 0, 1])]
    # set crafted on 0 holds samples 0,1; set crafted on 1 holds samples 2,3 (ids 2, 3)
    x0 = ids_input(4)[:2]
    x1 = ids_input(4)[2:]
    m = transfer_matrix(models, torch.stack([x0, x1]), y, batch_size=2, device="cpu")
    assert m.tolist() == [[1.0, 0.5], [0.5, 1.0]]


def test_transfer_summary_pairs_and_per_submodel():
    m = torch.tensor([[0.1, 0.8, 0.3], [0.6, 0.0, 0.2], [0.5, 0.4, 0.05]])
    s = transfer_summary(m)
    assert s["diagonal"] == pytest.approx([0.1, 0.0, 0.05])
    assert s["off_diagonal_mean"] == pytest.approx((0.8 + 0.3 + 0.6 + 0.2 + 0.5 + 0.4) / 6)
    assert s["best_pair"][:2] == [0, 1] and s["best_pair"][2] == pytest.approx(0.8)
    assert s["worst_pair"][:2] == [1, 2] and s["worst_pair"][2] == pytest.approx(0.2)
    assert s["per_submodel"] == pytest.approx([(0.6 + 0.5) / 2, (0.8 + 0.4) / 2, (0.3 + 0.2) / 2])
    assert sum(s["per_submodel"]) / 3 == pytest.approx(s["off_diagonal_mean"])
    assert s["matrix"] == m.double().tolist()


def test_transfer_summary_needs_two_submodels():
    with pytest.raises(ValueError):
        transfer_summary([[0.5]])
