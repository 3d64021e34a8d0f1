"""The attribution family's figure: rows are images, columns the input and then each method's
map (analysis/attribution.py names the papers). Every map is signed and drawn on the diverging
scale, each divided by its own largest |value| (methods differ in units by orders of magnitude,
so one shared scale would leave most maps blank); one colour bar explains them all. A note under
the grid says which non-linearities the ReLU-rule methods rectified and which they passed as an
ordinary gradient."""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

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
    names = ", ".join(TITLES.get(r, r).replace("\n", " ") for r in ruled)
    return f"the ReLU rule of {names} rectified: {done}; passed as an ordinary gradient (not rectified): {passed}"


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
    """`images` [N,C,H,W] in [0, 1]; `maps` method -> [N,H,W] signed maps; `targets` the class each row explains."""
    methods = list(maps)
    n, cols = len(images), len(methods) + 1
    fig = plt.figure(figsize=(1.45 * cols + 1.2, 1.55 * n + 1.3))
    grid = fig.add_gridspec(n, cols + 1, width_ratios=[1.0] * cols + [0.08])
    axes = np.array([[fig.add_subplot(grid[i, j]) for j in range(cols)] for i in range(n)])
    norm = style.signed_norm(1.0)
    im = None
    for i in range(n):
        style.mark(axes[i, 0].imshow(pixel_image(images[i]), cmap="gray", vmin=0, vmax=1), "pixels")
        name = classes[targets[i]] if 0 <= targets[i] < len(classes) else str(targets[i])
        axes[i, 0].set_ylabel(f"{name}", fontsize=style.SMALL)
        for j, m in enumerate(methods, 1):
            im = style.mark(axes[i, j].imshow(scaled(maps[m][i]), cmap=style.DIVERGING, norm=norm), "signed")
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("input")
    for j, m in enumerate(methods, 1):
        label = TITLES.get(m, m)
        if m in ("gradcam", "guided_gradcam") and layer:
            label += f"\nat {layer}"
        axes[0, j].set_title(label, fontsize=style.SMALL)
    assert im is not None
    bar = fig.colorbar(im, cax=fig.add_subplot(grid[:, -1]))
    bar.set_label("value / largest |value| of that map\n(red: raises the score, blue: lowers it)")
    note = nonlinearity_note(notes)
    fig.suptitle(f"{title}: what each method says the {target_kind} score depends on (row label: the class explained)")
    if note:
        fig.text(0.01, 0.005, note, fontsize=style.SMALL, ha="left", va="bottom", wrap=True)
    tight_with_title(fig, bottom_inches=0.35 if note else 0.0)
    return fig
