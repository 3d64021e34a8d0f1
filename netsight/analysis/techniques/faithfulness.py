"""Faithfulness of each attribution method: the deletion and insertion metrics of Petsiuk, Das and
Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box Models" (BMVC 2018), beside a
random map and the Sobel edge map (analysis/faithfulness.py says how pixels are removed and inserted).

Writes figures/faithfulness.png (mean deletion and insertion curves, and the areas under them with 95%
intervals over images) and tables/faithfulness.csv (method, curve, auc_mean, auc_lo, auc_hi, n). The maps
are those the attributions technique saved for the same images and classes where it ran first."""

from __future__ import annotations

from pathlib import Path

from ...errors import NetsightError
from ..faithfulness import COLUMNS, faithfulness
from ..target import Target
from ..technique import Option, Ran, ReportItem, Technique, register
from . import _trust

FILES = ["figures/faithfulness.png", "tables/faithfulness.csv"]


def _prepare(t: Target, layer, count, target, methods, ig_steps, samples, faith_steps: int, faith_order: str) -> dict:
    o = _trust.prepare(t, layer, count, target, methods, ig_steps, samples)
    if faith_order not in ("signed", "absolute"):
        raise NetsightError(f"--faith-order {faith_order!r}: expected signed or absolute")
    return {**o, "steps": faith_steps, "order": faith_order}


def _outputs(t: Target, o: dict) -> list[str]:
    return list(FILES)


def _write(t: Target, o: dict) -> list[Path]:
    from ...fileio import write_csv
    from ...report.figures import save_figure
    from ...report.figures_trust import plot_faithfulness

    idx, x, targets, kind = _trust.images_and_targets(t, o)
    maps = _trust.maps_of(t, t.model, x, idx, targets, o, t.folder)
    r = faithfulness(t.model, x, maps, targets, steps=o["steps"], order=o["order"], **t.norm)
    figure, table = (t.folder / p for p in FILES)
    return [
        save_figure(plot_faithfulness(r.fractions, r.curves, r.auc, t.title, kind), figure),
        write_csv(table, COLUMNS, r.rows()),
    ]


def _report(run, label: str, ran: Ran) -> list[ReportItem]:
    return [
        ReportItem(
            "figure",
            f"{label}: deletion and insertion curves (Petsiuk et al. 2018) and their areas, with a random map and the "
            "Sobel edge map as baselines.",
            ran.files[0],
        )
    ]


TECHNIQUE = register(
    Technique(
        name="faithfulness",
        summary="deletion and insertion curves of the attribution maps (Petsiuk et al. 2018) beside random and Sobel baselines",
        applies_to="cnn",
        compute=faithfulness,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        options=(
            *_trust.options(8),
            Option(
                "faith_steps",
                "int",
                20,
                "faithfulness: steps of the deletion/insertion curves (20: 5 per cent of the pixels each)",
                lo=1,
                hi=10_000,
            ),
            Option(
                "faith_order",
                "choice",
                "signed",
                "faithfulness: pixels in the order of the signed map (evidence for the class first) or of |map|",
                choices=("signed", "absolute"),
            ),
        ),
        report=_report,
        section="trust",
    )
)
