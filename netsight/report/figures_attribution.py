"""The attribution family's figure: rows are images, columns the input and then each method's
map (ops/attribution.py names the papers). Every map is signed and drawn on the diverging
scale, each divided by its own largest |value| (methods differ in units by orders of magnitude,
so one shared scale would leave most maps blank); one colour bar explains them all. A note under
the grid says which non-linearities the ReLU-rule methods rectified and which they passed as an
ordinary gradient."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from .. import style
from .figures import plt, tight_with_title
from .figures_zf import pixel_image

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


def nonlinearity_note(notes: Mapping[str, dict]) -> Optional[str]:
    """One line on what the ReLU rules did, from any ReLU-rule method's notes (None: no such method shown)."""
    ruled = [m for m, note in notes.items() if "rectified" in note]
    if not ruled:
        return None
    note = notes[ruled[0]]
    done = ", ".join(note["rectified"]) or "none"
    passed = ", ".join(note["not_rectified"]) or "none"
    shown = [TITLES.get(r, r).replace("\n", " ") for r in ruled]
    names = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    if not note["rectified"]:
        verb = "is" if len(shown) == 1 else "are"
        return f"the model calls no ReLU: {names} {verb} its plain gradient here (not rectified: {passed})"
    return f"the ReLU rule of {names} rectified: {done}; passed as an ordinary gradient (not rectified): {passed}"


def _column(tiles: Sequence[np.ndarray], gap: int) -> np.ndarray:
    """Tiles [H,W] or [H,W,3] stacked top to bottom, `gap` rows of NaN (drawn white) between them."""
    shape = tiles[0].shape
    rows = []
    for k, tile in enumerate(tiles):
        if k:
            rows.append(np.full((gap, *shape[1:]), np.nan))
        rows.append(tile)
    return np.concatenate(rows, 0)


def plot_attributions(
    images: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    targets: Sequence[int],
    classes: tuple[str, ...],
    title: str,
    target_kind: str,
    notes: Mapping[str, dict],
    layer: Optional[str] = None,
) -> Figure:
    """`images` [N,C,H,W] in [0, 1]; `maps` method -> [N,H,W] signed maps; `targets` the class each row explains.
    Each column is one image (the images or one method's maps stacked, white gaps between rows):
    eleven axes whatever the number of images, so the figure stays quick to draw."""
    methods = list(maps)
    n, cols = len(images), len(methods) + 1
    h = images.shape[-2]
    gap = max(2, h // 6)
    fig = plt.figure(figsize=(1.45 * cols + 1.2, 1.45 * n + 1.3))
    grid = fig.add_gridspec(1, cols + 1, width_ratios=[1.0] * cols + [0.08])
    axes = [fig.add_subplot(grid[0, j]) for j in range(cols)]
    pixels = _column([pixel_image(img) for img in images], gap)
    white = plt.get_cmap("gray").with_extremes(bad="white")
    if pixels.ndim == 3:
        pixels = np.where(np.isnan(pixels), 1.0, pixels)  # RGB: the gaps white
    style.mark(axes[0].imshow(pixels, cmap=white, vmin=0, vmax=1, interpolation="nearest"), "pixels")
    names = [classes[t] if 0 <= t < len(classes) else str(t) for t in targets]
    axes[0].set_yticks([i * (h + gap) + h / 2 for i in range(n)], names)
    axes[0].tick_params(length=0)
    axes[0].set_xticks([])
    axes[0].set_title("input")
    norm = style.signed_norm(1.0)
    diverging = plt.get_cmap(style.DIVERGING).with_extremes(bad="white")
    im = None
    for ax, m in zip(axes[1:], methods, strict=True):
        column = _column([scaled(maps[m][i]) for i in range(n)], gap)
        im = style.mark(ax.imshow(column, cmap=diverging, norm=norm, interpolation="nearest"), "signed")
        label = TITLES.get(m, m)
        if m in ("gradcam", "guided_gradcam") and layer:
            label += f"\nat {layer}"
        ax.set_title(label, fontsize=style.SMALL)
        ax.set_xticks([])
        ax.set_yticks([])
    w = images.shape[-1]
    for ax in axes:
        for side in ax.spines.values():
            side.set_visible(False)
        for i in range(n):  # a thin frame per tile: a map that is 0 everywhere still shows where it is
            ax.add_patch(Rectangle((-0.5, i * (h + gap) - 0.5), w, h, fill=False, edgecolor="#808080", linewidth=0.6))
    assert im is not None
    bar = fig.colorbar(im, cax=fig.add_subplot(grid[0, -1]))
    bar.set_label("value / largest |value| of that map\n(red: raises the score, blue: lowers it)")
    note = nonlinearity_note(notes)
    fig.suptitle(f"{title}: what each method says the {target_kind} score depends on (row label: the class explained)")
    if note:
        fig.text(0.01, 0.005, note, fontsize=style.SMALL, ha="left", va="bottom", wrap=True)
    tight_with_title(fig, bottom_inches=0.35 if note else 0.0)
    return fig
