"""Hidden-state trajectories of a recurrent run (`netsight inspect RUN --trajectories`): the path
of the hidden state over the T steps for test images, projected to 2-D by PCA fitted on all the
hidden states of the images used (every image, every step), coloured by class; the class means'
paths drawn bold. In the spirit of Karpathy, Johnson & Fei-Fei, "Visualizing and Understanding
Recurrent Networks" (2015): how the state moves as the rows are read.

Files:
- figures/trajectories.png;
- tables/trajectories.safetensors: image [N] (index in the split), label [N], path [N, T, 2] (the
  projected hidden states), explained [2] (the share of the variance each component explains),
  components [2, H] and centre [H] (the projection: path = (h - centre) @ components.T).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from dataclasses import dataclass
from pathlib import Path

import torch

from ..ops.recurrent import run_steps
from .target import Target
from .base import Technique, register, count_option
from ._recurrent import chosen, labels, pixels, recurrent, save_tensors

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class Trajectories:
    path: torch.Tensor  # [N, T, 2]
    labels: torch.Tensor  # [N]
    explained: torch.Tensor  # [2]
    components: torch.Tensor  # [2, H]
    centre: torch.Tensor  # [H]


def trajectories(model, images: torch.Tensor, labels: torch.Tensor) -> Trajectories:
    """The hidden states of `images` after every row, projected on their first two principal components."""
    h = run_steps(model, images).hidden.double().cpu()  # [N, T, H]
    n, steps, size = h.shape
    flat = h.reshape(n * steps, size)
    centre = flat.mean(0)
    _, s, v = torch.linalg.svd(flat - centre, full_matrices=False)
    var = s**2
    components = v[:2]
    return Trajectories(
        ((flat - centre) @ components.T).reshape(n, steps, 2).float(),
        labels.cpu().long(),
        (var[:2] / var.sum().clamp_min(1e-12)).float(),
        components.float(),
        centre.float(),
    )


def plot_trajectories(panels: Sequence[tuple[str, object, object, object]], classes: Sequence[str], title: str) -> Figure:
    """One panel per run: (label, path [N, T, 2], labels [N], explained [2]); thin: each image, bold: the class means."""
    import numpy as np
    from .. import style
    from ..plotting import plt, _class_legend, tight_with_title

    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.3 * rows + 0.9), squeeze=False)
    present: set[int] = set()
    for ax, (label, path, panel_labels, explained) in zip(axes.flat, panels, strict=False):
        p, y = np.asarray(path), np.asarray(panel_labels)
        for c in sorted(set(y.tolist())):
            present.add(c)
            colour = style.class_colour(c)
            for q in p[y == c]:
                ax.plot(q[:, 0], q[:, 1], color=colour, lw=0.5, alpha=0.25)
            mean = p[y == c].mean(0)
            ax.plot(mean[:, 0], mean[:, 1], color=colour, lw=2.2)
            ax.plot(mean[-1, 0], mean[-1, 1], "o", color=colour, ms=5, mec="k", mew=0.6)
        ax.plot(p[0, 0, 0], p[0, 0, 1], "k^", ms=6, label="after row 1")
        ex = np.asarray(explained)
        ax.set_xlabel(f"PC1 ({ex[0]:.0%} of variance)")
        ax.set_ylabel(f"PC2 ({ex[1]:.0%} of variance)")
        ax.set_title(f"{label} ({len(p)} images)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    _class_legend(fig, sorted(present), tuple(classes))
    fig.suptitle(title + "\n(thin: each image; bold: the class mean path; triangle: after row 1; dot: after the last row)")
    tight_with_title(fig, 0.45, 0.55)
    return fig


@register
class TrajectoriesTechnique(Technique):
    name = "trajectories"
    summary = "recurrent runs: hidden-state paths over the rows, PCA to 2-D, coloured by class"
    applies_to = "recurrent"
    options = (count_option(200),)
    first_seed = True
    # no report items of its own: the recurrent section draws every run's trajectories side by side
    compute = staticmethod(trajectories)

    def prepare(self, t: Target, count: int) -> dict:
        recurrent(t)
        labels(t, torch.tensor([0]))
        return {"count": count}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return ["figures/trajectories.png", "tables/trajectories.safetensors"]

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..plotting import save_figure

        index = chosen(t, o["count"])
        tr = trajectories(recurrent(t), pixels(t, index), labels(t, index))
        figure, tensors = (t.folder / p for p in self.outputs(t, o))
        fig = plot_trajectories(
            [(t.title, tr.path, tr.labels, tr.explained)], t.classes, f"Hidden-state trajectories (PCA): {t.title}"
        )
        return [
            save_figure(fig, figure),
            save_tensors(
                tensors,
                {
                    "image": index,
                    "label": tr.labels,
                    "path": tr.path,
                    "explained": tr.explained,
                    "components": tr.components,
                    "centre": tr.centre,
                },
            ),
        ]
