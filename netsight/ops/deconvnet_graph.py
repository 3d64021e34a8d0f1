"""Deconvnet projections for any model: skip connections, concatenations, functional calls
and in-place ReLUs included (torchvision's ResNets, DenseNets, your own `nn.Module`).

For a chain of Conv/ReLU/MaxPool layers the paper's deconvnet (deconvnet.py) equals the
input gradient of the projected activation with every ReLU's backward replaced by
rectification: autograd's max-pool backward *is* unpooling with the forward pass's switches,
a convolution's backward applies its transposed filters, and biases never enter a backward
pass. The general path here uses exactly that: it runs the model's real forward pass (stopped
as soon as the target layer has produced its output) under a `TorchFunctionMode` that routes
every ReLU call - `nn.ReLU`, `F.relu`, `torch.relu`, `Tensor.relu`, in place or not - through a
function whose backward rectifies the signal (rectify.py), then asks autograd for the vector-Jacobian
product with the chosen activations. A skip connection's sum then sends the signal down both
branches and a concatenation splits it, which is what "projecting back" means in a graph.
Other non-linearities (sigmoid gates, GELU) keep their ordinary gradient, as in Captum's
`NeuronDeconvolution`, which the tests match on ResNet-18.

`make_deconvnet` keeps the chain replay wherever a model is a plain chain of invertible
layers (its steps are the paper's, visibly) and takes the general path everywhere else.
"""

from __future__ import annotations

import difflib
from typing import Optional

import torch
from torch import nn

from ..errors import NetsightError
from .deconvnet import MODES, Deconvnet, Projection, _dtype, unit_signal
from .hooks import capture_outputs, forward_hooks
from .receptive_field import ReceptiveField, measured_receptive_field
from .rectify import RectifyingReLUs, forward_to


def layer_names(model: nn.Module) -> list[str]:
    return [n for n, _ in model.named_modules() if n]


def unknown_layer(layer: str, model: nn.Module, flag: str = "--layer") -> NetsightError:
    """The error for a layer `model` does not have, named by the `flag` the user typed (with close names)."""
    names = layer_names(model)
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
    hint = (
        f"did you mean {', '.join(close)}?"
        if close
        else f"its layers include {', '.join(names[:12])}" + (" ..." if len(names) > 12 else "")
    )
    return NetsightError(f"{flag} {layer}: not a layer of this model; {hint}")


def resolve_graph_target(model: nn.Module, layer: str, example: torch.Tensor) -> str:
    """The module whose output is projected. It must run exactly once per forward pass and
    return a tensor; naming a Conv2d whose output goes straight into a ReLU module targets
    that ReLU (the rectified maps the paper projects), as the chain deconvnet does."""
    return resolve_graph_targets(model, [layer], example)[layer]


def resolve_graph_targets(model: nn.Module, layers: list[str], example: torch.Tensor, flag: str = "--layer") -> dict[str, str]:
    """`resolve_graph_target` for several layers from one forward pass of `example`: layer -> the
    module whose output stands for it. `flag` names the option in errors."""
    modules = dict(model.named_modules())
    for layer in layers:
        if not layer or layer not in modules:
            raise unknown_layer(layer, model, flag)
    calls: list[tuple[str, object, object]] = []  # (name, first input, output), in completion order

    def make(name: str):
        def hook(module, inputs, output):
            calls.append((name, inputs[0] if inputs else None, output))

        return hook

    was_training = model.training
    model.eval()
    try:
        with forward_hooks(model, {n: make(n) for n in layer_names(model)}), torch.no_grad(), RectifyingReLUs():
            model(example)
    finally:
        model.train(was_training)
    return {layer: _target_of(layer, calls, modules, flag) for layer in layers}


def _target_of(layer: str, calls: list[tuple[str, object, object]], modules: dict[str, nn.Module], flag: str) -> str:
    runs = [i for i, (name, _, _) in enumerate(calls) if name == layer]
    if not runs:
        raise NetsightError(f"{flag} {layer}: this layer does not run in the model's forward pass")
    if len(runs) > 1:
        raise NetsightError(
            f"{flag} {layer}: this module runs {len(runs)} times in one forward pass (one module shared by several "
            f"places, like the relu of a torchvision ResNet block), so its output is not one set of feature maps; "
            f"name a layer that runs once, e.g. the block that holds it"
        )
    i = runs[0]
    output = calls[i][2]
    if not torch.is_tensor(output):
        raise NetsightError(f"{flag} {layer}: its output is a {type(output).__name__}, not a tensor of activations")
    if isinstance(modules[layer], nn.Conv2d):
        leaves = [(j, n, inp) for j, (n, inp, _) in enumerate(calls) if j > i and not list(modules[n].children())]
        if leaves:
            _, name, inp = leaves[0]
            if isinstance(modules[name], nn.ReLU) and inp is output and sum(n == name for n, _, _ in calls) == 1:
                return name
    return layer


class GraphDeconvnet:
    """Project activations of `layer` of any model back to pixel space (see the module doc).

    The same interface as the chain `Deconvnet`: `activations(x)`, `project(...)`, `target`,
    `field` (the target's receptive field, measured on the graph)."""

    def __init__(self, model: nn.Module, layer: str, input_shape: tuple[int, ...]):
        self.model = model
        self.input_shape = tuple(input_shape)
        example = torch.zeros(1, *input_shape, device=_device(model), dtype=_dtype(model))
        self.target = resolve_graph_target(model, layer, example)
        self._checked = False
        self._field: Optional[ReceptiveField] = None

    @property
    def field(self) -> ReceptiveField:
        if self._field is None:
            self._field = measured_receptive_field(self.model, self.target, self.input_shape)
        return self._field

    def _forward_to_target(self, x: torch.Tensor) -> torch.Tensor:
        with RectifyingReLUs():
            return forward_to(self.model, self.target, x)

    def _check_once(self, x: torch.Tensor, top: torch.Tensor) -> None:
        """The activations under RectifyingReLUs must be those of the model's plain forward."""
        if self._checked:
            return
        with capture_outputs(self.model, [self.target], clone=True) as seen, torch.no_grad():
            self.model(x)
        real = seen.get(self.target)
        scale = float(real.abs().max()) if real is not None and real.numel() else 0.0
        tol = (1e-10 if top.dtype == torch.float64 else 1e-4) * max(scale, 1e-6)
        if real is None or real.shape != top.shape or not torch.allclose(top.detach(), real, rtol=0, atol=tol):
            raise NetsightError(
                f"deconvnet: with out-of-place ReLUs the model computes different activations at {self.target} than its "
                f"own forward pass (its forward relies on an in-place ReLU overwriting a tensor it later reads); "
                f"the deconvnet cannot project through it"
            )
        self._checked = True

    def activations(self, x: torch.Tensor) -> torch.Tensor:
        """The target layer's output for a float batch (eval mode, no gradient)."""
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                x = x.to(_dtype(self.model))
                top = self._forward_to_target(x)
                self._check_once(x, top)
        finally:
            self.model.train(was_training)
        return top

    def project(
        self,
        x: torch.Tensor,
        channels: torch.Tensor | int,
        mode: str = "max",
        positions: Optional[torch.Tensor] = None,
        strength: Optional[torch.Tensor] = None,
    ) -> Projection:
        """As `Deconvnet.project`: feature map `channels[i]` of image `x[i]`, its strongest unit
        (or the unit at `positions[i]`, with `strength[i]` as its signal when given) in mode "max",
        the whole map in mode "map"."""
        if mode not in MODES:
            raise NetsightError(f"--mode {mode!r}: expected one of {', '.join(MODES)}")
        was_training = self.model.training
        self.model.eval()
        try:
            inputs = x.to(_dtype(self.model)).detach().requires_grad_(True)
            with torch.enable_grad():
                top = self._forward_to_target(inputs)
            self._check_once(inputs.detach(), top)
            signal, values, pos, channels = unit_signal(top.detach(), channels, mode, positions, self.target, strength)
            (images,) = torch.autograd.grad(top, inputs, signal)
        finally:
            self.model.train(was_training)
        return Projection(images.detach(), channels, values, pos)


def make_deconvnet(model: nn.Module, layer: str, input_shape: tuple[int, ...]):
    """The chain deconvnet where the model is a plain chain of invertible layers up to `layer`
    (checked against its real forward pass on random images), the general one otherwise."""
    try:
        chain = Deconvnet(model, layer, input_shape)
        generator = torch.Generator().manual_seed(0)
        probe = torch.rand(2, *input_shape, generator=generator).to(_device(model))
        chain.activations(probe)
        return chain
    except NetsightError:
        return GraphDeconvnet(model, layer, input_shape)


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
