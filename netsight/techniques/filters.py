"""Convolution filters as pictures and the weight distribution of every layer: the assignment's
Figures 2 and 4. `filter_bank` returns a conv layer's weights [out, in, k, k] as a numpy array ready to
show, scaled per filter or on one shared scale."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np
from torch import nn

from ..errors import NetsightError
from ..ops.stages import conv_layers
from .base import Option, Ran, ReportItem, Technique, register, LAYER
from .target import Target, layer_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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

    def plot(self, title: str = "model") -> Figure:
        """The filter grid `netsight inspect --filters` draws."""
        return plot_filters(self, title)


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


def plot_filters(bank, title: str) -> Figure:
    """A grid of filters: first layers as one tile per filter, deeper layers as rows of
    output channels by columns of input channels. Diverging colour map centred on zero, one
    shared colour bar; an RGB first layer is shown as colours (grey = 0), with a key."""
    import matplotlib
    from .. import style
    from ..plotting import plt
    from ..style import SMALL
    import numpy as np
    from matplotlib.patches import Patch

    if bank.rgb or bank.shown.shape[1] == 1:
        tiles = bank.shown if bank.rgb else bank.shown[:, 0]
        n = len(tiles)
        cols = int(np.ceil(np.sqrt(n * 2)))  # wider than tall
        rows = int(np.ceil(n / cols))
        grid: list[tuple[int, int, Any, Optional[str]]] = [(i // cols, i % cols, tiles[i], f"{i}") for i in range(n)]
    else:
        rows, cols = bank.shown.shape[:2]
        grid = [(r, c, bank.shown[r, c], None) for r in range(rows) for c in range(cols)]
    labelled = not bank.rgb and bank.shown.shape[1] != 1  # rows and columns named "out r" / "in c"
    tile = 1.0 if max(rows, cols) <= 10 else 0.7  # inches; a 16x16 grid stays small enough to read its labels
    height = tile * rows + 1.0
    left = 0.75 if labelled else 0.25  # inches: room for the "out r" labels
    width = tile * cols + left + 1.3
    norm = style.signed_norm(bank.limit)
    image = None
    if labelled:  # one image of the whole grid (white gaps): 256 small axes took seconds to lay out and draw
        fig = plt.figure(figsize=(width, height))
        fig.subplots_adjust(left=left / width, right=1 - 1.2 / width, bottom=0.15 / height, top=1 - 0.7 / height)
        ax = fig.add_subplot(1, 1, 1)
        kh, kw = bank.shown.shape[2:]
        mosaic = np.full((rows * (kh + 1) - 1, cols * (kw + 1) - 1), np.nan)  # NaN: the gaps, drawn white
        for r, c, tile, _ in grid:
            mosaic[r * (kh + 1) : r * (kh + 1) + kh, c * (kw + 1) : c * (kw + 1) + kw] = tile
        cmap = matplotlib.colormaps[style.DIVERGING].with_extremes(bad="white")
        image = style.mark(ax.imshow(mosaic, cmap=cmap, norm=norm, interpolation="nearest"), "signed")
        ax.set_xticks([c * (kw + 1) + (kw - 1) / 2 for c in range(cols)], [f"in {c}" for c in range(cols)], fontsize=SMALL)
        ax.set_yticks([r * (kh + 1) + (kh - 1) / 2 for r in range(rows)], [f"out {r}" for r in range(rows)], fontsize=SMALL)
        ax.xaxis.tick_top()
        ax.tick_params(length=0, pad=2)
        for spine in ax.spines.values():
            spine.set_visible(False)
        axes = np.array([[ax]])
    else:
        fig, axes = plt.subplots(rows, cols, figsize=(width, height), squeeze=False)
        # the grid fills the figure below a title band (matplotlib's default top=0.88 left a blank
        # band of 12% of the height above a tall grid)
        fig.subplots_adjust(
            left=left / width,
            right=1 - 1.2 / width,
            bottom=0.45 / height if bank.rgb else 0.15 / height,
            top=1 - 0.7 / height,
            wspace=0.25,
            hspace=0.35,
        )
        for ax in axes.ravel():
            ax.axis("off")
        for r, c, tile, label in grid:
            ax = axes[r, c]
            if bank.rgb:
                style.mark(ax.imshow(tile, interpolation="nearest"), "projection")
            else:
                image = style.mark(ax.imshow(tile, cmap=style.DIVERGING, norm=norm, interpolation="nearest"), "signed")
            ax.set_title(label, fontsize=SMALL, pad=2)
    shape = "x".join(map(str, bank.shape))
    scale = "each filter scaled to its own max |w|" if bank.scale == "filter" else "one shared scale"
    capped = " (first rows/columns shown)" if tuple(bank.shown.shape[:2]) != tuple(bank.shape[:2]) and not bank.rgb else ""
    fig.suptitle(
        f"{title}: {bank.layer} filters, weights {shape} (out x in x kh x kw); {scale}{capped}", fontsize=style.LARGE, wrap=True
    )
    if image is not None:
        cb = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, pad=0.02)
        cb.set_label("weight / max |w| of the filter" if bank.scale == "filter" else "weight (0 = white)")
        if labelled:
            axes[0, 0].set_anchor("N")  # the colour bar re-anchors its parent at mid-height
    elif bank.rgb:
        key = [
            ((0.5, 0.5, 0.5), "grey = weight 0 in every channel"),
            ((1.0, 1.0, 1.0), "white / black = positive / negative in all three"),
            ((1.0, 0.5, 0.5), "light red = positive red-channel weight"),
            ((0.0, 0.5, 0.5), "dark teal = negative red-channel weight (same for green, blue)"),
        ]
        fig.legend(handles=[Patch(fc=c, ec="k", lw=0.5, label=t) for c, t in key], loc="lower center", ncol=2, frameon=False)
    return fig


HISTOGRAM_SAMPLE = 1_000_000


def plot_weight_histograms(weights: dict, title: str) -> Figure:
    from .. import style
    from ..plotting import _panel_grid, tight_with_title

    fig, axes = _panel_grid(len(weights), 3.4, 3.0)
    for ax, (name, w) in zip(axes.ravel(), weights.items(), strict=False):  # the grid's last row may have spare panels
        step = max(1, w.size // HISTOGRAM_SAMPLE)  # a huge layer (VGG's 103M-weight fc6) is drawn from a strided sample
        counts, edges = np.histogram(w[::step], bins=60)
        ax.stairs(counts, edges, fill=True, color="tab:purple", alpha=0.8)  # one patch, not 60 bars: the same picture
        sample = f"\nevery {style.ordinal(step)} weight drawn" if step > 1 else ""
        ax.set_title(f"{name}: {w.size:,} weights{sample}\nmean {w.mean():+.3g}, std {w.std():.3g}")
        ax.set_xlabel("weight")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("count")
    fig.suptitle(f"{title}: weight distributions")
    tight_with_title(fig)  # a band kept for the title: plain tight_layout let it touch the first row's titles
    return fig


def filter_picture(w: np.ndarray, first_rgb: bool) -> str:
    """One unit's weights [in, k, k] as the explore page's PNG: RGB for a colour first layer, else a grid of
    the kernels of each input channel (grey = 0, scaled by the unit's largest |w|)."""
    from ..report.panels import png

    m = float(np.abs(w).max()) or 1.0
    if first_rgb:
        return png(0.5 + 0.5 * w.transpose(1, 2, 0) / m)
    n, k = w.shape[0], w.shape[1]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    canvas = np.ones((rows * (k + 1) - 1, cols * (w.shape[2] + 1) - 1))
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * (k + 1) : r * (k + 1) + k, c * (w.shape[2] + 1) : c * (w.shape[2] + 1) + w.shape[2]] = 0.5 + 0.5 * w[i] / m
    return png(canvas)


@register
class FiltersTechnique(Technique):
    name = "filters"
    summary = "filter grid of --layer (default: the first conv) + weight histograms"
    applies_to = "cnn"
    options = (
        LAYER,
        Option("scale", "choice", "filter", "filters: each on its own scale, or one shared", choices=("filter", "shared")),
    )
    section = "cnn"
    compute = staticmethod(filters)

    def prepare(self, t: Target, layer: Optional[str], scale: str) -> dict:
        convs = conv_layers(t.model)  # a clear error for a model without convolutions
        # --layer is shared with the other techniques: a convolution is drawn, anything else leaves the first one
        chosen = layer if layer is not None and isinstance(dict(t.model.named_modules()).get(layer), nn.Conv2d) else convs[0]
        return {"layer": chosen, "scale": scale}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return [f"figures/filters_{layer_file(o['layer'])}.png", "figures/weights_hist.png"]

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..plotting import save_figure

        bank = filters(t.model, o["layer"], o["scale"])
        return [
            save_figure(plot_filters(bank, t.title), t.folder / self.outputs(t, o)[0]),
            save_figure(plot_weight_histograms(weight_tensors(t.model), t.title), t.folder / self.outputs(t, o)[1]),
        ]

    def report(self, run, label: str, ran: Ran) -> list[ReportItem]:
        grid, hist = ran.files
        what = (
            "first-layer filters (the report's Figure 2/4)" if ran.options["layer"] == conv_layers(run.model())[0] else "filters"
        )
        return [
            ReportItem("figure", f"{label}: {what}, {ran.options['layer']}.", grid),
            ReportItem("figure", f"{label}: weight distributions per layer.", hist),
        ]

    def explore_panels(self, layer, unit: int) -> list[dict]:
        """The unit's filter on the explore page, beside its histogram of responses (`activations`)."""
        from ..report.panels import beside, card, panel

        units = layer.numbers
        rgb = layer.first and units.weights.shape[1] == 3
        title = "Filter weights (" + "x".join(str(v) for v in units.weights.shape[1:]) + ")"
        key = layer.pictures.key(filter_picture(units.weights[unit], rgb))
        return [beside("plots", panel("images", title, cls="filter", items=[card([key], alt=["filter weights"])]))]
