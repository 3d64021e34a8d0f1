"""Summaries over seeds: mean, sample standard deviation and a 95% confidence interval
for the mean (Student's t, since seeds are few)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

# two-sided 95% quantiles of Student's t, t_{0.975, df}, df = 1..30 (standard table values)
_T975 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
]


def t975(df: int) -> float:
    return _T975[df - 1] if df <= 30 else 1.96 + 2.4 / df  # within 0.001 of the exact quantile beyond 30


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float  # sample standard deviation (ddof=1); 0 for a single value
    ci_low: float  # 95% confidence interval of the mean; equal to the mean for n = 1
    ci_high: float

    def pm(self, scale: float = 100.0, digits: int = 2) -> str:
        """'mean ± std' (in percent by default); just the mean for a single seed."""
        if self.n == 1:
            return f"{self.mean * scale:.{digits}f}"
        return f"{self.mean * scale:.{digits}f} ± {self.std * scale:.{digits}f}"

    def ci(self, scale: float = 100.0, digits: int = 2) -> str:
        if self.n == 1:
            return "n/a (1 seed)"
        return f"[{self.ci_low * scale:.{digits}f}, {self.ci_high * scale:.{digits}f}]"


def summarize(values: Sequence[Optional[float]]) -> Summary:
    v = [float(x) for x in values if x is not None and not math.isnan(float(x))]
    if not v:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    n = len(v)
    mean = sum(v) / n
    if n == 1:
        return Summary(1, mean, 0.0, mean, mean)
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    half = t975(n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


# A "matched" verdict needs an interval narrow enough to mean something: half-width at most 2
# percentage points (the full study's recurrent intervals are 0.3-1 point wide; a quick run's
# 2-seed interval can span 70 points and would "match" almost any figure).
MATCH_MAX_HALF_WIDTH = 0.02


def verdict(ours: Summary, reference: float) -> str:
    """How our runs stand against a single reported number.

    above/below: our 95% interval lies entirely above/below it (a clear difference, however wide
    the interval); matched: it lies inside an interval at most MATCH_MAX_HALF_WIDTH wide;
    inconclusive: it lies inside a wider interval, or there is one seed and so no interval."""
    if ours.n == 0:
        return "no data"
    if ours.n == 1:
        return "inconclusive (1 seed, no interval)"
    if ours.ci_low > reference:
        return "above"
    if ours.ci_high < reference:
        return "below"
    half = (ours.ci_high - ours.ci_low) / 2
    if half > MATCH_MAX_HALF_WIDTH:
        return f"inconclusive (interval ±{half * 100:.1f} points)"
    return "matched (within our 95% CI)"
