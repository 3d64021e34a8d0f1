"""The attribution family as method objects, in the field's idiom (Captum, pytorch-grad-cam): a method
is constructed on a model (and a layer where the method needs one) with its own settings, called with
images and a target, and returns `Maps`, a result that plots itself. Each computes through
`ops.attribution.attribution_maps`, the code `netsight inspect --attributions` runs; the trust techniques
(sanity checks, faithfulness, seed agreement) take these objects, and `netsight.methods` re-exports them
as the public API (docs/api.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import NetsightError
from ..ops.attribution import PYTHON, Attribution, _ig_points, attribution_maps
from ..ops.inputs import check_norm
from ..ops.stages import conv_layers

Target = Union[str, int, Sequence[int], torch.Tensor]


class Normalize(nn.Module):
    """`model` fed `(x - mean) / std` per channel: a model trained on normalised images, taking pixels in [0, 1].

    Give the wrapped model to the methods, the checks and your own code alike; the methods apply the
    same normalisation inside the model's call (occlusion's grey square, the integrated-gradient
    baseline and gradient x input then live in pixel space)."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        check_norm(model, mean, std)
        if any(s <= 0 for s in std):
            raise NetsightError(f"Normalize: std={std}: every value must be above 0")
        self.model, self.mean, self.std = model, mean, std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = torch.as_tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        s = torch.as_tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return self.model((x - m) / s)


def _unwrap(model: nn.Module) -> tuple[nn.Module, Optional[tuple], Optional[tuple]]:
    if isinstance(model, Normalize):
        return model.model, model.mean, model.std
    if not isinstance(model, nn.Module):
        raise NetsightError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    return model, None, None


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise NetsightError(f"{name}={value!r}: expected an integer >= 1")
    return value


@dataclass
class Maps(Attribution):
    """One method's maps of some images, an `Attribution` (`method`; `maps` [N, H, W] float32, input channels
    summed, signed; `targets` the class each map explains; `target_kind`; `layer`; `notes`: integrated
    gradients' completeness_error, the ReLU rules' notes, seconds) that keeps its images and plots itself:
    `inputs` [N, C, H, W] in [0, 1] (None when they were streamed from a folder: `plot` then loads the first
    8 from `source`, the ImageSource they came from)."""

    inputs: Optional[torch.Tensor] = None
    source: Any = None

    @classmethod
    def of(cls, a: Attribution, model: nn.Module, x) -> Maps:
        """`a` (the maps of `x` on `model`) with its images."""
        inputs = x.detach() if torch.is_tensor(x) else None
        if inputs is not None and inputs.dtype == torch.uint8:
            inputs = inputs.float() / 255
        source = None if inputs is not None else _source(model, x)
        return cls(a.method, a.maps, a.targets, a.target_kind, a.layer, a.notes, inputs, source)

    def plot(self, title: str = "model", classes: Optional[Sequence[str]] = None, count: int = 8):
        """A matplotlib Figure: the first `count` images and their maps (red raises the score, blue lowers it)."""
        return plot_maps([self], title, classes, count)


def plot_maps(results: Sequence[Maps], title: str = "model", classes: Optional[Sequence[str]] = None, count: int = 8):
    """Several methods' maps of the same images side by side (a column per method): a matplotlib Figure."""
    from .attributions import plot_attributions

    if not results:
        raise NetsightError("plot_maps: no results")
    first = results[0]
    if any(r.targets != first.targets or r.maps.shape != first.maps.shape for r in results):
        raise NetsightError("plot_maps: the results must be maps of the same images for the same classes (target=...)")
    if len({r.method for r in results}) != len(results):
        raise NetsightError(f"plot_maps: {', '.join(r.method for r in results)}: each method once")
    n = min(count, len(first.maps))
    images = first.inputs[:n] if first.inputs is not None else first.source.load(range(n))
    names = tuple(classes) if classes is not None else tuple(str(i) for i in range(max(first.targets[:n]) + 1))
    maps = {r.method: r.maps[:n] for r in results}
    notes = {r.method: r.notes for r in results}
    layer = next((r.layer for r in results if r.layer), None)
    return plot_attributions(images.cpu(), maps, first.targets[:n], names, title, first.target_kind, notes, layer)


class AttributionMethod:
    """The base: a model (`Normalize`-wrapped or not), `batch_size`, and `attribute`. A method sets
    `name` (its name in netsight's tables) and `_options()` (its own settings as the engine's arguments)."""

    name: ClassVar[str]

    def __init__(self, model: nn.Module, *, batch_size: int = 64):
        self.model = model
        self.inner, self.mean, self.std = _unwrap(model)
        self.batch_size = _positive("batch_size", batch_size)
        self._checked: dict = {}  # the ReLU rules' checks, per input shape: made on the first call only

    def _options(self) -> dict:
        return {}

    def _settings(self) -> dict:
        """What `on` needs to build the same method on another model."""
        return {}

    def on(self, model: nn.Module) -> AttributionMethod:
        """The same method with the same settings on another model (a randomised copy, another seed's
        model); an unwrapped `model` gets this method's normalisation."""
        if not isinstance(model, Normalize) and self.mean is not None:
            assert self.std is not None
            model = Normalize(model, self.mean, self.std)
        return type(self)(model, batch_size=self.batch_size, **self._settings())

    def attribute(self, x, target: Target = "predicted") -> Maps:
        """The maps of `x` (a tensor [N, C, H, W] of pixels in [0, 1] or uint8, a folder, an
        `ImageSource`) for `target`: a class index, one class per image, or "predicted"."""
        if isinstance(target, str) and target != "predicted":
            raise NetsightError(f'target={target!r}: expected a class index, one class per image or "predicted"')
        if isinstance(target, float) or (isinstance(target, (list, tuple)) and any(isinstance(v, float) for v in target)):
            raise NetsightError(f"target={target!r}: class indices are integers")
        a = attribution_maps(
            self.inner,
            x,
            [self.name],
            targets=target,
            mean=self.mean,
            std=self.std,
            batch_size=self.batch_size,
            spelling=PYTHON,
            checked=self._checked,
            **self._options(),
        )[self.name]
        return Maps.of(a, self.inner, x)

    def __repr__(self) -> str:
        settings = "".join(f", {k}={v!r}" for k, v in self._settings().items())
        return f"{type(self).__name__}({type(self.model).__name__}{settings})"


def _source(model: nn.Module, x):
    from ..ops.inputs import source_for

    return source_for(model, x)


class Saliency(AttributionMethod):
    """The input gradient of the class score, signed (Simonyan, Vedaldi & Zisserman 2014); Captum's `Saliency(abs=False)`."""

    name = "gradient"


class InputXGradient(AttributionMethod):
    """The gradient times the input pixels (Shrikumar et al. 2016)."""

    name = "gradient_x_input"


class GuidedBackprop(AttributionMethod):
    """The gradient with every ReLU's backward gated by its forward input and rectified (Springenberg et al. 2015),
    for every ReLU call (module, functional, in place); non-ReLU non-linearities pass a plain gradient (see `notes`)."""

    name = "guided_backprop"


class Deconvolution(AttributionMethod):
    """The class score projected back with every ReLU's backward rectifying the signal: Zeiler & Fergus's deconvnet."""

    name = "deconvnet"


class IntegratedGradients(AttributionMethod):
    """The gradient averaged along the straight path from a grey-level `baseline` (0: black) to the image, times
    (image - baseline) (Sundararajan et al. 2017): `steps` points of the `quadrature` ("gausslegendre",
    "riemann_middle", ...); `notes["completeness_error"]` says how far the maps' sums are from f(x) - f(baseline)."""

    name = "integrated_gradients"

    def __init__(
        self, model: nn.Module, steps: int = 32, baseline: float = 0.0, quadrature: str = "gausslegendre", *, batch_size: int = 64
    ):
        super().__init__(model, batch_size=batch_size)
        self.steps, self.baseline, self.quadrature = _positive("steps", steps), float(baseline), quadrature
        try:
            _ig_points(self.steps, quadrature)
        except NetsightError as e:
            raise NetsightError(f"IntegratedGradients(quadrature={quadrature!r}, steps={steps}): {e}") from None

    def _settings(self) -> dict:
        return {"steps": self.steps, "baseline": self.baseline, "quadrature": self.quadrature}

    def _options(self) -> dict:
        return {"steps": self.steps, "baseline": self.baseline, "ig_method": self.quadrature}


class SmoothGrad(AttributionMethod):
    """The gradient averaged over `samples` noisy copies of the image, noise std `noise` in pixel units
    (Smilkov et al. 2017); image i's noise is seeded by `seed + i`, so the maps do not depend on the batch size."""

    name = "smoothgrad"

    def __init__(self, model: nn.Module, samples: int = 16, noise: float = 0.15, seed: int = 0, *, batch_size: int = 64):
        super().__init__(model, batch_size=batch_size)
        self.samples, self.noise, self.seed = _positive("samples", samples), float(noise), int(seed)
        if self.noise < 0:
            raise NetsightError(f"noise={noise}: expected a standard deviation >= 0")

    def _settings(self) -> dict:
        return {"samples": self.samples, "noise": self.noise, "seed": self.seed}

    _options = _settings


class SmoothGradSquared(SmoothGrad):
    """The mean of the squared gradient over `samples` noisy copies (noise std `noise`, seeded as SmoothGrad's):
    Hooker et al. 2019's SmoothGrad-squared, one of the two methods of theirs that beat a random ranking of
    the pixels under ROAR."""

    name = "smoothgrad_squared"


class VarGrad(SmoothGrad):
    """The variance of the gradient over `samples` noisy copies (divided by `samples`; noise as SmoothGrad's):
    Adebayo et al. 2018's VarGrad, the other method of Hooker et al. 2019 that beat a random ranking under ROAR."""

    name = "vargrad"


class _LayerMethod(AttributionMethod):
    def __init__(self, model: nn.Module, layer: Union[str, nn.Module, None] = None, *, batch_size: int = 64):
        super().__init__(model, batch_size=batch_size)
        self.layer = _layer_name(self.inner, layer)

    def _settings(self) -> dict:
        return {"layer": self.layer}

    _options = _settings


def _layer_name(model: nn.Module, layer: Union[str, nn.Module, None]) -> str:
    if layer is None:
        found = conv_layers(model)
        if not found:
            raise NetsightError("layer=None: the model has no convolution to default to; name a layer")
        return found[-1]
    modules = dict(model.named_modules())
    if isinstance(layer, nn.Module):
        name = next((n for n, m in modules.items() if m is layer), None)
        if name is None or not name:
            raise NetsightError(f"layer={type(layer).__name__}(...): not a submodule of the model")
        return name
    if not isinstance(layer, str) or layer not in modules or not layer:
        import difflib

        names = [n for n in modules if n]
        close = difflib.get_close_matches(str(layer), names, n=5, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"its layers include {', '.join(names[:12])}"
        raise NetsightError(f"layer={layer!r}: not a layer of this model; {hint}")
    return layer


class GradCAM(_LayerMethod):
    """ReLU of `layer`'s maps weighted by the class gradient's spatial mean per map, upsampled bilinearly to the
    image (Selvaraju et al. 2017). `layer`: a name as in `model.named_modules()` or the module itself; None: the
    last convolution. It must run once per forward pass and output [N, C, h, w]."""

    name = "gradcam"


class GuidedGradCAM(_LayerMethod):
    """Guided backprop times Grad-CAM at `layer` (Selvaraju et al. 2017)."""

    name = "guided_gradcam"


class Occlusion(AttributionMethod):
    """The drop in p(class) when a grey (`fill`) square of `size` pixels covers the pixel, averaged over the squares
    (every `stride` pixels) covering it (Zeiler & Fergus 2014); defaults: 6/28 and 2/28 of the image's height."""

    name = "occlusion"

    def __init__(
        self,
        model: nn.Module,
        size: Optional[int] = None,
        stride: Optional[int] = None,
        fill: float = 0.5,
        *,
        batch_size: int = 64,
    ):
        super().__init__(model, batch_size=batch_size)
        self.size = None if size is None else _positive("size", size)
        self.stride = None if stride is None else _positive("stride", stride)
        self.fill = float(fill)

    def _settings(self) -> dict:
        return {"size": self.size, "stride": self.stride, "fill": self.fill}

    def _options(self) -> dict:
        return {"occlusion_size": self.size, "occlusion_stride": self.stride, "occlusion_fill": self.fill}


METHOD_CLASSES: dict[str, type[AttributionMethod]] = {
    c.name: c
    for c in (
        Saliency,
        InputXGradient,
        GuidedBackprop,
        IntegratedGradients,
        SmoothGrad,
        SmoothGradSquared,
        VarGrad,
        GradCAM,
        GuidedGradCAM,
        Deconvolution,
        Occlusion,
    )
}
