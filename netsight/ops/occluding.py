"""Occluded copies of an image: a grey square at every position of a grid, for occlusion
sensitivity (Zeiler & Fergus 2014, section 4.2; `techniques/occlusion.py`) and the attribution
engine's occlusion method (`ops/attribution.py`).

The grid starts at the top-left corner and steps `stride` pixels until a square reaches the
bottom and right borders; where the steps do not tile the image ((H - size) / stride not whole),
the last square hangs over the border and only its part inside the image is grey. So every pixel
is covered by some square (when stride <= size), and the positions are Captum's `Occlusion`'s
(the same grid, the same cut-off last square), which the tests check against."""

from __future__ import annotations

import torch

from ..errors import NetsightError


def default_square(height: int) -> tuple[int, int]:
    """The occlusion square's default size and stride for images `height` px high: 6/28 and 2/28 of
    it (the course's 6 and 2 px on its 28x28 images). Occlusion, attribution and explore use it."""
    return max(1, round(6 * height / 28)), max(1, round(2 * height / 28))


def positions(length: int, size: int, stride: int) -> range:
    """The square's first pixels along a side of `length` pixels: 0, stride, ... up to the first
    that reaches the border (a square starting there may be cut off by it)."""
    return range(0, min(length, length - size + stride), stride)


def occluded_copies(image: torch.Tensor, size: int, stride: int, fill: float) -> tuple[torch.Tensor, int, int]:
    """[C,H,W] float -> [rows*cols, C,H,W]: a copy per position of the size x size square
    (the positions of `positions`), and the grid's rows and columns."""
    _, h, w = image.shape
    if not 1 <= size <= min(h, w):
        raise NetsightError(f"--occlusion-size {size}: expected 1..{min(h, w)} for {h}x{w} images")
    if stride < 1:
        raise NetsightError(f"--occlusion-stride {stride}: expected an integer >= 1")
    tops, lefts = positions(h, size, stride), positions(w, size, stride)
    copies = image.expand(len(tops) * len(lefts), *image.shape).clone()
    for i, top in enumerate(tops):
        for j, left in enumerate(lefts):
            copies[i * len(lefts) + j, :, top : top + size, left : left + size] = fill
    return copies, len(tops), len(lefts)
