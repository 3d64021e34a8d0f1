"""Occlusion sensitivity: a grey square slides over the image and the class probability and the
strongest feature map are recorded at each position: Zeiler & Fergus (ECCV 2014), section 4.2
and Figure 7."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from ..deconvnet_graph import resolve_graph_target
from ..hooks import normalised_input
from ..inputs import Norm, check_norm, default_layer, device_of, labels_to_follow, source_for
from ..occlusion import OcclusionMaps, occlusion_maps
from ...errors import NetsightError
from ..technique import Option, Ran, ReportItem, Technique, register
from ..target import Target, layer_file, spread
from ._common import LAYER, checked_layer, count_option


@dataclass
class OcclusionResult:
    inputs: torch.Tensor
    labels: list[int]  # the class whose probability each map shows
    label_kind: str  # "true class" (labels given) or "predicted class" (the model's, unoccluded)
    maps: list[OcclusionMaps]


def occlusion(
    model: nn.Module,
    x,
    layer: Optional[str] = None,
    labels=None,
    size: Optional[int] = None,
    stride: Optional[int] = None,
    fill: float = 0.5,
    feature_map: Optional[int] = None,
    mean: Norm = None,
    std: Norm = None,
) -> OcclusionResult:
    """Occlusion sensitivity per image: p(label) and `layer`'s strongest map as a grey square
    slides over the image. Without `labels`, the model's own prediction on the whole image is
    tracked. `size`/`stride` default to 6/28 and 2/28 of the image height (the course's 6 and 2 px)."""
    check_norm(model, mean, std)
    source = source_for(model, x)
    h = source.shape[1]
    size = size or max(1, round(6 * h / 28))
    stride = stride or max(1, round(2 * h / 28))
    batch = source.load(range(len(source))).to(device_of(model))
    with normalised_input(model, mean, std):
        layer = resolve_graph_target(model, default_layer(model, layer), batch[:1])
        chosen, kind = labels_to_follow(model, batch, labels)
        maps = [occlusion_maps(model, batch[i], chosen[i], layer, size, stride, fill, feature_map) for i in range(len(batch))]
    return OcclusionResult(batch.cpu(), chosen, kind, maps)


def _prepare(
    t: Target,
    layer: Optional[str],
    count: int,
    occlusion_size: Optional[int],
    occlusion_stride: Optional[int],
    occlusion_fill: float,
    feature_map: Optional[int],
) -> dict:
    asked, _ = checked_layer(t, layer)
    h, w = t.images.shape[1:]
    if occlusion_size is not None and occlusion_size > min(h, w):
        raise NetsightError(f"--occlusion-size {occlusion_size}: larger than the {h}x{w} images")
    return {
        "layer": asked,
        "count": count,
        "size": occlusion_size,
        "stride": occlusion_stride,
        "fill": occlusion_fill,
        "feature_map": feature_map,
    }


def _outputs(t: Target, o: dict) -> list[str]:
    return [f"figures/occlusion_{layer_file(o['layer'])}.png"]


def _write(t: Target, o: dict) -> list[Path]:
    from ...data.images import tensor_images
    from ...report.figures import save_figure
    from ...report.figures_zf import plot_occlusion

    idx = spread(len(t.images), o["count"])
    labels = t.labels[idx] if t.labels is not None else None
    r = occlusion(
        t.model,
        tensor_images(t.images.load(idx)),
        o["layer"],
        labels,
        o["size"],
        o["stride"],
        o["fill"],
        o["feature_map"],
        **t.norm,
    )
    fig = plot_occlusion(r.inputs, r.labels, r.maps, t.classes, t.title, r.label_kind, asked=o["layer"])
    return [save_figure(fig, t.folder / _outputs(t, o)[0])]


def _report(run, label: str, ran: Ran) -> list[ReportItem]:
    return [
        ReportItem(
            "figure",
            f"{label}: occlusion sensitivity on {ran.options['count']} test images, with the strongest map of "
            f"{ran.options['layer']} (paper Fig. 7).",
            ran.files[0],
        )
    ]


TECHNIQUE = register(
    Technique(
        name="occlusion",
        summary="occlusion sensitivity maps for a few images",
        applies_to="cnn",
        compute=occlusion,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        options=(
            LAYER,
            count_option(3),
            Option(
                "occlusion_size",
                "int",
                None,
                "side of the grey square in pixels (6/28 of the image height: 6 px on 28x28 images)",
                lo=1,
                hi=4096,
            ),
            Option("occlusion_stride", "int", None, "pixels between square positions (2/28 of the image height)", lo=1, hi=4096),
            Option("occlusion_fill", "float", 0.5, "grey level of the square, 0..1 (0.5)", lo=0, hi=1),
            Option(
                "feature_map", "int", None, "occlusion: which map of --layer to track (default: the strongest)", lo=0, hi=65535
            ),
        ),
        report=_report,
        section="zf",
    )
)
