"""Receptive fields from the layers' kernel sizes, strides, paddings and dilations.

Walking from the input to a layer we keep, in input-pixel units: the jump between
neighbouring units, the receptive-field size, and where the field of unit 0 starts
(negative when padding reaches outside the image). Unit (y, x) then sees rows
[start + y*jump, start + y*jump + size - 1], likewise for columns.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Optional

from torch import nn

from .rectify import ProbeMode, forward_to_all


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


@dataclass(frozen=True)
class ReceptiveField:
    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]

    def box(self, y: int, x: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), bottom/right exclusive, clipped to the image."""
        top = self.start[0] + y * self.jump[0]
        left = self.start[1] + x * self.jump[1]
        return max(top, 0), max(left, 0), min(top + self.size[0], height), min(left + self.size[1], width)

    def clipped(self, y: int, x: int, height: int, width: int) -> bool:
        """Whether unit (y, x)'s field reaches beyond the image (into the zero padding)."""
        top, left = self.start[0] + y * self.jump[0], self.start[1] + x * self.jump[1]
        return top < 0 or left < 0 or top + self.size[0] > height or left + self.size[1] > width


def receptive_field(chain: list[tuple[str, nn.Module]]) -> ReceptiveField:
    size, jump, start = [1, 1], [1, 1], [0, 0]
    for _, m in chain:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k = _pair(m.kernel_size)
            s = _pair(m.stride if m.stride is not None else m.kernel_size)
            d = _pair(getattr(m, "dilation", 1))
            if isinstance(m.padding, str):
                p = (0, 0) if m.padding == "valid" else tuple(d[i] * (k[i] - 1) // 2 for i in range(2))
            else:
                p = _pair(m.padding)
            for i in range(2):
                k_eff = d[i] * (k[i] - 1) + 1
                start[i] -= p[i] * jump[i]
                size[i] += (k_eff - 1) * jump[i]
                jump[i] *= s[i]
        elif isinstance(m, (nn.Linear, nn.Flatten, nn.AdaptiveAvgPool2d)):
            break  # past this point every unit sees the whole image
    return ReceptiveField((size[0], size[1]), (jump[0], jump[1]), (start[0], start[1]))


# ------------------------------------------------------------------ any graph: measured

MAX_GROWTH = 16  # the probe image may grow to this many times the image side to contain a field


def measured_receptive_field(model: nn.Module, layer: str, input_shape: tuple[int, ...]) -> ReceptiveField:
    """The receptive field of `layer`'s units in any graph, from the support of a gradient.

    The model runs (functionally: its own weights are untouched) with every weight set to
    1/fan-in, biases and running means to 0, running variances to 1, in float64, on an
    all-ones image: every activation is then positive, ReLUs pass everything back, and each
    max-pool is replaced by the average pool of the same window, so the input gradient of one
    unit is non-zero exactly on the pixels that unit can see. The centre unit gives the size,
    its diagonal neighbour the jump. The probe image doubles (up to MAX_GROWTH times the image)
    until the centre unit's field lies inside it, so fields larger than the image (deep ResNet
    layers) come out whole. Units that see the whole image at every probe size (after global
    pooling, or a Linear layer) get the image as their field."""
    field = _cached(model, layer, input_shape, None)
    assert field is not None  # without a growth limit a field is always measured
    return field


def receptive_field_within(model: nn.Module, layer: str, input_shape: tuple[int, ...], growth: int) -> Optional[ReceptiveField]:
    """`measured_receptive_field`, probing only up to `growth` times the image side: None for a field still
    larger, whose every unit sees (about) the whole image - all a crop of the image needs, for a fraction of the
    probes' cost (deep ResNet-50 layers otherwise take probes of 16 times the side)."""
    return _cached(model, layer, input_shape, growth)


def _cached(model: nn.Module, layer: str, input_shape: tuple[int, ...], max_growth: Optional[int]) -> Optional[ReceptiveField]:
    known = _MEASURED.setdefault(model, {})
    key = (layer, tuple(input_shape), max_growth)
    if key not in known:  # the field depends on the architecture only: measured once per model
        known[key] = _measure(model, layer, tuple(input_shape), max_growth)
    return known[key]


_MEASURED: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def _measure(model: nn.Module, layer: str, input_shape: tuple[int, ...], max_growth: Optional[int]) -> Optional[ReceptiveField]:
    return _measure_many(model, [layer], input_shape, max_growth)[layer]


def _probe(model: nn.Module, layer: str, shape: tuple[int, int, int]):
    """Support boxes (top, left, bottom, right; inclusive) of the centre unit and its diagonal
    neighbour at `layer`, for an all-ones probe image of `shape`; None for 1-D outputs."""
    return _probe_many(model, [layer], shape)[layer]


def _probe_many(model: nn.Module, layers: list[str], shape: tuple[int, int, int]) -> dict:
    """`_probe` for several layers from one forward pass (stopped once the last of them has run), one
    backward pass per layer."""
    import torch
    from torch.func import functional_call

    params = {}
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        leaf = name.rsplit(".", 1)[-1]
        if not t.is_floating_point():
            params[name] = t
        elif leaf in ("bias", "running_mean"):
            params[name] = torch.zeros_like(t, dtype=torch.float64)
        elif t.dim() >= 2:
            params[name] = torch.full_like(t, 1.0 / t[0].numel(), dtype=torch.float64)
        else:  # batch/layer norm scales, running variances
            params[name] = torch.ones_like(t, dtype=torch.float64)
    device = next(iter(params.values())).device if params else torch.device("cpu")
    x = torch.ones(2, *shape, dtype=torch.float64, device=device, requires_grad=True)
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad(), ProbeMode():
            outs = forward_to_all(model, layers, x, lambda inputs: functional_call(model, params, (inputs,)))
    finally:
        model.train(was_training)
    found: dict = {}
    for k, layer in enumerate(layers):
        out = outs[layer]
        if out.dim() != 4:
            found[layer] = None
            continue
        fmap = (out.shape[2], out.shape[3])
        centre = (fmap[0] // 2, fmap[1] // 2)
        neighbour = tuple(c + 1 if c + 1 < f else max(c - 1, 0) for c, f in zip(centre, fmap, strict=True))
        signal = torch.zeros_like(out)
        signal[0, :, centre[0], centre[1]] = 1
        signal[1, :, neighbour[0], neighbour[1]] = 1
        (grad,) = torch.autograd.grad(out, x, signal, retain_graph=k < len(layers) - 1)
        boxes = []
        for i in range(2):
            seen = grad[i].abs().sum(0) > 0
            rows, cols = seen.any(1).nonzero().flatten(), seen.any(0).nonzero().flatten()
            boxes.append((int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])))
        found[layer] = ((centre, boxes[0]), (neighbour, boxes[1]), fmap)
    return found


def receptive_fields_within(
    model: nn.Module, layers: list[str], input_shape: tuple[int, ...], growth: int
) -> dict[str, Optional[ReceptiveField]]:
    """`receptive_field_within` for many layers at once: the probes of every layer still growing share one forward
    pass at each size (a whole ResNet-50's 53 convolutions: about half the time of one at a time). Where a shared
    pass fails (an in-place operation after a layer that a later backward pass needs), that size is probed layer by
    layer as before; the results are the same and cached alike."""
    known = _MEASURED.setdefault(model, {})
    shape = tuple(input_shape)
    todo = [layer for layer in dict.fromkeys(layers) if (layer, shape, growth) not in known]
    if todo:
        for layer, field in _measure_many(model, todo, shape, growth).items():
            known[(layer, shape, growth)] = field
    return {layer: known[(layer, shape, growth)] for layer in layers}


def _measure_many(model: nn.Module, layers: list[str], input_shape: tuple[int, ...], max_growth: Optional[int]) -> dict:
    """`_measure`'s walk for several layers in lockstep (they all start at the image size and double together)."""
    channels, height, width = input_shape
    whole = ReceptiveField((height, width), (1, 1), (0, 0))
    size = (height, width)
    probes = _probes(model, layers, (channels, *size))
    results: dict[str, Optional[ReceptiveField]] = {}
    while probes:
        growing = []
        bigger = (size[0] * 2, size[1] * 2)
        for layer, probe in probes.items():
            if probe is None:
                results[layer] = whole
                continue
            box = probe[0][1]
            if box[0] > 0 and box[1] > 0 and box[2] < size[0] - 1 and box[3] < size[1] - 1:
                results[layer] = _from_probe(probe)
            elif max_growth is not None and bigger[0] > max_growth * height:
                results[layer] = None
            elif bigger[0] > MAX_GROWTH * height:
                results[layer] = _from_probe(probe)
            else:
                growing.append(layer)
        if not growing:
            break
        grown: dict = {}
        try:
            grown = _probes(model, growing, (channels, *bigger))
        except (RuntimeError, ValueError):  # a size the graph refuses ends a layer's walk at its last probe
            for layer in growing:
                try:
                    grown[layer] = _probe(model, layer, (channels, *bigger))
                except (RuntimeError, ValueError):
                    results[layer] = _from_probe(probes[layer])
        nxt = {}
        for layer, g in grown.items():
            if layer in results:
                continue
            if g is None or g[2] == probes[layer][2] == (1, 1):  # global pooling: one unit sees everything
                results[layer] = whole
            else:
                nxt[layer] = g
        probes, size = nxt, bigger
    return results


def _probes(model: nn.Module, layers: list[str], shape: tuple[int, int, int]) -> dict:
    """`_probe_many`, or each layer alone where the shared pass fails."""
    try:
        return _probe_many(model, layers, shape)
    except RuntimeError:
        if len(layers) == 1:
            raise
        return {layer: _probe(model, layer, shape) for layer in layers}


def _from_probe(probe) -> ReceptiveField:
    (centre, box), (neighbour, other), fmap = probe

    def step(a: int) -> int:  # along axis a: how far the fields of neighbouring units lie apart
        return abs(other[a] - box[a]) // max(abs(neighbour[a] - centre[a]), 1) if fmap[a] > 1 else 1

    jump = (step(0), step(1))
    extent = (box[2] - box[0] + 1, box[3] - box[1] + 1)
    start = (box[0] - centre[0] * jump[0], box[1] - centre[1] * jump[1])
    return ReceptiveField(extent, jump, start)
