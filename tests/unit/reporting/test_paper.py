from pathlib import Path

import pytest

from clmrepro.reporting.paper import load_paper_tables, paper_dataset, paper_value

TABLES = Path(__file__).resolve().parents[3] / "specs" / "paper_tables.yaml"


@pytest.fixture(scope="module")
def tables():
    return load_paper_tables(TABLES)


def test_five_tables_with_every_printed_cell(tables):
    assert [t.number for t in tables] == [1, 2, 3, 4, 5]
    cells = sum(len(row) for t in tables for rows in t.values.values() for row in rows.values())
    assert cells == 8 + 20 + 20 + 10 + 10
    assert [t.eps for t in tables][:3] == [0.0, 0.3, 8 / 255]


@pytest.mark.parametrize("dataset, regime, attack, eps, expected", [
    ("mnist", "ulm", "fgsm", 0.3, 0.2768),
    ("mnist", "clm-adv", "eot-pgd", 0.3, 0.9244),
    ("mnist", "ulm", "benign", 0.0, 0.9904),
    ("cifar10", "clm-adv", "benign", 0.0, 0.8357),
    ("cifar10", "clm", "mifgsm", 8 / 255, 0.2213),
    ("cifar10", "clm", "pgd", 0.0314, 0.3584),        # 6-digit path spelling of 8/255
    ("cifar10", "ulm-adv", "autoattack", 16 / 255, 0.3120),
    ("mnist", "clm-adv", "autoattack", 0.4, 0.1175),
    ("mnist-5k", "clm", "pgd", 0.3, 0.5429),          # the subset compares with MNIST
])
def test_values_as_printed(tables, dataset, regime, attack, eps, expected):
    assert paper_value(tables, dataset, regime, attack, eps) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("dataset, regime, attack, eps", [
    ("mnist", "ulm", "fgsm", 0.2),            # the paper has no eps 0.2
    ("mnist", "ulm", "fgsm", 0.4),            # Table 4 only prints the -adv regimes
    ("cifar10", "clm", "pgd", 0.3),           # eps of the other dataset
    ("fake-cifar10", "clm", "pgd", 8 / 255),  # FakeData stands for nothing in the paper
    ("mnist", "clm", "square", 0.3),
])
def test_cells_the_paper_does_not_print(tables, dataset, regime, attack, eps):
    assert paper_value(tables, dataset, regime, attack, eps) is None


def test_dataset_mapping():
    assert paper_dataset("mnist-5k") == "mnist"
    assert paper_dataset("cifar10") == "cifar10"
    assert paper_dataset("fake-cifar10") is None
