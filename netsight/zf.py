"""Zeiler & Fergus on any PyTorch CNN, from a notebook: one call per technique.

    import torch, torchvision, netsight.zf as zf
    model = torchvision.models.resnet18()            # any nn.Module CNN, your own weights loaded
    model.load_state_dict(torch.load("resnet18.pt", weights_only=True))
    images = zf.images("photos/", model, size=224)   # a folder, or a tensor [N,C,H,W] in [0,1] / uint8
    norm = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    top = zf.top9(model, images, "layer2", **norm)   # streams the folder in batches
    zf.plot(top)                                     # a matplotlib Figure

Images are always pixels in [0, 1]; `mean`/`std` (the model's own normalisation) are applied
inside the model's call for the duration of each call only, so the occluding grey square,
the invariance transforms' zero fill and the deconv projections all live in pixel space.
The model is not changed: hooks are removed when a call returns, even when it raises, and
train/eval mode is restored.

Every function here is what one `netsight inspect --model ...` flag runs (see
`netsight/analysis/inspect_model.py`, which writes the figures and tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from .analysis.activations import ActivationStatistics, stream_activation_statistics
from .analysis.deconvnet_graph import make_deconvnet, resolve_graph_target
from .analysis.filters import FilterBank, filter_bank
from .analysis.hooks import normalised_input
from .analysis.invariance import InvarianceCurves, invariance_curves
from .analysis.occlusion import OcclusionMaps, occlusion_maps
from .analysis.receptive_field import ReceptiveField
from .analysis.stages import conv_layers
from .analysis.topk import TopActivations, TopPatches, crop, project_top, stream_top_activations
from .data.images import ImageSource, folder_images, tensor_images
from .errors import NetsightError
from .models.external import first_conv_channels

__all__ = ["images", "deconv", "top9", "top_activations", "occlusion", "activations", "invariance", "filters",
           "receptive_field", "plot", "DeconvResult", "OcclusionResult"]

Norm = Optional[Sequence[float]]


def images(source, model: Optional[nn.Module] = None, size: Optional[int] = None, resize: Optional[int] = None,
           labels: Optional[torch.Tensor] = None) -> ImageSource:
    """An `ImageSource` from a folder path or a tensor ([N,C,H,W], uint8 or float in [0, 1]).

    A folder's files are converted to the model's input channels; `size` crops the centre
    `size` x `size` after resizing the shorter side to `resize` (default: `size`)."""
    if isinstance(source, ImageSource):
        return source
    if isinstance(source, (str, Path)):
        channels = first_conv_channels(model) if model is not None else 3
        return folder_images(source, channels, resize or size, size)
    return tensor_images(source, labels)


def _source(model: nn.Module, x) -> ImageSource:
    source = images(x, model)
    channels = first_conv_channels(model)
    if source.shape[0] != channels:
        raise NetsightError(f"images have {source.shape[0]} channel(s), the model takes {channels} "
                            f"(its first convolution's input channels)")
    return source


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _default_layer(model: nn.Module, layer: Optional[str]) -> str:
    return layer or conv_layers(model)[-1]


def _check_norm(model: nn.Module, mean: Norm, std: Norm) -> None:
    if (mean is None) != (std is None):
        raise NetsightError("mean and std go together: give both or neither")
    if mean is not None:
        channels = first_conv_channels(model)
        if len(mean) != channels or len(std) != channels:
            raise NetsightError(f"mean/std: {len(mean)}/{len(std)} values, the model takes {channels} input channel(s)")


@dataclass
class DeconvResult:
    inputs: torch.Tensor  # [N,C,H,W] the images, in [0, 1]
    rows: list[list[tuple]]  # per image: (map, activation, projection cropped to the field, valid mask, box)
    layer: str  # the module projected from
    mode: str
    field: ReceptiveField


def deconv(model: nn.Module, x, layer: Optional[str] = None, maps: int = 4, mode: str = "max",
           mean: Norm = None, std: Norm = None) -> DeconvResult:
    """Deconvnet projections of each image's `maps` strongest feature maps of `layer` (default:
    the last convolution), each cropped to the projected unit's receptive field."""
    _check_norm(model, mean, std)
    source = _source(model, x)
    batch = source.load(range(len(source))).to(_device(model))
    with normalised_input(model, mean, std):
        net = make_deconvnet(model, _default_layer(model, layer), source.shape)
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


def top_activations(model: nn.Module, x, layer: Optional[str] = None, k: int = 9, mean: Norm = None, std: Norm = None,
                    batch_size: int = 64, progress: bool = False) -> TopActivations:
    """Per feature map of `layer`, the k strongest activations over all the images (streamed in
    batches: memory independent of their number), with image index and position."""
    _check_norm(model, mean, std)
    source = _source(model, x)
    device = _device(model)
    with normalised_input(model, mean, std):
        net = make_deconvnet(model, _default_layer(model, layer), source.shape)
        return stream_top_activations(net, ((s, b.to(device)) for s, b in source.batches(batch_size, progress, "top-9")), k)


def top9(model: nn.Module, x, layer: Optional[str] = None, k: int = 9, maps: Optional[int] = 16, mean: Norm = None,
         std: Norm = None, batch_size: int = 64, progress: bool = False) -> TopPatches:
    """The paper's Figure 2: per feature map (the first `maps`; None: all), the top-k
    activations' deconv projections and input patches, cropped to the receptive field."""
    _check_norm(model, mean, std)
    source = _source(model, x)
    top = top_activations(model, source, layer, k, mean, std, batch_size, progress)
    with normalised_input(model, mean, std):
        net = make_deconvnet(model, top.layer, source.shape)
        return project_top(net, top, lambda index: source.load(index), maps, batch_size)


def _labels(model: nn.Module, batch: torch.Tensor, labels) -> tuple[list[int], str]:
    if labels is not None:
        return [int(v) for v in labels], "true class"
    with torch.no_grad():
        was_training = model.training
        model.eval()
        try:
            predicted = model(batch).argmax(1)
        finally:
            model.train(was_training)
    return [int(v) for v in predicted], "predicted class"


@dataclass
class OcclusionResult:
    inputs: torch.Tensor
    labels: list[int]  # the class whose probability each map shows
    label_kind: str  # "true class" (labels given) or "predicted class" (the model's, unoccluded)
    maps: list[OcclusionMaps]


def occlusion(model: nn.Module, x, layer: Optional[str] = None, labels=None, size: Optional[int] = None,
              stride: Optional[int] = None, fill: float = 0.5, feature_map: Optional[int] = None,
              mean: Norm = None, std: Norm = None) -> OcclusionResult:
    """Occlusion sensitivity per image: p(label) and `layer`'s strongest map as a grey square
    slides over the image. Without `labels`, the model's own prediction on the whole image is
    tracked. `size`/`stride` default to 6/28 and 2/28 of the image height (the course's 6 and 2 px)."""
    _check_norm(model, mean, std)
    source = _source(model, x)
    h = source.shape[1]
    size = size or max(1, round(6 * h / 28))
    stride = stride or max(1, round(2 * h / 28))
    batch = source.load(range(len(source))).to(_device(model))
    with normalised_input(model, mean, std):
        layer = resolve_graph_target(model, _default_layer(model, layer), batch[:1])
        chosen, kind = _labels(model, batch, labels)
        maps = [occlusion_maps(model, batch[i], chosen[i], layer, size, stride, fill, feature_map) for i in range(len(batch))]
    return OcclusionResult(batch.cpu(), chosen, kind, maps)


def activations(model: nn.Module, x, mean: Norm = None, std: Norm = None, batch_size: int = 64,
                progress: bool = False) -> ActivationStatistics:
    """Statistics of every convolution's stages (conv, ReLU, pool, BN) over all the images,
    streamed twice (moments, then histograms)."""
    _check_norm(model, mean, std)
    source = _source(model, x)
    device = _device(model)
    with normalised_input(model, mean, std):
        return stream_activation_statistics(
            model, lambda: (b.to(device) for _, b in source.batches(batch_size, progress, "activations")), source.shape)


@dataclass
class InvarianceResult:
    curves: InvarianceCurves
    label_kind: str


def invariance(model: nn.Module, x, labels=None, mean: Norm = None, std: Norm = None) -> InvarianceResult:
    """Distances of the first and last hidden layers' features under vertical translation,
    rotation and scaling, and p(label) (without labels: the class predicted on the original)."""
    _check_norm(model, mean, std)
    source = _source(model, x)
    batch = source.load(range(len(source))).to(_device(model))
    with normalised_input(model, mean, std):
        chosen, kind = _labels(model, batch, labels)
        curves = invariance_curves(model, batch, torch.tensor(chosen, device=batch.device))
    return InvarianceResult(curves, kind)


def filters(model: nn.Module, layer: Optional[str] = None, scale: str = "filter") -> FilterBank:
    """The filters of a convolution (default: the first) as pictures."""
    return filter_bank(model, layer or conv_layers(model)[0], scale)


def receptive_field(model: nn.Module, layer: str, input_shape: tuple[int, int, int]) -> ReceptiveField:
    """Size, jump and start of `layer`'s receptive field, for any graph."""
    return make_deconvnet(model, layer, input_shape).field


def plot(result, title: str = ""):
    """A matplotlib Figure for any result above."""
    from .report import figures, figures_zf

    title = title or "model"
    if isinstance(result, DeconvResult):
        return figures_zf.plot_deconv(result.inputs, result.rows, result.layer, result.mode, title)
    if isinstance(result, TopPatches):
        return figures_zf.plot_top9(result, title)
    if isinstance(result, OcclusionResult):
        classes = tuple(str(i) for i in range(max(result.labels + [int(m.predicted_class.max()) for m in result.maps]) + 1))
        return figures_zf.plot_occlusion(result.inputs, result.labels, result.maps, classes, title, result.label_kind)
    if isinstance(result, InvarianceResult):
        return figures_zf.plot_invariance(result.curves, title, "images", result.label_kind)
    if isinstance(result, ActivationStatistics):
        return figures.plot_activation_histograms(result, title)
    if isinstance(result, FilterBank):
        return figures.plot_filters(result, title)
    raise NetsightError(f"plot: no figure for a {type(result).__name__}")
