"""Figures of training runs. matplotlib runs headless (Agg); every figure has a title and
labelled axes, and is saved atomically as PNG. (A run's own curves.png is drawn by the
trainer, `netsight.train.curves`.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..fileio import atomic_write  # noqa: E402
from .. import style  # noqa: E402  (sets the rcParams every figure uses)
from ..style import SMALL, percent_axis  # noqa: E402


def tight_with_title(fig: Figure, title_inches: float = 0.45, bottom_inches: float = 0.0) -> None:
    """tight_layout that keeps a fixed band (in inches) free for the suptitle, whatever the
    figure's height: a tall grid no longer draws its first row under the title, and a short
    one keeps no blank band. `bottom_inches`: a band kept free below (a figure legend, a note)."""
    h = fig.get_figheight()
    fig.tight_layout(rect=(0, bottom_inches / h, 1, 1 - title_inches / h))


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"))
    plt.close(fig)
    return path


def plot_filters(bank, title: str) -> Figure:
    """A grid of filters: first layers as one tile per filter, deeper layers as rows of
    output channels by columns of input channels. Diverging colour map centred on zero, one
    shared colour bar; an RGB first layer is shown as colours (grey = 0), with a key."""
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
    norm = style.signed_norm(bank.limit)
    image = None
    for ax in axes.ravel():
        ax.axis("off")
    for r, c, tile, label in grid:
        ax = axes[r, c]
        if bank.rgb:
            style.mark(ax.imshow(tile, interpolation="nearest"), "projection")
        else:
            image = style.mark(ax.imshow(tile, cmap=style.DIVERGING, norm=norm, interpolation="nearest"), "signed")
        if label is not None:
            ax.set_title(label, fontsize=SMALL, pad=2)
    if labelled:
        for r in range(rows):
            axes[r, 0].text(-0.15, 0.5, f"out {r}", transform=axes[r, 0].transAxes, fontsize=SMALL, ha="right", va="center")
        for c in range(cols):
            axes[0, c].set_title(f"in {c}", fontsize=SMALL, pad=2)
    shape = "x".join(map(str, bank.shape))
    scale = "each filter scaled to its own max |w|" if bank.scale == "filter" else "one shared scale"
    capped = " (first rows/columns shown)" if tuple(bank.shown.shape[:2]) != tuple(bank.shape[:2]) and not bank.rgb else ""
    fig.suptitle(
        f"{title}: {bank.layer} filters, weights {shape} (out x in x kh x kw); {scale}{capped}", fontsize=style.LARGE, wrap=True
    )
    if image is not None:
        cb = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, pad=0.02)
        cb.set_label("weight / max |w| of the filter" if bank.scale == "filter" else "weight (0 = white)")
    elif bank.rgb:
        key = [
            ((0.5, 0.5, 0.5), "grey = weight 0 in every channel"),
            ((1.0, 1.0, 1.0), "white / black = positive / negative in all three"),
            ((1.0, 0.5, 0.5), "light red = positive red-channel weight"),
            ((0.0, 0.5, 0.5), "dark teal = negative red-channel weight (same for green, blue)"),
        ]
        fig.legend(handles=[Patch(fc=c, ec="k", lw=0.5, label=t) for c, t in key], loc="lower center", ncol=2, frameon=False)
    return fig


PANELS_PER_ROW = 5  # histogram grids wrap (a ResNet has dozens of layers)
HISTOGRAM_SAMPLE = 1_000_000


def _panel_grid(n: int, width: float, height: float):
    cols = min(n, PANELS_PER_ROW)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.4), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes


def plot_weight_histograms(weights: dict, title: str) -> Figure:
    fig, axes = _panel_grid(len(weights), 3.4, 3.0)
    for ax, (name, w) in zip(axes.ravel(), weights.items(), strict=False):  # the grid's last row may have spare panels
        step = max(1, w.size // HISTOGRAM_SAMPLE)  # a huge layer (VGG's 103M-weight fc6) is drawn from a strided sample
        ax.hist(w[::step], bins=60, color="tab:purple", alpha=0.8)
        sample = f"\nevery {style.ordinal(step)} weight drawn" if step > 1 else ""
        ax.set_title(f"{name}: {w.size:,} weights{sample}\nmean {w.mean():+.3g}, std {w.std():.3g}")
        ax.set_xlabel("weight")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("count")
    fig.suptitle(f"{title}: weight distributions")
    fig.tight_layout()
    return fig


def plot_activation_histograms(stats, title: str) -> Figure:
    """One panel per conv layer, each stage's value distribution overlaid (log counts)."""
    import numpy as np

    layers = list(dict.fromkeys(s.layer for s in stats.stages))
    fig, axes = _panel_grid(len(layers), 4.2, 3.4)
    colours = {"conv": "tab:blue", "relu": "tab:orange", "pool": "tab:green", "bn": "tab:red"}
    names = {"conv": "conv (before ReLU)", "relu": "after ReLU", "pool": "after max-pool", "bn": "after batch norm"}
    for ax, layer in zip(axes.ravel(), layers, strict=False):  # the grid's last row may have spare panels
        for s in (s for s in stats.stages if s.layer == layer):
            counts, lo, hi = stats.histograms[s.label]
            coarse = counts.numpy().reshape(128, -1).sum(1) if len(counts) % 128 == 0 else counts.numpy()
            edges = np.linspace(lo, hi if hi > lo else lo + 1, len(coarse) + 1)
            ax.stairs(np.maximum(coarse, 0.5), edges, label=names.get(s.stage, s.stage), color=colours[s.stage], lw=1.4)
        ax.set_yscale("log")
        ax.set_title(layer)
        ax.set_xlabel("activation value")
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in axes[:, 0]:
        ax.set_ylabel("count (log)")
    fig.suptitle(f"{title}: distribution of activations per conv layer and stage")
    fig.tight_layout()
    return fig


def plot_compare(runs: list[tuple[str, list[dict]]], title: str = "comparison", models: Optional[Sequence[str]] = None) -> Figure:
    """Test and train (interval mean) accuracy and test loss of several runs, overlaid. With
    `models` (each run's model name), runs of a model are drawn in that model's colour."""
    from matplotlib.lines import Line2D

    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.6))
    colours = _run_colours([name for name, _ in runs], models)
    for (name, rows), colour in zip(runs, colours, strict=True):
        it = [r["iteration"] for r in rows]
        ax_acc.plot(it, [r["test_acc"] for r in rows], color=colour, lw=2, label=f"{name} test")
        ax_acc.plot(it, [r["train_acc_mean"] for r in rows], color=colour, lw=1, ls="--", label=f"{name} train")
        ax_loss.plot(it, [r["test_loss"] for r in rows], color=colour, lw=2, label=f"{name} test")
        ax_loss.plot(it, [r["train_loss_mean"] for r in rows], color=colour, lw=1, ls="--", label=f"{name} train")
    for ax, label in ((ax_acc, "accuracy (%)"), (ax_loss, "cross-entropy loss")):
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_acc.set_ylim(0, 1)
    percent_axis(ax_acc)
    # one legend: a colour per run, a line style per split
    handles = [Line2D([], [], color=c, lw=2, label=name) for (name, _), c in zip(runs, colours, strict=True)]
    handles += [
        Line2D([], [], color="k", lw=2, label="test (whole set)"),
        Line2D([], [], color="k", lw=1, ls="--", label="train (interval mean)"),
    ]
    ax_loss.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.suptitle(f"{title}: solid = test (whole set), dashed = train (interval mean)")
    fig.tight_layout()
    return fig


def _run_colours(names: Sequence[str], models: Optional[Sequence[str]]) -> list[str]:
    """A model's colour for each run; several runs of one model (seeds) get darker/lighter
    shades of it; without models, the default cycle."""
    if not models:
        return [f"C{i % 10}" for i in range(len(names))]
    from matplotlib.colors import to_rgb

    out: list[str] = []
    seen: dict[str, int] = {}
    for m in models:
        k = seen.get(m, 0)
        seen[m] = k + 1
        f = (0.0, 0.35, -0.35, 0.6, -0.55)[k % 5]  # + towards white, - towards black
        shade = [v + (1 - v) * f if f >= 0 else v * (1 + f) for v in to_rgb(style.model_colour(m))]
        out.append("#%02x%02x%02x" % tuple(round(255 * v) for v in shade))
    return out
