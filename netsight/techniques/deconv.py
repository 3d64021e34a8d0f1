"""Deconvnet projections of each image's strongest feature maps back to pixels: Zeiler & Fergus,
"Visualizing and Understanding Convolutional Networks" (ECCV 2014), section 2.1 (max-pool
switches, rectification, transposed filters). The deconvnet itself is `ops/deconvnet.py`
(netsight's sequential models) and `ops/deconvnet_graph.py` (any graph)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import torch
from torch import nn

from ..ops.deconvnet_graph import make_deconvnet
from ..ops.hooks import normalised_input
from ..ops.inputs import Norm, check_norm, default_layer, device_of, source_for
from ..ops.receptive_field import ReceptiveField
from .base import Option, Ran, Technique, register, LAYER, checked_layer, count_option
from .target import Target, layer_file, spread
from ..ops.topk import crop

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAPS_PER_IMAGE = 4  # the strongest maps projected per image


@dataclass
class DeconvResult:
    inputs: torch.Tensor  # [N,C,H,W] the images, in [0, 1]
    rows: list[list[tuple]]  # per image: (map, activation, projection cropped to the field, valid mask, box)
    layer: str  # the module projected from
    mode: str
    field: ReceptiveField

    def plot(self, title: str = "model") -> Figure:
        """The figure `netsight inspect --deconv` draws."""
        return plot_deconv(self.inputs, self.rows, self.layer, self.mode, title)


def deconv(
    model: nn.Module,
    x,
    layer: Optional[str] = None,
    maps: int = MAPS_PER_IMAGE,
    mode: str = "max",
    mean: Norm = None,
    std: Norm = None,
) -> DeconvResult:
    """Deconvnet projections of each image's `maps` strongest feature maps of `layer` (default:
    the last convolution), each cropped to the projected unit's receptive field."""
    check_norm(model, mean, std)
    source = source_for(model, x)
    batch = source.load(range(len(source))).to(device_of(model))
    with normalised_input(model, mean, std):
        net = make_deconvnet(model, default_layer(model, layer), source.shape)
        top = net.activations(batch)
        strength = top.flatten(2).amax(2) if top.dim() == 4 else top
        k = min(maps, strength.shape[1])
        order = strength.topk(k, dim=1).indices
        field = net.field
        h, w = source.shape[1:]
        rows: list[list[tuple]] = [[] for _ in range(len(batch))]
        for j in range(k):
            proj = net.project(batch, order[:, j], mode)
            positions = proj.positions.cpu()
            if mode == "max" and top.dim() == 4:
                cropped, valid = crop(proj.images.cpu(), positions, field)
                boxes = [field.box(int(p[0]), int(p[1]), h, w) for p in positions]
            else:
                cropped, valid = proj.images.cpu(), torch.ones(len(batch), 1, h, w)
                boxes = [(0, 0, h, w)] * len(batch)
            for i in range(len(batch)):
                rows[i].append((int(order[i, j]), float(proj.values[i]), cropped[i], valid[i], boxes[i]))
    return DeconvResult(batch.cpu(), rows, net.target, mode, field)


_FRAME_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]


def plot_deconv(
    images: torch.Tensor, projections: list[list[tuple]], layer: str, mode: str, title: str, asked: Optional[str] = None
) -> Figure:
    """Per image (a row): the image with each projected unit's receptive field outlined, then
    each projection cropped to that field (zoomed, so its structure is visible; light blue:
    beyond the image border). `projections[i]` holds (map, value, cropped projection [C,s,s],
    valid mask [1,s,s], box (top, left, bottom, right) clipped to the image). `asked`: the layer
    asked for, when `layer` is the module after it whose output was ranked (conv2 -> relu2)."""
    from .. import style
    from ..plotting import plt, pixel_image, _outside_tinted, projection_image, _key_legend, _projection_key
    from ..style import SMALL, layer_name
    from matplotlib.patches import Rectangle

    import textwrap

    n, k = len(images), max(len(p) for p in projections)
    # laid out in inches: square tiles, a title band above each row, the key below
    tile, gap_x, title_band, side = 1.55, 0.2, 0.32, 0.25
    width = 2 * side + (k + 1) * tile + k * gap_x
    what = "its strongest unit" if mode == "max" else "the whole feature map"
    heading = (
        f"{title}: deconvnet projections from {layer_name(layer, asked)} ({what}; the image's strongest maps), "
        "each cropped to the unit's receptive field (outlined on the input in the tile's colour), "
        "scaled to its own largest |value|; tile title: map and its activation"
    )
    # the title wrapped to the figure's width (about 12 characters an inch at NORMAL size), never wider than it
    lines = textwrap.wrap(heading, max(30, int(width * 12)))
    top_band = 0.2 + 0.2 * len(lines)
    one_line_key = width >= 9.2
    bottom_band = 0.45 if one_line_key else 0.85
    height = top_band + n * (title_band + tile) - title_band + title_band + bottom_band
    fig, axes = plt.subplots(n, k + 1, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(
        left=side / width,
        right=1 - side / width,
        top=1 - (top_band + title_band) / height,
        bottom=bottom_band / height,
        wspace=gap_x / tile,
        hspace=title_band / tile,
    )
    clipped = False
    for i in range(n):
        ax = axes[i, 0]
        style.mark(ax.imshow(pixel_image(images[i]), cmap="gray", vmin=0, vmax=1), "pixels")
        ax.set_title("input", fontsize=SMALL)
        for j, (channel, value, proj, valid, box) in enumerate(projections[i]):
            colour = _FRAME_COLOURS[j % len(_FRAME_COLOURS)]
            top, left, bottom, right = box
            ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, lw=1.4, ec=colour))
            target = axes[i, j + 1]
            clipped |= bool((valid[0] == 0).any())
            style.mark(
                target.imshow(_outside_tinted(projection_image(proj), valid[0].numpy()), interpolation="nearest"), "projection"
            )
            target.set_title(f"map {channel}: {value:.2f}", fontsize=SMALL, color=colour)
            for spine in target.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(2)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[:, 0]:
        for spine in ax.spines.values():
            spine.set_visible(False)
    for i in range(n):
        for ax in axes[i, len(projections[i]) + 1 :]:
            ax.axis("off")
    fig.suptitle(
        "\n".join(lines),
        fontsize=style.NORMAL,
        y=1 - 0.1 / height,
        va="top",
    )
    _key_legend(fig, _projection_key(clipped), ncol=None if one_line_key else 1)
    return fig


@register
class DeconvTechnique(Technique):
    name = "deconv"
    summary = "deconvnet projections of the strongest maps of --layer for a few images"
    applies_to = "cnn"
    options = (
        LAYER,
        count_option(6),
        Option("mode", "choice", "max", "deconv: project the strongest unit, or the whole map", choices=("max", "map")),
    )
    section = "zf"
    compute = staticmethod(deconv)

    def prepare(self, t: Target, layer: Optional[str], count: int, mode: str) -> dict:
        asked, _ = checked_layer(t, layer)
        return {"layer": asked, "count": count, "mode": mode}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return [f"figures/deconv_{layer_file(o['layer'])}_{o['mode']}.png"]

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..data.images import tensor_images
        from ..plotting import save_figure

        idx = spread(len(t.images), o["count"])
        r = deconv(t.model, tensor_images(t.images.load(idx)), o["layer"], MAPS_PER_IMAGE, o["mode"], **t.norm)
        return [
            save_figure(
                plot_deconv(r.inputs, r.rows, r.layer, r.mode, t.title, asked=o["layer"]), t.folder / self.outputs(t, o)[0]
            )
        ]

    def caption(self, ran: Ran) -> str:
        o = ran.options
        what = "the strongest units" if o["mode"] == "max" else "the strongest whole maps"
        return f"deconvnet projections of {what} of {o['layer']} for {o['count']} test images" + (
            ", each cropped to the unit's receptive field (outlined on the input in the same colour)."
            if o["mode"] == "max"
            else "."
        )
