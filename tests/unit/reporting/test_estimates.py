"""Paired differences: t over replicates (K >= 2), t over paired images (K = 1 with per-image
values), Newcombe (K = 1 without them); hand-checked numbers."""

from __future__ import annotations

import math

import pytest

from clmrepro.reporting.estimates import paired_difference, unit_images, units
from clmrepro.reporting.stats import NEWCOMBE, T_REPLICATES, T_SAMPLES

T_975_DF4 = 2.776445105197581     # Student t, 0.975 quantile, 4 degrees of freedom
T_975_DF99 = 1.9842169515864043


def record(mra=None, per_image=None, r=0, n=None, experiment="mnist"):
    if mra is None:
        mra = sum(per_image) / len(per_image)
    out = {"experiment": experiment, "replicate": r, "mra": mra,
           "n_samples": n if n is not None else len(per_image)}
    if per_image is not None:
        out["per_image"] = per_image
    return out


def test_one_unit_with_per_image_values_pairs_the_images():
    """Differences 0.5, 0, 0.25, 0.25, 0.25: mean 0.25, s = 0.1768, s/√5 = 0.0791,
    × t(4) 2.7764 = 0.2195 → [0.0305, 0.4695]."""
    left = record(per_image=[1.0, 1.0, 0.5, 0.75, 1.0])
    right = record(per_image=[0.5, 1.0, 0.25, 0.5, 0.75])
    d = paired_difference([left], [right])
    assert d.interval.method == T_SAMPLES and (d.interval.k, d.interval.n) == (1, 5)
    half = T_975_DF4 * math.sqrt(0.125 / 4) / math.sqrt(5)
    assert d.interval.mean == pytest.approx(0.25)
    assert (d.interval.low, d.interval.high) == pytest.approx((0.25 - half, 0.25 + half))
    assert (d.interval.low, d.interval.high) == pytest.approx((0.0305, 0.4695), abs=1e-4)
    assert (d.left, d.right) == pytest.approx((0.85, 0.6))


def test_pairing_decides_what_newcombe_cannot():
    """CLM right on every image ULM gets right and on 6 more of 100: Newcombe's interval
    for independent samples is [-7.71, +19.40] points, the paired one [+1.26, +10.74]."""
    ulm = [1.0] * 50 + [0.0] * 50
    clm = [1.0] * 56 + [0.0] * 44
    paired = paired_difference([record(per_image=clm)], [record(per_image=ulm)])
    unpaired = paired_difference([record(0.56, n=100)], [record(0.50, n=100)])
    assert unpaired.interval.method == NEWCOMBE
    assert (unpaired.interval.low, unpaired.interval.high) == pytest.approx(
        (-0.0771, 0.1940), abs=1e-4)
    half = T_975_DF99 * math.sqrt(0.06 * 0.94 * 100 / 99) / 10
    assert paired.interval.method == T_SAMPLES
    assert (paired.interval.low, paired.interval.high) == pytest.approx(
        (0.06 - half, 0.06 + half))
    assert paired.interval.low > 0 > unpaired.interval.low


@pytest.mark.parametrize("left, right", [
    (record(0.6, n=5), record(per_image=[0.5, 1.0, 0.25, 0.5, 0.75])),  # one side version 1
    (record(per_image=[1.0, 0.5, 0.5]), record(per_image=[0.5, 1.0, 0.25, 0.5])),  # lengths
    (record(per_image=[1.0]), record(per_image=[0.5])),                 # one image
])
def test_newcombe_stays_where_the_images_do_not_pair(left, right):
    assert paired_difference([left], [right]).interval.method == NEWCOMBE


def test_replicates_are_paired_by_replicate_whatever_the_images():
    left = [record(per_image=[1.0, 0.5], r=0), record(per_image=[0.75, 0.75], r=1)]
    right = [record(per_image=[0.5, 0.5], r=0), record(per_image=[0.25, 0.75], r=1)]
    d = paired_difference(left, right)
    assert d.interval.method == T_REPLICATES and d.interval.k == 2
    assert d.interval.mean == pytest.approx((0.25 + 0.25) / 2)


def test_first_images_compare_two_threat_models_on_the_same_images():
    """The adaptive set covers the first 2 images, the paper's 4: on its first 2 the paper
    side is 0.75, not its MRA 0.5."""
    adaptive = record(per_image=[0.25, 0.5])
    paper = record(per_image=[0.5, 1.0, 0.0, 0.5])
    assert units([paper], first=2) == {("mnist", 0): (0.75, 2)}
    assert unit_images([paper], first=8) is None          # too few images: keep the MRA
    d = paired_difference([adaptive], [paper], first=2)
    assert d.interval.method == T_SAMPLES and d.interval.n == 2
    assert (d.left, d.right, d.interval.mean) == pytest.approx((0.375, 0.75, -0.375))


def test_several_populations_of_one_unit_are_averaged_image_by_image():
    a = record(per_image=[1.0, 0.0, 0.5])
    b = record(per_image=[0.5, 0.5, 0.5, 1.0])
    assert unit_images([a, b]) == [0.75, 0.25, 0.5]
    assert unit_images([a, record(0.5, n=3)]) is None


def test_the_worked_example_of_docs_statistics():
    """docs/statistics.md, "Worked example (K = 1, paired images)"."""
    clm = [0.75, 0.5, 1.0, 0.5, 0.25, 0.75, 0.5, 1.0, 0.75, 0.5]
    ulm = [0.5, 0.5, 0.75, 0.25, 0.25, 0.5, 0.5, 0.75, 0.5, 0.25]
    paired = paired_difference([record(per_image=clm)], [record(per_image=ulm)])
    assert [round(100 * v, 2) for v in (paired.interval.mean, paired.interval.low,
                                        paired.interval.high)] == [17.5, 8.86, 26.14]
    unpaired = paired_difference([record(0.65, n=10)], [record(0.475, n=10)])
    assert [round(100 * v, 2) for v in (unpaired.interval.mean, unpaired.interval.low,
                                        unpaired.interval.high)] == [17.5, -22.6, 50.82]
