"""Figures of training runs. matplotlib runs headless (Agg); every figure has a title and
labelled axes, and is saved atomically as PNG. (A run's own curves.png is drawn by the
trainer, `netsight.train.curves`.)"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ..fileio import atomic_write  # noqa: E402


def tight_with_title(fig: Figure, title_inches: float = 0.45) -> None:
    """tight_layout that keeps a fixed band (in inches) free for the suptitle, whatever the
    figure's height: a tall grid no longer draws its first row under the title, and a short
    one keeps no blank band."""
    fig.tight_layout(rect=(0, 0, 1, 1 - title_inches / fig.get_figheight()))


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"))
    plt.close(fig)
    return path


def plot_filters(bank, title: str) -> Figure:
    """A grid of filters: first layers as one tile per filter, deeper layers as rows of
    output channels by columns of input channels. Diverging colour map centred on zero."""
    import numpy as np

    if bank.rgb or bank.shown.shape[1] == 1:
        tiles = bank.shown if bank.rgb else bank.shown[:, 0]
        n = len(tiles)
        cols = int(np.ceil(np.sqrt(n * 2)))  # wider than tall
        rows = int(np.ceil(n / cols))
        grid = [(i // cols, i % cols, tiles[i], f"{i}") for i in range(n)]
    else:
        rows, cols = bank.shown.shape[:2]
        grid = [(r, c, bank.shown[r, c], None) for r in range(rows) for c in range(cols)]
    height = 1.0 * rows + 0.9
    fig, axes = plt.subplots(rows, cols, figsize=(1.0 * cols + 1.2, height), squeeze=False)
    # the grid fills the figure below a 0.6-inch title band (matplotlib's default top=0.88 left a
    # blank band of 12% of the height above a tall grid)
    fig.subplots_adjust(left=0.06, right=0.86, bottom=0.15 / height, top=1 - 0.6 / height, wspace=0.15, hspace=0.25)
    image = None
    for ax in axes.ravel():
        ax.axis("off")
    for r, c, tile, label in grid:
        ax = axes[r, c]
        if bank.rgb:
            ax.imshow(tile, interpolation="nearest")
        else:
            image = ax.imshow(tile, cmap="RdBu_r", vmin=-bank.limit, vmax=bank.limit, interpolation="nearest")
        if label is not None:
            ax.set_title(label, fontsize=7, pad=2)
    if not bank.shown.shape[1] == 1 and not bank.rgb:
        for r in range(rows):
            axes[r, 0].text(-0.6, 0.5, f"out {r}", transform=axes[r, 0].transAxes, fontsize=6, ha="right", va="center")
        for c in range(cols):
            axes[0, c].set_title(f"in {c}", fontsize=6, pad=2)
    shape = "x".join(map(str, bank.shape))
    scale = "each filter scaled to its own max |w|" if bank.scale == "filter" else "one shared scale"
    capped = " (first rows/columns shown)" if tuple(bank.shown.shape[:2]) != tuple(bank.shape[:2]) and not bank.rgb else ""
    fig.suptitle(f"{title}: {bank.layer} filters, weights {shape} (out x in x kh x kw); {scale}{capped}", fontsize=10)
    if image is not None:
        cb = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.6, pad=0.02)
        cb.set_label("weight / max |w| of the filter" if bank.scale == "filter" else "weight")
    elif bank.rgb:
        fig.text(0.5, 0.01, "RGB: grey = 0, brighter = positive weight in that channel", ha="center", fontsize=8)
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
    fig, axes = _panel_grid(len(weights), 3.0, 2.8)
    for ax, (name, w) in zip(axes.ravel(), weights.items()):
        step = max(1, w.size // HISTOGRAM_SAMPLE)  # a huge layer (VGG's 103M-weight fc6) is drawn from a strided sample
        ax.hist(w[::step], bins=60, color="tab:purple", alpha=0.8)
        sample = f", every {step}th drawn" if step > 1 else ""
        ax.set_title(f"{name} ({w.size:,} weights{sample})\nmean {w.mean():+.3g}, std {w.std():.3g}", fontsize=8)
        ax.set_xlabel("weight")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel("count")
    fig.suptitle(f"{title}: weight distributions", fontsize=10)
    fig.tight_layout()
    return fig


def plot_activation_histograms(stats, title: str) -> Figure:
    """One panel per conv layer, each stage's value distribution overlaid (log counts)."""
    import numpy as np

    layers = list(dict.fromkeys(s.layer for s in stats.stages))
    fig, axes = _panel_grid(len(layers), 4.2, 3.4)
    colours = {"conv": "tab:blue", "relu": "tab:orange", "pool": "tab:green", "bn": "tab:red"}
    for ax, layer in zip(axes.ravel(), layers):
        for s in (s for s in stats.stages if s.layer == layer):
            counts, lo, hi = stats.histograms[s.label]
            coarse = counts.numpy().reshape(128, -1).sum(1) if len(counts) % 128 == 0 else counts.numpy()
            edges = np.linspace(lo, hi if hi > lo else lo + 1, len(coarse) + 1)
            ax.stairs(np.maximum(coarse, 0.5), edges, label=s.stage, color=colours[s.stage], lw=1.4)
        ax.set_yscale("log")
        ax.set_title(layer, fontsize=9)
        ax.set_xlabel("activation value")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel("count (log)")
    fig.suptitle(f"{title}: distribution of activations per conv layer and stage", fontsize=10)
    fig.tight_layout()
    return fig


def plot_compare(runs: list[tuple[str, list[dict]]], title: str = "comparison") -> Figure:
    """Test and train (interval mean) accuracy and test loss of several runs, overlaid."""
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.4))
    for i, (name, rows) in enumerate(runs):
        colour = f"C{i % 10}"
        it = [r["iteration"] for r in rows]
        ax_acc.plot(it, [r["test_acc"] for r in rows], color=colour, lw=2, label=f"{name} test")
        ax_acc.plot(it, [r["train_acc_mean"] for r in rows], color=colour, lw=1, ls="--", label=f"{name} train")
        ax_loss.plot(it, [r["test_loss"] for r in rows], color=colour, lw=2, label=f"{name} test")
        ax_loss.plot(it, [r["train_loss_mean"] for r in rows], color=colour, lw=1, ls="--", label=f"{name} train")
    for ax, label in ((ax_acc, "accuracy"), (ax_loss, "cross-entropy loss")):
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_acc.set_ylim(0, 1)
    ax_acc.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"{title}: solid = test (whole set), dashed = train (interval mean)", fontsize=10)
    fig.tight_layout()
    return fig
