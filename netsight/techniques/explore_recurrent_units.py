"""Everything `netsight explore` shows about the hidden units of a recurrent run (the recurrent
mode of the unit browser; the conv mode is `explore.py`).

The layer of a recurrent row reader is its `rnn` module and its units are the hidden units.
One streaming pass over the test set (`recurrent.unit_stats`, every unit and gate at once, in
batches; in a suite or one `inspect`, the very pass the `units` and `gates` techniques make) gives each unit's top-9 (image, step) pairs with the unit's whole trace for each, the
mean trace per class, its class selectivity, its gate saturation fractions (Karpathy, Johnson &
Fei-Fei, "Visualizing and Understanding Recurrent Networks", 2015) and its correlation with
simple features of the row being read; this module adds the pictures of the top images only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch import nn

from ..errors import NetsightError
from ..ops.recurrent import UnitStatsResult, as_pixels, check_recurrent, unit_stats

LAYER = "rnn"  # the module of a RowSequenceClassifier whose units are browsed
TOP_K = 9
BATCH = 500  # images per step of the pass


@dataclass
class RecurrentUnits:
    layer: str  # "rnn"
    cell: str  # rnn | lstm | gru
    classes: tuple[str, ...]  # the names of the class indices of `stats.class_mean`
    stats: UnitStatsResult  # the one pass over the set
    images: dict[int, torch.Tensor] = field(default_factory=dict)  # image index -> float [C,H,W] in [0,1] (the top images)


def is_recurrent(model: nn.Module) -> bool:
    from ..models.rnn import RowSequenceClassifier

    return isinstance(model, RowSequenceClassifier)


@torch.no_grad()
def explore_recurrent(
    model: nn.Module,
    images: torch.Tensor,
    labels: Optional[torch.Tensor] = None,
    classes: Optional[Sequence[str]] = None,
    batch_size: int = BATCH,
    top: int = TOP_K,
) -> RecurrentUnits:
    """Every hidden unit of a recurrent row reader over `images` ([N,H,W] / [N,C,H,W], uint8 or
    floats in [0, 1]) with their `labels` (None: the model's own predictions)."""
    model = check_recurrent(model)
    if len(images) == 0:
        raise NetsightError("explore: no images to rank the hidden units over")
    n_classes = model.fc.out_features
    if labels is None:
        device = next(model.parameters()).device
        was = model.training
        model.eval()
        try:
            labels = torch.cat(
                [
                    model(as_pixels(images[s : s + batch_size]).to(device)).argmax(1).cpu()
                    for s in range(0, len(images), batch_size)
                ]
            )
        finally:
            model.train(was)
    stats = unit_stats(model, images, labels, batch_size=batch_size, top=min(top, len(images)), num_classes=n_classes)
    return recurrent_units(model, stats, images, classes)


def recurrent_units(
    model: nn.Module, stats: UnitStatsResult, images: torch.Tensor, classes: Optional[Sequence[str]]
) -> RecurrentUnits:
    """The browser's data from a `unit_stats` pass over `images` (the same images, in the same order)."""
    model = check_recurrent(model)
    n_classes = model.fc.out_features
    names = tuple(classes) if classes is not None and len(classes) == n_classes else tuple(str(c) for c in range(n_classes))
    wanted = sorted({int(i) for i in stats.top_images.flatten()})
    pictures = as_pixels(images[torch.tensor(wanted, dtype=torch.long)]).cpu()
    return RecurrentUnits(LAYER, model.cell, names, stats, {i: pictures[j] for j, i in enumerate(wanted)})
