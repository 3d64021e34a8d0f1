"""The attribution family: one map per image saying which pixels the model's score for a class
depends on, for any CNN (netsight's own, torchvision's, yours), written once for every method.

The methods and their papers:
- "gradient": the input gradient of the class score (Simonyan, Vedaldi & Zisserman, "Deep Inside
  Convolutional Networks: Visualising Image Classification Models and Saliency Maps", ICLR
  workshop 2014), signed;
- "gradient_x_input": the gradient times the input pixels (Shrikumar et al., "Not Just a Black
  Box", 2016; the name used by Ancona et al., ICLR 2018);
- "guided_backprop": the gradient with every ReLU's backward gated by the sign of its forward
  input AND rectified (Springenberg, Dosovitskiy, Brox & Riedmiller, "Striving for Simplicity:
  The All Convolutional Net", ICLR workshop 2015);
- "integrated_gradients": the gradient averaged along the straight path from a baseline (black)
  to the image, times (image - baseline), batched over the path's steps, with its completeness
  error (Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", ICML 2017);
- "smoothgrad": the gradient averaged over noisy copies of the image (Smilkov, Thorat, Kim, Viegas
  & Wattenberg, "SmoothGrad: removing noise by adding noise", 2017);
- "smoothgrad_squared" and "vargrad": the mean of the squared gradients, and their variance, over the
  same noisy copies (Hooker, Erhan, Kindermans & Kim, "A Benchmark for Interpretability Methods in
  Deep Neural Networks", NeurIPS 2019: the two of their methods that beat a random ranking under
  ROAR; VarGrad after Adebayo et al., "Local Explanation Methods for Deep Neural Networks Lack
  Sensitivity to Parameter Values", ICLR workshop 2018);
- "gradcam" and "guided_gradcam": the class gradient's channel means weighting a conv layer's
  maps, rectified and upsampled; guided backprop times that map (Selvaraju et al., "Grad-CAM:
  Visual Explanations from Deep Networks via Gradient-based Localization", ICCV 2017);
- "deconvnet": the class score projected back with every ReLU's backward rectifying the signal
  (Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014; as a class
  attribution, Simonyan et al. 2014, section 4);
- "occlusion": the drop in the class probability when a grey square covers a pixel, averaged over
  every square covering it (Zeiler & Fergus 2014, section 4.2).

Why written here rather than called from Captum: Captum's GuidedBackprop and Deconvolution
replace the backward of `nn.ReLU` *modules* only, so on a model with functional ReLUs (`F.relu`,
`torch.relu`, `x.relu()`) they silently return a plain gradient through those (a shared `nn.ReLU`
module, called several times as in a ResNet block, is hooked at every call and is right: Captum
0.9, tests/techniques/test_attribution.py);
this module runs the model's real forward pass under a `TorchFunctionMode` (rectify.py's
machinery) that catches every ReLU call, module or functional, in place or not. The other
methods are a few lines of autograd each, batched over images and integrated-gradient steps;
the tests check each against Captum or pytorch-grad-cam (and against autograd by hand where
Captum is wrong). An `ImageSource` is streamed in batches: memory stays that of one batch.

Non-linearities that are not ReLUs (GELU, SiLU, ReLU6, Hardswish, sigmoid, ...): the ReLU rules of
guided backprop and the deconvnet do not touch them, so through them these two are an ordinary
gradient; `rectified_nonlinearities` lists which were rectified and which were not, and every
ReLU-rule `Attribution` carries that list in `notes`.

Everything is computed with the model in eval mode; its mode, parameters (and their
requires_grad) and hooks are left as they were. Normalisation (`mean`/`std`) is applied inside
the model's call (hooks.normalised_input): maps and gradient x input live in pixel space.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import NetsightError
from .deconvnet_graph import unknown_layer
from .hooks import evaluating, forward_hooks, normalised_input
from .inputs import Norm, check_norm, device_of, source_for
from .occluding import default_square, occluded_copies
from .rectify import _RELUS, RectifyingReLUs
from .stages import conv_layers

METHODS: tuple[str, ...] = (
    "gradient",
    "gradient_x_input",
    "guided_backprop",
    "integrated_gradients",
    "smoothgrad",
    "smoothgrad_squared",
    "vargrad",
    "gradcam",
    "guided_gradcam",
    "deconvnet",
    "occlusion",
)
NOISE_METHODS = ("smoothgrad", "smoothgrad_squared", "vargrad")  # the methods that average over noisy copies
RELU_RULE = ("guided_backprop", "guided_gradcam", "deconvnet")  # the methods that rewrite ReLUs' backward
LAYER_METHODS = ("gradcam", "guided_gradcam")  # the methods that use a conv layer
IG_METHODS = ("gausslegendre", "riemann_trapezoid", "riemann_middle", "riemann_left", "riemann_right")

Targets = Union[None, str, int, Sequence[int], torch.Tensor]


@dataclass(frozen=True)
class Spelling:
    """How an error names the argument at fault: the command line's flags or the Python API's keywords."""

    target: str  # followed by the value: "--target 12" / "target=12"
    layer: str
    predicted: str  # the way to ask for the model's own class

    def of(self, what: str, value) -> str:
        flag = getattr(self, what)
        return f"{flag}{value!r}" if flag.endswith("=") and isinstance(value, str) else f"{flag}{value}"


CLI = Spelling("--target ", "--layer ", "--target predicted")
PYTHON = Spelling("target=", "layer=", 'target="predicted"')


class _OutOfRange(Exception):
    """A target class the model's output does not have (found at the first forward pass, turned into a NetsightError)."""

    def __init__(self, index: int, outputs: int):
        super().__init__(index, outputs)
        self.index, self.outputs = index, outputs


@dataclass
class Attribution:
    method: str
    maps: torch.Tensor  # [N, H, W] float32 on CPU: one map per image, input channels summed (signed)
    targets: list[int]  # the class each map explains
    target_kind: str  # "true class" | "predicted class" | "class N" | "given classes"
    layer: Optional[str]  # gradcam / guided_gradcam: the conv layer used; None for the methods that use none
    notes: dict = field(default_factory=dict)  # completeness_error, rectified / not_rectified, seconds, ...


# ------------------------------------------------------------------ non-linearities and the ReLU rules

_OTHER_NONLINEAR: dict = {
    F.gelu: "GELU",
    F.silu: "SiLU",
    F.hardswish: "Hardswish",
    F.hardsigmoid: "Hardsigmoid",
    F.relu6: "ReLU6",
    F.hardtanh: "Hardtanh (nn.ReLU6)",
    F.hardtanh_: "Hardtanh (nn.ReLU6)",
    F.elu: "ELU",
    F.elu_: "ELU",
    F.selu: "SELU",
    F.celu: "CELU",
    F.leaky_relu: "LeakyReLU",
    F.leaky_relu_: "LeakyReLU",
    F.prelu: "PReLU",
    F.mish: "Mish",
    F.softplus: "Softplus",
    F.glu: "GLU",
    F.logsigmoid: "LogSigmoid",
    F.sigmoid: "sigmoid",
    F.tanh: "tanh",
    torch.sigmoid: "sigmoid",
    torch.Tensor.sigmoid: "sigmoid",
    torch.tanh: "tanh",
    torch.Tensor.tanh: "tanh",
}


class _Recording(TorchFunctionMode):
    """Counts the non-linearities a forward pass calls: ReLUs (which the ReLU rules rewrite) and the others."""

    def __init__(self) -> None:
        super().__init__()
        self.relus = 0
        self.others: dict[str, int] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RELUS:
            self.relus += 1
        elif func in _OTHER_NONLINEAR:
            name = _OTHER_NONLINEAR[func]
            self.others[name] = self.others.get(name, 0) + 1
        return func(*args, **(kwargs or {}))


def rectified_nonlinearities(model: nn.Module, example: torch.Tensor) -> dict[str, list[str]]:
    """Which non-linearities a ReLU-rule method (guided backprop, the deconvnet) rectifies and which
    it passes as an ordinary gradient, from one real forward pass of `example` ([N,C,H,W]):
    {"rectified": ["ReLU x17"], "not_rectified": ["GELU x12", ...]} (calls per forward pass;
    every ReLU call counts: `nn.ReLU`, `F.relu`, `torch.relu`, `Tensor.relu`, in place or not)."""
    rec = _Recording()
    with evaluating(model), torch.no_grad(), rec:
        model(example.to(device=device_of(model), dtype=_dtype(model)))
    return _found(rec)


def _found(rec: _Recording) -> dict[str, list[str]]:
    return {
        "rectified": [f"ReLU x{rec.relus}"] if rec.relus else [],
        "not_rectified": [f"{name} x{n}" for name, n in rec.others.items()],
    }


class _GuidedReLU(torch.autograd.Function):
    """max(x, 0) forward; backward: the incoming gradient where both it and the forward input
    are positive (Springenberg et al. 2015: the gradient's gate and the deconvnet's rectification)."""

    @staticmethod
    def forward(ctx, x):
        out = x.clamp_min(0)
        ctx.save_for_backward(out)  # out > 0 exactly where x > 0
        return out

    @staticmethod
    def backward(ctx, signal):
        (out,) = ctx.saved_tensors
        # ReLU's own fused backward kernel (the gate) on the rectified signal: on a CPU about 20x faster
        # than multiplying by a (out > 0) mask, which made guided backprop slower than Captum's
        return torch.ops.aten.threshold_backward(signal.clamp_min(0), out, 0)


class GuidedReLUs(TorchFunctionMode):
    """Inside this mode every ReLU call is out of place and follows guided backprop's rule on the way back."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RELUS:
            return _GuidedReLU.apply(args[0])
        return func(*args, **(kwargs or {}))


# ------------------------------------------------------------------ targets


def parse_target(text: str | int | None) -> str | int | None:
    """`--target true|predicted|N` as `attribute` takes it ("true", "predicted" or an int)."""
    if text is None or isinstance(text, int):
        return text
    t = str(text).strip().lower()
    if t in ("true", "predicted"):
        return t
    try:
        return int(t)
    except ValueError:
        raise NetsightError(f"--target {text}: expected true, predicted or a class index") from None


def check_class(index: int, outputs: int, spell: Spelling = CLI) -> None:
    if not 0 <= index < outputs:
        raise NetsightError(f"{spell.of('target', index)}: the model has {outputs} outputs (0..{outputs - 1})")


def _resolve_targets(
    targets: Targets, labels, source_labels, n: int, outputs: Optional[int], spell: Spelling = CLI
) -> tuple[Optional[list[int]], str]:
    """(the class per image, or None for "the model's prediction"; the kind of target). `outputs`
    None: the classes' upper bound is checked later, at the first forward pass (`_scores`)."""
    if isinstance(targets, str):
        targets = parse_target(targets)
    given = labels if labels is not None else source_labels
    if targets is None:
        targets = "true" if given is not None else "predicted"
    if targets == "predicted":
        return None, "predicted class"
    if targets == "true":
        if given is None:
            raise NetsightError(
                f"{spell.of('target', 'true')}: these images have no labels"
                + ("" if spell == CLI else " (pass labels=, one class per image)")
                + f"; use {spell.predicted} or a class index"
            )
        chosen = [int(v) for v in given]
        kind = "true class"
    elif isinstance(targets, (int, np.integer)) and not isinstance(targets, bool):
        chosen, kind = [int(targets)] * n, f"class {int(targets)}"
    else:
        chosen = [int(v) for v in (targets.tolist() if torch.is_tensor(targets) else targets)]  # type: ignore[union-attr]
        kind = f"class {chosen[0]}" if chosen and all(c == chosen[0] for c in chosen) else "given classes"
    if len(chosen) != n:
        raise NetsightError(f"{'targets' if spell == CLI else 'target'}: {len(chosen)} classes for {n} images")
    for c in sorted(set(chosen)):
        if c < 0:
            raise NetsightError(f"{spell.of('target', c)}: a class index is 0 or more")
        if outputs is not None:
            check_class(c, outputs, spell)
    return chosen, kind


# ------------------------------------------------------------------ the methods, one batch at a time


def _dtype(model: nn.Module) -> torch.dtype:
    p = next(model.parameters(), None)
    return p.dtype if p is not None else torch.float32


def _classes(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The output checked (class scores [N, classes], every target among them): the targets' checks that
    need the model's output, made on the real pass (no pass of its own)."""
    if out.dim() != 2:
        raise NetsightError(f"attribution: the model's output is {tuple(out.shape)}, not class scores [N, classes]")
    top = int(t.max()) if t.numel() else 0
    if top >= out.shape[1]:
        raise _OutOfRange(top, out.shape[1])
    return t


def _scores(model: nn.Module, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out.gather(1, _classes(out, t)[:, None])[:, 0]


def _input_grad(model: nn.Module, x: torch.Tensor, t: torch.Tensor, mode: Optional[TorchFunctionMode] = None) -> torch.Tensor:
    """d score[i, t_i] / d x[i] for every image of the batch, [B,C,H,W] (eval mode: images independent)."""
    inputs = x.detach().requires_grad_(True)
    with torch.enable_grad():
        if mode is not None:
            with mode:
                s = _scores(model, inputs, t)
        else:
            s = _scores(model, inputs, t)
        (g,) = torch.autograd.grad(s.sum(), inputs)
    return g


def _check_rule(
    model: nn.Module,
    x: torch.Tensor,
    mode_type: type,
    method: str,
    real: Optional[torch.Tensor] = None,
    recording: Optional[_Recording] = None,
) -> None:
    """The class scores under out-of-place ReLUs must be the model's own (an in-place overwrite it relies on would differ).
    `real`: the model's own outputs for `x` when the caller has them; `recording` counts the
    non-linearities of the ruled pass (the same calls as the model's own pass)."""
    with torch.no_grad():
        if real is None:
            real = model(x)
        with mode_type(), recording if recording is not None else contextlib.nullcontext():
            ruled = model(x)
    tol = (1e-10 if real.dtype == torch.float64 else 1e-4) * max(float(real.abs().max()), 1e-6)
    if ruled.shape != real.shape or not torch.allclose(ruled, real, rtol=0, atol=tol):
        raise NetsightError(
            f"{method}: with out-of-place ReLUs the model computes different scores than its own forward pass "
            f"(its forward relies on an in-place ReLU overwriting a tensor it later reads); {method} cannot run on it"
        )


def _ig_points(steps: int, method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(alphas in [0, 1], weights summing to 1) of the path integral's quadrature: Captum's
    approximation methods, except "riemann_trapezoid", whose end weights here are halved so the
    weights sum to 1 (Captum's sum to (steps - 1) / steps: its attributions are that much too small)."""
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return torch.tensor((nodes + 1) / 2), torch.tensor(weights / 2)
    if method == "riemann_trapezoid":
        if steps < 2:
            raise NetsightError("integrated gradients: riemann_trapezoid needs at least 2 steps")
        alphas = torch.linspace(0, 1, steps, dtype=torch.float64)
        w = torch.full((steps,), 1.0 / (steps - 1), dtype=torch.float64)
        w[0] = w[-1] = 0.5 / (steps - 1)
        return alphas, w
    offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0}.get(method)
    if offset is None:
        raise NetsightError(f"integrated gradients method {method!r}: expected one of {', '.join(IG_METHODS)}")
    alphas = (torch.arange(steps, dtype=torch.float64) + offset) / steps
    return alphas, torch.full((steps,), 1.0 / steps, dtype=torch.float64)


def _integrated_gradients(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, steps: int, ig_method: str, baseline: float, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(attributions [B,C,H,W], completeness error per image): the steps go through the model
    `chunk` images at a time (several steps of the batch per forward pass)."""
    alphas, weights = _ig_points(steps, ig_method)
    alphas, weights = alphas.to(x.device, x.dtype), weights.to(x.device, x.dtype)
    base = torch.full_like(x, baseline)
    b = len(x)
    per = max(1, chunk // b)  # steps per forward pass
    total = torch.zeros_like(x)
    for s in range(0, steps, per):
        a = alphas[s : s + per]
        k = len(a)
        path = base[None] + a.view(k, 1, 1, 1, 1) * (x - base)[None]  # [k, B, C, H, W]
        g = _input_grad(model, path.reshape(k * b, *x.shape[1:]), t.repeat(k))
        total += (g.view(k, b, *x.shape[1:]) * weights[s : s + per].view(k, 1, 1, 1, 1)).sum(0)
    attr = total * (x - base)
    with torch.no_grad():
        delta = _scores(model, x, t) - _scores(model, base, t)
    err = (attr.flatten(1).sum(1) - delta).abs() / delta.abs().clamp_min(1e-12)
    return attr, err


def _smoothgrad(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, starts: Sequence[int], samples: int, noise: float, seed: int, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean of the gradient and the mean of its square over `samples` copies with Gaussian noise of
    std `noise` (pixel units: a fraction of the [0, 1] range, Smilkov et al.'s noise level), per pixel and
    channel. Image i's noise comes from a generator seeded with `seed + its index in the source`: the same
    maps whatever the batch size. SmoothGrad is the first; SmoothGrad-squared the second; VarGrad the
    second minus the square of the first (the variance over the copies, divided by `samples`)."""
    noises = torch.stack([smoothgrad_noise(x.shape[1:], samples, noise, seed, int(i)) for i in starts], 1)  # [S, B, C, H, W]
    noises = noises.to(x.device, x.dtype)
    b = len(x)
    per = max(1, chunk // b)
    total = torch.zeros_like(x)
    squares = torch.zeros_like(x)
    for s in range(0, samples, per):
        n = noises[s : s + per]
        k = len(n)
        g = _input_grad(model, (x[None] + n).reshape(k * b, *x.shape[1:]), t.repeat(k)).view(k, b, *x.shape[1:])
        total += g.sum(0)
        squares += g.square().sum(0)
    return total / samples, squares / samples


def smoothgrad_noise(shape: Sequence[int], samples: int, noise: float, seed: int, index: int) -> torch.Tensor:
    """The noise SmoothGrad adds to image `index` of a source: [samples, *shape], std `noise`."""
    g = torch.Generator().manual_seed(seed + index)
    return torch.randn(samples, *shape, generator=g, dtype=torch.float64) * noise


class _LayerOutput:
    """A forward hook keeping `layer`'s output (and handing the rest of the model a copy, so an
    in-place op after the layer cannot change what the gradient is taken against)."""

    def __init__(self) -> None:
        self.out: Optional[torch.Tensor] = None
        self.calls = 0

    def __call__(self, module, inputs, output):
        self.calls += 1
        if torch.is_tensor(output):
            self.out = output
            return output.clone()
        return None


def gradcam_layer(model: nn.Module, layer: Optional[str], spell: Spelling = CLI) -> str:
    """`layer` (default: the last convolution), checked to be a module of the model (no forward pass:
    that it runs once with spatial maps is checked during Grad-CAM's own pass, `_check_layer_output`)."""
    layer = layer or conv_layers(model)[-1]
    if layer not in dict(model.named_modules()):
        err = unknown_layer(layer, model)
        raise NetsightError(str(err).replace(f"--layer {layer}", spell.of("layer", layer), 1)) from None
    return layer


def _check_layer_output(keep: _LayerOutput, layer: str, spell: Spelling) -> None:
    if keep.calls != 1:
        raise NetsightError(
            f"{spell.of('layer', layer)}: Grad-CAM needs a layer that runs once per forward pass; this one runs {keep.calls} times"
        )
    if keep.out is None or keep.out.dim() != 4:
        shape = tuple(keep.out.shape) if keep.out is not None else "not a tensor"
        raise NetsightError(
            f"{spell.of('layer', layer)}: Grad-CAM needs a convolutional layer with spatial maps [N, C, h, w]; its output is {shape}"
        )


def check_gradcam_layer(model: nn.Module, layer: Optional[str], example: torch.Tensor, spell: Spelling = CLI) -> str:
    """`layer` (default: the last convolution), checked on a pass of `example`: it runs once and outputs
    spatial maps [N, C, h, w] (the command line's check before anything is written)."""
    layer = gradcam_layer(model, layer, spell)
    keep = _LayerOutput()
    with evaluating(model), torch.no_grad(), forward_hooks(model, {layer: keep}):
        model(example.to(device=device_of(model), dtype=_dtype(model)))
    _check_layer_output(keep, layer, spell)
    return layer


def _gradcam(model: nn.Module, x: torch.Tensor, t: torch.Tensor, layer: str, spell: Spelling = CLI) -> torch.Tensor:
    """ReLU(sum_k alpha_k A^k), alpha_k the spatial mean of d score / d A^k, upsampled bilinearly to the input: [B,H,W]."""
    keep = _LayerOutput()
    with torch.enable_grad(), forward_hooks(model, {layer: keep}):
        s = _scores(model, x.detach(), t)
        _check_layer_output(keep, layer, spell)
        assert keep.out is not None
        (g,) = torch.autograd.grad(s.sum(), keep.out)
    a = keep.out.detach()
    cam = (g.mean((2, 3), keepdim=True) * a).sum(1, keepdim=True).clamp_min(0)
    return F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]


def _occlusion(
    model: nn.Module, x: torch.Tensor, t: torch.Tensor, size: int, stride: int, fill: float, chunk: int
) -> torch.Tensor:
    """p(target | image) - p(target | square covering the pixel), averaged over the squares that
    cover each pixel (the grid of `occluded_copies`, whose last square may hang over the border;
    0 where no square does): [B,H,W]."""
    _, _, h, w = x.shape
    maps = []
    with torch.no_grad():
        out = model(x)
        p0 = out.softmax(1).gather(1, _classes(out, t)[:, None])[:, 0]
        for i in range(len(x)):
            copies, rows, cols = occluded_copies(x[i], size, stride, fill)
            probs = torch.cat([model(copies[s : s + chunk]).softmax(1)[:, int(t[i])] for s in range(0, len(copies), chunk)])
            drop = (p0[i] - probs).view(1, 1, rows, cols)
            square = torch.ones(1, 1, size, size, dtype=x.dtype, device=x.device)
            acc = F.conv_transpose2d(drop, square, stride=stride)[0, 0]  # each square's drop added over the pixels it covers
            cnt = F.conv_transpose2d(torch.ones_like(drop), square, stride=stride)[0, 0]
            # to the image's size: cut where the last square hangs over the border, padded with 0
            # where no square reaches (a stride larger than the square)
            acc = F.pad(acc, (0, w - acc.shape[1], 0, h - acc.shape[0]))
            cnt = F.pad(cnt, (0, w - cnt.shape[1], 0, h - cnt.shape[0]))
            maps.append(torch.where(cnt > 0, acc / cnt.clamp_min(1), torch.zeros_like(acc)))
    return torch.stack(maps)


def parse_methods(methods: str | Sequence[str] | None) -> list[str]:
    """`--methods a,b` (or a list; None: all of METHODS), checked."""
    if methods is None:
        return list(METHODS)
    chosen = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else [str(m) for m in methods]
    chosen = [m for m in chosen if m]
    unknown = [m for m in chosen if m not in METHODS]
    if unknown or not chosen:
        raise NetsightError(f"--methods {','.join(unknown) or '(none)'}: expected a comma list of {', '.join(METHODS)}")
    return list(dict.fromkeys(chosen))


def check_methods(
    model: nn.Module, example: torch.Tensor, methods: Sequence[str], layer: Optional[str], outputs: Optional[torch.Tensor] = None
) -> tuple[Optional[str], dict]:
    """Everything `methods` need of the model, checked on `example` (eval mode, normalisation
    applied by the caller; `outputs`: the model's outputs for it, when the caller has them):
    (the Grad-CAM layer or None, the ReLU rules' notes or {}). A one-image forward pass costs
    about a quarter of a 16-image batch's on a CPU, so the checks share them: the non-linearities
    are counted during the first rule's pass, each rule compares against `outputs`."""
    used_layer = check_gradcam_layer(model, layer, example) if any(m in LAYER_METHODS for m in methods) else None
    return used_layer, check_rules(model, example, methods, outputs)


def check_rules(
    model: nn.Module,
    example: torch.Tensor,
    methods: Sequence[str],
    outputs: Optional[torch.Tensor] = None,
    cache: Optional[dict] = None,
) -> dict:
    """The ReLU rules `methods` use, checked on `example` (their scores are the model's own) and their
    notes (the non-linearities rectified and passed); {} when no method uses one. `cache`: a dict the
    caller keeps with the model (a method object does): a rule checked once for an input shape is not
    checked again, so only the first call pays the two one-image passes."""
    rules: list[tuple[type[TorchFunctionMode], str]] = [(RectifyingReLUs, "deconvnet")] if "deconvnet" in methods else []
    if any(m in ("guided_backprop", "guided_gradcam") for m in methods):
        rules.append((GuidedReLUs, "guided backprop"))
    if not rules:
        return {}
    key = (tuple(name for _, name in rules), tuple(example.shape[1:]), example.dtype, example.device)
    if cache is not None and key in cache:
        return cache[key]
    rec = _Recording()
    if outputs is None:
        with torch.no_grad():
            outputs = model(example)
    for i, (mode_type, name) in enumerate(rules):
        _check_rule(model, example, mode_type, name, outputs, rec if i == 0 else None)
    notes = _found(rec)
    if cache is not None:
        cache[key] = notes
    return notes


# ------------------------------------------------------------------ the public functions


@dataclass(frozen=True)
class _Settings:
    steps: int
    ig_method: str
    baseline: float
    samples: int
    noise: float
    seed: int
    size: int
    stride: int
    fill: float
    chunk: int
    layer: Optional[str]
    spell: Spelling = CLI


class _BatchMaps:
    """Every method's maps [B,H,W] for one batch; what two methods share (the gradient, guided
    backprop, Grad-CAM) is computed once, and its seconds go to the first method that asks."""

    def __init__(self, model: nn.Module, x: torch.Tensor, t: torch.Tensor, start: int, s: _Settings):
        self.model, self.x, self.t, self.start, self.s = model, x, t, start, s
        self._cache: dict[str, torch.Tensor] = {}
        self.ig_errors: list[torch.Tensor] = []

    def _once(self, key: str, fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def _grad(self) -> torch.Tensor:
        return self._once("gradient", lambda: _input_grad(self.model, self.x, self.t))

    def _guided(self) -> torch.Tensor:
        return self._once("guided", lambda: _input_grad(self.model, self.x, self.t, GuidedReLUs()))

    def gradient(self) -> torch.Tensor:
        return self._grad().sum(1)

    def gradient_x_input(self) -> torch.Tensor:
        return (self._grad() * self.x).sum(1)

    def guided_backprop(self) -> torch.Tensor:
        return self._guided().sum(1)

    def integrated_gradients(self) -> torch.Tensor:
        s = self.s
        attr, err = _integrated_gradients(self.model, self.x, self.t, s.steps, s.ig_method, s.baseline, s.chunk)
        self.ig_errors.append(err.detach().cpu())
        return attr.sum(1)

    def _noisy(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The noisy copies' mean gradient and mean squared gradient, computed once for the three noise methods."""
        if "noisy" not in self._cache:
            s = self.s
            indices = list(range(self.start, self.start + len(self.x)))
            mean, square = _smoothgrad(self.model, self.x, self.t, indices, s.samples, s.noise, s.seed, s.chunk)
            self._cache["noisy"], self._cache["noisy_squared"] = mean, square
        return self._cache["noisy"], self._cache["noisy_squared"]

    def smoothgrad(self) -> torch.Tensor:
        return self._noisy()[0].sum(1)

    def smoothgrad_squared(self) -> torch.Tensor:
        return self._noisy()[1].sum(1)

    def vargrad(self) -> torch.Tensor:
        mean, square = self._noisy()
        return (square - mean.square()).clamp_min(0).sum(1)  # clamp: rounding can leave -1e-12 where the variance is 0

    def gradcam(self) -> torch.Tensor:
        assert self.s.layer is not None
        layer = self.s.layer
        return self._once("cam", lambda: _gradcam(self.model, self.x, self.t, layer, self.s.spell))

    def guided_gradcam(self) -> torch.Tensor:
        return self.guided_backprop() * self.gradcam()

    def deconvnet(self) -> torch.Tensor:
        return _input_grad(self.model, self.x, self.t, RectifyingReLUs()).sum(1)

    def occlusion(self) -> torch.Tensor:
        s = self.s
        return _occlusion(self.model, self.x, self.t, s.size, s.stride, s.fill, s.chunk * 4)


def attribute(
    model: nn.Module,
    x,
    method: str,
    targets: Targets = None,
    labels=None,
    layer: Optional[str] = None,
    mean: Norm = None,
    std: Norm = None,
    batch_size: int = 64,
    steps: int = 32,
    ig_method: str = "gausslegendre",
    baseline: float = 0.0,
    samples: int = 16,
    noise: float = 0.15,
    seed: int = 0,
    occlusion_size: Optional[int] = None,
    occlusion_stride: Optional[int] = None,
    occlusion_fill: float = 0.5,
    progress: bool = False,
) -> Attribution:
    """One method's maps for every image of `x` (a tensor [N,C,H,W] in [0, 1], a folder or an
    `ImageSource`), explaining `targets`: "true" (the labels: `labels`, else the source's),
    "predicted" (the model's own class), a class index, or one class per image; None: the true
    class where labels exist, else the predicted one. The class score is the model's output
    (logit) for that class; occlusion uses its softmax probability.

    `batch_size` images go through the model at a time; integrated gradients (`steps` points of
    `ig_method` from a `baseline` grey level) and SmoothGrad (`samples` copies, noise std `noise`
    in pixel units, seeded by `seed`) put several steps of a batch into one forward pass of at
    most `batch_size` x (steps or samples) images when the batch is small. Occlusion: a grey
    (`occlusion_fill`) square of `occlusion_size` pixels every `occlusion_stride` (default 6/28
    and 2/28 of the height, as techniques/occlusion.py)."""
    return next(iter(attribution_maps(model, x, [method], targets, labels, layer, mean, std, batch_size, steps, ig_method,
                                      baseline, samples, noise, seed, occlusion_size, occlusion_stride, occlusion_fill,
                                      progress).values()))  # fmt: skip


def attribution_maps(
    model: nn.Module,
    x,
    methods: str | Sequence[str] = METHODS,
    targets: Targets = None,
    labels=None,
    layer: Optional[str] = None,
    mean: Norm = None,
    std: Norm = None,
    batch_size: int = 64,
    steps: int = 32,
    ig_method: str = "gausslegendre",
    baseline: float = 0.0,
    samples: int = 16,
    noise: float = 0.15,
    seed: int = 0,
    occlusion_size: Optional[int] = None,
    occlusion_stride: Optional[int] = None,
    occlusion_fill: float = 0.5,
    progress: bool = False,
    *,
    spelling: Spelling = CLI,
    checked: Optional[dict] = None,
) -> dict[str, Attribution]:
    """Several methods over the same images and targets (see `attribute`), streamed batch by
    batch: {method: Attribution}. Everything is checked (methods, targets, layer, the ReLU rule)
    before or during the first batch's own passes, and raises before any map is returned.

    No forward pass of its own: the output's shape, the targets' range and Grad-CAM's layer are
    checked on the methods' real passes of the first batch; only the ReLU rules (guided backprop,
    guided Grad-CAM, the deconvnet) run the first image plain and under each rule, once per
    `checked` (a dict the caller keeps: a method object's, so its later calls skip them).
    `spelling`: how errors name the arguments (the command line's flags or the Python API's keywords)."""
    methods = parse_methods(methods)
    if batch_size < 1:
        raise NetsightError(f"batch size {batch_size}: expected an integer >= 1")
    if "integrated_gradients" in methods:
        if steps < 1:
            raise NetsightError(f"integrated gradients: --ig-steps {steps}: expected an integer >= 1")
        _ig_points(steps, ig_method)  # an unknown method or too few steps for it fails here
    noisy = [m for m in methods if m in NOISE_METHODS]
    if noisy and samples < 1:
        raise NetsightError(f"{noisy[0]}: --samples {samples}: expected an integer >= 1")
    check_norm(model, mean, std)
    source = source_for(model, x)
    n, (_, h, _) = len(source), source.shape
    if n == 0:
        raise NetsightError("attribution: no images")
    size, stride = occlusion_size or default_square(h)[0], occlusion_stride or default_square(h)[1]
    device, dtype = device_of(model), _dtype(model)
    chunk = batch_size
    results: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    seconds = dict.fromkeys(methods, 0.0)
    ig_errors: list[torch.Tensor] = []
    all_targets: list[int] = []
    notes: dict[str, dict] = {m: {} for m in methods}

    chosen, kind = _resolve_targets(targets, labels, source.labels, n, None, spelling)
    used_layer = gradcam_layer(model, layer, spelling) if any(m in LAYER_METHODS for m in methods) else None
    if "occlusion" in methods:
        occluded_copies(torch.zeros(source.shape), size, stride, occlusion_fill)  # checks size and stride

    with evaluating(model), normalised_input(model, mean, std):
        if any(m in RELU_RULE for m in methods):
            rule_notes = check_rules(model, source.load([0]).to(device=device, dtype=dtype), methods, cache=checked)
            for m in methods:
                if m in RELU_RULE:
                    notes[m].update(rule_notes)
        settings = _Settings(
            steps, ig_method, baseline, samples, noise, seed, size, stride, occlusion_fill, chunk, used_layer, spelling
        )
        try:
            for start, batch in source.batches(batch_size, progress, "attribution"):
                batch = batch.to(device=device, dtype=dtype)
                if chosen is None:
                    with torch.no_grad():
                        scores = model(batch)
                    if scores.dim() != 2:
                        raise NetsightError(
                            f"attribution: the model's output is {tuple(scores.shape)}, not class scores [N, classes]"
                        )
                    t = scores.argmax(1)
                else:
                    t = torch.tensor(chosen[start : start + len(batch)], device=device)
                all_targets += [int(v) for v in t]
                one = _BatchMaps(model, batch, t, start, settings)
                for m in methods:
                    t0 = time.perf_counter()
                    maps = getattr(one, m)()
                    seconds[m] += time.perf_counter() - t0
                    results[m].append(maps.detach().to("cpu", torch.float32))
                ig_errors += one.ig_errors
        except _OutOfRange as e:
            check_class(e.index, e.outputs, spelling)
            raise
    out: dict[str, Attribution] = {}
    for m in methods:
        note = dict(notes[m], seconds=seconds[m])
        if m == "integrated_gradients":
            note.update(completeness_error=float(torch.cat(ig_errors).max()), steps=steps, ig_method=ig_method, baseline=baseline)
        elif m in NOISE_METHODS:
            note.update(samples=samples, noise=noise, seed=seed)
        elif m == "occlusion":
            note.update(size=size, stride=stride, fill=occlusion_fill)
        out[m] = Attribution(m, torch.cat(results[m]), all_targets, kind, used_layer if m in LAYER_METHODS else None, note)
    return out
