"""The figures of "which pictures to trust": the sanity checks' grid and similarity curves (Adebayo
et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, Figs. 2 and 4) and the deletion/insertion
curves with their areas (Petsiuk et al., "RISE", BMVC 2018), every method in its own colour
(`style.method_colour`), the baselines in grey (random) and black (Sobel)."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from .. import style
from .figures import plt, tight_with_title
from .figures_attribution import TITLES, scaled
from .figures_zf import pixel_image

METRIC_TITLES = {
    "spearman": "Spearman rank correlation",
    "spearman_abs": "Spearman of |map|",
    "ssim": "SSIM of |map| (scaled to 0..1)",
    "hog": "HOG similarity of |map|",
}
BASELINE_TITLES = {"random": "random map (baseline)", "sobel": "Sobel edges (baseline)"}


def method_title(m: str) -> str:
    return BASELINE_TITLES.get(m, TITLES.get(m, m).replace("\n", " "))


def plot_sanity_grid(
    images: torch.Tensor,
    originals: Mapping[str, torch.Tensor],
    cascade: Mapping[str, Sequence[torch.Tensor]],
    layers: Sequence[str],
    targets: Sequence[int],
    classes: tuple[str, ...],
    title: str,
    shown: int = 2,
) -> Figure:
    """Adebayo Fig. 2: for each method, rows of `shown` images; columns: the input, the map on the trained
    model, then the map after cascading randomisation down to each layer (logits first). Every map is
    divided by its own largest |value| and drawn on one diverging scale."""
    methods = [m for m in originals if cascade.get(m)]
    n = min(shown, len(images))
    depth = min(len(layers), min(len(cascade[m]) for m in methods))
    rows, cols = n * len(methods), depth + 2
    fig = plt.figure(figsize=(1.05 * cols + 1.9, 1.1 * rows + 1.7))
    grid = fig.add_gridspec(rows, cols + 1, width_ratios=[1.0] * cols + [0.07], wspace=0.12, hspace=0.12)
    norm = style.signed_norm(1.0)
    im = None
    for k, m in enumerate(methods):
        for i in range(n):
            r = k * n + i
            axes = [fig.add_subplot(grid[r, j]) for j in range(cols)]
            style.mark(axes[0].imshow(pixel_image(images[i]), cmap="gray", vmin=0, vmax=1), "pixels")
            maps = [originals[m][i]] + [cascade[m][d][i] for d in range(depth)]
            for j, a in enumerate(maps, 1):
                im = style.mark(axes[j].imshow(scaled(a), cmap=style.DIVERGING, norm=norm), "signed")
            for ax in axes:
                ax.set_xticks([])
                ax.set_yticks([])
            name = classes[targets[i]] if 0 <= targets[i] < len(classes) else str(targets[i])
            axes[0].set_ylabel(f"{method_title(m)}\n({name})" if i == 0 else f"({name})", fontsize=style.SMALL)
            if r == 0:
                axes[0].set_title("input", fontsize=style.SMALL)
                axes[1].set_title("trained", fontsize=style.SMALL)
                for d in range(depth):
                    axes[d + 2].set_title(f"random\nto {layers[d]}", fontsize=style.SMALL)
    assert im is not None
    bar = fig.colorbar(im, cax=fig.add_subplot(grid[:, -1]))
    bar.set_label("value / largest |value| of that map (red: raises the class score, blue: lowers it)")
    fig.suptitle(
        f"{title}: cascading randomisation (Adebayo et al. 2018): each method's map as the weights are\n"
        "re-initialised from the logits down; a map that stays the same does not depend on what the model learned"
    )
    w, h = fig.get_size_inches()  # explicit margins (inches): tight_layout cannot place a colour bar spanning rows
    fig.subplots_adjust(left=1.0 / w, right=1 - 0.75 / w, top=1 - 1.25 / h, bottom=0.15 / h)
    return fig


def _curves_of(rows: Sequence, mode: str, metric: str, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    sel = sorted((r for r in rows if r.mode == mode and r.metric == metric and r.method == method), key=lambda r: r.depth)
    return (
        np.array([r.depth for r in sel]),
        np.array([r.mean for r in sel], dtype=float),
        np.array([r.lo for r in sel], dtype=float),
        np.array([r.hi for r in sel], dtype=float),
    )


def plot_sanity_curves(rows: Sequence, layers: Sequence[str], title: str, n_images: int) -> Figure:
    """Similarity of the randomised model's maps to the trained model's, per depth, with 95% bands over
    images: rows of panels per randomisation mode present, a column per similarity measure."""
    modes = [m for m in ("cascading", "independent") if any(r.mode == m for r in rows)]
    metrics = [m for m in METRIC_TITLES if any(r.metric == m for r in rows)]
    methods = list(dict.fromkeys(r.method for r in rows if r.mode in modes))
    fig, axes = plt.subplots(len(modes), len(metrics), figsize=(3.3 * len(metrics), 2.9 * len(modes) + 1.0), squeeze=False)
    x_labels = list(layers)
    for i, mode in enumerate(modes):
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            for m in methods:
                d, mean, lo, hi = _curves_of(rows, mode, metric, m)
                if not len(d):
                    continue
                colour = style.method_colour(m)
                ax.plot(d, mean, "-o", color=colour, markersize=3, label=method_title(m))
                ok = ~(np.isnan(lo) | np.isnan(hi))
                ax.fill_between(d[ok], lo[ok], hi[ok], color=colour, alpha=0.15, linewidth=0)
            ax.axhline(0, color="#999999", linewidth=0.6)
            ax.set_xticks(range(1, len(x_labels) + 1))
            ax.set_xticklabels(x_labels, rotation=60, ha="right")
            lo_y = -0.5 if metric.startswith("spearman") or metric == "hog" else -0.1
            ax.set_ylim(lo_y, 1.05)
            if i == 0:
                ax.set_title(METRIC_TITLES[metric])
            if j == 0:
                ax.set_ylabel(f"{mode}: similarity\nto the trained model's maps")
            ax.set_xlabel("re-initialised from the logits down to" if mode == "cascading" else "the one layer re-initialised")

    handles = [Line2D([], [], color=style.method_colour(m), marker="o", markersize=3, label=method_title(m)) for m in methods]
    fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)), frameon=False)
    fig.suptitle(
        f"{title}: how alike each method's maps stay as the weights are randomised (mean over {n_images} images, "
        "band: 95% interval)\nhigh = the map does not depend on the randomised layers"
    )
    legend_rows = int(np.ceil(len(handles) / 5))
    tight_with_title(fig, title_inches=0.55, bottom_inches=0.25 + 0.22 * legend_rows)
    return fig


def plot_faithfulness(fractions: torch.Tensor, curves: Mapping, auc: Mapping, title: str, target_kind: str) -> Figure:
    """Mean deletion and insertion curves per method and baseline, and their areas with 95% intervals."""
    from ..ops.similarity import summarise

    names = list(curves)
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.4), gridspec_kw={"width_ratios": [1, 1, 1.25]})
    f = np.asarray(fractions, dtype=float)
    for ax, curve in zip(axes[:2], ("deletion", "insertion"), strict=True):
        for name in names:
            c = np.asarray(curves[name][curve], dtype=float)
            style_ = "--" if name in BASELINE_TITLES else "-"
            ax.plot(f, c.mean(0), style_, color=style.method_colour(name), label=method_title(name), linewidth=1.4)
        ax.set_xlabel(f"fraction of pixels {'removed (set to 0)' if curve == 'deletion' else 'put back on a blurred copy'}")
        ax.set_ylabel(f"p({target_kind}), mean over images")
        ax.set_title(f"{curve} ({'lower area = more faithful' if curve == 'deletion' else 'higher area = more faithful'})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    ax = axes[2]
    y = np.arange(len(names))
    for k, (curve, offset, hatch) in enumerate((("deletion", -0.2, ""), ("insertion", 0.2, "//"))):
        for i, name in enumerate(names):
            s = summarise(auc[name][curve])
            err = [[s.mean - s.lo], [s.hi - s.mean]] if s.n > 1 else None
            ax.barh(
                y[i] + offset,
                s.mean,
                height=0.38,
                color=style.method_colour(name),
                alpha=0.55 if k == 0 else 0.9,
                hatch=hatch,
                edgecolor="white" if k else "none",
                xerr=err,
                ecolor="#333333",
                capsize=2,
            )
    ax.set_yticks(y)
    ax.set_yticklabels([method_title(n) for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("area under the curve (95% interval over images)")
    ax.set_title("areas under the curves")
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color=style.method_colour(n), linestyle="--" if n in BASELINE_TITLES else "-", label=method_title(n))
        for n in names
    ] + [
        Patch(facecolor="#999999", alpha=0.55, label="light bar: deletion area (lower: better)"),
        Patch(facecolor="#999999", hatch="//", edgecolor="white", label="hatched bar: insertion area (higher: better)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
    n_images = len(next(iter(auc.values()))["deletion"])
    fig.suptitle(f"{title}: deletion and insertion (Petsiuk et al. 2018), pixels in the order of each map, {n_images} images")
    tight_with_title(fig, bottom_inches=0.3 + 0.22 * int(np.ceil(len(handles) / 4)))
    return fig
