"""Occlusion sensitivity: Zeiler & Fergus 2014, section 4.2 and Figure 7.

A grey square slides over the image; for every position we record the probability the
network gives the true class, the strongest activation of one feature map (by default
the map of the top conv layer that responds most to the unoccluded image), and the most
probable class. All occluded copies of an image go through the network as batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..errors import NetsightError
from .hooks import capture_outputs, evaluating


@dataclass
class OcclusionMaps:
    true_class_prob: torch.Tensor  # [rows, cols]
    feature_max: torch.Tensor  # [rows, cols]: strongest activation of `feature_map` in `layer`
    predicted_class: torch.Tensor  # [rows, cols] long
    layer: str
    feature_map: int
    unoccluded_prob: float
    unoccluded_feature: float
    size: int
    stride: int


def default_square(height: int) -> tuple[int, int]:
    """The occlusion square's default size and stride for images `height` px high: 6/28 and 2/28 of
    it (the course's 6 and 2 px on its 28x28 images). Occlusion, attribution and explore use it."""
    return max(1, round(6 * height / 28)), max(1, round(2 * height / 28))


def occluded_copies(image: torch.Tensor, size: int, stride: int, fill: float) -> tuple[torch.Tensor, int, int]:
    """[C,H,W] float -> [rows*cols, C,H,W]: a copy per position of the size x size square."""
    _, h, w = image.shape
    if not 1 <= size <= min(h, w):
        raise NetsightError(f"--occlusion-size {size}: expected 1..{min(h, w)} for {h}x{w} images")
    if stride < 1:
        raise NetsightError(f"--occlusion-stride {stride}: expected an integer >= 1")
    tops, lefts = range(0, h - size + 1, stride), range(0, w - size + 1, stride)
    copies = image.expand(len(tops) * len(lefts), *image.shape).clone()
    for i, top in enumerate(tops):
        for j, left in enumerate(lefts):
            copies[i * len(lefts) + j, :, top : top + size, left : left + size] = fill
    return copies, len(tops), len(lefts)


@torch.no_grad()
def occlusion_maps(
    model: nn.Module,
    image: torch.Tensor,
    label: int,
    layer: str,
    size: int = 6,
    stride: int = 2,
    fill: float = 0.5,
    feature_map: Optional[int] = None,
    batch_size: int = 512,
) -> OcclusionMaps:
    """`image` is float [C,H,W] in [0,1]; `layer` a module whose output has feature maps."""
    with evaluating(model), capture_outputs(model, [layer], clone=True) as out:
        probs0 = model(image[None]).softmax(1)[0]
        act0 = out[layer][0]
        if act0.dim() != 3:
            raise NetsightError(f"--layer {layer}: occlusion needs a layer with feature maps, its output is {tuple(act0.shape)}")
        if feature_map is None:
            feature_map = int(act0.flatten(1).amax(1).argmax())
        elif not 0 <= feature_map < act0.shape[0]:
            raise NetsightError(f"--feature-map {feature_map}: layer {layer} has {act0.shape[0]} feature maps")
        copies, rows, cols = occluded_copies(image, size, stride, fill)
        probs, feats = [], []
        for s in range(0, len(copies), batch_size):
            probs.append(model(copies[s : s + batch_size]).softmax(1))
            feats.append(out[layer][:, feature_map].flatten(1).amax(1))
    probs_all = torch.cat(probs)
    return OcclusionMaps(
        probs_all[:, label].reshape(rows, cols).cpu(),
        torch.cat(feats).reshape(rows, cols).cpu(),
        probs_all.argmax(1).reshape(rows, cols).cpu(),
        layer,
        feature_map,
        probs0[label].item(),
        act0[feature_map].max().item(),
        size,
        stride,
    )
