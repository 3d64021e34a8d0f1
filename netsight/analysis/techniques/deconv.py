"""Deconvnet projections of each image's strongest feature maps back to pixels: Zeiler & Fergus,
"Visualizing and Understanding Convolutional Networks" (ECCV 2014), section 2.1 (max-pool
switches, rectification, transposed filters). The deconvnet itself is `analysis/deconvnet.py`
(netsight's sequential models) and `analysis/deconvnet_graph.py` (any graph)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..deconvnet_graph import make_deconvnet
from ..hooks import normalised_input
from ..inputs import Norm, check_norm, default_layer, device_of, source_for
from ..receptive_field import ReceptiveField
from ..technique import Option, Ran, ReportItem, Technique, register
from ..target import Target, layer_file, spread
from ..topk import crop
from ._common import LAYER, checked_layer, count_option

MAPS_PER_IMAGE = 4  # the strongest maps projected per image


@dataclass
class DeconvResult:
    inputs: torch.Tensor  # [N,C,H,W] the images, in [0, 1]
    rows: list[list[tuple]]  # per image: (map, activation, projection cropped to the field, valid mask, box)
    layer: str  # the module projected from
    mode: str
    field: ReceptiveField


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


def _prepare(t: Target, layer: Optional[str], count: int, mode: str) -> dict:
    asked, _ = checked_layer(t, layer)
    return {"layer": asked, "count": count, "mode": mode}


def _outputs(t: Target, o: dict) -> list[str]:
    return [f"figures/deconv_{layer_file(o['layer'])}_{o['mode']}.png"]


def _write(t: Target, o: dict) -> list[Path]:
    from ...data.images import tensor_images
    from ...report.figures import save_figure
    from ...report.figures_zf import plot_deconv

    idx = spread(len(t.images), o["count"])
    r = deconv(t.model, tensor_images(t.images.load(idx)), o["layer"], MAPS_PER_IMAGE, o["mode"], **t.norm)
    return [save_figure(plot_deconv(r.inputs, r.rows, r.layer, r.mode, t.title, asked=o["layer"]), t.folder / _outputs(t, o)[0])]


def _report(run, label: str, ran: Ran) -> list[ReportItem]:
    o = ran.options
    what = "the strongest units" if o["mode"] == "max" else "the strongest whole maps"
    return [
        ReportItem(
            "figure",
            f"{label}: deconvnet projections of {what} of {o['layer']} for {o['count']} test images"
            + (
                ", each cropped to the unit's receptive field (outlined on the input in the same colour)."
                if o["mode"] == "max"
                else "."
            ),
            ran.files[0],
        )
    ]


TECHNIQUE = register(
    Technique(
        name="deconv",
        summary="deconvnet projections of the strongest maps of --layer for a few images",
        applies_to="cnn",
        compute=deconv,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        options=(
            LAYER,
            count_option(6),
            Option("mode", "choice", "max", "deconv: project the strongest unit, or the whole map", choices=("max", "map")),
        ),
        report=_report,
        section="zf",
    )
)
