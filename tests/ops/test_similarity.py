"""The similarity measures of the sanity checks against scipy and skimage called by hand; the chance-level
references (intensity, Sobel edges) and the foreground of an image with a constant background."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import pearsonr, spearmanr
from skimage.feature import hog
from skimage.metrics import structural_similarity

from netsight.ops.similarity import (
    compare,
    compare_region,
    edges,
    foreground_masks,
    hog_similarity,
    intensity,
    ranks,
    spearman,
    ssim,
    summarise,
)
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


def test_edges_are_the_sobel_magnitude_and_intensity_the_channel_mean():
    from scipy.ndimage import sobel

    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 3, 9, 11, generator=g)
    grey = x.double().mean(dim=1)
    assert torch.allclose(intensity(x), grey)
    for i in range(2):
        a = grey[i].numpy()
        ref = np.hypot(sobel(a, axis=1, mode="nearest"), sobel(a, axis=0, mode="nearest"))
        assert np.allclose(edges(x)[i].numpy(), ref)


def test_foreground_is_what_differs_from_a_constant_background_and_region_metrics_use_only_it():
    digit = torch.zeros(1, 1, 12, 12)
    digit[0, 0, 3:9, 4:8] = torch.linspace(0.2, 1.0, 24).reshape(6, 4)
    noise = torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(5))  # no constant background
    white = torch.ones(1, 3, 12, 12)
    white[0, :, 5, 5] = 0.5  # a constant white background, one foreground pixel, three channels
    masks = foreground_masks(torch.cat([digit, noise]))
    assert masks[1] is None and masks[0] is not None and int(masks[0].sum()) == 24 and bool(masks[0][3:9, 4:8].all())
    assert int(foreground_masks(white)[0].sum()) == 1 and foreground_masks(torch.zeros(1, 1, 12, 12)) == [None]
    a, b = _maps(6, n=2, side=12), _maps(7, n=2, side=12)
    b[0][~masks[0]] = -a[0][~masks[0]] * 5  # the background agrees in |map|; the foreground does not
    found = compare_region(a, b, masks)
    keep = masks[0].reshape(-1).numpy()
    x, y = a[0].reshape(-1).numpy()[keep], b[0].reshape(-1).numpy()[keep]
    assert found["spearman"][0] == pytest.approx(spearmanr(x, y).statistic)
    assert found["spearman_abs"][0] == pytest.approx(spearmanr(np.abs(x), np.abs(y)).statistic)
    assert math.isnan(found["spearman"][1]) and math.isnan(found["ssim"][1])
    _, local = structural_similarity(_norm(a[0].numpy()), _norm(b[0].numpy()), data_range=1.0, full=True)
    assert found["ssim"][0] == pytest.approx(local[masks[0].numpy()].mean())
    with pytest.raises(ValueError, match="not defined on a region"):
        compare_region(a, b, masks, ["hog"])
