"""The similarity measures of the sanity checks against scipy and skimage called by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from skimage.feature import hog
from skimage.metrics import structural_similarity

from netsight.ops.similarity import compare, hog_similarity, ranks, spearman, ssim, summarise
from netsight.report.stats import t975


def _maps(seed: int, n: int = 4, side: int = 14) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, side, side, generator=g)


def test_ranks_average_ties_like_scipy():
    from scipy.stats import rankdata

    x = torch.tensor([[3.0, 1.0, 3.0, 2.0, 1.0, 3.0], [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]])
    assert np.allclose(ranks(x).numpy(), np.stack([rankdata(r) for r in x.numpy()]))


def test_spearman_matches_scipy_signed_and_absolute_with_ties():
    a, b = _maps(0), _maps(1)
    b[0] = a[0] * 2 + 0.1 * b[0]  # one strongly related pair
    a[1] = a[1].round()  # ties
    for absolute in (False, True):
        ours = spearman(a, b, absolute=absolute)
        ref = [
            spearmanr(np.abs(x) if absolute else x, np.abs(y) if absolute else y).statistic
            for x, y in zip(a.reshape(4, -1).numpy(), b.reshape(4, -1).numpy(), strict=True)
        ]
        assert np.allclose(ours.numpy(), ref, atol=1e-12)
    assert ours[0] > 0.9
    assert math.isnan(spearman(torch.zeros(1, 3, 3), a[:1, :3, :3])[0])  # a constant map has no ranks


def _norm(m: np.ndarray) -> np.ndarray:
    return np.abs(m) / np.abs(m).max()


def test_ssim_and_hog_match_skimage_on_normalised_absolute_maps():
    a, b = _maps(2, side=28), _maps(3, side=28)
    b[1] = -a[1]  # the same |map|: identical for SSIM and HOG
    ours = ssim(a, b)
    ref = [structural_similarity(_norm(x), _norm(y), data_range=1.0) for x, y in zip(a.numpy(), b.numpy(), strict=True)]
    assert np.allclose(ours.numpy(), ref) and ours[1] == pytest.approx(1.0)
    h = hog_similarity(a, b)

    def vec(m):
        return hog(_norm(m), orientations=9, pixels_per_cell=(4, 4), cells_per_block=(2, 2))

    ref_h = [pearsonr(vec(x), vec(y)).statistic for x, y in zip(a.numpy(), b.numpy(), strict=True)]
    assert np.allclose(h.numpy(), ref_h) and h[1] == pytest.approx(1.0)
    assert set(compare(a, b)) == {"spearman", "spearman_abs", "ssim", "hog"}


def test_summarise_is_a_bounded_bootstrap_interval_over_images_and_skips_nan():
    v = torch.tensor([0.1, 0.5, float("nan"), 0.3])
    s = summarise(v)
    assert s.n == 3 and s.mean == pytest.approx(0.3)
    assert 0.1 <= s.lo < 0.3 < s.hi <= 0.5 and summarise(v) == s  # inside the values' range; seeded
    near_one = torch.tensor([0.99, 1.0, 0.95, 1.0])  # a t-interval ends above 1 here
    assert summarise(near_one).hi <= 1.0 and t975(3) * np.std(near_one.numpy(), ddof=1) / 2 + 0.985 > 1.0
    assert "[" in s.text() and summarise(torch.tensor([float("nan")])).text() == "n/a"
