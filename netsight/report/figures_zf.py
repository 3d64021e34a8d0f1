"""Figures for the Zeiler & Fergus tools: deconv projections, top-9 mosaics, occlusion
maps, feature evolution and invariance curves. Projections are shown with grey = 0,
each scaled by its own largest |value| (the paper's display); patches as pixels."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from matplotlib.figure import Figure

from .. import style
from .figures import plt, tight_with_title
from ..style import SMALL, layer_name


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


_FRAME_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]
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


def plot_deconv(
    images: torch.Tensor, projections: list[list[tuple]], layer: str, mode: str, title: str, asked: Optional[str] = None
) -> Figure:
    """Per image (a row): the image with each projected unit's receptive field outlined, then
    each projection cropped to that field (zoomed, so its structure is visible; light blue:
    beyond the image border). `projections[i]` holds (map, value, cropped projection [C,s,s],
    valid mask [1,s,s], box (top, left, bottom, right) clipped to the image). `asked`: the layer
    asked for, when `layer` is the module after it whose output was ranked (conv2 -> relu2)."""
    from matplotlib.patches import Rectangle

    n, k = len(images), max(len(p) for p in projections)
    # laid out in inches: square tiles, a title band above each row, the key below
    tile, gap_x, title_band, top_band, side = 1.55, 0.2, 0.32, 0.55, 0.25
    width = 2 * side + (k + 1) * tile + k * gap_x
    one_line_key = width >= 9.2
    bottom_band = 0.45 if one_line_key else 0.85
    height = top_band + n * (title_band + tile) - title_band + title_band + bottom_band
    fig, axes = plt.subplots(n, k + 1, figsize=(width, height), squeeze=False)
    fig.subplots_adjust(
        left=side / width,
        right=1 - side / width,
        top=1 - (top_band + title_band) / height,
        bottom=bottom_band / height,
        wspace=gap_x / tile,
        hspace=title_band / tile,
    )
    clipped = False
    for i in range(n):
        ax = axes[i, 0]
        style.mark(ax.imshow(pixel_image(images[i]), cmap="gray", vmin=0, vmax=1), "pixels")
        ax.set_title("input", fontsize=SMALL)
        for j, (channel, value, proj, valid, box) in enumerate(projections[i]):
            colour = _FRAME_COLOURS[j % len(_FRAME_COLOURS)]
            top, left, bottom, right = box
            ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, lw=1.4, ec=colour))
            target = axes[i, j + 1]
            clipped |= bool((valid[0] == 0).any())
            style.mark(
                target.imshow(_outside_tinted(projection_image(proj), valid[0].numpy()), interpolation="nearest"), "projection"
            )
            target.set_title(f"map {channel}: {value:.2f}", fontsize=SMALL, color=colour)
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
        for ax in axes[i, len(projections[i]) + 1 :]:
            ax.axis("off")
    what = "its strongest unit" if mode == "max" else "the whole feature map"
    fig.suptitle(
        f"{title}: deconvnet projections from {layer_name(layer, asked)} ({what}; the image's strongest maps)\n"
        "each cropped to the unit's receptive field (outlined on the input in the tile's colour), "
        "scaled to its own largest |value|; tile title: map and its activation",
        fontsize=style.NORMAL,
        y=1 - 0.1 / height,
        va="top",
    )
    _key_legend(fig, _projection_key(clipped), ncol=None if one_line_key else 1)
    return fig


def _outside_tinted(tile: np.ndarray, valid: np.ndarray) -> np.ndarray:
    rgb = _rgb(tile).copy()
    rgb[valid == 0] = _OUTSIDE
    return rgb


def plot_top9(tp, title: str, per_row: int = 4, asked: Optional[str] = None) -> Figure:
    """One block per feature map: 3x3 projections (left) beside the 3x3 input patches (right).
    Blocks are laid out in inches (a title band above each, a gap between them), so a figure of
    one map is as readable as one of sixteen."""
    maps, k = tp.projections.shape[:2]
    side = int(np.ceil(np.sqrt(k)))
    tile = tp.projections.shape[-1]
    spacer_px = max(3, tile // 2)  # projections and patches: two grids, visibly apart
    blocks = []
    clipped = bool((tp.valid[:maps] == 0).any())
    for m in range(maps):
        proj = [projection_image(tp.projections[m, j]) for j in range(k)]
        patch = [_outside_tinted(pixel_image(tp.patches[m, j]), tp.valid[m, j, 0].numpy()) for j in range(k)]
        grid_p = _mosaic([proj[r * side : (r + 1) * side] for r in range(side)])
        grid_q = _mosaic([patch[r * side : (r + 1) * side] for r in range(side)])
        spacer = np.ones((grid_p.shape[0], spacer_px, 3))
        blocks.append(np.concatenate([grid_p, spacer, grid_q], 1))
    per_row = max(1, min(per_row, maps))
    rows = int(np.ceil(maps / per_row))
    bh = 1.45  # inches: block height
    bw = bh * blocks[0].shape[1] / blocks[0].shape[0]
    gap_x, title_band, below, margin = 0.6, 0.32, 0.28, 0.3  # inches
    width = max(2 * margin + per_row * bw + (per_row - 1) * gap_x, 7.5)
    one_line_key = width >= 9.2
    top_band, key_band = 0.6, (0.45 if one_line_key else 0.8)
    height = top_band + rows * (title_band + bh + below) + key_band
    fig = plt.figure(figsize=(width, height))
    x0 = (width - (per_row * bw + (per_row - 1) * gap_x)) / 2
    half = (blocks[0].shape[1] - spacer_px) / 2 / blocks[0].shape[1]  # where each grid's centre sits, as a share
    for m, block in enumerate(blocks):
        r, c = divmod(m, per_row)
        left = x0 + c * (bw + gap_x)
        bottom = height - top_band - r * (title_band + bh + below) - title_band - bh
        ax = fig.add_axes((left / width, bottom / height, bw / width, bh / height))
        style.mark(ax.imshow(block, interpolation="nearest"), "projection")
        ax.axis("off")
        ax.set_title(f"map {m}: top activation {tp.top.values[m, 0]:.2f}", fontsize=SMALL, pad=3)
        for x, word in ((half / 2, "projections"), (1 - half / 2, "input patches")):
            ax.text(x, -0.03, word, transform=ax.transAxes, ha="center", va="top", fontsize=SMALL, color="0.3")
    s = tp.top.field.size
    fig.suptitle(
        f"{title}: top-{k} activations of {layer_name(tp.top.layer, asked)} over the dataset\n"
        f"per map: deconv projections (left) and the input patches (right), receptive field {s[0]}x{s[1]} px",
        fontsize=style.NORMAL,
        y=1 - 0.12 / height,
        va="top",
    )
    _key_legend(fig, _projection_key(clipped), ncol=None if one_line_key else 1)
    return fig


def plot_occlusion(
    images: torch.Tensor,
    labels: list[int],
    results: list,
    classes: tuple[str, ...],
    title: str,
    label_kind: str = "true class",
    asked: Optional[str] = None,
) -> Figure:
    """Per image: the input, p(label) per square position (on a scale fitted to that map, the
    range in the colour bar's label), the tracked feature map's strongest activation, and the
    most probable class (a class has one colour in every row, style.class_colour; the legend
    lists the classes on that map). `label_kind` says what the label is ("true class", or
    "predicted class" when the images carry no class the model knows)."""
    n = len(results)
    class_cmap, class_norm = style.class_cmap(len(classes))
    fig, axes = plt.subplots(n, 4, figsize=(14, 3.0 * n + 0.6), squeeze=False)
    short = label_kind.split()[0]
    for i, (img, label, r) in enumerate(zip(images, labels, results, strict=True)):
        style.mark(axes[i, 0].imshow(pixel_image(img), cmap="gray", vmin=0, vmax=1), "pixels")
        axes[i, 0].set_title(f"input, {label_kind} {classes[label]}\np({short}) unoccluded {r.unoccluded_prob:.2f}")
        prob = r.true_class_prob.numpy()
        lo, hi = style.fitted_range(prob)
        im = style.mark(axes[i, 1].imshow(prob, cmap=style.PROBABILITY, vmin=lo, vmax=hi), "probability")
        axes[i, 1].set_title(f"p({classes[label]}) with the {r.size}x{r.size}\ngrey square at each position")
        cb = fig.colorbar(im, ax=axes[i, 1], fraction=0.046)
        cb.set_label(f"p({classes[label]}): {lo:.2f} to {hi:.2f}\n(scale fitted to this map)")
        im = style.mark(axes[i, 2].imshow(r.feature_max.numpy(), cmap=style.SEQUENTIAL), "magnitude")
        axes[i, 2].set_title(
            f"strongest act. of {layer_name(r.layer, asked)}\nmap {r.feature_map} (unoccluded {r.unoccluded_feature:.2f})"
        )
        fig.colorbar(im, ax=axes[i, 2], fraction=0.046).set_label("activation")
        predicted = r.predicted_class.numpy()
        style.mark(axes[i, 3].imshow(predicted, cmap=class_cmap, norm=class_norm, interpolation="nearest"), "classes")
        axes[i, 3].set_title("most probable class")
        axes[i, 3].legend(
            handles=style.class_legend_handles(predicted.ravel().tolist(), classes),
            loc="upper left",
            bbox_to_anchor=(1.03, 1.0),
            borderaxespad=0,
            frameon=False,
            handlelength=1.0,
        )
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        f"{title}: occlusion sensitivity (grey {results[0].size}x{results[0].size} px square, stride "
        f"{results[0].stride} px); each map pixel is one position of the square"
    )
    tight_with_title(fig)
    return fig


def plot_evolution(evo, title: str, asked: Optional[str] = None) -> Figure:
    maps, snaps = evo.projections.shape[:2]
    tiles = [[projection_image(evo.projections[m, s]) for s in range(snaps)] for m in range(maps)]
    h, w = evo.projections.shape[-2:]
    fig, ax = plt.subplots(figsize=(max(1.0 * snaps + 2.0, 6.5), 1.0 * maps + 2.2))
    style.mark(ax.imshow(_mosaic(tiles, gap=2), interpolation="nearest"), "projection")
    ax.set_xticks([s * (w + 2) + w / 2 for s in range(snaps)], [str(i) for i in evo.iterations])
    ax.set_yticks([m * (h + 2) + h / 2 for m in range(maps)], [f"map {m}" for m in range(maps)])
    ax.tick_params(length=0)
    ax.set_xlabel("training iteration (weight snapshot)")
    ax.set_title(
        f"{title}: strongest activation of each {layer_name(evo.layer, asked)} map,\nprojected, as training goes on "
        "(each tile scaled to its own largest |value|)"
    )
    _key_legend(fig, _projection_key(False), ncol=1)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight(), 1, 1))
    return fig


DISTANCE = "||f(x') - f(x)|| / ||f(x)||"


def plot_invariance(curves, title: str, images_word: str = "test images", label_kind: str = "true class") -> Figure:
    kinds = list(curves.values)
    metrics = [
        ("first", f"distance at {curves.layers[0]}"),
        ("last", f"distance at {curves.layers[1]}"),
        ("p_true", f"p({label_kind})"),
    ]
    fig, axes = plt.subplots(len(metrics), len(kinds), figsize=(4.4 * len(kinds), 2.8 * len(metrics) + 0.6), squeeze=False)
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
                ax.set_ylabel(label if metric == "p_true" else f"{label}\n{DISTANCE}")
    n = next(iter(curves.values.values()))["first"].shape[1]
    fig.suptitle(f"{title}: invariance over {n} {images_word} (mean, band = 1 std)")
    fig.text(
        0.5,
        0.01,
        f"distance = {DISTANCE}: how far a layer's output f moves when the image x is transformed into x', "
        "relative to its size (0 = unchanged)",
        ha="center",
        va="bottom",
        fontsize=SMALL,
    )
    tight_with_title(fig, 0.45, 0.3)
    return fig
