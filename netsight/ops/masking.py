"""Masked images for ROAR and KAR (Hooker, Erhan, Kindermans & Kim, "A Benchmark for Interpretability
Methods in Deep Neural Networks", NeurIPS 2019): rank each image's pixels by an attribution map, then
replace a fraction of them with the training set's mean, and retrain on the result.

- `pixel_order`: each image's pixels, most important first, by the magnitude of its map (summed over
  channels, as every netsight map is); ties (a Grad-CAM map's flat zero region, a gradient that is
  exactly 0) are broken by a fixed random permutation per image, never by raster order, which would
  remove the top rows first and bias the test. `random_order` is the random baseline's ranking.
- `method_order`: the ranking of every image of a set by one method on a trained model, in batches
  (ops/attribution.py's engine), for the class the model predicts (the map explains the model's own
  decision, and the true class of a test image is not leaked into the shape of its mask).
- `replaced`: which pixels a fraction replaces: `roar` the top-ranked round(fraction x pixels) of each
  image, `kar` the bottom-ranked as many (keeping the top 1 - fraction); exactly that many every image.
- `apply_mask`: the images with those pixels (every channel of them) set to the fill value, the training
  set's per-channel mean rounded to the uint8 grid (`fill_value`).
- `pack` / `unpack`: a set's masks as bits (1/8 of a byte per pixel), the form a run directory keeps.
"""

from __future__ import annotations

import time
from typing import Optional

import numpy as np
import torch
from torch import nn

from .attribution import attribution_maps

MODES = ("roar", "kar")
RANDOM = "random"  # the baseline "method": a random ranking of each image's pixels


def _tie_breaks(n: int, pixels: int, seed: int, start: int = 0) -> torch.Tensor:
    """[n, pixels]: a random permutation of the pixels for images start..start+n-1, each seeded by (seed, its index)."""
    rows = []
    for i in range(start, start + n):
        g = torch.Generator().manual_seed(seed * 1_000_003 + i)
        rows.append(torch.randperm(pixels, generator=g))
    return torch.stack(rows) if rows else torch.zeros(0, pixels, dtype=torch.long)


def pixel_order(maps: torch.Tensor, seed: int = 0, start: int = 0) -> torch.Tensor:
    """Each image's pixel indices (row-major over H x W), most important (largest |map|) first: int64 [N, H*W].
    `start`: the index of the first image in its set (its tie-break permutation is seeded by it)."""
    n = len(maps)
    scores = maps.detach().abs().reshape(n, -1).float().cpu()
    perm = _tie_breaks(n, scores.shape[1], seed, start)
    shuffled = torch.gather(scores, 1, perm)
    _, idx = torch.sort(shuffled, dim=1, descending=True, stable=True)
    return torch.gather(perm, 1, idx)


def random_order(n: int, pixels: int, seed: int = 0) -> torch.Tensor:
    """The random baseline's ranking: a random permutation of each image's pixels, int64 [n, pixels]."""
    return _tie_breaks(n, pixels, seed + 7919)  # its own stream, not the tie breaks' of the same seed


def method_order(
    model: nn.Module,
    images: torch.Tensor,
    method: str,
    batch_size: int = 250,
    samples: int = 16,
    steps: int = 16,
    layer: Optional[str] = None,
    seed: int = 0,
) -> tuple[torch.Tensor, float]:
    """(every image's pixel order by `method`'s map on `model`, seconds): `images` uint8 [N, C, H, W];
    `method` one of ops.attribution.METHODS or "random". The maps are computed `batch_size` images at a
    time and only their orders kept (int16 is enough below 32,768 pixels)."""
    from ..data.images import tensor_images

    n, _, h, w = images.shape
    started = time.perf_counter()
    if method == RANDOM:
        return random_order(n, h * w, seed), time.perf_counter() - started
    device = next(model.parameters()).device
    orders = []
    for start in range(0, n, batch_size):
        x = images[start : start + batch_size]
        maps = attribution_maps(
            model,
            tensor_images(x.to(device)),
            [method],
            "predicted",
            layer=layer,
            batch_size=batch_size,
            steps=steps,
            samples=samples,
            seed=seed + start,  # SmoothGrad's noise of image i is seeded by seed + i, as over the whole set
        )[method].maps
        orders.append(pixel_order(maps, seed, start))
    return torch.cat(orders), time.perf_counter() - started


def replaced_count(pixels: int, fraction: float) -> int:
    """How many of an image's `pixels` a fraction replaces (the same in both modes)."""
    return int(round(fraction * pixels))


def replaced(order: torch.Tensor, mode: str, fraction: float) -> torch.Tensor:
    """bool [N, P]: the pixels `mode` replaces at `fraction` given each image's `order` [N, P] (most important first)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")
    n, p = order.shape
    k = replaced_count(p, fraction)
    chosen = order[:, :k] if mode == "roar" else order[:, p - k :]
    out = torch.zeros(n, p, dtype=torch.bool)
    out.scatter_(1, chosen.long(), True)
    return out


def fill_value(train_images: torch.Tensor) -> torch.Tensor:
    """The training set's mean per channel, rounded to the uint8 grid: uint8 [C]."""
    return train_images.float().mean(dim=(0, 2, 3)).round().clamp(0, 255).to(torch.uint8)


def apply_mask(images: torch.Tensor, mask: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """`images` (uint8 [N, C, H, W]) with the pixels `mask` marks (bool [N, H*W]) set to `fill` (uint8 [C]) in
    every channel; a new tensor."""
    n, c, h, w = images.shape
    m = mask.to(images.device).view(n, 1, h, w)
    return torch.where(m, fill.to(images.device, images.dtype).view(1, c, 1, 1), images)


def pack(mask: torch.Tensor) -> torch.Tensor:
    """bool [N, P] -> uint8 [N, ceil(P / 8)]."""
    return torch.from_numpy(np.packbits(mask.cpu().numpy(), axis=1))


def unpack(bits: torch.Tensor, pixels: int) -> torch.Tensor:
    """uint8 [N, ceil(P / 8)] -> bool [N, P]."""
    return torch.from_numpy(np.unpackbits(bits.cpu().numpy(), axis=1, count=pixels).astype(bool))
