"""The published per-image file (reporting.per_image_file): exact, compact, deterministic."""

from __future__ import annotations

import gzip

import pytest

from clmrepro.reporting import per_image_file


def record(attack, values, threat="paper", population="ulm", replicate=0, **extra):
    return {"experiment": "mnist", "population": population, "regime": "ulm",
            "replicate": replicate, "threat_model": threat, "eps": 0.3, "attack": attack,
            "per_image": values, **extra}


def test_values_round_trip_exactly_with_their_smallest_denominator():
    ten = [k / 10 for k in (0, 3, 10, 7)]
    transfer = [k / 90 for k in (0, 1, 89, 45)]          # 10 members: pairs i != k
    records = [record("pgd", ten), record("pgd", transfer, threat="transfer"),
               record("fgsm", [1.0, 0.0, 1.0], inference="vote")]
    data = per_image_file.encode(records)
    decoded = {(r["threat_model"], r["attack"], r["inference"]): r["per_image"]
               for r in per_image_file.decode(data)}
    assert decoded[("paper", "pgd", "random")] == ten
    assert decoded[("transfer", "pgd", "random")] == transfer
    assert decoded[("paper", "fgsm", "vote")] == [1.0, 0.0, 1.0]
    text = gzip.decompress(data).decode()
    assert ",10,0 3 10 7\n" in text and ",90,0 1 89 45\n" in text
    assert per_image_file.denominator([0.25, 0.5, 1 / 3]) == 12


def test_the_same_records_give_the_same_bytes_in_any_order():
    records = [record("pgd", [0.5, 1.0], replicate=r) for r in (2, 0, 1)]
    assert per_image_file.encode(records) == per_image_file.encode(records[::-1])


def test_records_without_per_image_values_are_left_out_and_irrational_values_refused():
    assert len(per_image_file.decode(per_image_file.encode([record("benign", None)]))) == 0
    with pytest.raises(ValueError, match="no fraction"):
        per_image_file.encode([record("pgd", [2 ** -0.5])])
