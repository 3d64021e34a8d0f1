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
    s = summarize([0.96, 0.97, 0.98])
    assert verdict(s, 0.9735) == "matched (within our 95% CI)"
    assert verdict(s, 0.90) == "above"
    assert verdict(s, 0.999) == "below"


def test_t_quantiles_approach_the_normal():
    assert t975(1) == 12.706 and t975(30) == 2.042
    assert abs(t975(60) - 2.000) < 0.002 and abs(t975(1000) - 1.962) < 0.002
