"""Everything `netsight explore` shows about every unit (feature map) of a CNN's conv layers.

Per layer, one streaming pass over the test set keeps, per image and map, the strongest
activation and its position (N x maps numbers: 10,000 x 64 floats for LeNet5's conv2 on MNIST),
plus per-map moments, zero counts and maxima; the top-9 of every map, the histogram of its
strongest responses and its statistics all follow from those, with no second pass. Then, for
the images that are some map's top-9 only: deconv projections (cropped to the receptive
field), occlusion maps of each map for its three strongest images and each map's invariance
curve (its strongest response to its top-9 images, transformed, relative to the untransformed
ones), both from the occlusion and invariance techniques' "every unit" modes (`unit_occlusion`,
`unit_invariance`: every batch of occluded or transformed copies gives every map's response at
once), over the top images loaded once.
Given the model with every layer's weights re-initialised (`randomised`), the same top-9 units
are projected through it too, in the same batches as the trained projections, with the Spearman
rank correlation of each trained/randomised pair: the sanity check of Adebayo et al., "Sanity
Checks for Saliency Maps" (NeurIPS 2018), for the deconvnet (Nie et al., ICML 2018, explain why
it stays high: the deconvnet largely reconstructs the image whatever the weights).
Feature evolution (the `explore` technique) uses a run's weight snapshots when it has them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from ..ops.deconvnet_graph import make_deconvnet
from ..ops.hooks import evaluating
from .invariance import unit_invariance
from .occlusion import unit_occlusion
from ..ops.occluding import default_square, positions
from ..ops.receptive_field import ReceptiveField
from ..ops.topk import TopActivations, project_top, select_top
from ..progress import bar

TOP_K = 9
OCCLUDED_IMAGES = 3  # per map: occlusion maps for its strongest images
HISTOGRAM_BINS = 24


@dataclass
class RandomisedUnits:
    """Each map's top-9 projected through the fully randomised model (same images, units, positions
    and signal strengths as the trained projections), and how alike the two are."""

    projections: torch.Tensor  # [maps, 9, C, s, s], cropped like the trained ones
    rho: list[list[Optional[float]]]  # per map and image: Spearman rank correlation, trained vs randomised
    unit_rho: list[Optional[float]]  # per map: the mean over its images (None where no image has both maps)


@dataclass
class LayerUnits:
    layer: str  # the convolution
    target: str  # the module whose output is ranked (the conv's ReLU where it has one)
    field: ReceptiveField
    weights: np.ndarray  # [maps, in, k, k]
    top: TopActivations  # top-9 per map over the test set
    projections: torch.Tensor  # [maps, 9, C, s, s], cropped to the receptive field
    patches: torch.Tensor  # [maps, 9, C, s, s]
    valid: torch.Tensor  # [maps, 9, 1, s, s]
    stats: list[dict]  # per map: mean, std, zero_frac, max, dead
    histograms: list[dict]  # per map: {"edges": [...], "counts": [...]} of the strongest response per image
    occlusion: list[list[dict]]  # per map: [{"image", "map": [rows x cols], "unoccluded"}] for its top images
    invariance: dict[str, dict]  # transform -> {"amounts": [...], "response": [maps x amounts]}
    evolution: Optional[dict] = None  # {"iterations": [...], "projections": [maps, snaps, C, H, W], "values": [...]}
    images: dict[int, torch.Tensor] = dataclasses.field(default_factory=dict)  # image index -> float [C,H,W] (the top images)
    randomised: Optional[RandomisedUnits] = None  # the projections through random weights, when asked for
    featureviz: Optional[Any] = None  # techniques.featureviz.FeatureVisualisation of every map, where the page asked for it


@torch.no_grad()
def explore_layer(
    model: nn.Module,
    source,
    layer: str,
    batch_size: int = 256,
    progress: bool = False,
    occlusion_size: Optional[int] = None,
    occlusion_stride: Optional[int] = None,
    randomised: Optional[nn.Module] = None,
) -> LayerUnits:
    """Every unit of conv `layer` of `model` over the images of `source` (a `data.images.ImageSource`);
    with `randomised` (a copy of `model` with its weights re-initialised, normalising its input the
    same way), each unit's top-9 projected through it as well."""
    device = next(model.parameters()).device
    shape = tuple(source.shape)
    with evaluating(model):
        net = make_deconvnet(model, layer, shape)
        maxima, where, width, moments = _stream(net, source, batch_size, device, progress)
        top = _top(net.target, maxima, where, width, net.field)
        load = lambda index: source.load(index).to(device)  # noqa: E731
        tp = project_top(net, top, load, None, batch_size, progress=progress, what=f"explore {net.target}: top-9 projections")
        random_units = (
            _randomised(randomised, layer, shape, net.target, top, load, batch_size, tp, progress)
            if randomised is not None
            else None
        )
        maps = maxima.shape[1]
        count, total, total_sq, zeros, largest = moments
        mean = total / count
        std = (total_sq / count - mean**2).clamp_min(0).sqrt()
        stats = [
            {
                "mean": float(mean[m]),
                "std": float(std[m]),
                "zero_frac": float(zeros[m] / count),
                "max": float(largest[m]),
                "dead": bool(largest[m] <= 0),
            }
            for m in range(maps)
        ]
        histograms = []
        for m in range(maps):
            counts, edges = np.histogram(maxima[:, m].numpy(), bins=HISTOGRAM_BINS)
            histograms.append({"edges": edges.tolist(), "counts": counts.tolist()})
        h = shape[1]
        size, stride = occlusion_size or default_square(h)[0], occlusion_stride or default_square(h)[1]
        occlusion, invariance, pictures = _occlusion_and_invariance(net, top, load, size, stride, progress=progress)
    weights = dict(model.named_modules())[layer].weight.detach().cpu().float().numpy()
    return LayerUnits(
        layer,
        net.target,
        net.field,
        weights,
        top,
        tp.projections,
        tp.patches,
        tp.valid,
        stats,
        histograms,
        occlusion,
        invariance,
        None,
        pictures,
        random_units,
    )


def _randomised(
    model: nn.Module, layer: str, shape, target: str, top: TopActivations, load, batch_size: int, trained, progress: bool = False
):
    """The trained top-9 units (image, map, position), each sent down with its trained activation,
    projected through `model`'s random weights: a deconvnet's projection scales with that signal
    (positive homogeneity), so the rank correlation is the randomised deconvnet's own, and a unit
    that random weights leave at zero still has a projection to compare."""
    from ..errors import NetsightError

    with evaluating(model):
        net = make_deconvnet(model, layer, tuple(shape))
        if net.target != target:
            raise NetsightError(f"explore: the randomised model projects {net.target}, the trained one {target}")
        what = f"explore {target}: top-9 through random weights"
        projected = project_top(net, top, load, None, batch_size, strength=top.values, progress=progress, what=what)
    rho = rank_correlations(trained.projections, projected.projections, trained.valid)
    means = [[r for r in row if r is not None] for row in rho]
    return RandomisedUnits(projected.projections, rho, [sum(r) / len(r) if r else None for r in means])


def rank_correlations(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> list[list[Optional[float]]]:
    """Spearman rank correlation (ties ranked by their mean) of `a[m, j]` and `b[m, j]` ([maps, k, C, s, s])
    over the pixels of every channel inside the image (`valid` [maps, k, 1, s, s]); None where
    either is constant there (a dead unit's zero projection)."""
    out = []
    for m in range(a.shape[0]):
        row: list[Optional[float]] = []
        for j in range(a.shape[1]):
            inside = valid[m, j].expand_as(a[m, j]).bool()
            x, y = a[m, j][inside].double().numpy(), b[m, j][inside].double().numpy()
            if len(x) < 2 or x.min() == x.max() or y.min() == y.max():
                row.append(None)
                continue
            rx, ry = _ranks(x) - (len(x) + 1) / 2, _ranks(y) - (len(y) + 1) / 2
            row.append(float((rx * ry).sum() / np.sqrt((rx * rx).sum() * (ry * ry).sum())))
        out.append(row)
    return out


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of `x`, tied values sharing the mean of their ranks."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2)[inverse]


def _stream(net, source, batch_size: int, device, progress: bool):
    """Per image and map: strongest activation and its flat position; per map: count, sum,
    sum of squares (float64), zeros and maximum over every position of every image."""
    from ..errors import NetsightError

    maxima, where = [], []
    count, width = 0, 1
    sums: Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = None  # sum, sum of squares, zeros, maximum
    for _, x in source.batches(batch_size, progress, f"explore {net.target}"):
        top = net.activations(x.to(device))
        if top.dim() != 4:
            raise NetsightError(f"explore: layer {net.target} has no feature maps (its output is {tuple(top.shape[1:])})")
        width = top.shape[3]
        flat = top.flatten(2)  # [B, maps, H*W]
        v, i = flat.max(2)
        maxima.append(v.cpu())
        where.append(i.cpu())
        values = flat.transpose(0, 1).reshape(flat.shape[1], -1).double()
        s, sq, z, mx = values.sum(1), (values**2).sum(1), (values == 0).sum(1).double(), values.amax(1)
        count += values.shape[1]
        if sums is None:
            sums = (s, sq, z, mx)
        else:
            total, total_sq, zeros, largest = sums
            sums = (total + s, total_sq + sq, zeros + z, torch.maximum(largest, mx))
    if sums is None:
        raise NetsightError(f"explore: no images to rank {net.target} over")
    total, total_sq, zeros, largest = sums
    return torch.cat(maxima), torch.cat(where), width, (count, total.cpu(), total_sq.cpu(), zeros.cpu(), largest.cpu())


def _top(target: str, maxima: torch.Tensor, where: torch.Tensor, width: int, field: ReceptiveField) -> TopActivations:
    """The k strongest images per map (one unit per image, its strongest), as `stream_top_activations` ranks them."""
    values, flat = maxima.T, where.T  # [maps, images]
    images = torch.arange(maxima.shape[0]).expand_as(values)
    top = select_top(values, images, torch.stack([flat // width, flat % width], -1), min(TOP_K, maxima.shape[0]))
    return TopActivations(target, *top, field)


def _occlusion_and_invariance(
    net, top: TopActivations, load, size: int, stride: int, batch_size: int = 256, progress: bool = False
):
    """Every unit's occlusion maps for its OCCLUDED_IMAGES strongest images and its invariance curves over
    its top-9, from the occlusion and invariance techniques' "every unit" modes (`unit_occlusion`,
    `unit_invariance`): the top images are loaded once; their strongest responses, in batches, are what the
    invariance curves compare with. Also the top images themselves (image index -> [C,H,W])."""
    maps = top.values.shape[0]
    wanted = sorted({int(i) for i in top.image_index.flatten()})
    position = {i: j for j, i in enumerate(wanted)}
    x = torch.cat([load(wanted[s : s + batch_size]) for s in range(0, len(wanted), batch_size)])
    whole = torch.cat([net.activations(x[s : s + batch_size]).flatten(2).amax(2) for s in range(0, len(x), batch_size)])
    occluded = sorted({int(i) for i in top.image_index[:, :OCCLUDED_IMAGES].flatten()})
    rows = torch.tensor([position[i] for i in occluded], dtype=torch.long)
    per_image = len(positions(x.shape[2], size, stride)) * len(positions(x.shape[3], size, stride))
    # one image's copies per batch (at most 512): larger batches measured slower on CPU (LeNet5, one thread)
    # each image's unoccluded responses from it alone, as the occlusion figure reads them (in a batch the kernels may
    # differ in the 7th digit, enough to turn a caption's last digit)
    alone = torch.cat([net.activations(x[r : r + 1]).flatten(2).amax(2) for r in rows.tolist()])
    with bar(2, f"explore {net.target}: occlusion and invariance", progress, "steps", estimate=False) as shown:
        occ = unit_occlusion(net.activations, x[rows], size, stride, 0.5, min(per_image, 512), whole=alone)
        shown.update(1)
        chosen = torch.tensor([[position[int(i)] for i in row] for row in top.image_index], dtype=torch.long)
        curves = unit_invariance(net.activations, x, chosen, whole=whole)
        shown.update(1)
    at = {i: j for j, i in enumerate(occluded)}
    occlusion = [
        [
            {"image": i, "map": occ.maps[at[i], m].tolist(), "unoccluded": float(occ.whole[at[i], m])}
            for i in (int(v) for v in top.image_index[m, :OCCLUDED_IMAGES])
        ]
        for m in range(maps)
    ]
    invariance = {
        kind: {
            "amounts": [float(a) for a in curves.amounts[kind]],
            "response": [[None if v != v else float(v) for v in row] for row in response.tolist()],
        }
        for kind, response in curves.response.items()
    }
    return occlusion, invariance, {i: x[position[i]].cpu() for i in wanted}
