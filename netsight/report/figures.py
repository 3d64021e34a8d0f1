"""The study report's own figures: runs compared (`plot_compare`), and the recurrent nets side by
side (`plot_gate_grid`, `plot_row_importance_by_cell`). Each technique's figure lives in its module
(`techniques/<name>.py`); the helpers every figure shares in `netsight.plotting`. (A run's own
curves.png is drawn by the trainer, `netsight.train.curves`.)"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from ..plotting import METHOD_TITLES, _gate_scatter, plt, tight_with_title
from .. import style
from ..style import percent_axis


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
    """The mean score per input row over all classes: a row of panels per method, a column per cell type (the
    CNNs together in the last), so a panel holds one line per hidden size (colour: hidden size; a CNN: its model)."""
    methods = [m for m in METHOD_TITLES if any(m in e[2] for e in entries)]
    cells = [c for c in ("rnn", "lstm", "gru") if any(e[0] == c and e[1] for e in entries)]
    cells += sorted({e[0] for e in entries if e[1] and e[0] not in cells})
    columns = cells + (["CNN"] if any(not e[1] for e in entries) else [])
    fig, axes = plt.subplots(
        len(methods), len(columns), figsize=(2.75 * len(columns), 2.25 * len(methods) + 1.0), squeeze=False, sharex=True
    )
    shown: dict[str, Line2D] = {}
    for r, m in enumerate(methods):
        for c, column in enumerate(columns):
            ax = axes[r][c]
            members = [e for e in entries if (e[0] == column and e[1]) or (column == "CNN" and not e[1])]
            for model, hidden, scores in sorted(members, key=lambda e: e[1]):
                if m not in scores:
                    continue
                v = np.asarray(scores[m], dtype=float)
                label = f"h={hidden}" if hidden else f"{model} (CNN)"
                colour = style.hidden_colour(hidden) if hidden else style.model_colour(model)
                (line,) = ax.plot(np.arange(1, len(v) + 1), v, color=colour, lw=1.6, label=label)
                shown.setdefault(label, line)
            ax.axhline(0, color="0.5", lw=0.8)
            ax.grid(alpha=0.3)
            if r == 0:
                ax.set_title(column if column == "CNN" else column.upper(), fontweight="bold")
            if c == 0:
                ax.set_ylabel(f"{METHOD_TITLES[m]}\n" + ("mean drop of p" if m == "occlusion" else "mean score (logit)"))
            if r == len(methods) - 1:
                ax.set_xlabel("input row")
    order = sorted(shown, key=lambda k: (not k.startswith("h="), int(k[2:]) if k.startswith("h=") else 0, k))
    fig.legend([shown[k] for k in order], order, loc="lower center", ncol=min(len(order), 6), frameon=False)
    fig.suptitle(title)
    tight_with_title(fig, 0.45, 0.4)
    return fig
