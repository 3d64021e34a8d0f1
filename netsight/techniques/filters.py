"""Convolution filters as pictures (the assignment's Figures 2 and 4).

`filter_bank` returns the weights of a conv layer as a numpy array, ready to show:
[out, in, k, k] for the grid, scaled per filter or on one shared scale.

First-layer (or any convolution's) filters as pictures, and the weight distribution of every
layer: the assignment's Figures 2 and 4."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from torch import nn

from ..errors import NetsightError
from ..ops.stages import conv_layers
from .base import Option, ReportItem, Technique, register, LAYER
from .target import Target, layer_file


SCALES = ("filter", "shared")
MAX_ROWS = 16  # deeper layers: output channels shown
MAX_COLS = 16  # deeper layers: input channels shown


@dataclass(frozen=True)
class FilterBank:
    layer: str
    weights: np.ndarray  # [out, in, kh, kw] as stored
    shown: np.ndarray  # [rows, cols, kh, kw] or, for RGB first layers, [n, kh, kw, 3] in [0, 1]
    scale: str
    rgb: bool
    limit: float  # shared scale: largest |w| (colour range is -limit..limit); per filter: 1.0

    @property
    def shape(self) -> tuple[int, ...]:
        return self.weights.shape


def conv_module(model: nn.Module, layer: str) -> nn.Conv2d:
    names = conv_layers(model)
    module = dict(model.named_modules()).get(layer)
    if not isinstance(module, nn.Conv2d):
        raise NetsightError(f"--layer {layer}: not a convolution layer of this model (conv layers: {', '.join(names)})")
    return module


def filter_bank(model: nn.Module, layer: str = "conv1", scale: str = "filter") -> FilterBank:
    """The filters of `layer`, scaled for display.

    scale="filter": each filter divided by its own largest |w| (shape visible for every
    filter); scale="shared": raw weights, one colour range for all (magnitudes comparable).
    The first layer of a colour network is shown as RGB images, mapped to [0, 1].
    """
    if scale not in SCALES:
        raise NetsightError(f"--scale {scale!r}: expected one of {', '.join(SCALES)}")
    w = conv_module(model, layer).weight.detach().cpu().double().numpy()
    first = layer == conv_layers(model)[0]
    if first and w.shape[1] == 3:
        rgb = w.transpose(0, 2, 3, 1)  # [out, kh, kw, 3]
        if scale == "filter":
            lim = np.abs(rgb).reshape(len(rgb), -1).max(1).reshape(-1, 1, 1, 1)
        else:
            lim = np.abs(rgb).max()
        lim = np.where(lim == 0, 1.0, lim)
        return FilterBank(layer, w, 0.5 + 0.5 * rgb / lim, scale, True, float(np.max(lim)) if scale == "shared" else 1.0)
    if first:
        shown = w[:, :1] if w.shape[1] == 1 else w[:, :MAX_COLS]
    else:
        shown = w[:MAX_ROWS, :MAX_COLS]
    if scale == "filter":
        lim = np.abs(shown).reshape(shown.shape[0], shown.shape[1], -1).max(2)[:, :, None, None]
        shown = shown / np.where(lim == 0, 1.0, lim)
        limit = 1.0
    else:
        limit = float(np.abs(w).max()) or 1.0
    return FilterBank(layer, w, shown, scale, False, limit)


def weight_tensors(model: nn.Module) -> dict[str, np.ndarray]:
    """The weights of every conv and linear layer (for the histograms)."""
    return {n: m.weight.detach().cpu().numpy().ravel() for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


def initial_model(run) -> nn.Module:
    """The run's model as it was before its first step: the trainer seeds the global RNG with
    the run's seed right before building the model, so the same two calls rebuild it exactly."""
    import torch

    from ..models import ModelConfig, build_model

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(run.config.seed)
        return build_model(ModelConfig.from_dict(run.info["model"])).eval()
    finally:
        torch.random.set_rng_state(state)


def drift_from_init(run, layer: str) -> float:
    """||W - W0|| / ||W0|| of a layer's weights: how far training moved them from initialisation."""
    trained = conv_module(run.model(), layer).weight.detach()
    start = conv_module(initial_model(run), layer).weight.detach()
    return float((trained - start).norm() / start.norm().clamp_min(1e-12))


def filters(model: nn.Module, layer: Optional[str] = None, scale: str = "filter") -> FilterBank:
    """The filters of a convolution (default: the first) as pictures."""
    return filter_bank(model, layer or conv_layers(model)[0], scale)


def _prepare(t: Target, layer: Optional[str], scale: str) -> dict:
    convs = conv_layers(t.model)  # a clear error for a model without convolutions
    # --layer is shared with the other techniques: a convolution is drawn, anything else leaves the first one
    chosen = layer if layer is not None and isinstance(dict(t.model.named_modules()).get(layer), nn.Conv2d) else convs[0]
    return {"layer": chosen, "scale": scale}


def _outputs(t: Target, o: dict) -> list[str]:
    return [f"figures/filters_{layer_file(o['layer'])}.png", "figures/weights_hist.png"]


def _write(t: Target, o: dict) -> list[Path]:
    from ..report.figures import plot_filters, plot_weight_histograms, save_figure

    bank = filters(t.model, o["layer"], o["scale"])
    return [
        save_figure(plot_filters(bank, t.title), t.folder / _outputs(t, o)[0]),
        save_figure(plot_weight_histograms(weight_tensors(t.model), t.title), t.folder / _outputs(t, o)[1]),
    ]


def _report(run, label: str) -> list[ReportItem]:
    d = run.dir.figures
    return [
        ReportItem("figure", f"{label}: first-layer filters (the report's Figure 2/4).", d / "filters_conv1.png"),
        ReportItem("figure", f"{label}: weight distributions per layer.", d / "weights_hist.png"),
    ]


TECHNIQUE = register(
    Technique(
        name="filters",
        summary="filter grid of --layer (default: the first conv) + weight histograms",
        applies_to="cnn",
        compute=filters,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        options=(
            LAYER,
            Option("scale", "choice", "filter", "filters: each on its own scale, or one shared", choices=("filter", "shared")),
        ),
        report=_report,
        section="cnn",
    )
)
