"""Figures for the Zeiler & Fergus tools: deconv projections, top-9 mosaics, occlusion
maps, feature evolution and invariance curves. Projections are shown with grey = 0,
each scaled by its own largest |value| (the paper's display); patches as pixels."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure

from .figures import plt, tight_with_title


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
            out[i * (h + gap): i * (h + gap) + h, j * (w + gap): j * (w + gap) + w] = _rgb(t)
    return out


_FRAME_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]


def plot_deconv(images: torch.Tensor, projections: list[list[tuple]], layer: str, mode: str, title: str) -> Figure:
    """Per image (a row): the image with each projected unit's receptive field outlined, then
    each projection cropped to that field (zoomed, so its structure is visible; light blue:
    beyond the image border). `projections[i]` holds (map, value, cropped projection [C,s,s],
    valid mask [1,s,s], box (top, left, bottom, right) clipped to the image)."""
    from matplotlib.patches import Rectangle

    n, k = len(images), max(len(p) for p in projections)
    fig, axes = plt.subplots(n, k + 1, figsize=(1.6 * (k + 1), 1.75 * n), squeeze=False)
    for i in range(n):
        ax = axes[i, 0]
        ax.imshow(pixel_image(images[i]), cmap="gray", vmin=0, vmax=1)
        ax.set_title("input", fontsize=7)
        for j, (channel, value, proj, valid, box) in enumerate(projections[i]):
            colour = _FRAME_COLOURS[j % len(_FRAME_COLOURS)]
            top, left, bottom, right = box
            ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, lw=1.4, ec=colour))
            target = axes[i, j + 1]
            target.imshow(_outside_tinted(projection_image(proj), valid[0].numpy()), interpolation="nearest")
            target.set_title(f"map {channel}: {value:.2f}", fontsize=7, color=colour)
            for spine in target.spines.values():
                spine.set_edgecolor(colour)
                spine.set_linewidth(2)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[:, 0]:
        for spine in ax.spines.values():
            spine.set_visible(False)
    for i in range(n):
        for ax in axes[i, len(projections[i]) + 1:]:
            ax.axis("off")
    what = "its strongest unit" if mode == "max" else "the whole feature map"
    fig.suptitle(f"{title}: deconvnet projections from {layer} ({what}; the image's strongest maps), each cropped to "
                 "the unit's receptive field", fontsize=9)
    tight_with_title(fig)
    return fig


_OUTSIDE = np.array([0.80, 0.87, 1.0])  # light blue: receptive field beyond the image border


def _outside_tinted(tile: np.ndarray, valid: np.ndarray) -> np.ndarray:
    rgb = _rgb(tile).copy()
    rgb[valid == 0] = _OUTSIDE
    return rgb


def plot_top9(tp, title: str, per_row: int = 4) -> Figure:
    """One block per feature map: 3x3 projections (left) beside the 3x3 input patches (right)."""
    maps, k = tp.projections.shape[:2]
    side = int(np.ceil(np.sqrt(k)))
    blocks = []
    for m in range(maps):
        proj = [projection_image(tp.projections[m, j]) for j in range(k)]
        patch = [_outside_tinted(pixel_image(tp.patches[m, j]), tp.valid[m, j, 0].numpy()) for j in range(k)]
        grid_p = _mosaic([proj[r * side:(r + 1) * side] for r in range(side)])
        grid_q = _mosaic([patch[r * side:(r + 1) * side] for r in range(side)])
        spacer = np.ones((grid_p.shape[0], 2, 3))
        blocks.append(np.concatenate([grid_p, spacer, grid_q], 1))
    rows = int(np.ceil(maps / per_row))
    fig, axes = plt.subplots(rows, per_row, figsize=(3.3 * per_row, 1.75 * rows + 0.8), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for m, block in enumerate(blocks):
        ax = axes[m // per_row, m % per_row]
        ax.imshow(block, interpolation="nearest")
        ax.set_title(f"map {m}: top act. {tp.top.values[m, 0]:.2f}", fontsize=7)
    s = tp.top.field.size
    fig.suptitle(f"{title}: top-{k} activations of {tp.top.layer} over the dataset; per map, deconv projections (left) "
                 f"and input patches (right), receptive field {s[0]}x{s[1]} px (light blue: beyond the image border)", fontsize=9)
    tight_with_title(fig)
    return fig


def plot_occlusion(images: torch.Tensor, labels: list[int], results: list, classes: tuple[str, ...], title: str,
                   label_kind: str = "true class") -> Figure:
    """Per image: the input, p(label) per square position, the tracked feature map's strongest
    activation, and the most probable class (coloured by the classes that occur on that map, so
    a 1,000-class model stays readable). `label_kind` says what the label is ("true class", or
    "predicted class" when the images carry no class the model knows)."""
    n = len(results)
    fig, axes = plt.subplots(n, 4, figsize=(12, 2.9 * n + 0.4), squeeze=False)
    for i, (img, label, r) in enumerate(zip(images, labels, results)):
        axes[i, 0].imshow(pixel_image(img), cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_title(f"input, {label_kind} {classes[label]}\np({label_kind.split()[0]}) unoccluded "
                             f"{r.unoccluded_prob:.2f}", fontsize=8)
        im = axes[i, 1].imshow(r.true_class_prob.numpy(), cmap="jet", vmin=0, vmax=1)
        axes[i, 1].set_title(f"p({classes[label]}) with the {r.size}x{r.size} square here", fontsize=8)
        fig.colorbar(im, ax=axes[i, 1], fraction=0.046)
        im = axes[i, 2].imshow(r.feature_max.numpy(), cmap="viridis")
        axes[i, 2].set_title(f"strongest act. of {r.layer} map {r.feature_map}\n(unoccluded {r.unoccluded_feature:.2f})", fontsize=8)
        fig.colorbar(im, ax=axes[i, 2], fraction=0.046)
        present = sorted(set(int(c) for c in r.predicted_class.unique()))
        rank = {c: j for j, c in enumerate(present)}
        coded = r.predicted_class.clone().apply_(lambda c: rank[int(c)])
        cmap = plt.get_cmap("tab10" if len(present) <= 10 else "tab20", max(len(present), 1))
        im = axes[i, 3].imshow(coded.numpy(), cmap=cmap, vmin=-0.5, vmax=len(present) - 0.5)
        axes[i, 3].set_title("most probable class", fontsize=8)
        cb = fig.colorbar(im, ax=axes[i, 3], fraction=0.046, ticks=range(len(present)))
        cb.ax.set_yticklabels([classes[c] for c in present], fontsize=6)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{title}: occlusion sensitivity (grey square, stride {results[0].stride} px); "
                 "maps are indexed by the square's position", fontsize=9)
    tight_with_title(fig)
    return fig


def plot_evolution(evo, title: str) -> Figure:
    maps, snaps = evo.projections.shape[:2]
    tiles = [[projection_image(evo.projections[m, s]) for s in range(snaps)] for m in range(maps)]
    h, w = evo.projections.shape[-2:]
    fig, ax = plt.subplots(figsize=(1.0 * snaps + 1.5, 1.0 * maps + 1.0))
    ax.imshow(_mosaic(tiles, gap=2), interpolation="nearest")
    ax.set_xticks([s * (w + 2) + w / 2 for s in range(snaps)], [str(i) for i in evo.iterations], fontsize=7)
    ax.set_yticks([m * (h + 2) + h / 2 for m in range(maps)], [f"map {m}" for m in range(maps)], fontsize=7)
    ax.set_xlabel("training iteration")
    ax.set_title(f"{title}: strongest activation of each {evo.layer} map, projected, as training goes on", fontsize=9)
    fig.tight_layout()
    return fig


def plot_invariance(curves, title: str, images_word: str = "test images", label_kind: str = "true class") -> Figure:
    kinds = list(curves.values)
    metrics = [("first", f"distance at {curves.layers[0]}"), ("last", f"distance at {curves.layers[1]}"),
               ("p_true", f"p({label_kind})")]
    fig, axes = plt.subplots(len(metrics), len(kinds), figsize=(4.2 * len(kinds), 2.8 * len(metrics)), squeeze=False)
    for j, kind in enumerate(kinds):
        x = curves.amounts[kind]
        for i, (metric, label) in enumerate(metrics):
            mean, std = curves.mean_std(kind, metric)
            ax = axes[i, j]
            ax.plot(x, mean, color=f"C{i}", lw=2)
            ax.fill_between(x, mean - std, mean + std, color=f"C{i}", alpha=0.2)
            ax.grid(alpha=0.3)
            if i == len(metrics) - 1:
                ax.set_xlabel(kind)
                ax.set_ylim(0, 1)
            if j == 0:
                ax.set_ylabel(label if metric == "p_true" else label + "\n(normalised Euclidean)", fontsize=8)
    n = next(iter(curves.values.values()))["first"].shape[1]
    fig.suptitle(f"{title}: invariance over {n} {images_word} (mean, band = 1 std)", fontsize=10)
    tight_with_title(fig)
    return fig
