"""Seed agreement: how alike each attribution method's maps of the same test images are between the
independently trained seeds of one configuration in a suite (analysis/agreement.py; the rank
correlation of Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, taken between seeds).

The other seeds are the completed runs beside this one in its group folder with the same configuration
but the seed; each run's maps come from its tables/attribution_maps.safetensors where that holds the
same images and classes, else they are computed from its weights. Writes tables/seed_agreement.csv
(method, metric, seeds, pairs, mean, lo, hi, n: the interval is over images)."""

from __future__ import annotations

from pathlib import Path

from ...errors import NetsightError
from ..agreement import COLUMNS, seed_agreement
from ..target import Target
from ..technique import Ran, ReportItem, Technique, register
from . import _trust

FILES = ["tables/seed_agreement.csv"]


def _prepare(t: Target, layer, count, target, methods, ig_steps, samples) -> dict:
    o = _trust.prepare(t, layer, count, target, methods, ig_steps, samples)
    others = _trust.siblings(t)
    if not others:
        raise NetsightError(
            f"--agreement: {t.run.path} has no other completed seed of its configuration beside it in {t.run.path.parent}"
        )
    return {**o, "others": [str(p) for p in others]}


def _outputs(t: Target, o: dict) -> list[str]:
    return list(FILES)


def _write(t: Target, o: dict) -> list[Path]:
    from ...fileio import write_csv
    from ...train.rundir import open_run

    idx, x, targets, _ = _trust.images_and_targets(t, o)
    runs = [_trust.maps_of(t, t.model, x, idx, targets, o, t.folder)]
    for other in o["others"]:
        model = open_run(other).model(t.device)
        runs.append(_trust.maps_of(t, model, x, idx, targets, o, Path(other)))
    rows = seed_agreement(runs, o["methods"])
    return [write_csv(t.folder / FILES[0], COLUMNS, [r.values() for r in rows])]


def _report(run, label: str, ran: Ran) -> list[ReportItem]:
    return []  # the study report's "Which pictures to trust" section reads tables/seed_agreement.csv itself


TECHNIQUE = register(
    Technique(
        name="agreement",
        summary="seed agreement: rank correlation of each method's maps between the other seeds of a suite run's configuration",
        applies_to="cnn",
        compute=seed_agreement,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        options=_trust.options(8),
        needs_run=True,
        min_seeds=2,
        report=None,
        section="trust",
    )
)
