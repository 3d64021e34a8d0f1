"""Which input rows a classifier's decision rests on (`netsight inspect RUN --rows`), for a recurrent
row reader (one row = one step of its sequence) and, on the same digits, for a CNN, so the study report
can set the two side by side. Per image and row t, three scores of how much the row matters for the true
class: gradient x input (Simonyan, Vedaldi & Zisserman 2014; Shrikumar et al. 2016) and integrated
gradients from the black image (Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks",
ICML 2017; a `steps`-point midpoint Riemann sum whose rows add up to logit(x) - logit(0)), both of the
true class's logit by netsight's attribution code (`ops/attribution.py`) summed over the row's pixels;
and row occlusion (Zeiler & Fergus 2014, one row at a time): p(true class | x) minus p(true class | x
with row t set to the background 0). For a recurrent run, beside them the accuracy after reading only the
first k rows (how early the decision is made). Every gradient is taken under
`torch.backends.cudnn.flags(enabled=False)`, because cuDNN's RNN kernels refuse a backward pass in eval
mode; PyTorch's native kernels run that pass and the model stays in eval mode. Writes figures/rows.png
(the mean score per class and row, one heat map per method, and the prefix accuracy), tables/rows.csv
(class, a name or "all"; row, 1-based; images; the three means) and tables/rows_images.safetensors (per
image: image index in the split, label, and the three scores [N, T])."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Optional, Sequence
import csv
from pathlib import Path

import numpy as np
import torch

from ..ops.attribution import attribute
from ..ops.recurrent import as_pixels
from ..errors import NetsightError
from ..ops.hooks import normalised_input
from .sequence import accuracy_by_rows_read
from .target import Target
from .base import Technique, register, count_option
from ._recurrent import chosen, labels, pixels, recurrent, save_tensors

if TYPE_CHECKING:
    from matplotlib.figure import Figure


METHODS = ("gradient_x_input", "integrated_gradients", "occlusion")
IG_STEPS = 32  # points of the integrated-gradients path (midpoint rule)


@contextmanager
def cudnn_free_backward() -> Iterator[None]:
    """Gradients through nn.RNN/LSTM/GRU in eval mode: cuDNN off for the pass (its RNN backward needs training mode)."""
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        yield


def row_attribution(model, images: torch.Tensor, targets: torch.Tensor, method: str, steps: int = IG_STEPS) -> torch.Tensor:
    """[N, T]: `method` (gradient_x_input | integrated_gradients, midpoint rule) of the `targets` logit, summed per input row."""
    if method not in ("gradient_x_input", "integrated_gradients"):
        raise ValueError(f"row attribution: unknown method {method!r}")
    x = as_pixels(images)
    with cudnn_free_backward():
        maps = attribute(model, x, method, targets=targets.long().tolist(), steps=steps, ig_method="riemann_middle").maps
    return maps.sum(2)  # over the row's pixels (the maps have their channels summed): [N, H]


@torch.no_grad()
def row_occlusion(model, images: torch.Tensor, targets: torch.Tensor, fill: float = 0.0, batch_size: int = 2000) -> torch.Tensor:
    """[N, T]: p(target | x) - p(target | x with row t set to `fill`)."""
    device = next(model.parameters()).device
    x = as_pixels(images).to(device)
    targets = targets.to(device).long()
    n, _, rows, _ = x.shape
    was_training = model.training
    model.eval()
    try:
        base = model(x).softmax(1).gather(1, targets[:, None])[:, 0]
        drops = torch.empty(n, rows, device=device)
        for t in range(rows):
            xt = x.clone()
            xt[:, :, t] = fill
            for s in range(0, n, batch_size):
                p = model(xt[s : s + batch_size]).softmax(1).gather(1, targets[s : s + batch_size, None])[:, 0]
                drops[s : s + batch_size, t] = base[s : s + batch_size] - p
    finally:
        model.train(was_training)
    return drops.cpu()


@dataclass
class RowImportance:
    labels: torch.Tensor  # [N] the true classes the scores are of
    scores: dict[str, torch.Tensor]  # method (METHODS) -> [N, T]

    def per_class(self, method: str, num_classes: int) -> torch.Tensor:
        """[classes, T] the mean score per class (NaN for a class without images)."""
        s = self.scores[method].double()
        out = torch.full((num_classes, s.shape[1]), float("nan"), dtype=torch.float64)
        for c in range(num_classes):
            m = self.labels == c
            if m.any():
                out[c] = s[m].mean(0)
        return out

    def first_row_share(self, method: str, row: int) -> float:
        """The share of images whose highest-scoring row is `row`."""
        return (self.scores[method].argmax(1) == row).double().mean().item()


def row_importance(
    model, images: torch.Tensor, labels: torch.Tensor, steps: int = IG_STEPS, batch_size: int = 250
) -> RowImportance:
    """All three scores for every image (uint8 [N,H,W] / [N,C,H,W] or float in [0, 1]), in batches."""
    scores: dict[str, list[torch.Tensor]] = {m: [] for m in METHODS}
    for s in range(0, len(images), batch_size):
        x, y = as_pixels(images[s : s + batch_size]), labels[s : s + batch_size]
        scores["gradient_x_input"].append(row_attribution(model, x, y, "gradient_x_input"))
        scores["integrated_gradients"].append(row_attribution(model, x, y, "integrated_gradients", steps))
        scores["occlusion"].append(row_occlusion(model, x, y))
    return RowImportance(labels.cpu().long(), {m: torch.cat(v) for m, v in scores.items()})


def prefix_accuracy(t: Target) -> list[float]:
    """Accuracy after k rows, k = 1..T: the sequence technique's table if the run has one, else computed."""
    table = t.folder / "tables" / "rows_read.csv"
    if table.is_file():
        with table.open() as f:
            return [float(r["test_acc"]) for r in csv.DictReader(f)]
    index = torch.arange(len(t.images))
    return accuracy_by_rows_read(t.model, pixels(t, index), labels(t, index)).tolist()


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
    from .. import style
    from ..plotting import plt, METHOD_TITLES, tight_with_title

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


@register
class RowsTechnique(Technique):
    name = "rows"
    summary = "which input rows matter (gradient x input, integrated gradients, row occlusion) per class; recurrent runs and CNNs"
    applies_to = "any"
    options = (count_option(500),)
    first_seed = True
    # no report items of its own: the recurrent section compares every run's tables/rows.csv
    compute = staticmethod(row_importance)

    def prepare(self, t: Target, count: int) -> dict:
        if t.kind == "recurrent":
            recurrent(t)
        if t.labels is None:
            raise NetsightError(
                f"--rows needs labelled images (it scores the true class); {t.images.description} carry no labels: "
                "use a netsight run, --data NAME, or --images DIR with one subfolder per class"
            )
        return {"count": count}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return ["figures/rows.png", "tables/rows.csv", "tables/rows_images.safetensors"]

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..fileio import write_csv
        from ..plotting import save_figure

        index = chosen(t, o["count"])
        y = labels(t, index)
        with normalised_input(t.model, **t.norm):
            r = row_importance(recurrent(t) if t.kind == "recurrent" else t.model, pixels(t, index), y)
        classes = t.classes or tuple(str(c) for c in range(int(y.max()) + 1))
        per_class = {m: r.per_class(m, len(classes)) for m in METHODS}
        rows = []
        steps = r.scores[METHODS[0]].shape[1]
        counts = torch.bincount(y, minlength=len(classes))
        for c, name in [(c, classes[c]) for c in range(len(classes)) if counts[c]] + [(-1, "all")]:
            for step in range(steps):
                row = {"class": name, "row": step + 1, "images": int(counts[c]) if c >= 0 else len(y)}
                for m in METHODS:
                    row[m] = float(per_class[m][c, step]) if c >= 0 else float(r.scores[m][:, step].double().mean())
                rows.append(row)
        figure, table, tensors = (t.folder / p for p in self.outputs(t, o))
        prefix = prefix_accuracy(t) if t.kind == "recurrent" else None  # a CNN reads the whole image at once
        fig = plot_rows({m: per_class[m].numpy() for m in METHODS}, counts.tolist(), classes, t.title, prefix, len(y))
        return [
            save_figure(fig, figure),
            write_csv(table, ["class", "row", "images", *METHODS], rows),
            save_tensors(tensors, {"image": index, "label": y, **r.scores}),
        ]
