"""95% confidence intervals for MRAs and their differences (docs/statistics.md).

Pure Python (math, statistics): no scipy. Accuracies are fractions in [0, 1].

- ``t_interval(values)``: mean of K >= 2 replicate values and its Student t interval,
  mean ± t(0.975, K−1) · s / √K, s the sample standard deviation (n − 1).
- ``wilson_interval(p, n)``: one run (K = 1). The Wilson score interval of a proportion p
  observed on n test images. An MRA is the mean over images of the share of submodels that
  classify the image right, a number in [0, 1] per image; its variance is at most p(1 − p),
  so treating the MRA as p successes out of n images is never narrower than the truth for
  test-image sampling. It says nothing about training-run variation (that needs K >= 2).
- ``paired_t_interval(left, right)``: the difference left − right over replicates paired by
  index (CLM replicate r is retrained from ULM replicate r): a t interval of the K per-pair
  differences.
- ``newcombe_interval(p1, n1, p2, n2)``: K = 1. The difference of two proportions by
  Newcombe's hybrid score method (method 10 of Newcombe, Stat. Med. 1998), built from the two
  Wilson intervals. It assumes independent samples; both populations are scored on the same
  images, and positive correlation between them only makes the true interval narrower.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from functools import lru_cache

LEVEL = 0.95
T_REPLICATES = "t over replicates"
T_SAMPLES = "t over paired samples"
WILSON = "Wilson score over test images"
NEWCOMBE = "Newcombe hybrid score over test images"


@dataclass(frozen=True)
class Interval:
    """An estimate and its two-sided interval; ``k`` replicates (or pairs), ``n`` images or
    samples per replicate where the method uses them (None for the t over replicates)."""

    mean: float
    low: float
    high: float
    method: str
    k: int
    n: int | None = None

    def contains(self, value: float, widen: float = 0.0) -> bool:
        return self.low - widen <= value <= self.high + widen


def t_cdf_two_sided(t: float, df: int) -> float:
    """P(|T| <= t) for Student's t with integer df (Abramowitz & Stegun 26.7.3 and 26.7.4,
    exact finite series in θ = atan(t / √df))."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1 (got {df})")
    theta = math.atan(abs(t) / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2 == 0:
        term = total = 1.0
        for k in range(2, df - 1, 2):      # (1·3···(k−1)) / (2·4···k) · cos^k θ
            term *= c2 * (k - 1) / k
            total += term
        return math.sin(theta) * total
    if df == 1:
        return 2.0 * theta / math.pi
    term = total = math.cos(theta)
    for k in range(3, df - 1, 2):          # (2·4···(k−1)) / (1·3···k) · cos^k θ
        term *= c2 * (k - 1) / k
        total += term
    return 2.0 / math.pi * (theta + math.sin(theta) * total)


@lru_cache(maxsize=None)
def t_quantile(df: int, level: float = LEVEL) -> float:
    """The t with P(|T| <= t) = level (0.975 quantile for level 0.95), by bisection."""
    low, high = 0.0, 1.0
    while t_cdf_two_sided(high, df) < level:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_cdf_two_sided(mid, df) < level:
            low = mid
        else:
            high = mid
        if high - low < 1e-12:
            break
    return (low + high) / 2.0


def z_quantile(level: float = LEVEL) -> float:
    return statistics.NormalDist().inv_cdf(0.5 + level / 2.0)


def _clip(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def t_interval(values: list[float], method: str = T_REPLICATES, level: float = LEVEL,
               bounds: tuple[float, float] = (0.0, 1.0)) -> Interval:
    """Mean and t interval of m >= 2 values, clipped to ``bounds`` (an accuracy stays in
    [0, 1], a difference of accuracies in [−1, 1]). The values are K = m replicates, or, for
    T_SAMPLES, n = m paired samples of one replicate."""
    m = len(values)
    if m < 2:
        raise ValueError(f"a t interval needs at least 2 values (got {m})")
    mean = statistics.fmean(values)
    half = t_quantile(m - 1, level) * statistics.stdev(values) / math.sqrt(m)
    k, n = (m, None) if method == T_REPLICATES else (1, m)
    return Interval(mean, _clip(mean - half, *bounds), _clip(mean + half, *bounds), method, k,
                    n)


def wilson_interval(p: float, n: int, level: float = LEVEL) -> Interval:
    """Wilson score interval of a proportion p observed on n trials (K = 1)."""
    if n < 1:
        raise ValueError(f"a Wilson interval needs n >= 1 test images (got {n})")
    p = _clip(p, 0.0, 1.0)
    z2 = z_quantile(level) ** 2
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = math.sqrt(z2) / denominator * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # the Wilson interval contains p; in floats its ends can miss p by a rounding error
    # (p = 0 gave a low end of 7e-18), which made an interval that does not hold its mean
    return Interval(p, min(p, max(0.0, centre - half)), max(p, min(1.0, centre + half)),
                    WILSON, 1, n)


def paired_t_interval(left: list[float], right: list[float], level: float = LEVEL) -> Interval:
    """left − right, paired by index, over K >= 2 replicates."""
    if len(left) != len(right):
        raise ValueError(f"paired values differ in length ({len(left)} vs {len(right)})")
    return t_interval([a - b for a, b in zip(left, right)], T_REPLICATES, level, (-1.0, 1.0))


def newcombe_interval(p1: float, n1: int, p2: float, n2: int, level: float = LEVEL
                      ) -> Interval:
    """p1 − p2 with Newcombe's hybrid score interval (K = 1)."""
    a, b = wilson_interval(p1, n1, level), wilson_interval(p2, n2, level)
    d = a.mean - b.mean
    low = d - math.sqrt((a.mean - a.low) ** 2 + (b.high - b.mean) ** 2)
    high = d + math.sqrt((a.high - a.mean) ** 2 + (b.mean - b.low) ** 2)
    return Interval(d, max(-1.0, low), min(1.0, high), NEWCOMBE, 1, min(n1, n2))
