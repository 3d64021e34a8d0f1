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

Every function here is the compute function of one registered technique
(`netsight/techniques/`), the code `netsight inspect` runs on a run directory and on
`--model SPEC` alike before it writes the figures and tables; `attribute` is one method of
`attribution_maps` (the attributions technique), `rectified_nonlinearities` what its ReLU rules
rectify on a model.

This module is a thin alias, kept for one release (only `receptive_field` and `plot` are its own). Where things live now:
each technique's function, result and plot in `netsight.techniques.<name>` (`top9`, `deconv`,
`occlusion`, `invariance`, `filters`, `activations`), the shared operations in `netsight.ops`
(`ops.attribution` the attribution family, `ops.deconvnet_graph` the deconvnet, `ops.inputs` the
images, `ops.receptive_field`, `ops.topk`).
"""

from __future__ import annotations

from torch import nn

from .techniques.activations import ActivationStatistics
from .ops.attribution import METHODS, Attribution, attribute, attribution_maps, rectified_nonlinearities
from .ops.deconvnet_graph import make_deconvnet
from .techniques.filters import FilterBank
from .ops.inputs import images
from .ops.receptive_field import ReceptiveField
from .techniques.activations import activations
from .techniques.deconv import DeconvResult, deconv
from .techniques.filters import filters
from .techniques.invariance import InvarianceResult, invariance
from .techniques.occlusion import OcclusionResult, occlusion
from .techniques.top9 import top9, top_activations
from .ops.topk import TopPatches
from .errors import NetsightError

__all__ = [
    "images",
    "deconv",
    "top9",
    "top_activations",
    "occlusion",
    "activations",
    "invariance",
    "filters",
    "receptive_field",
    "attribute",
    "attribution_maps",
    "rectified_nonlinearities",
    "METHODS",
    "Attribution",
    "plot",
    "DeconvResult",
    "OcclusionResult",
    "InvarianceResult",
]


def receptive_field(model: nn.Module, layer: str, input_shape: tuple[int, int, int]) -> ReceptiveField:
    """Size, jump and start of `layer`'s receptive field, for any graph."""
    return make_deconvnet(model, layer, input_shape).field


def plot(result, title: str = ""):
    """A matplotlib Figure for any result above."""
    from .techniques import activations as _activations, deconv as _deconv, filters as _filters
    from .techniques import invariance as _invariance, occlusion as _occlusion, top9 as _top9

    title = title or "model"
    if isinstance(result, DeconvResult):
        return _deconv.plot_deconv(result.inputs, result.rows, result.layer, result.mode, title)
    if isinstance(result, TopPatches):
        return _top9.plot_top9(result, title)
    if isinstance(result, OcclusionResult):
        classes = tuple(str(i) for i in range(max(result.labels + [int(m.predicted_class.max()) for m in result.maps]) + 1))
        return _occlusion.plot_occlusion(result.inputs, result.labels, result.maps, classes, title, result.label_kind)
    if isinstance(result, InvarianceResult):
        return _invariance.plot_invariance(result.curves, title, "images", result.label_kind)
    if isinstance(result, ActivationStatistics):
        return _activations.plot_activation_histograms(result, title)
    if isinstance(result, FilterBank):
        return _filters.plot_filters(result, title)
    raise NetsightError(f"plot: no figure for a {type(result).__name__}")
