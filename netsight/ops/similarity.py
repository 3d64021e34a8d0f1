"""How alike two sets of attribution maps are, image by image: the similarity measures of Adebayo
et al., "Sanity Checks for Saliency Maps", NeurIPS 2018 (section 3: Spearman rank correlation with
and without absolute values, the structural similarity index SSIM, and the Pearson correlation of
histogram-of-oriented-gradients vectors).

Maps are [N, H, W] (or [N, D] for the rank correlations), one per image, compared pairwise:
- `spearman`: the rank correlation of the signed maps, batched in torch (ranks by argsort, ties
  given their average rank, as scipy.stats.spearmanr); `absolute=True` ranks |map|;
- `ssim`, `hog`: on maps normalised as Adebayo's figures show them: |map| divided by its largest
  value, so each map lies in [0, 1] (an all-zero map stays 0); SSIM is skimage's
  structural_similarity with data_range 1; HOG is skimage.feature.hog with 9 orientations, cells of
  a seventh of the map's side (4 px on 28 px maps) and 2x2-cell blocks, and the Pearson correlation
  of the two HOG vectors.
A constant map has no ranks or gradients to correlate: its value is NaN, left out of summaries.
`summarise` gives the mean and its 95% interval over images: a percentile bootstrap (`ops/bootstrap.py`), so
the interval stays inside the values' own range (a t-interval of correlations near 1 ended at 1.01).

Also what the sanity checks compare maps with besides other maps (their chance levels): the input's
pixel intensities (`intensity`) and its Sobel edge magnitude (`edges`); and the region of an image
with a constant background that is not background (`foreground_masks`), where `compare_region` gives
the rank correlations and SSIM over those pixels only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

METRICS = ("spearman", "spearman_abs", "ssim", "hog")


def _flat(maps: torch.Tensor) -> torch.Tensor:
    m = torch.as_tensor(maps).detach().to(torch.float64).cpu()
    return m.reshape(m.shape[0], -1)


def ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks (1..D) along the last dimension of [N, D], ties given their average rank."""
    x = _flat(x)
    n, d = x.shape
    values, order = torch.sort(x, dim=1, stable=True)
    new = torch.ones_like(values, dtype=torch.bool)
    new[:, 1:] = values[:, 1:] != values[:, :-1]
    group = torch.cumsum(new.reshape(-1), 0) - 1  # a tie group id, unique over the whole batch
    position = torch.arange(1, d + 1, dtype=torch.float64).repeat(n)
    count = torch.zeros(int(group[-1]) + 1, dtype=torch.float64).index_add_(0, group, torch.ones_like(position))
    total = torch.zeros_like(count).index_add_(0, group, position)
    mean_rank = (total / count)[group].reshape(n, d)
    out = torch.empty_like(mean_rank)
    out.scatter_(1, order, mean_rank)
    return out


def _pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    den = torch.sqrt((a * a).sum(dim=1) * (b * b).sum(dim=1))
    r = (a * b).sum(dim=1) / den
    return torch.where(den > 0, r, torch.full_like(r, math.nan)).clamp(-1, 1)


def spearman(a: torch.Tensor, b: torch.Tensor, absolute: bool = False) -> torch.Tensor:
    """Per image, the Spearman rank correlation of map a[i] and map b[i] ([N] float64; NaN for a constant map)."""
    fa, fb = _flat(a), _flat(b)
    if fa.shape != fb.shape:
        raise ValueError(f"maps of different shapes: {tuple(fa.shape)} and {tuple(fb.shape)}")
    if absolute:
        fa, fb = fa.abs(), fb.abs()
    return _pearson_rows(ranks(fa), ranks(fb))


def normalise_abs(maps: torch.Tensor) -> np.ndarray:
    """|map| / max |map| per image: [N, H, W] float64 in [0, 1] (an all-zero map stays 0)."""
    m = torch.as_tensor(maps).detach().to(torch.float64).cpu().abs()
    top = m.reshape(m.shape[0], -1).amax(dim=1).clamp_min(1e-30)
    return (m / top.view(-1, *([1] * (m.dim() - 1)))).numpy()


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image, SSIM of the normalised |maps| ([N]); the window is 7 px, or the map's side when smaller (odd)."""
    from skimage.metrics import structural_similarity

    na, nb = normalise_abs(a), normalise_abs(b)
    side = min(na.shape[1:])
    win = min(7, side if side % 2 else side - 1)
    return torch.tensor([structural_similarity(x, y, data_range=1.0, win_size=win) for x, y in zip(na, nb, strict=True)])


def hog_cell(side: int) -> int:
    """Pixels per HOG cell for maps `side` pixels high: a seventh of it (4 on 28), at least 2."""
    return max(2, side // 7)


def hog_vectors(maps: torch.Tensor) -> np.ndarray:
    """The HOG vector of each normalised |map| ([N, features])."""
    from skimage.feature import hog

    m = normalise_abs(maps)
    cell = hog_cell(min(m.shape[1:]))
    return np.stack(
        [hog(x, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2), feature_vector=True) for x in m]
    )


def hog_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per image, the Pearson correlation of the HOG vectors of the normalised |maps| ([N])."""
    return _pearson_rows(torch.from_numpy(hog_vectors(a)), torch.from_numpy(hog_vectors(b)))


def compare(a: torch.Tensor, b: torch.Tensor, metrics=METRICS) -> dict[str, torch.Tensor]:
    """Every metric of `metrics`, per image: {metric: [N]}."""
    fns = {
        "spearman": lambda: spearman(a, b),
        "spearman_abs": lambda: spearman(a, b, absolute=True),
        "ssim": lambda: ssim(a, b),
        "hog": lambda: hog_similarity(a, b),
    }
    unknown = [m for m in metrics if m not in fns]
    if unknown:
        raise ValueError(f"unknown similarity metric(s) {unknown}; known: {', '.join(METRICS)}")
    return {m: fns[m]() for m in metrics}


REGION_METRICS = ("spearman", "spearman_abs", "ssim")  # defined on any set of pixels (HOG needs whole cells)


def intensity(images: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] images -> [N, H, W] pixel intensities (the mean over channels), float64."""
    return torch.as_tensor(images).detach().to(torch.float64).cpu().mean(dim=1)


def edges(images: torch.Tensor) -> torch.Tensor:
    """The Sobel edge magnitude of each image's intensity ([N, H, W], float64; borders replicated)."""
    g = intensity(images)[:, None]
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=torch.float64)
    k = torch.stack([kx, kx.T])[:, None]
    d = torch.nn.functional.conv2d(torch.nn.functional.pad(g, (1, 1, 1, 1), mode="replicate"), k)
    return d.pow(2).sum(dim=1).sqrt()


def foreground_masks(images: torch.Tensor, border: float = 0.9, least: float = 0.2) -> list[torch.Tensor | None]:
    """Per image, the pixels that differ from its constant background ([H, W] bool), or None when it has
    none. The background is the most common pixel value (all channels) on the image's one-pixel border; an
    image has a constant background when that value covers at least `border` of its border pixels and
    `least` of the whole image, and the rest is not empty (MNIST's digits on 0)."""
    x = torch.as_tensor(images).detach().to(torch.float64).cpu()
    out: list[torch.Tensor | None] = []
    for img in x:  # [C, H, W]
        c, h, w = img.shape
        ring = torch.cat([img[:, 0, :], img[:, -1, :], img[:, 1:-1, 0], img[:, 1:-1, -1]], dim=1).T  # [P, C]
        values, counts = torch.unique(ring, dim=0, return_counts=True)
        value = values[counts.argmax()]
        same = (img == value[:, None, None]).all(dim=0)
        ok = counts.max() >= border * len(ring) and same.double().mean() >= least and not bool(same.all())
        out.append(~same if ok else None)
    return out


def compare_region(a: torch.Tensor, b: torch.Tensor, masks, metrics=REGION_METRICS) -> dict[str, torch.Tensor]:
    """Like `compare`, over the pixels of each image's mask only (NaN where the mask is None, or where a map
    is constant on it): Spearman (signed and of |map|) of the masked pixels, and the mean of SSIM's local
    map (the same window and scaling as `ssim`) over them."""
    from skimage.metrics import structural_similarity

    unknown = [m for m in metrics if m not in REGION_METRICS]
    if unknown:
        raise ValueError(f"metric(s) {unknown} not defined on a region; known: {', '.join(REGION_METRICS)}")
    fa, fb = _flat(a), _flat(b)
    na, nb = normalise_abs(a), normalise_abs(b)
    side = min(na.shape[1:])
    win = min(7, side if side % 2 else side - 1)
    out = {m: torch.full((len(fa),), math.nan, dtype=torch.float64) for m in metrics}
    for i, mask in enumerate(masks):
        if mask is None:
            continue
        keep = torch.as_tensor(mask).reshape(-1)
        x, y = fa[i, keep][None], fb[i, keep][None]
        if "spearman" in metrics:
            out["spearman"][i] = spearman(x, y)[0]
        if "spearman_abs" in metrics:
            out["spearman_abs"][i] = spearman(x, y, absolute=True)[0]
        if "ssim" in metrics:
            _, local = structural_similarity(na[i], nb[i], data_range=1.0, win_size=win, full=True)
            out["ssim"][i] = float(local[torch.as_tensor(mask).numpy()].mean())
    return out


@dataclass(frozen=True)
class Interval:
    """A mean over images and its 95% percentile-bootstrap interval (inside the values' range); n counts the
    values that are not NaN."""

    mean: float
    lo: float
    hi: float
    n: int

    def text(self, digits: int = 2) -> str:
        if self.n == 0:
            return "n/a"
        if self.n == 1:
            return f"{self.mean:.{digits}f} (1 value, no interval)"
        return f"{self.mean:.{digits}f} [{self.lo:.{digits}f}, {self.hi:.{digits}f}]"


def summarise(values) -> Interval:
    """Mean and 95% interval of per-image values (NaN left out): the percentile bootstrap over images (seeded,
    reproducible), which cannot leave the range of the values themselves; one value: no interval (NaN)."""
    from .bootstrap import hierarchical

    v = torch.as_tensor(values).detach().to(torch.float64).cpu().reshape(-1).numpy()
    e = hierarchical(v, bounds=(-math.inf, math.inf))
    return Interval(e.mean, e.lo, e.hi, e.n_values)
