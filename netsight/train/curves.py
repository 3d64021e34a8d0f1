"""A run's curves.png: train/test accuracy and loss against iterations.

Training draws it itself, at the end of a run and before its summary says `completed` (the
run directory promises it); the report shows it, and draws every other figure. It speaks the
visual language of every figure (`netsight.style`: percent axes, font sizes); the trainer imports
this module only when it draws.

Every run draws it, so it is drawn cheaply: fixed margins (in inches, for the figure's fixed size) and a
plain save, instead of `tight_layout` plus a `bbox_inches="tight"` save, which lay the text out three
times (0.65 s -> 0.41 s a figure, the two timed side by side on this CPU while a study run shared it; the
tests' 250-odd tiny runs and every real run draw one). The loss axis's labels have at most three
significant digits and a title too long for one line takes two (its middle cut past 100 characters), so
the text fits the margins whatever the loss or the run's name (tests/train/test_curves.py).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from ..fileio import atomic_write
from ..style import SPLIT_COLOURS, percent_axis, plt  # headless (Agg), with the rcParams every figure uses


TITLE_CHARS = 100  # a line of the figure's title at its font fits its 11 inches


def plot_curves(rows: Sequence[dict[str, float]], title: str) -> Figure:
    """Train/test accuracy and loss against iterations (the report's Figure 1 layout).

    Train curves show the mean over each evaluation interval (solid, dropout on), the single
    minibatch the report plotted (faint) and, dashed, the model in eval mode on the fixed training
    subset (what the train-test gap reads); test curves are over the whole test set."""
    it = [r["iteration"] for r in rows]
    fig, (ax_acc, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, metric, label in ((ax_acc, "acc", "accuracy (%)"), (ax_loss, "loss", "cross-entropy loss")):
        ax.plot(
            it, [r[f"train_{metric}"] for r in rows], color=SPLIT_COLOURS["train"], alpha=0.25, lw=1, label="train (minibatch)"
        )
        ax.plot(it, [r[f"train_{metric}_mean"] for r in rows], color=SPLIT_COLOURS["train"], lw=2, label="train (interval mean)")
        ax.plot(it, [r[f"test_{metric}"] for r in rows], color=SPLIT_COLOURS["test"], lw=2, label="test (whole set)")
        measured = [r.get(f"train_eval_{metric}", math.nan) for r in rows]
        if not all(math.isnan(v) for v in measured):  # runs written before netsight measured it have none
            ax.plot(it, measured, color=SPLIT_COLOURS["train"], lw=2, ls="--", label="train (eval mode, fixed subset)")
        ax.set_xlabel("iteration")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    ax_acc.set_ylim(0, 1.0)
    percent_axis(ax_acc)
    ax_loss.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax_acc.set_title("accuracy")
    ax_loss.set_title("loss")
    final = rows[-1]
    ax_acc.legend(loc="lower right")
    ax_loss.legend(loc="upper right")
    train = final.get("train_eval_acc", math.nan)
    said = f"train (eval mode) {train:.2%}" if not math.isnan(train) else f"train (interval) {final['train_acc_mean']:.2%}"
    result = f"final test accuracy {final['test_acc']:.2%}, {said}"
    if len(title) > TITLE_CHARS:  # a data folder's long path: its middle goes, the figure keeps its width
        title = f"{title[: TITLE_CHARS // 2 - 1]}...{title[-(TITLE_CHARS // 2 - 2) :]}"
    one_line = len(title) + len(result) + 2 <= TITLE_CHARS
    fig.suptitle(f"{title}: {result}" if one_line else f"{title}\n{result}")
    w, h = fig.get_size_inches()  # margins in inches: room for the y labels, the x label, the title's lines
    fig.subplots_adjust(left=0.8 / w, right=1 - 0.15 / w, bottom=0.55 / h, top=1 - (0.6 if one_line else 0.85) / h, wspace=0.25)
    return fig


def write_curves(path: str | Path, title: str, rows: Sequence[dict[str, float]]) -> None:
    """Draw `rows` (a run's metrics) into `path` (atomically); nothing when there are none."""
    if rows:
        fig = plot_curves(rows, title)
        atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
        plt.close(fig)
