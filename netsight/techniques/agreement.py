"""Seed agreement: how alike one attribution method's maps of the same test images are between the
independently trained seeds of one configuration in a suite, by the rank correlation of Adebayo et al.,
"Sanity Checks for Saliency Maps" (NeurIPS 2018; Spearman, signed and of |map|) taken between training
runs instead of between a model and its randomised copy. The other seeds are the completed runs beside
this one in its group folder whose configuration differs only in the seed; each run's maps come from its
tables/attribution_maps.safetensors where that holds the method for the same images and classes, else
they are computed from its weights. Per image the correlation is averaged over every pair of seeds; the
mean over images and its 95% interval (a percentile bootstrap over images, inside [-1, 1]) are reported in
tables/seed_agreement.csv (method, metric, seeds, pairs, mean, lo, hi, n: n counts images). Every value, per
seed pair and image, goes to tables/seed_agreement_values.csv (method, metric, seed_a, seed_b, image, region,
value; region `foreground` too for an image on a constant background, as in sanity_values.csv): the verdict
"agrees across seeds" (`_verdicts.py`) resamples seeds and images from it, so its interval covers the seeds."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Callable, Optional, Sequence
from pathlib import Path

import torch

from ..ops.similarity import foreground_masks, spearman, summarise
from ..errors import NetsightError
from .target import Target
from .base import Ran, ReportItem, Technique, register
from . import _trust


COLUMNS = ("method", "metric", "seeds", "pairs", "mean", "lo", "hi", "n")
VALUE_COLUMNS = ("method", "metric", "seed_a", "seed_b", "image", "region", "value")


@dataclass(frozen=True)
class AgreementRow:
    method: str
    metric: str  # spearman | spearman_abs
    seeds: int
    pairs: int
    mean: float
    lo: float
    hi: float
    n: int  # images

    def values(self) -> tuple:
        return tuple(getattr(self, c) for c in COLUMNS)


def per_image(maps: Sequence[torch.Tensor], absolute: bool = False) -> torch.Tensor:
    """[N]: per image, the Spearman correlation of its maps averaged over every pair of runs (NaN pairs left out)."""
    if len(maps) < 2:
        raise ValueError("seed agreement needs the maps of two runs at least")
    values = torch.stack([spearman(a, b, absolute=absolute) for a, b in combinations(maps, 2)])  # [pairs, N]
    ok = ~torch.isnan(values)
    total = torch.where(ok, values, torch.zeros_like(values)).sum(0)
    count = ok.sum(0)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))


def seed_agreement(runs: Sequence[dict[str, torch.Tensor]], methods: Optional[Sequence[str]] = None) -> list[AgreementRow]:
    """Rows per method and metric for maps of the same images from several runs (each: method -> [N, H, W])."""
    if len(runs) < 2:
        return []
    names = methods or [m for m in runs[0] if all(m in r for r in runs)]
    rows = []
    pairs = len(runs) * (len(runs) - 1) // 2
    for m in names:
        for metric, absolute in (("spearman", False), ("spearman_abs", True)):
            s = summarise(per_image([r[m] for r in runs], absolute))
            rows.append(AgreementRow(m, metric, len(runs), pairs, s.mean, s.lo, s.hi, s.n))
    return rows


def foreground(x: torch.Tensor) -> list[Optional[torch.Tensor]]:
    """Per image [C, H, W]: the pixels [H, W] that differ from its constant background, else None: the sanity
    checks' rule (`ops.similarity.foreground_masks`), so "foreground" means one thing in every table."""
    return foreground_masks(x)


def pair_values(
    runs: Sequence[dict[str, torch.Tensor]],
    seeds: Sequence[int],
    images: Sequence[int],
    methods: Sequence[str],
    x: Optional[torch.Tensor] = None,
) -> list[tuple]:
    """(method, "spearman_abs", seed_a, seed_b, image, region, value) for every pair of runs and image: Spearman
    of |map| over all pixels, and over the foreground where `x`'s image has a constant background (NaN: a
    constant map)."""
    masks = foreground(x) if x is not None else [None] * len(images)
    out = []
    for m in methods:
        for (a, ra), (b, rb) in combinations(list(zip(seeds, runs, strict=True)), 2):
            whole = spearman(ra[m], rb[m], absolute=True)
            for k, image in enumerate(images):
                out.append((m, "spearman_abs", a, b, int(image), "all", float(whole[k])))
                mask = masks[k]
                if mask is not None:
                    fa, fb = ra[m][k][mask.to(ra[m].device)], rb[m][k][mask.to(rb[m].device)]
                    out.append((m, "spearman_abs", a, b, int(image), "foreground", float(spearman(fa[None], fb[None], True)[0])))
    return out


def maps_for(
    saved: Optional[tuple[list[int], dict[str, torch.Tensor]]],
    indices: list[int],
    methods: Sequence[str],
    compute: Callable[[str], torch.Tensor],
) -> dict[str, torch.Tensor]:
    """A run's maps of the images `indices` per method: from its saved (indices, maps) when they hold the
    method for exactly these images, else `compute(method)`."""
    out = {}
    for m in methods:
        if saved is not None and list(saved[0]) == list(indices) and m in saved[1]:
            out[m] = saved[1][m].float()
        else:
            out[m] = compute(m).float().cpu()
    return out


FILES = ["tables/seed_agreement.csv", "tables/seed_agreement_values.csv"]


@register
class AgreementTechnique(Technique):
    name = "agreement"
    summary = "seed agreement: rank correlation of each method's maps between the other seeds of a suite run's configuration"
    applies_to = "cnn"
    options = _trust.options(8)
    needs_run = True
    section = "trust"
    min_seeds = 2
    compute = staticmethod(seed_agreement)

    def prepare(self, t: Target, layer, count, target, methods, ig_steps, samples) -> dict:
        o = _trust.prepare(t, layer, count, target, methods, ig_steps, samples)
        others = _trust.siblings(t)
        if not others:
            raise NetsightError(
                f"--agreement: {t.run.path} has no other completed seed of its configuration beside it in {t.run.path.parent}"
            )
        return {**o, "others": [str(p) for p in others]}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return list(FILES)

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..fileio import write_csv
        from ..train.rundir import open_run

        idx, x, targets, _ = _trust.images_and_targets(t, o)
        assert t.run is not None  # needs_run
        runs = [_trust.maps_of(t, t.model, x, idx, targets, o, t.folder)]
        seeds = [t.run.config.seed]
        for other in o["others"]:
            run = open_run(other)
            runs.append(_trust.maps_of(t, run.model(t.device), x, idx, targets, o, Path(other)))
            seeds.append(run.config.seed)
        rows = seed_agreement(runs, o["methods"])
        values = pair_values(runs, seeds, [int(i) for i in idx], o["methods"], x)
        return [
            write_csv(t.folder / FILES[0], COLUMNS, [r.values() for r in rows]),
            write_csv(t.folder / FILES[1], VALUE_COLUMNS, values),
        ]

    def report(self, run, label: str, ran: Ran) -> list[ReportItem]:
        return []  # the study report's "Which pictures to trust" section reads tables/seed_agreement.csv itself
