"""Deconvnet projections: Zeiler & Fergus, "Visualizing and Understanding Convolutional
Networks" (ECCV 2014), section 2.1.

A chosen activation is mapped back to pixel space by running the layers below it in
reverse: each max-pool is undone with the *switches* (argmax positions) recorded in the
forward pass of that very image, each ReLU *rectifies* the reconstruction, and each
convolution applies its *transposed* filters (biases are not used). All other activations
of the layer are set to zero. Batch norm (eval mode) is a per-channel scale, applied
transposed (its shift, like a bias, is dropped); dropout is the identity at eval time;
Linear layers apply W^T and Flatten reshapes back, so fully connected units can be
projected too.

We write our own pass (instead of a library's) because it *is* the product: the paper's
three steps must be visible and testable. A deconv projection through Conv/ReLU/MaxPool
equals the input gradient with the ReLU backward replaced by rectification; the tests
check exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NetsightError
from .hooks import capture_outputs, leaf_execution_order
from .receptive_field import receptive_field

_PASSTHROUGH = (nn.Dropout, nn.Dropout2d, nn.Identity)
INVERTIBLE = (
    nn.Conv2d,
    nn.ReLU,
    nn.MaxPool2d,
    nn.BatchNorm2d,
    nn.Linear,
    nn.Flatten,
    nn.AdaptiveAvgPool2d,
    nn.AvgPool2d,
) + _PASSTHROUGH
MODES = ("max", "map")


def resolve_target(model: nn.Module, layer: str, input_shape: tuple[int, ...]) -> tuple[list[tuple[str, nn.Module]], str]:
    """The leaf modules from the input up to and including the target, and the target's name.

    Naming a Conv2d targets its rectified output (the ReLU right after it, when there is one),
    the feature maps the paper projects."""
    order = leaf_execution_order(model, torch.zeros(1, *input_shape, device=_device(model), dtype=_dtype(model)))
    names = [n for n, _ in order]
    if layer not in names:
        raise NetsightError(f"--layer {layer}: not a layer of this model (layers: {', '.join(names)})")
    i = names.index(layer)
    if isinstance(order[i][1], nn.Conv2d) and i + 1 < len(order) and isinstance(order[i + 1][1], nn.ReLU):
        i += 1
    chain = order[: i + 1]
    for name, module in chain:
        if not isinstance(module, INVERTIBLE):
            raise NetsightError(
                f"deconvnet: cannot invert layer {name} ({type(module).__name__}); supported: "
                + ", ".join(t.__name__ for t in INVERTIBLE)
            )
        if isinstance(module, nn.Conv2d) and module.padding_mode != "zeros":
            raise NetsightError(
                f"deconvnet: cannot invert layer {name} (padding_mode {module.padding_mode!r}; only zero padding)"
            )
    return chain, chain[-1][0]


@dataclass
class Projection:
    images: torch.Tensor  # [N,C,H,W] pixel-space reconstructions
    channels: torch.Tensor  # [N] feature map projected
    values: torch.Tensor  # [N] the activation projected (mode max) or the map's sum (mode map)
    positions: torch.Tensor  # [N,2] (y, x) of the strongest unit of the map; (0,0) for 1-D layers


class Deconvnet:
    """Project activations of `layer` back to pixel space, batched, on the model's device."""

    def __init__(self, model: nn.Module, layer: str, input_shape: tuple[int, ...]):
        self.model = model
        self.chain, self.target = resolve_target(model, layer, input_shape)
        self._replay_checked = False

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[dict]]:
        """Run the chain, recording what the reverse pass needs (switches, shapes).

        The first call also runs the model's real forward pass and checks that replaying its
        leaf modules one after another gives the same activation at the target. A model whose
        forward is not a plain chain (skip connections, functional ops, torch.cat) fails that
        check and is refused, instead of giving silently wrong projections."""
        x = x.to(_dtype(self.model))
        inputs = x
        try:
            x, records = self._replay(x)
        except RuntimeError as exc:  # shapes that only fit the real forward (torch.cat, reshapes)
            raise NetsightError(
                f"deconvnet: replaying the model's layers one after another up to {self.target} fails "
                f"({str(exc).splitlines()[0][:120]}): the model is not a plain chain of modules (skip connections, "
                f"functional operations or torch.cat in forward); the deconvnet supports such chains only"
            ) from None
        if not self._replay_checked:
            self._check_replay(inputs, x)
            self._replay_checked = True
        return x, records

    def _replay(self, x: torch.Tensor) -> tuple[torch.Tensor, list[dict]]:
        records = []
        for _, m in self.chain:
            rec: dict[str, Any] = {"input_shape": tuple(x.shape)}
            if isinstance(m, nn.MaxPool2d):
                x, rec["switches"] = F.max_pool2d(
                    x, m.kernel_size, m.stride, m.padding, m.dilation, ceil_mode=m.ceil_mode, return_indices=True
                )
            elif isinstance(m, nn.Linear) and x.dim() > 2:
                x = m(x.flatten(1))
            elif isinstance(m, nn.ReLU):
                x = F.relu(x)  # never in place: torchvision's inplace ReLUs would overwrite what we keep
            else:
                x = m(x)
            records.append(rec)
        return x, records

    def _check_replay(self, inputs: torch.Tensor, replayed: torch.Tensor) -> None:
        was_training = self.model.training
        self.model.eval()
        try:
            with capture_outputs(self.model, [self.target], clone=True) as seen:
                self.model(inputs)
        finally:
            self.model.train(was_training)
        real = seen.get(self.target)
        scale = float(real.abs().max()) if real is not None and real.numel() else 0.0
        tol = (1e-10 if real is not None and real.dtype == torch.float64 else 1e-4) * max(scale, 1e-6)
        if real is None or real.shape != replayed.shape or not torch.allclose(replayed, real, rtol=0, atol=tol):
            diff = (
                "a different shape"
                if real is None or real.shape != replayed.shape
                else f"a largest difference of {float((replayed - real).abs().max()):.3g} (activations up to {scale:.3g})"
            )
            raise NetsightError(
                f"deconvnet: replaying the model's layers one after another up to {self.target} does not reproduce "
                f"its forward pass ({diff}): the model is not a plain chain of modules (skip connections, functional "
                f"operations or torch.cat in forward). The deconvnet supports such chains only; its projections "
                f"would be wrong here"
            )

    @torch.no_grad()
    def backward(self, signal: torch.Tensor, records: list[dict]) -> torch.Tensor:
        """Unpool with the switches, rectify, filter with transposed weights — down to pixels."""
        r = signal
        for (name, m), rec in zip(reversed(self.chain), reversed(records), strict=True):
            shape = rec["input_shape"]
            if isinstance(m, nn.ReLU):
                r = F.relu(r)
            elif isinstance(m, nn.MaxPool2d):
                r = _unpool(r, rec["switches"], shape)
            elif isinstance(m, nn.Conv2d):
                r = _conv_transposed(r, m, shape)
            elif isinstance(m, nn.BatchNorm2d):
                if m.running_var is None:
                    raise NetsightError(f"deconvnet: batch norm {name} keeps no running statistics (track_running_stats=False)")
                scale = m.weight / torch.sqrt(m.running_var + m.eps) if m.affine else 1 / torch.sqrt(m.running_var + m.eps)
                r = r * scale.view(1, -1, 1, 1)
            elif isinstance(m, nn.Linear):
                r = (r @ m.weight).reshape(shape)
            elif isinstance(m, nn.Flatten):
                r = r.reshape(shape)
            elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)):
                r = _linear_transpose(m, r, shape)
            # dropout / identity: nothing to undo at eval time
        return r

    def activations(self, x: torch.Tensor) -> torch.Tensor:
        """The target layer's output for a float batch (eval mode, no gradient)."""
        was_training = self.model.training
        self.model.eval()
        try:
            return self.forward(x)[0]
        finally:
            self.model.train(was_training)

    @property
    def field(self):
        return receptive_field(self.chain)

    def project(
        self,
        x: torch.Tensor,
        channels: torch.Tensor | int,
        mode: str = "max",
        positions: Optional[torch.Tensor] = None,
        strength: Optional[torch.Tensor] = None,
    ) -> Projection:
        """Project feature map `channels[i]` of image `x[i]` (float input, [N,C,H,W]).

        mode "max": only the strongest unit of that map (or the unit at `positions[i]`, sent down
        with `strength[i]` instead of its own activation when given, see `unit_signal`);
        mode "map": the whole map. Everything else in the layer is zero."""
        if mode not in MODES:
            raise NetsightError(f"--mode {mode!r}: expected one of {', '.join(MODES)}")
        was_training = self.model.training
        self.model.eval()
        try:
            top, records = self.forward(x)
            signal, values, pos, channels = unit_signal(top, channels, mode, positions, self.target, strength)
            images = self.backward(signal, records)
        finally:
            self.model.train(was_training)
        return Projection(images, channels, values, pos)


def unit_signal(
    top: torch.Tensor,
    channels: torch.Tensor | int,
    mode: str,
    positions: Optional[torch.Tensor],
    layer: str,
    strength: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The layer's activations zeroed except, per image i, map `channels[i]` (mode "map") or its
    strongest unit / the unit at `positions[i]` (mode "max"). `strength[i]` (mode "max" only), when
    given, replaces the unit's own activation as the signal sent down: the same unit projected with
    another model's value. Returns (signal, values, positions, channels); values are the layer's own."""
    n, device = len(top), top.device
    channels = (
        torch.as_tensor(channels, device=device).expand(n)
        if not torch.is_tensor(channels) or channels.dim() == 0
        else channels.to(device)
    )
    if channels.max() >= top.shape[1] or channels.min() < 0:
        raise NetsightError(f"feature map {int(channels.max())} out of range: layer {layer} has {top.shape[1]}")
    rows = torch.arange(n, device=device)
    maps = top[rows, channels]  # [N, H, W] or [N]
    signal = torch.zeros_like(top)
    if maps.dim() == 1:
        signal[rows, channels] = maps
        return signal, maps, torch.zeros(n, 2, dtype=torch.long, device=device), channels
    flat = maps.flatten(1)
    width = maps.shape[-1]
    if positions is None:
        idx = flat.argmax(1)
    else:
        idx = positions[:, 0].to(device) * width + positions[:, 1].to(device)
    pos = torch.stack([idx // width, idx % width], 1)
    if mode == "max":
        values = flat[rows, idx]
        signal[rows, channels, pos[:, 0], pos[:, 1]] = values if strength is None else strength.to(device, values.dtype)
    else:
        values = flat.sum(1)
        signal[rows, channels] = maps
    return signal, values, pos, channels


def _unpool(r: torch.Tensor, switches: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    n, c, h, w = shape
    out = torch.zeros(n, c, h * w, dtype=r.dtype, device=r.device)
    # scatter-add: with overlapping windows one input can be the max of several outputs
    out.scatter_add_(2, switches.flatten(2), r.flatten(2))
    return out.view(n, c, h, w)


def _conv_transposed(r: torch.Tensor, m: nn.Conv2d, shape: tuple[int, ...]) -> torch.Tensor:
    if isinstance(m.padding, str):  # "same"/"valid": let autograd transpose it
        return _linear_transpose(lambda t: F.conv2d(t, m.weight, None, m.stride, m.padding, m.dilation, m.groups), r, shape)
    # a strided conv maps several input sizes to one output size: output_padding picks the input's
    extra = tuple(
        shape[2 + i] - ((r.shape[2 + i] - 1) * m.stride[i] - 2 * m.padding[i] + m.dilation[i] * (m.kernel_size[i] - 1) + 1)
        for i in range(2)
    )
    return F.conv_transpose2d(r, m.weight, None, m.stride, m.padding, extra, m.groups, m.dilation)


def _linear_transpose(fn, r: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """Apply the transpose of a linear map (pooling, padded conv) via its vector-Jacobian product."""
    with torch.enable_grad():
        zero = torch.zeros(shape, dtype=r.dtype, device=r.device, requires_grad=True)
        (grad,) = torch.autograd.grad(fn(zero), zero, r)
    return grad


def _dtype(model: nn.Module) -> torch.dtype:
    p = next((p for p in model.parameters() if p.is_floating_point()), None)
    return p.dtype if p is not None else torch.get_default_dtype()


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
