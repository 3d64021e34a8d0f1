"""The top-9 activations of each feature map over a dataset, with their deconv
projections and the input patches they come from (Zeiler & Fergus 2014, Figure 2).

The dataset streams by in batches; per feature map only the k best (value, image,
position) survive each batch, so memory is O(maps x k) whatever the dataset size. One
image contributes at most once per map (its strongest unit), as in the paper's figure.

The ranking is one total order, the same everywhere (`select_top`): activation descending, then
image index ascending, and within an image its first strongest unit in raster order. So the top-k
of any split of the images - batches, a pass resumed after Ctrl-C, shards on several workers - merged
with `select_top` is exactly the top-k of one pass (the dataset pass of every layer at once,
`dataset_pass.py`, relies on it), and ties never depend on `torch.topk`'s unspecified order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import torch
from torch import nn

from ..data import Dataset
from ..errors import NetsightError
from .deconvnet_graph import make_deconvnet
from .receptive_field import ReceptiveField


@dataclass
class TopActivations:
    layer: str  # the module whose output was ranked
    values: torch.Tensor  # [maps, k], descending
    image_index: torch.Tensor  # [maps, k] index into the dataset
    positions: torch.Tensor  # [maps, k, 2] (y, x) in the feature map
    field: ReceptiveField


@torch.no_grad()
def top_activations(model: nn.Module, images: torch.Tensor, layer: str, k: int = 9, batch_size: int = 500) -> TopActivations:
    """Stream uint8 `images` and keep, per feature map of `layer`, the k strongest activations."""
    device = next(model.parameters()).device
    deconv = make_deconvnet(model, layer, tuple(images.shape[1:]))
    batches = ((s, Dataset.normalise(images[s : s + batch_size].to(device))) for s in range(0, len(images), batch_size))
    return stream_top_activations(deconv, batches, k)


@torch.no_grad()
def stream_top_activations(deconv, batches: Iterable[tuple[int, torch.Tensor]], k: int = 9) -> TopActivations:
    """Keep, per feature map of the deconvnet's target, the k strongest activations over
    (start index, float batch) pairs; memory O(maps x k) whatever the number of images."""
    best: Optional[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = None  # values, image indices, positions
    for start, x in batches:
        top = deconv.activations(x.to(_device(deconv.model)))
        if top.dim() == 2:  # fully connected units have no position
            top = top[:, :, None, None]
        if top.dim() != 4:
            raise NetsightError(
                f"top-9: layer {deconv.target} gives activations of shape {tuple(top.shape[1:])}; "
                f"expected feature maps [C, H, W] or units [C]"
            )
        v, pos = unit_maxima(top)  # [B, maps], [B, maps, 2]: each image's strongest unit per map
        v, pos = v.T, pos.transpose(0, 1)  # [maps, B]
        img = torch.arange(start, start + len(x), device=v.device).expand_as(v)
        if best is not None:
            best_v, best_i, best_p = best
            v, img, pos = torch.cat([best_v, v], 1), torch.cat([best_i, img], 1), torch.cat([best_p, pos], 1)
        best = select_top(v, img, pos, k)
    if best is None:
        raise NetsightError("top-9: no images")
    best_v, best_i, best_p = best
    return TopActivations(deconv.target, best_v.cpu(), best_i.cpu(), best_p.cpu(), deconv.field)


def unit_maxima(activations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's strongest unit per feature map of `activations` [B, maps, H, W]: its value [B, maps]
    and its (y, x) position [B, maps, 2] (the first in raster order where several tie, as `Tensor.max`
    returns it); fully connected units [B, C] are maps of one unit at (0, 0)."""
    if activations.dim() == 2:
        activations = activations[:, :, None, None]
    width = activations.shape[3]
    values, flat = activations.flatten(2).max(2)
    return values, torch.stack([flat // width, flat % width], -1)


def select_top(
    values: torch.Tensor, images: torch.Tensor, positions: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The k best of each map's candidates (`values` and `images` [maps, n], `positions` [maps, n, 2]) in
    netsight's one order: value descending, then image index ascending. Candidates must not hold an
    image twice for a map. Two stable sorts, so the result depends on the candidates only, never on
    the order they come in: selecting from the union of two selections equals selecting from all."""
    by_image = images.argsort(dim=1, stable=True)
    values, images = values.gather(1, by_image), images.gather(1, by_image)
    positions = positions.gather(1, by_image[..., None].expand(-1, -1, positions.shape[2]))
    order = values.argsort(dim=1, descending=True, stable=True)[:, :k]
    return (
        values.gather(1, order),
        images.gather(1, order),
        positions.gather(1, order[..., None].expand(-1, -1, positions.shape[2])),
    )


@dataclass
class TopPatches:
    top: TopActivations
    projections: torch.Tensor  # [maps, k, C, s, s]: deconv projection, cropped to the receptive field
    patches: torch.Tensor  # [maps, k, C, s, s]: input pixels under the receptive field (float in [0,1])
    valid: torch.Tensor  # [maps, k, 1, s, s]: 1 where the field lies inside the image


def crop(images: torch.Tensor, positions: torch.Tensor, field: ReceptiveField) -> tuple[torch.Tensor, torch.Tensor]:
    """Crop each image's receptive-field window onto a fixed-size canvas (zeros outside the image)."""
    n, c, h, w = images.shape
    sh, sw = field.size
    out = images.new_zeros(n, c, sh, sw)
    valid = images.new_zeros(n, 1, sh, sw)
    for i in range(n):
        y, x = int(positions[i, 0]), int(positions[i, 1])
        top, left, bottom, right = field.box(y, x, h, w)
        oy, ox = top - (field.start[0] + y * field.jump[0]), left - (field.start[1] + x * field.jump[1])
        out[i, :, oy : oy + bottom - top, ox : ox + right - left] = images[i, :, top:bottom, left:right]
        valid[i, :, oy : oy + bottom - top, ox : ox + right - left] = 1
    return out, valid


@torch.no_grad()
def top_patches(
    model: nn.Module, images: torch.Tensor, layer: str, k: int = 9, maps: int | None = None, batch_size: int = 256
) -> TopPatches:
    """Top-k per feature map (the first `maps` maps), projected and cropped."""
    device = next(model.parameters()).device
    top = top_activations(model, images, layer, k)
    deconv = make_deconvnet(model, layer, tuple(images.shape[1:]))
    return project_top(deconv, top, lambda index: Dataset.normalise(images[index].to(device)), maps, batch_size)


def project_top(
    deconv,
    top: TopActivations,
    load: Callable[[torch.Tensor], torch.Tensor],
    maps: int | None = None,
    batch_size: int = 256,
    strength: Optional[torch.Tensor] = None,
    progress: bool = False,
    what: str = "top-9 projections",
) -> TopPatches:
    """Project each of the first `maps` maps' top units with the deconvnet and crop projection and
    input to the unit's receptive field; `load(indices)` returns those images as float batches.
    `strength` ([maps, k]), when given, is each unit's signal instead of the deconvnet's own
    activation there (`top.values` projects the same units through another model's weights).
    With `progress`, a bar `what` over the units (netsight.progress)."""
    from ..progress import bar

    n_maps = top.values.shape[0] if maps is None else min(maps, top.values.shape[0])
    channels = torch.arange(n_maps).repeat_interleave(top.values.shape[1])
    index = top.image_index[:n_maps].reshape(-1)
    positions = top.positions[:n_maps].reshape(-1, 2)
    signal = strength[:n_maps].reshape(-1) if strength is not None else None
    device = _device(deconv.model)
    projections, patches, valid = [], [], []
    with bar(len(index), what, progress, "units") as shown:
        for s in range(0, len(index), batch_size):
            x = load(index[s : s + batch_size]).to(device)
            part = signal[s : s + batch_size] if signal is not None else None
            proj = deconv.project(x, channels[s : s + batch_size].to(device), "max", positions[s : s + batch_size], part)
            p, v = crop(proj.images.cpu(), positions[s : s + batch_size], top.field)
            q, _ = crop(x.cpu(), positions[s : s + batch_size], top.field)
            projections.append(p)
            patches.append(q)
            valid.append(v)
            shown.update(len(x))
    shape = (n_maps, top.values.shape[1])
    cat = lambda ts: torch.cat(ts).reshape(*shape, *ts[0].shape[1:])  # noqa: E731
    return TopPatches(top, cat(projections), cat(patches), cat(valid))


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
