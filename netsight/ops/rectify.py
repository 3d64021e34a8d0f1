"""The ReLU rule of the deconvnet's backward pass, shared by the graph deconvnet
(deconvnet_graph.py) and the receptive-field probe (receptive_field.py).

It owns the `TorchFunctionMode`s those two run a model's real forward pass under, and the
forward pass stopped at a layer:
- `RectifyingReLUs`: every ReLU call (`nn.ReLU`, `F.relu`, `torch.relu`, `Tensor.relu`, in place
  or not) goes through a function whose backward rectifies the signal (Zeiler & Fergus)
  instead of gating it by the sign of the forward input;
- `ProbeMode`: the same, and every max-pool replaced by the average pool of its windows (the
  receptive-field probe);
- `forward_to`: the output of one layer, the forward pass stopped as soon as it is produced.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import NetsightError
from .hooks import forward_hooks

_RELUS = {F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_}


class _RectifiedReLU(torch.autograd.Function):
    """max(x, 0) forward; backward rectifies the incoming signal (Zeiler & Fergus) instead of
    gating it by the sign of the forward input (the gradient)."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, signal):
        return signal.clamp_min(0)


class RectifyingReLUs(TorchFunctionMode):
    """Inside this mode every ReLU call is out of place and rectifies on the way back.

    An in-place ReLU (`nn.ReLU(inplace=True)`, `x.relu_()`) returns a new tensor instead of
    overwriting its input; code that relies on the overwrite rather than the returned value is
    caught by `GraphDeconvnet`'s check against the model's real forward pass."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in _RELUS:
            return _RectifiedReLU.apply(args[0])
        return func(*args, **(kwargs or {}))


class ProbeMode(RectifyingReLUs):
    """RectifyingReLUs, and every max-pool replaced by the average pool of the same windows:
    the structural probe of `receptive_field.measured_receptive_field` (a max-pool's gradient
    reaches one pixel per window, an average pool's the whole window)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (F.max_pool2d, F.max_pool2d_with_indices):
            names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
            given = dict(
                zip(names, args[1:], strict=False), **kwargs
            )  # only the arguments given positionally: often fewer than the names
            if given.get("dilation", 1) not in (1, (1, 1), [1, 1]):
                raise NetsightError("receptive field: dilated max-pooling is not supported")
            kernel = given["kernel_size"]
            out = F.avg_pool2d(
                args[0],
                kernel,
                given.get("stride") or kernel,
                given.get("padding", 0),
                given.get("ceil_mode", False),
                count_include_pad=True,
            )
            return (
                (out, torch.zeros_like(out, dtype=torch.long))
                if given.get("return_indices") or func is F.max_pool2d_with_indices
                else out
            )
        if func is F.adaptive_max_pool2d:
            out = F.adaptive_avg_pool2d(args[0], args[1] if len(args) > 1 else kwargs["output_size"])
            return (out, torch.zeros_like(out, dtype=torch.long)) if kwargs.get("return_indices") else out
        return super().__torch_function__(func, types, args, kwargs)


class _ReachedTarget(Exception):
    """Raised by the hook on the target layer: the rest of the forward pass is not needed."""


def forward_to(model: nn.Module, layer: str, x: torch.Tensor, call=None) -> torch.Tensor:
    """The output of `layer` when `call(x)` (default: `model(x)`) runs the model; the forward
    pass stops as soon as that layer has produced it."""
    store: dict[str, torch.Tensor] = {}

    def hook(module, inputs, output):
        store["out"] = output
        raise _ReachedTarget

    with forward_hooks(model, {layer: hook}):
        try:
            (call or model)(x)
        except _ReachedTarget:
            pass
    if "out" not in store:
        raise NetsightError(f"layer {layer} did not run in this forward pass")
    return store["out"]


def forward_to_all(model: nn.Module, layers: list[str], x: torch.Tensor, call=None) -> dict[str, torch.Tensor]:
    """The output of each of `layers` (each must run once) when `call(x)` runs the model; the forward pass stops
    as soon as the last of them has produced its output."""
    store: dict[str, torch.Tensor] = {}

    def make(name: str):
        def hook(module, inputs, output):
            store[name] = output.clone() if torch.is_tensor(output) else output  # safe from later in-place operations
            if len(store) == len(layers):
                raise _ReachedTarget

        return hook

    with forward_hooks(model, {layer: make(layer) for layer in layers}):
        try:
            (call or model)(x)
        except _ReachedTarget:
            pass
    missing = [layer for layer in layers if layer not in store]
    if missing:
        raise NetsightError(f"layer {missing[0]} did not run in this forward pass")
    return store
