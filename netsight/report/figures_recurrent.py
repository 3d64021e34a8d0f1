"""Figures of the inside of recurrent runs (techniques rows, units, gates, trajectories, and the
study report's comparison of RNN, LSTM and GRU): Karpathy, Johnson & Fei-Fei, "Visualizing and
Understanding Recurrent Networks" (2015) on images read row by row."""

from __future__ import annotations

from typing import Optional, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from .. import style  # noqa: E402  (sets the rcParams every figure uses)
from ..style import SMALL  # noqa: E402
from .figures import tight_with_title  # noqa: E402

METHOD_TITLES = {
    "gradient_x_input": "gradient x input",
    "integrated_gradients": "integrated gradients",
    "occlusion": "row occlusion: drop of p(true class)",
}
MARKED_ROW = "#ff7f0e"  # the row a unit peaked at, drawn on its top images


def _class_legend(fig: Figure, present, classes, ncol: int = 10, y: float = 0.0) -> None:
    fig.legend(
        handles=style.class_legend_handles(present, classes),
        loc="lower center",
        ncol=min(ncol, max(1, len(set(present)))),
        bbox_to_anchor=(0.5, y),
        title="class",
        frameon=False,
    )


def plot_rows(
    per_class: dict[str, np.ndarray],
    counts: Sequence[int],
    classes: Sequence[str],
    title: str,
    prefix_accuracy: Optional[Sequence[float]],
    images: int,
) -> Figure:
    """Mean score per class (columns) and input row (rows, top to bottom as in the image), one heat
    map per method; beside them the accuracy after reading only the first k rows."""
    present = [c for c, n in enumerate(counts) if n]
    methods = list(per_class)
    panels = len(methods) + (1 if prefix_accuracy is not None else 0)
    fig, axes = plt.subplots(1, panels, figsize=(3.3 * panels + 0.6, 5.2), squeeze=False)
    steps = next(iter(per_class.values())).shape[1]
    for ax, m in zip(axes[0], methods, strict=False):
        data = per_class[m][present].T  # [T, classes present]
        limit = float(np.nanmax(np.abs(data))) if np.isfinite(data).any() else 1.0
        im = style.mark(ax.imshow(data, cmap=style.DIVERGING, norm=style.signed_norm(limit), aspect="auto"), "signed")
        ax.set_xticks(range(len(present)), [str(classes[c])[:6] for c in present], rotation=90)
        ax.set_yticks(range(0, steps, 3), [str(t + 1) for t in range(0, steps, 3)])
        ax.set_xlabel("true class")
        ax.set_ylabel("input row")
        ax.set_title(METHOD_TITLES.get(m, m))
        unit = "p" if m == "occlusion" else "logit"
        fig.colorbar(im, ax=ax, fraction=0.08, pad=0.03).set_label(f"mean per class ({unit})")
    if prefix_accuracy is not None:
        ax = axes[0][-1]
        acc = np.asarray(prefix_accuracy, dtype=float)
        ax.plot(acc, np.arange(1, len(acc) + 1), color="k", marker=".", label="accuracy after row k")
        ax.set_ylim(len(acc) + 0.5, 0.5)
        ax.set_xlabel("test accuracy (%) from the state after row k")
        ax.set_ylabel("rows read (k)")
        style.percent_axis(ax, "x")
        ax.grid(alpha=0.3)
        ax.set_title("how early the decision is made")
    fig.suptitle(f"Which rows matter: {title} ({images:,} test images; scores of the true class)")
    tight_with_title(fig)
    return fig


def plot_units(
    result, picks: list[tuple[int, str]], images: list, labels: list, classes: Sequence[str], title: str, n_images: int
) -> Figure:
    """Per unit (one row each): its top-9 (image, step) pairs with the row marked (`images`: one
    [9, (C,) H, W] tensor per unit, `labels`: their classes), the unit's trace over the steps on those
    images (coloured by the image's class), its mean trace per class."""
    k = result.top_values.shape[1]
    steps = result.steps
    height = 2.1 * len(picks) + 1.4
    fig = plt.figure(figsize=(0.82 * k + 9.6, height))
    grid = fig.add_gridspec(
        len(picks), k + 4, width_ratios=[1] * k + [0.9, 4.2, 0.5, 4.2], wspace=0.3, hspace=0.95, left=0.03, right=0.99
    )
    grid.update(top=1 - 1.15 / height, bottom=0.85 / height)
    present: set[int] = set()
    for row, ((u, why), tiles, top_labels) in enumerate(zip(picks, images, labels, strict=True)):
        px = tiles.float() / 255 if not tiles.dtype.is_floating_point else tiles
        px = px[:, None] if px.dim() == 3 else px
        for j in range(k):
            ax = fig.add_subplot(grid[row, j])
            img = px[j].mean(0).numpy()
            style.mark(ax.imshow(img, cmap="gray", vmin=0, vmax=1), "pixels")
            step = int(result.top_steps[u, j])
            ax.axhline(step, color=MARKED_ROW, lw=1.2)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"row {step + 1}", fontsize=SMALL, pad=2)
            if j == 0:
                ax.set_ylabel(f"unit {u}", fontsize=SMALL)
        ax = fig.add_subplot(grid[row, k + 1])
        x = np.arange(1, steps + 1)
        for j in range(k):
            c = int(top_labels[j])
            colour = style.class_colour(c)
            present.add(c)
            ax.plot(x, result.top_traces[u, j].numpy(), color=colour, lw=1, alpha=0.85)
            ax.plot(int(result.top_steps[u, j]) + 1, float(result.top_values[u, j]), "o", color=colour, ms=3)
        ax.set_title(f"unit {u}: its value on the top-{k} images\n({why})", fontsize=SMALL)
        ax.set_xlabel("row (step)", fontsize=SMALL)
        ax.set_ylabel("hidden value", fontsize=SMALL)
        ax.grid(alpha=0.3)
        ax = fig.add_subplot(grid[row, k + 3])
        for c in range(result.class_mean.shape[0]):
            if int(result.class_count[c]):
                present.add(c)
                ax.plot(x, result.class_mean[c, :, u].numpy(), color=style.class_colour(c), lw=1.2)
        best = int(result.best_class[u])
        ax.set_title(
            f"unit {u}: mean over the images of each class\n(selectivity {float(result.selectivity[u]):.2f}: "
            f"class {classes[best] if best < len(classes) else best}, mean {float(result.class_mean[best, :, u].mean()):+.2f})",
            fontsize=SMALL,
        )
        ax.set_xlabel("row (step)", fontsize=SMALL)
        ax.grid(alpha=0.3)
    _class_legend(fig, sorted(present), tuple(classes))
    fig.suptitle(
        f"Hidden units of {title}: top-{k} (image, row) pairs over {n_images:,} test images\n"
        "(orange line: the row the unit peaked at; dots: the peak; traces coloured by the image's class)"
    )
    return fig


def _gate_scatter(ax, left: dict, right: dict) -> None:
    ax.plot([0, 1], [1, 0], color="0.6", ls="--", lw=1, label="_bound")
    for g in left:
        ax.scatter(np.asarray(left[g]), np.asarray(right[g]), s=14, alpha=0.7, color=style.gate_colour(g), label=f"{g} gate")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("fraction left-saturated (< 0.1)")
    ax.set_ylabel("fraction right-saturated (> 0.9)")
    ax.grid(alpha=0.3)


def plot_gates(
    left: dict, right: dict, title: str, n_images: int, training: Optional[list[dict]] = None, n_training: int = 0
) -> Figure:
    """Karpathy et al.'s Fig. 3 (one dot per unit and gate), and the mean saturation per gate over training."""
    panels = 2 if training else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels + 0.4, 5.0), squeeze=False)
    _gate_scatter(axes[0][0], left, right)
    axes[0][0].legend(loc="upper right")
    axes[0][0].set_title(f"every unit, {n_images:,} test images x all rows")
    if training:
        ax = axes[0][1]
        for g in left:
            rows = [r for r in training if r["gate"] == g]
            its = [r["iteration"] for r in rows]
            ax.plot(its, [r["right"] for r in rows], color=style.gate_colour(g), marker="o", ms=3, label=f"{g}: > 0.9")
            ax.plot(its, [r["left"] for r in rows], color=style.gate_colour(g), marker="o", ms=3, ls="--", label=f"{g}: < 0.1")
        ax.set_xscale("log")
        snapshots = sorted({r["iteration"] for r in training})
        ax.set_xticks(snapshots, [str(i) for i in snapshots])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("training iteration (weight snapshot)")
        ax.set_ylabel("mean fraction saturated")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", ncol=2)
        ax.set_title(f"over training ({n_training:,} test images)")
    fig.suptitle(f"Gate saturation: {title}")
    tight_with_title(fig)
    return fig


def plot_gate_grid(entries: list[tuple[str, int, dict, dict]], title: str) -> Figure:
    """Karpathy et al.'s Fig. 3 per cell type (rows) and hidden size (columns): (model, hidden, left, right)."""
    cells = [c for c in ("lstm", "gru") if any(e[0] == c for e in entries)] + sorted({e[0] for e in entries} - {"lstm", "gru"})
    sizes = sorted({e[1] for e in entries})
    fig, axes = plt.subplots(len(cells), len(sizes), figsize=(3.6 * len(sizes), 3.7 * len(cells) + 0.9), squeeze=False)
    gates: list[str] = []
    for model, hidden, left, right in entries:
        ax = axes[cells.index(model)][sizes.index(hidden)]
        _gate_scatter(ax, left, right)
        ax.set_title(f"{model}-{hidden}")
        gates += [g for g in left if g not in gates]
    for row in axes:
        for ax in row:
            if not ax.collections:
                ax.set_visible(False)
    handles = [Line2D([], [], color=style.gate_colour(g), marker="o", ls="", label=f"{g} gate") for g in gates]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(title)
    tight_with_title(fig, 0.45, 0.45)
    return fig


def plot_row_importance_by_cell(entries: list[tuple[str, int, dict[str, np.ndarray]]], title: str) -> Figure:
    """The mean score per input row over all classes, one line per run (colour: cell, line style: hidden size)."""
    methods = [m for m in METHOD_TITLES if any(m in e[2] for e in entries)]
    fig, axes = plt.subplots(1, len(methods), figsize=(4.4 * len(methods), 4.2), squeeze=False)
    for ax, m in zip(axes[0], methods, strict=True):
        for model, hidden, scores in entries:
            v = np.asarray(scores[m], dtype=float)
            ax.plot(
                np.arange(1, len(v) + 1),
                v,
                color=style.model_colour(model),
                ls=style.hidden_linestyle(hidden),
                label=f"{model}-{hidden}" if hidden else f"{model} (CNN)",
            )
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xlabel("input row")
        ax.set_ylabel("mean score (p)" if m == "occlusion" else "mean score (logit)")
        ax.set_title(METHOD_TITLES[m])
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 9), frameon=False)
    fig.suptitle(title)
    tight_with_title(fig, 0.45, 0.4)
    return fig


def plot_trajectories(panels: Sequence[tuple[str, object, object, object]], classes: Sequence[str], title: str) -> Figure:
    """One panel per run: (label, path [N, T, 2], labels [N], explained [2]); thin: each image, bold: the class means."""
    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 4.3 * rows + 0.9), squeeze=False)
    present: set[int] = set()
    for ax, (label, path, labels, explained) in zip(axes.flat, panels, strict=False):
        p, y = np.asarray(path), np.asarray(labels)
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
