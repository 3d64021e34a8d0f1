"""The plotting helpers every figure shares: matplotlib runs headless (Agg) with the rcParams of
`style`; `save_figure` writes a tight PNG atomically, from one draw (`write_tight_png`);
`tight_with_title` keeps a fixed band for the title; the picture conversions (a deconv projection,
a pixel tile, mosaics, the receptive-field tint and its key) and the titles several techniques'
figures share. Each technique's own figure lives in its module (`techniques/<name>.py`:
`plot_<name>`); the study report's own figures in `report/figures.py`. Every figure has a title and
labelled axes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from . import style  # noqa: E402  (sets the rcParams every figure uses)
from .fileio import atomic_write  # noqa: E402


def tight_with_title(fig: Figure, title_inches: float = 0.45, bottom_inches: float = 0.0) -> None:
    """tight_layout that keeps a fixed band (in inches) free for the suptitle, whatever the
    figure's height: a tall grid no longer draws its first row under the title, and a short
    one keeps no blank band. `bottom_inches`: a band kept free below (a figure legend, a note)."""
    h = fig.get_figheight()
    fig.tight_layout(rect=(0, bottom_inches / h, 1, 1 - title_inches / h))


def save_figure(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write `fig` as a PNG cropped to what it draws (as `savefig(bbox_inches="tight")`), atomically; close it."""
    path = Path(path)
    atomic_write(path, lambda tmp: write_tight_png(fig, tmp, dpi))
    plt.close(fig)
    return path


def write_tight_png(fig: Figure, target: str | Path, dpi: int = 120) -> None:
    """`fig.savefig(target, dpi=dpi, bbox_inches="tight", format="png")` with one draw instead of two.

    matplotlib's tight save draws the whole figure once to measure it and again to render it; for the
    many-panel grids netsight makes (a histogram per layer, a map per method and image) the first draw is
    about a fifth of the save (docs/performance.md, "Saving a figure"). Here the figure is rendered once at `dpi` and the pixels are cut to the
    box the drawn artists cover, padded by `savefig.pad_inches` (with the figure's background where the
    pad reaches past the canvas, as matplotlib pads). Where an artist itself reaches beyond the canvas
    (a legend hung outside the figure), the cut could not show it: then matplotlib's own two-draw save
    runs, which enlarges the canvas to fit."""
    from matplotlib import image as mpl_image
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgba

    pad = matplotlib.rcParams["savefig.pad_inches"]
    fig.set_dpi(dpi)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    drawn = fig.get_tightbbox(canvas.get_renderer())  # inches, origin at the bottom left
    width, height = fig.get_size_inches()
    outside = drawn.x0 < 0 or drawn.y0 < 0 or drawn.x1 > width or drawn.y1 > height
    if outside or not isinstance(pad, (int, float)):  # or "layout": a constrained layout's padding, matplotlib's
        fig.savefig(target, dpi=dpi, bbox_inches="tight", format="png")
        return
    box = drawn.padded(pad)
    pixels = np.asarray(canvas.buffer_rgba())
    rows, cols = pixels.shape[:2]
    # as matplotlib's tight save: the canvas shifted so the box starts at pixel 0, int(size * dpi) pixels
    left, top = round(box.x0 * dpi), rows - round(box.y1 * dpi)
    out_w, out_h = int(box.width * dpi), int(box.height * dpi)
    out = np.empty((out_h, out_w, 4), dtype=np.uint8)
    out[:] = np.round(np.array(to_rgba(fig.get_facecolor())) * 255).astype(np.uint8)
    src_top, src_left = max(top, 0), max(left, 0)
    src_bottom, src_right = min(top + out_h, rows), min(left + out_w, cols)
    out[src_top - top : src_bottom - top, src_left - left : src_right - left] = pixels[src_top:src_bottom, src_left:src_right]
    mpl_image.imsave(
        target, out, format="png", origin="upper", dpi=dpi, metadata={"Software": f"matplotlib version{matplotlib.__version__}"}
    )


PANELS_PER_ROW = 5  # histogram grids wrap (a ResNet has dozens of layers)


def _panel_grid(n: int, width: float, height: float):
    cols = min(n, PANELS_PER_ROW)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows + 0.4), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes


def projection_image(p: torch.Tensor) -> np.ndarray:
    """[C,H,W] projection -> [H,W] or [H,W,3] in [0,1], grey = 0."""
    a = p.detach().cpu().double().numpy()
    m = np.abs(a).max()
    a = 0.5 + 0.5 * a / (m if m > 0 else 1.0)
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def pixel_image(x: torch.Tensor) -> np.ndarray:
    a = x.detach().cpu().double().numpy().clip(0, 1)
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def _rgb(a: np.ndarray) -> np.ndarray:
    return np.repeat(a[..., None], 3, -1) if a.ndim == 2 else a


def _mosaic(tiles: list[list[np.ndarray]], gap: int = 1, fill: float = 1.0) -> np.ndarray:
    """Rows of equally sized RGB tiles -> one image, `gap` pixels apart."""
    h, w = tiles[0][0].shape[:2]
    rows, cols = len(tiles), max(len(r) for r in tiles)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), fill)
    for i, row in enumerate(tiles):
        for j, t in enumerate(row):
            out[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = _rgb(t)
    return out


_OUTSIDE = np.array([0.80, 0.87, 1.0])  # light blue: receptive field beyond the image border


def _projection_key(clipped: bool) -> list:
    """Legend entries that say how to read a projection tile (and the light blue, when shown)."""
    from matplotlib.patches import Patch

    handles = [
        Patch(fc=(0.5, 0.5, 0.5), ec="k", lw=0.5, label="projection: grey = 0 (no contribution)"),
        Patch(fc=(1.0, 1.0, 1.0), ec="k", lw=0.5, label="lighter / darker = positive / negative"),
    ]
    if clipped:
        handles.append(
            Patch(fc=_OUTSIDE, ec="k", lw=0.5, label="light blue = outside the image (receptive field clipped by the border)")
        )
    return handles


def _key_legend(fig: Figure, handles: list, ncol: Optional[int] = None) -> None:
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=ncol or len(handles),
        frameon=False,
        bbox_to_anchor=(0.5, 0.0),
        handlelength=1.2,
        columnspacing=1.5,
    )


def _outside_tinted(tile: np.ndarray, valid: np.ndarray) -> np.ndarray:
    rgb = _rgb(tile).copy()
    rgb[valid == 0] = _OUTSIDE
    return rgb


TITLES = {
    "gradient": "gradient",
    "gradient_x_input": "gradient x input",
    "guided_backprop": "guided backprop",
    "integrated_gradients": "integrated\ngradients",
    "smoothgrad": "SmoothGrad",
    "gradcam": "Grad-CAM",
    "guided_gradcam": "guided Grad-CAM",
    "deconvnet": "deconvnet",
    "occlusion": "occlusion\n(drop in p)",
}


def scaled(m: torch.Tensor) -> np.ndarray:
    """A map divided by its own largest |value| (a zero map stays zero)."""
    a = m.detach().cpu().double().numpy()
    top = np.abs(a).max()
    return a / top if top > 0 else a


BASELINE_TITLES = {"random": "random map (baseline)", "sobel": "Sobel edges (baseline)"}


def method_title(m: str) -> str:
    return BASELINE_TITLES.get(m, TITLES.get(m, m).replace("\n", " "))


METHOD_TITLES = {
    "gradient_x_input": "gradient x input",
    "integrated_gradients": "integrated gradients",
    "occlusion": "row occlusion: drop of p(true class)",
}


def _class_legend(fig: Figure, present, classes, ncol: int = 10, y: float = 0.0) -> None:
    fig.legend(
        handles=style.class_legend_handles(present, classes),
        loc="lower center",
        ncol=min(ncol, max(1, len(set(present)))),
        bbox_to_anchor=(0.5, y),
        title="class",
        frameon=False,
    )


def _gate_scatter(ax, left: dict, right: dict) -> None:
    ax.plot([0, 1], [1, 0], color="0.6", ls="--", lw=1, label="_bound")
    for g in left:
        ax.scatter(np.asarray(left[g]), np.asarray(right[g]), s=14, alpha=0.7, color=style.gate_colour(g), label=f"{g} gate")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("fraction left-saturated (< 0.1)")
    ax.set_ylabel("fraction right-saturated (> 0.9)")
    ax.grid(alpha=0.3)
