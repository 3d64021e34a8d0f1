"""Invariance of the first and last hidden layers' features, and of the class probability, to
vertical translation, rotation and scaling: Zeiler & Fergus (ECCV 2014), section 4.4, Figure 5."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..hooks import normalised_input
from ..inputs import Norm, check_norm, device_of, labels_to_follow, source_for
from ..invariance import INVARIANCE_COLUMNS, InvarianceCurves, feature_layers, invariance_curves, invariance_rows
from ..technique import Ran, ReportItem, Technique, register
from ..target import Target, spread
from ._common import count_option


@dataclass
class InvarianceResult:
    curves: InvarianceCurves
    label_kind: str


def invariance(model: nn.Module, x, labels=None, mean: Norm = None, std: Norm = None) -> InvarianceResult:
    """Distances of the first and last hidden layers' features under vertical translation,
    rotation and scaling, and p(label) (without labels: the class predicted on the original)."""
    check_norm(model, mean, std)
    source = source_for(model, x)
    batch = source.load(range(len(source))).to(device_of(model))
    with normalised_input(model, mean, std):
        chosen, kind = labels_to_follow(model, batch, labels)
        curves = invariance_curves(model, batch, torch.tensor(chosen, device=batch.device))
    return InvarianceResult(curves, kind)


def _prepare(t: Target, count: int) -> dict:
    feature_layers(t.model, t.images.shape)  # a model with no layer to measure fails here, before any write
    return {"count": count}


def _outputs(t: Target, o: dict) -> list[str]:
    return ["figures/invariance.png", "tables/invariance.csv"]


def _write(t: Target, o: dict) -> list[Path]:
    from ...data.images import tensor_images
    from ...fileio import write_csv
    from ...report.figures import save_figure
    from ...report.figures_zf import plot_invariance

    idx = spread(len(t.images), o["count"])
    labels = t.labels[idx] if t.labels is not None else None
    r = invariance(t.model, tensor_images(t.images.load(idx)), labels, **t.norm)
    figure, table = (t.folder / p for p in _outputs(t, o))
    return [
        save_figure(plot_invariance(r.curves, t.title, t.images_word, r.label_kind), figure),
        write_csv(table, INVARIANCE_COLUMNS, invariance_rows(r.curves)),
    ]


def _report(run, label: str, ran: Ran) -> list[ReportItem]:
    return [
        ReportItem(
            "figure",
            f"{label}: invariance to vertical translation, rotation and scale on {ran.options['count']} test images "
            "(paper Fig. 5).",
            ran.files[0],
        )
    ]


TECHNIQUE = register(
    Technique(
        name="invariance",
        summary="translation/rotation/scale invariance curves",
        applies_to="cnn",
        compute=invariance,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        options=(count_option(100),),
        report=_report,
        section="zf",
    )
)
