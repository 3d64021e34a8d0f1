"""The hidden units of a recurrent run (`netsight inspect RUN --units`): Karpathy, Johnson &
Fei-Fei, "Visualizing and Understanding Recurrent Networks" (2015), their interpretable cells on
images read row by row. One `unit_stats` pass over the images (analysis/recurrent.py) gives, for
every unit at once, its top-9 (image, step) pairs with the unit's trace over the steps, its mean
trace per class, its class selectivity and its correlation with three simple features of the
current row: ink (mean pixel), the stroke's horizontal position (the row's centre of mass, rows
with ink only) and the row index.

Files (the explore page reads the two tables):
- figures/units.png (or figures/units_U.png with --unit U): per unit drawn, its 9 top images with
  the row it peaked at marked, its trace over the steps on each, and its mean trace per class;
- tables/units.csv: one line per unit: unit, selectivity, best_class (index), best_class_name,
  corr_ink, corr_position, corr_row, then top1_image, top1_step, top1_value ... top9_image,
  top9_step, top9_value (image: index in the split; step: 0-based row);
- tables/unit_traces.safetensors: class_mean [classes, T, H], class_count [classes],
  top_values / top_images / top_steps [H, 9], top_traces [H, 9, T], selectivity / best_class [H],
  corr_ink / corr_position / corr_row [H], and for a gated cell left_GATE / right_GATE / mean_GATE [H]
  (the saturation fractions of `gates`; GATE in input, forget, output or reset, update).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import torch

from ..recurrent import FEATURES, UnitStatsResult, unit_stats
from ..target import Target
from ..technique import Ran, ReportItem, Technique, register
from ._common import count_option
from ._recurrent import UNIT, checked_unit, labels, pixels, save_tensors, stats

SHOWN = 4  # units in the default figure


def shown_units(r: UnitStatsResult, unit: Optional[int]) -> list[tuple[int, str]]:
    """(unit, why it is drawn): the one asked for, else the most class-selective unit and the units
    most correlated with ink, position and the row index (each unit once)."""
    if unit is not None:
        return [(unit, "asked for")]
    picks: list[tuple[int, str]] = [(int(r.selectivity.argmax()), "most class-selective")]
    for f in FEATURES:
        c = torch.nan_to_num(r.correlation[f].abs(), nan=-1.0)
        for u in c.argsort(descending=True).tolist():
            if all(u != p for p, _ in picks):
                picks.append((u, f"tracks {'the row index' if f == 'row' else f} (r = {r.correlation[f][u]:+.2f})"))
                break
    return picks[:SHOWN]


def _prepare(t: Target, count: int, unit: Optional[int]) -> dict:
    checked_unit(t, unit)
    labels(t, torch.tensor([0]))
    return {"count": count, "unit": unit}


def _outputs(t: Target, o: dict) -> list[str]:
    figure = "figures/units.png" if o["unit"] is None else f"figures/units_{o['unit']}.png"
    return [figure, "tables/units.csv", "tables/unit_traces.safetensors"]


def unit_rows(r: UnitStatsResult, index: torch.Tensor, classes: tuple[str, ...]) -> list[dict]:
    rows = []
    for u in range(r.hidden):
        best = int(r.best_class[u])
        row: dict = {
            "unit": u,
            "selectivity": float(r.selectivity[u]),
            "best_class": best,
            "best_class_name": classes[best] if best < len(classes) else str(best),
        }
        for f in FEATURES:
            v = float(r.correlation[f][u])
            row[f"corr_{f}"] = "" if math.isnan(v) else v
        for j in range(r.top_values.shape[1]):
            row[f"top{j + 1}_image"] = int(index[r.top_images[u, j]])
            row[f"top{j + 1}_step"] = int(r.top_steps[u, j])
            row[f"top{j + 1}_value"] = float(r.top_values[u, j])
        rows.append(row)
    return rows


def tensors_of(r: UnitStatsResult, index: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {
        "class_mean": r.class_mean,
        "class_count": r.class_count,
        "top_values": r.top_values,
        "top_images": index[r.top_images],
        "top_steps": r.top_steps,
        "top_traces": r.top_traces,
        "selectivity": r.selectivity,
        "best_class": r.best_class,
    }
    out.update({f"corr_{f}": r.correlation[f] for f in FEATURES})
    for g in r.left:
        out.update({f"left_{g}": r.left[g], f"right_{g}": r.right[g], f"mean_{g}": r.gate_mean[g]})
    return out


def _write(t: Target, o: dict) -> list[Path]:
    from ...fileio import write_csv
    from ...report.figures import save_figure
    from ...report.figures_recurrent import plot_units

    index, r = stats(t, o["count"])
    classes = t.classes or tuple(str(c) for c in range(r.class_mean.shape[0]))
    rows = unit_rows(r, index, classes)
    figure, table, tensors = (t.folder / p for p in _outputs(t, o))
    picks = shown_units(r, o["unit"])
    images = [pixels(t, index[r.top_images[u]]) for u, _ in picks]
    tile_labels = [labels(t, index[r.top_images[u]]).tolist() for u, _ in picks]
    fig = plot_units(r, picks, images, tile_labels, classes, t.title, len(index))
    return [save_figure(fig, figure), write_csv(table, list(rows[0]), rows), save_tensors(tensors, tensors_of(r, index))]


def _report(run, label: str, ran: Ran) -> list[ReportItem]:
    return []  # the recurrent section compares every run's tables/units.csv


TECHNIQUE = register(
    Technique(
        name="units",
        summary="recurrent runs: every hidden unit's top-9 (image, step), mean trace per class, selectivity, input tracking",
        applies_to="recurrent",
        compute=unit_stats,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        options=(count_option(10_000), UNIT),
        report=_report,
        first_seed=True,
    )
)
