"""The hierarchical percentile bootstrap (netsight/ops/bootstrap.py): bounded, reproducible, and covering the
true mean at about the nominal rate on simulated seeds x draws x images data, where an interval over images
alone does not."""

from __future__ import annotations

import math

import numpy as np
import pytest

from netsight.ops.bootstrap import hierarchical, level_widths, needed, pairs


def _simulate(rng, S=6, D=4, N=30, mu=0.3, seed_sd=0.08, draw_sd=0.06, image_sd=0.15, noise_sd=0.1):
    """Crossed data: the same images for every seed and draw; draws nested in seeds."""
    a = rng.normal(0, seed_sd, (S, 1, 1))
    b = rng.normal(0, draw_sd, (S, D, 1))
    c = rng.normal(0, image_sd, (1, 1, N))
    e = rng.normal(0, noise_sd, (S, D, N))
    return mu + a + b + c + e


def test_reproducible_and_seeded():
    v = _simulate(np.random.default_rng(1))
    assert hierarchical(v, seed=3) == hierarchical(v, seed=3)
    assert hierarchical(v, seed=3).lo != hierarchical(v, seed=4).lo


def test_intervals_never_leave_the_range():
    rng = np.random.default_rng(0)
    near_one = np.clip(0.97 + rng.normal(0, 0.05, (2, 3, 5)), -1, 1)  # a t-interval would pass 1 here
    e = hierarchical(near_one)
    assert -1 <= e.lo <= e.mean <= e.hi <= 1 and e.hi <= 1
    areas = np.clip(rng.exponential(0.05, (1, 1, 6)), 0, 1)  # deletion areas near 0: never below 0
    e = hierarchical(areas, bounds=(0, 1))
    assert 0 <= e.lo <= e.mean <= e.hi <= 1
    for _ in range(50):
        x = rng.uniform(-1, 1, (rng.integers(1, 4), rng.integers(1, 4), rng.integers(2, 6)))
        e = hierarchical(x, n_boot=200, seed=int(rng.integers(1000)))
        assert -1 <= e.lo <= e.hi <= 1


def test_nan_values_are_left_out_and_counted():
    v = np.array([[[0.1, np.nan, 0.3, 0.5]]])
    e = hierarchical(v)
    assert e.n_values == 3 and e.n_missing == 1 and e.n_images == 3 and e.covers == ("images",)
    assert math.isclose(e.mean, 0.3)
    assert math.isnan(hierarchical(np.full((1, 1, 3), np.nan)).mean)
    assert math.isnan(hierarchical([0.4]).lo)  # one value: no interval


def _coverage(images: str, resample, sims: int = 150) -> float:
    rng = np.random.default_rng(12345)
    hit = 0
    for k in range(sims):
        v = _simulate(rng)
        e = hierarchical(v, bounds=(-5, 5), seed=k, n_boot=400, images=images, resample=resample)
        hit += e.lo <= 0.3 <= e.hi
    return hit / sims


@pytest.mark.slow  # ~150 simulated studies, a few seconds
def test_covers_the_true_mean_at_about_the_nominal_rate():
    full = _coverage("shared", ("seeds", "draws", "images"))
    images_only = _coverage("shared", ("images",))
    assert 0.87 <= full <= 0.995, full
    assert images_only < 0.8, images_only  # an interval over images alone misses the seeds' and draws' spread
    assert images_only < full - 0.1


def test_pairs_keep_only_pairs_of_different_seeds():
    rng = np.random.default_rng(0)
    K, N = 4, 12
    m = rng.uniform(0.2, 0.6, (K, K, N))
    m = (m + m.transpose(1, 0, 2)) / 2
    m[np.arange(K), np.arange(K)] = np.nan
    e = pairs(m)
    assert e.n_draws == 6 and e.n_images == N and e.n_seeds == K
    assert 0.2 <= e.lo <= e.mean <= e.hi <= 0.6
    assert math.isclose(e.mean, np.nanmean(m[np.triu_indices(K, 1)]))
    assert pairs(m, seed=1) == pairs(m, seed=1)


def test_needed_scales_with_the_square_of_the_width():
    v = _simulate(np.random.default_rng(2), S=1, D=1, N=16)
    e = hierarchical(v)
    lvl, n = needed(e, e.half_width / 2, level_widths(v))
    assert lvl == "images" and n == 64
    assert needed(e, 0.0) is None
