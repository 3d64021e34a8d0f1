import math

import pytest

from netsight.report.stats import summarize, t975, verdict


def test_summary_of_three_seeds():
    s = summarize([0.96, 0.97, 0.98])
    assert s.n == 3 and s.mean == pytest.approx(0.97) and s.std == pytest.approx(0.01)
    half = 4.303 * 0.01 / math.sqrt(3)
    assert (s.ci_low, s.ci_high) == pytest.approx((0.97 - half, 0.97 + half))
    assert s.pm() == "97.00 ± 1.00"


def test_single_seed_and_missing_values():
    s = summarize([0.5, None, float("nan")])
    assert s.n == 1 and s.std == 0 and s.ci() == "n/a (1 seed)" and s.pm() == "50.00"
    assert summarize([]).n == 0


def test_verdicts():
    s = summarize([0.970, 0.975, 0.980])  # half-width 1.24 points: narrow enough to match
    assert verdict(s, 0.9735) == "matched (within our 95% CI)"
    assert verdict(s, 0.90) == "above"
    assert verdict(s, 0.999) == "below"


def test_a_wide_interval_or_a_single_seed_is_inconclusive():
    wide = summarize([0.60415, 0.65825])  # the quick report's RNN-128: [28.75, 97.48]
    assert verdict(wide, 0.9687) == "inconclusive (interval ±34.4 points)"
    assert verdict(wide, 0.10) == "above"  # a clear difference stays clear however wide the interval
    assert verdict(summarize([0.97]), 0.96) == "inconclusive (1 seed, no interval)"


def test_t_quantiles_approach_the_normal():
    assert t975(1) == 12.706 and t975(30) == 2.042
    assert abs(t975(60) - 2.000) < 0.002 and abs(t975(1000) - 1.962) < 0.002
