"""Which rows a run uses (`netsight inspect RUN --rows`): gradient x input, integrated gradients and
row occlusion per image and input row, averaged per class; for a recurrent run beside the accuracy
after reading only the first k rows (how early the decision is made). A CNN gets the same scores on
the same digits, so the study report can set the two side by side. The scores: `analysis/rows.py`
(Sundararajan et al. 2017 for integrated gradients; Zeiler & Fergus 2014 for occlusion).

Files:
- figures/rows.png: the mean score per class and row (one heat map per method) and the prefix accuracy;
- tables/rows.csv: columns class (a class name, or "all"), row (1-based), images, gradient_x_input,
  integrated_gradients, occlusion (means over the images of that class);
- tables/rows_images.safetensors: per image: image [N] (index in the split), label [N], and
  gradient_x_input / integrated_gradients / occlusion [N, T].
"""

from __future__ import annotations

import csv
from pathlib import Path

import torch

from ...errors import NetsightError
from ..hooks import normalised_input
from ..rows import METHODS, row_importance
from ..sequence import accuracy_by_rows_read
from ..target import Target
from ..technique import Ran, ReportItem, Technique, register
from ._common import count_option
from ._recurrent import chosen, labels, pixels, recurrent, save_tensors


def _prepare(t: Target, count: int) -> dict:
    if t.kind == "recurrent":
        recurrent(t)
    if t.labels is None:
        raise NetsightError(
            f"--rows needs labelled images (it scores the true class); {t.images.description} carry no labels: "
            "use a netsight run, --data NAME, or --images DIR with one subfolder per class"
        )
    return {"count": count}


def _outputs(t: Target, o: dict) -> list[str]:
    return ["figures/rows.png", "tables/rows.csv", "tables/rows_images.safetensors"]


def prefix_accuracy(t: Target) -> list[float]:
    """Accuracy after k rows, k = 1..T: the sequence technique's table if the run has one, else computed."""
    table = t.folder / "tables" / "rows_read.csv"
    if table.is_file():
        with table.open() as f:
            return [float(r["test_acc"]) for r in csv.DictReader(f)]
    index = torch.arange(len(t.images))
    return accuracy_by_rows_read(t.model, pixels(t, index), labels(t, index)).tolist()


def _write(t: Target, o: dict) -> list[Path]:
    from ...fileio import write_csv
    from ...report.figures import save_figure
    from ...report.figures_recurrent import plot_rows

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
    figure, table, tensors = (t.folder / p for p in _outputs(t, o))
    prefix = prefix_accuracy(t) if t.kind == "recurrent" else None  # a CNN reads the whole image at once
    fig = plot_rows({m: per_class[m].numpy() for m in METHODS}, counts.tolist(), classes, t.title, prefix, len(y))
    return [
        save_figure(fig, figure),
        write_csv(table, ["class", "row", "images", *METHODS], rows),
        save_tensors(tensors, {"image": index, "label": y, **r.scores}),
    ]


def _report(run, label: str, ran: Ran) -> list[ReportItem]:
    return []  # the recurrent section compares every run's tables/rows.csv


TECHNIQUE = register(
    Technique(
        name="rows",
        summary="which input rows matter (gradient x input, integrated gradients, row occlusion) per class; recurrent runs and CNNs",
        applies_to="any",
        compute=row_importance,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        options=(count_option(500),),
        report=_report,
        first_seed=True,
    )
)
