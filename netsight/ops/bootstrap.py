"""Percentile bootstrap intervals that cover every source of variation a trust verdict is about, and stay
inside the measure's possible range.

`hierarchical` takes values on a grid [seeds, draws, images] (NaN: no value, e.g. a constant map) and
resamples the way the values were made: training seeds with replacement, then the random draws within each
chosen seed, then the images. The images are the same test images for every seed and draw (a crossed
design), so by default one resample of the image indices serves every seed and draw of a replicate (Owen's
"pigeonhole" bootstrap for crossed factors, Ann. Appl. Stat. 2007); resampling images afresh inside every
draw (`images="nested"`) would average the image effect away and make the interval too narrow. The statistic
is the mean of every value of the replicate; the interval is the 2.5th and 97.5th percentiles of the
replicates. A mean of values in [lo, hi] lies in [lo, hi], so a percentile interval cannot leave the
measure's range (unlike a t-interval: a correlation interval ending at 1.01); `bounds` clips float error
only. A level with one member (one seed, one draw) is not resampled: the interval then says nothing about
that source, and `Estimate.covers` says which sources it does cover.

`pairs` is the same for values defined on pairs of seeds (seed agreement: one value per image and pair):
the seeds are resampled, and the pairs of two different resampled seeds are kept.

`needed` turns an interval's width into how many more images, draws or seeds would settle a verdict
(half-widths shrink as 1/sqrt(n)). Everything is vectorised numpy with a seeded generator: the same
values and seed give the same interval."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

LEVELS = ("seeds", "draws", "images")
N_BOOT = 2000  # replicates: the 2.5% and 97.5% percentiles move by ~0.01 of the interval's width between seeds
_CHUNK = 4_000_000  # values gathered at once (memory: 8 bytes each)


@dataclass(frozen=True)
class Estimate:
    """A mean and its 95% percentile-bootstrap interval; the counts of what it pooled."""

    mean: float
    lo: float
    hi: float
    n_seeds: int
    n_draws: int  # per seed (the largest)
    n_images: int  # images with at least one value
    n_values: int  # values that are not NaN
    n_missing: int  # cells of the grid without a value (NaN)

    @property
    def covers(self) -> tuple[str, ...]:
        """The sources of variation the interval covers: the levels with two members or more."""
        counts = {"seeds": self.n_seeds, "draws": self.n_draws, "images": self.n_images}
        return tuple(k for k in LEVELS if counts[k] >= 2)

    @property
    def half_width(self) -> float:
        return (self.hi - self.lo) / 2

    def text(self, digits: int = 2) -> str:
        if math.isnan(self.mean):
            return "n/a"
        if math.isnan(self.lo):
            return f"{self.mean:.{digits}f} (no interval)"
        return f"{self.mean:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


def _as_grid(values) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[None, None, :]
    elif v.ndim == 2:
        v = v[None, :, :]
    if v.ndim != 3:
        raise ValueError(f"values of shape {v.shape}: expected [images], [draws, images] or [seeds, draws, images]")
    return v


def _percentiles(stats: np.ndarray, level: float, bounds: tuple[float, float]) -> tuple[float, float]:
    stats = stats[~np.isnan(stats)]
    if len(stats) == 0:
        return math.nan, math.nan
    a = (1 - level) / 2
    lo, hi = np.quantile(stats, [a, 1 - a])
    return float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds))


def _counts(v: np.ndarray) -> tuple[int, int, int, int, int]:
    ok = ~np.isnan(v)
    seeds = int(ok.any(axis=(1, 2)).sum())
    draws = int(ok.any(axis=2).sum(axis=1).max()) if ok.any() else 0
    images = int(ok.any(axis=(0, 1)).sum())
    return seeds, draws, images, int(ok.sum()), int((~ok).sum())


def hierarchical(
    values,
    bounds: tuple[float, float] = (-1.0, 1.0),
    seed: int = 0,
    n_boot: int = N_BOOT,
    level: float = 0.95,
    images: str = "shared",
    resample: Sequence[str] = LEVELS,
) -> Estimate:
    """The mean of `values` ([seeds, draws, images], or [draws, images], or [images]; NaN: no value) and its
    percentile interval from `n_boot` hierarchical resamples (seeds, then draws within seed, then images:
    one shared resample, or `images="nested"`: a fresh one per seed and draw). `resample` names the levels
    resampled (the others are kept as they are: what `needed` uses to find the widest source)."""
    if images not in ("shared", "nested"):
        raise ValueError(f"images={images!r}: expected shared or nested")
    v = _as_grid(values)
    n_seeds, n_draws, n_images, n_values, n_missing = _counts(v)
    if n_values == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, 0, 0, 0, n_missing)
    # rows and columns without any value are dropped first: they would only add empty resamples
    v = v[~np.isnan(v).all(axis=(1, 2))]
    v = v[:, :, ~np.isnan(v).all(axis=(0, 1))]
    S, D, N = v.shape
    mean = float(np.nanmean(v))
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    per = max(1, _CHUNK // (S * D * N))
    for start in range(0, n_boot, per):
        b = min(per, n_boot - start)
        s = rng.integers(S, size=(b, S)) if "seeds" in resample else np.broadcast_to(np.arange(S), (b, S))
        d = rng.integers(D, size=(b, S, D)) if "draws" in resample else np.broadcast_to(np.arange(D), (b, S, D))
        if "images" not in resample:
            i = np.broadcast_to(np.arange(N), (b, 1, 1, N))
        elif images == "shared":
            i = rng.integers(N, size=(b, 1, 1, N))
        else:
            i = rng.integers(N, size=(b, S, D, N))
        g = v[s[:, :, None, None], d[:, :, :, None], i]  # [b, S, D, N]
        with np.errstate(invalid="ignore"):
            total = np.nansum(g, axis=(1, 2, 3))
            count = (~np.isnan(g)).sum(axis=(1, 2, 3))
            stats[start : start + b] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    lo, hi = _percentiles(stats, level, bounds)
    if n_values < 2:
        lo = hi = math.nan
    return Estimate(float(np.clip(mean, *bounds)), lo, hi, n_seeds, n_draws, n_images, n_values, n_missing)


def pairs(
    values,
    bounds: tuple[float, float] = (-1.0, 1.0),
    seed: int = 0,
    n_boot: int = N_BOOT,
    level: float = 0.95,
    resample: Sequence[str] = ("seeds", "images"),
) -> Estimate:
    """For values on pairs of K seeds, [K, K, images] (value[a, b] = value[b, a]; NaN where undefined and on
    the diagonal): the mean over pairs and images, and its interval from resampling the seeds (keeping the
    pairs of two different resampled seeds) and the images (one shared resample). `n_draws` of the result
    counts the pairs."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 3 or v.shape[0] != v.shape[1]:
        raise ValueError(f"values of shape {v.shape}: expected [seeds, seeds, images]")
    K, _, N = v.shape
    upper = np.triu(np.ones((K, K), dtype=bool), 1)
    vals = v[upper]  # [pairs, N]
    ok = ~np.isnan(vals)
    n_pairs = int(ok.any(axis=1).sum())
    n_images = int(ok.any(axis=0).sum())
    if not ok.any():
        return Estimate(math.nan, math.nan, math.nan, K, 0, 0, 0, int((~ok).sum()))
    mean = float(np.nanmean(vals))
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    per = max(1, _CHUNK // (K * K * N))
    for start in range(0, n_boot, per):
        b = min(per, n_boot - start)
        k = rng.integers(K, size=(b, K)) if "seeds" in resample else np.broadcast_to(np.arange(K), (b, K))
        i = rng.integers(N, size=(b, 1, 1, N)) if "images" in resample else np.broadcast_to(np.arange(N), (b, 1, 1, N))
        g = v[k[:, :, None, None], k[:, None, :, None], i]  # [b, K, K, N]
        keep = upper[None, :, :] & (k[:, :, None] != k[:, None, :])  # pairs of two different seeds
        g = np.where(keep[..., None], g, np.nan)
        with np.errstate(invalid="ignore"):
            total = np.nansum(g, axis=(1, 2, 3))
            count = (~np.isnan(g)).sum(axis=(1, 2, 3))
            stats[start : start + b] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    lo, hi = _percentiles(stats, level, bounds)
    if int(ok.sum()) < 2:
        lo = hi = math.nan
    return Estimate(float(np.clip(mean, *bounds)), lo, hi, K, n_pairs, n_images, int(ok.sum()), int((~ok).sum()))


def needed(est: Estimate, distance: float, widths: Optional[dict[str, float]] = None) -> Optional[tuple[str, int]]:
    """(level, count) that would bring the interval's half-width below `distance` (the gap between the
    estimate and the threshold it must clear), by 1/sqrt(n) scaling of the level that contributes the widest
    interval on its own (`widths`: level -> half-width resampling that level alone; default images).
    None when no count can (distance <= 0)."""
    if distance <= 0 or math.isnan(est.half_width):
        return None
    counts = {"seeds": est.n_seeds, "draws": est.n_draws, "images": est.n_images}
    widths = {k: w for k, w in (widths or {"images": est.half_width}).items() if counts[k] >= 2 and w > 0}
    if not widths:
        return None
    lvl = max(widths, key=lambda k: widths[k])
    factor = (est.half_width / distance) ** 2
    return lvl, max(counts[lvl] + 1, math.ceil(counts[lvl] * factor))


def level_widths(values, bounds: tuple[float, float] = (-1.0, 1.0), seed: int = 0, n_boot: int = 500) -> dict[str, float]:
    """Half-width of the interval when only one level is resampled, per level with two members or more."""
    v = _as_grid(values)
    out = {}
    for k, size in zip(LEVELS, v.shape, strict=True):
        if size >= 2:
            e = hierarchical(v, bounds, seed, n_boot, resample=(k,))
            if not math.isnan(e.half_width):
                out[k] = e.half_width
    return out
