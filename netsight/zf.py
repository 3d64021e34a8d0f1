"""Zeiler & Fergus on any PyTorch CNN, from a notebook: one call per technique. A thin alias, kept for one
release: for attributions use the method objects (`netsight.GradCAM(model, layer).attribute(x, target=3)`,
`netsight.Saliency`, ...; docs/api.md); the Zeiler & Fergus techniques' functions live in
`netsight.techniques.<name>` (`top9`, `deconv`, `occlusion`, `invariance`, `filters`, `activations`).

    import torch, torchvision, netsight.zf as zf
    model = torchvision.models.resnet18()            # any nn.Module CNN, your own weights loaded
    model.load_state_dict(torch.load("resnet18.pt", weights_only=True))
    images = zf.images("photos/", model, size=224)   # a folder, or a tensor [N,C,H,W] in [0,1] / uint8
    norm = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    top = zf.top9(model, images, "layer2", **norm)   # streams the folder in batches
    top.plot()                                       # a matplotlib Figure; zf.plot(top) is the same

Images are always pixels in [0, 1]; `mean`/`std` (the model's own normalisation) are applied
inside the model's call for the duration of each call only, so the occluding grey square,
the invariance transforms' zero fill and the deconv projections all live in pixel space.
The model is not changed: hooks are removed when a call returns, even when it raises, and
train/eval mode is restored.

Every function here is the compute function of one registered technique (`netsight/techniques/`), the
code `netsight inspect` runs on a run directory and on `--model SPEC` alike, and every result plots itself
(`result.plot(title)`, which `plot` calls). `attribute` and `attribution_maps` call the attribution engine
(`ops/attribution.py`) and return its maps as `Maps` (the method objects' result: the maps with their
images); they, `receptive_field` and `plot` are this module's only code.
"""

from __future__ import annotations

from torch import nn

from .ops import attribution as _attribution
from .ops.attribution import METHODS, Attribution, Spelling, rectified_nonlinearities
from .techniques.attribution_methods import Maps
from .ops.deconvnet_graph import make_deconvnet
from .ops.inputs import images
from .ops.receptive_field import ReceptiveField
from .techniques.activations import activations
from .techniques.deconv import DeconvResult, deconv
from .techniques.filters import filters
from .techniques.invariance import InvarianceResult, invariance
from .techniques.occlusion import OcclusionResult, occlusion
from .techniques.top9 import top9, top_activations
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
    "Maps",
    "plot",
    "DeconvResult",
    "OcclusionResult",
    "InvarianceResult",
]


def receptive_field(model: nn.Module, layer: str, input_shape: tuple[int, int, int]) -> ReceptiveField:
    """Size, jump and start of `layer`'s receptive field, for any graph."""
    return make_deconvnet(model, layer, input_shape).field


# how errors name this module's keywords (`targets=`, `layer=`), not the command line's flags
_SPELLING = Spelling("targets=", "layer=", 'targets="predicted"')


def attribute(model: nn.Module, x, method: str, **options) -> Maps:
    """One method's maps of `x` (`ops.attribution.attribute`'s arguments), with the images: a `Maps`."""
    options.setdefault("spelling", _SPELLING)
    (found,) = _attribution.attribution_maps(model, x, [method], **options).values()
    return Maps.of(found, model, x)


def attribution_maps(model: nn.Module, x, methods=METHODS, **options) -> dict[str, Maps]:
    """Several methods' maps of `x` (`ops.attribution.attribution_maps`'s arguments): method -> `Maps`."""
    options.setdefault("spelling", _SPELLING)
    found = _attribution.attribution_maps(model, x, methods, **options)
    return {m: Maps.of(a, model, x) for m, a in found.items()}


def plot(result, title: str = "", images=None):
    """A matplotlib Figure for any result above: `result.plot(title)`. A bare `Attribution` (the engine's,
    `netsight.ops.attribution.attribute`) is drawn with its `images` ([N, C, H, W] in [0, 1]) when given,
    else over a grey image of its maps' size."""
    if isinstance(result, Attribution) and not isinstance(result, Maps):
        import torch

        if images is None:
            images = torch.full((len(result.maps), 1, *result.maps.shape[1:]), 0.5)
        elif images.dtype == torch.uint8:
            images = images.float() / 255
        result = Maps(result.method, result.maps, result.targets, result.target_kind, result.layer, result.notes, images)
    draw = getattr(result, "plot", None)
    if not callable(draw):
        raise NetsightError(f"plot: a {type(result).__name__} is not a result of netsight.zf")
    return draw(title or "model")
