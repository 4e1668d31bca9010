"""Intervals against numbers computed by hand or printed in the literature."""

import math

import pytest

from clmrepro.reporting.estimates import cell_interval, paired_difference, units
from clmrepro.reporting.stats import (NEWCOMBE, T_REPLICATES, T_SAMPLES, WILSON,
                                      newcombe_interval, paired_t_interval, t_cdf_two_sided,
                                      t_interval, t_quantile, wilson_interval)


@pytest.mark.parametrize("df, printed", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764),
                                         (5, 2.5706), (10, 2.2281), (30, 2.0423),
                                         (100, 1.9840)])
def test_t_quantile_matches_printed_tables(df, printed):
    assert t_quantile(df) == pytest.approx(printed, abs=5e-5)


def test_t_cdf_closed_forms():
    # df = 1 is Cauchy: P(|T| <= 1) = 1/2; df = 2: P(|T| <= t) = t / sqrt(2 + t^2)
    assert t_cdf_two_sided(1.0, 1) == pytest.approx(0.5, abs=1e-15)
    assert t_cdf_two_sided(2.0, 2) == pytest.approx(2 / math.sqrt(6), abs=1e-15)
    assert t_quantile(2) == pytest.approx(4.302652729749464, abs=1e-10)


def test_t_interval_by_hand():
    # mean 0.5, s = 0.1, s/sqrt(3) = 0.0577350, half = 4.302653 * 0.0577350 = 0.248414
    interval = t_interval([0.40, 0.50, 0.60])
    assert (interval.mean, interval.k, interval.n, interval.method) == (
        pytest.approx(0.5), 3, None, T_REPLICATES)
    assert interval.low == pytest.approx(0.251586, abs=1e-6)
    assert interval.high == pytest.approx(0.748414, abs=1e-6)


def test_t_interval_stays_inside_zero_one():
    interval = t_interval([0.00, 0.01, 0.05])
    assert interval.low == 0.0 and interval.high < 1.0


def test_t_interval_over_samples_is_one_replicate():
    interval = t_interval([0.1, 0.2, 0.3, 0.4], T_SAMPLES, bounds=(-1, 1))
    assert (interval.k, interval.n) == (1, 4)


def test_wilson_by_hand():
    # p = 0.9, n = 100, z^2 = 3.841459: centre 0.9192073 / 1.0384146 = 0.885202,
    # half = 1.959964 / 1.0384146 * sqrt(0.0009 + 0.0000960365) = 0.059568
    interval = wilson_interval(0.9, 100)
    assert (interval.method, interval.k, interval.n) == (WILSON, 1, 100)
    assert interval.low == pytest.approx(0.825634, abs=1e-6)
    assert interval.high == pytest.approx(0.944771, abs=1e-6)


@pytest.mark.parametrize("successes, n, low, high", [
    (81, 263, 0.2553, 0.3662),   # Newcombe (1998a), Stat. Med. 17:857, worked examples
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_wilson_matches_newcombe_1998(successes, n, low, high):
    interval = wilson_interval(successes / n, n)
    assert (interval.low, interval.high) == (pytest.approx(low, abs=5e-5),
                                             pytest.approx(high, abs=5e-5))


@pytest.mark.parametrize("n", [1, 7, 40, 263, 10_000])
def test_wilson_interval_always_holds_its_proportion(n):
    # p = 0 with n = 40 gave a low end of 6.9e-18 > p, and the report's error bars failed
    for successes in range(0, n + 1, max(1, n // 50)):
        interval = wilson_interval(successes / n, n)
        assert interval.low <= interval.mean <= interval.high
    assert wilson_interval(0.0, n).low == 0.0 and wilson_interval(1.0, n).high == 1.0


def test_paired_difference_by_hand():
    # d = [0.10, 0.05, 0.15]: mean 0.1, s = 0.05, half = 4.302653 * 0.05 / sqrt(3) = 0.124207
    interval = paired_t_interval([0.40, 0.50, 0.60], [0.30, 0.45, 0.45])
    assert interval.mean == pytest.approx(0.1)
    assert interval.low == pytest.approx(-0.024207, abs=1e-6)
    assert interval.high == pytest.approx(0.224207, abs=1e-6)


@pytest.mark.parametrize("a, n1, b, n2, low, high", [
    (56, 70, 48, 80, 0.0524, 0.3339),   # Newcombe (1998b), Stat. Med. 17:873, method 10 examples
    (9, 10, 3, 10, 0.1705, 0.8090),
])
def test_newcombe_matches_newcombe_1998(a, n1, b, n2, low, high):
    interval = newcombe_interval(a / n1, n1, b / n2, n2)
    assert interval.method == NEWCOMBE
    assert (interval.low, interval.high) == (pytest.approx(low, abs=5e-5),
                                             pytest.approx(high, abs=5e-5))


def rec(mra, r=None, experiment="mnist", n=200):
    out = {"experiment": experiment, "mra": mra, "n_samples": n}
    if r is not None:
        out["replicate"] = r
    return out


def test_units_pool_a_replicate_and_read_version_1_as_replicate_0():
    found = units([rec(0.5), rec(0.7, r=0, n=100), rec(0.2, r=1)])
    assert found == {("mnist", 0): (pytest.approx(0.6), 100), ("mnist", 1): (0.2, 200)}


def test_cell_interval_picks_t_or_wilson():
    assert cell_interval([]) is None
    assert cell_interval([rec(0.9, n=100)]) == wilson_interval(0.9, 100)
    assert cell_interval([rec(0.4, r=0), rec(0.5, r=1), rec(0.6, r=2)]) == \
        t_interval([0.4, 0.5, 0.6])


def test_difference_pairs_replicates_by_index():
    clm = [rec(0.40, r=0), rec(0.50, r=1), rec(0.60, r=2)]
    ulm = [rec(0.45, r=2), rec(0.30, r=0), rec(0.45, r=1)]   # order does not matter
    difference = paired_difference(clm, ulm)
    assert difference.interval == paired_t_interval([0.40, 0.50, 0.60], [0.30, 0.45, 0.45])
    assert (difference.left, difference.right) == (pytest.approx(0.5), pytest.approx(0.4))
    # a replicate only one side has is left out; one pair left -> Newcombe over the images
    one = paired_difference(clm, [rec(0.30, r=0, n=100)])
    assert one.interval == newcombe_interval(0.40, 200, 0.30, 100)
    assert paired_difference(clm, [rec(0.3, r=5)]) is None
