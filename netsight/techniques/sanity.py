"""Sanity checks for attribution maps: Adebayo et al., "Sanity Checks for Saliency Maps" (NeurIPS 2018).
The model-parameter randomisation test (section 3) compares each method's maps of a few images on the
trained model with its maps of the same images, for the same classes, after cascading randomisation (the
layers re-initialised from the logits down, one more at each depth) and independent randomisation (one
layer alone; the randomisation: `ops/randomise.py`, where normalisation layers get random weights and
biases at their trained scale rather than the identity), by the similarity measures of
`ops/similarity.py` (Spearman with and without absolute values, SSIM, HOG): a method whose maps stay alike
when the weights they should explain are gone shows the image more than the model. The data randomisation
test (section 4, `compare_models`) makes the same comparison with a model trained on permuted labels, for
a suite run whose configuration was also trained so.

Random draws: the whole randomisation is repeated `draws` times, draw d with seed `seed + d`, so every
number covers the random weights as well as the images. The default, 5 draws, was chosen by measurement
(docs/inspect.md, "Random draws"): on LeNet5 trained on MNIST (2,000 iterations, 98% test accuracy), 12
draws on 12 test images, cascading randomisation, Spearman of |map| at each of the 4 depths, the mean over
the first k draws moved from the 12-draw mean by at most 0.016 (k = 1), 0.013 (k = 3), 0.010 (k = 5) for the
gradient, guided backprop, SmoothGrad, gradient x input and integrated gradients (their per-draw means
differ by 0.025 or less), but by 0.11, 0.065, 0.059 and 0.026 (k = 1, 3, 5, 10) for Grad-CAM and guided
Grad-CAM, whose per-draw means differ by 0.08-0.15 (as much as their images do). Five draws settle the
first group and bring Grad-CAM's pooled interval to about its 12-draw width at most depths; what remains of
the draws' spread is inside every interval, and a verdict it leaves unsettled says more draws would settle it.

Chance levels, measured on the same images: each map against the input's pixel intensities (`chance:
input`) and its Sobel edge magnitude (`chance: edges`), and two independently randomised models' maps
against each other (`chance: random models`: the fully cascaded model of draw d against that of draw d+1).
Images with a constant background (MNIST's digits on 0) are also compared on their foreground pixels only
(`region` "foreground"), where a map cannot look alike merely by being flat on the background.

Cost: deep models are measured at a schedule of depths (`ops.randomise.depth_schedule`): at most
`most_depths` (default 12): every depth of a model with no more layers than that (LeNet5: 4, cnn-bn: 9),
else the top 3 layers (where the class evidence is formed) and 9 depths evenly spaced down to the first
layer (ResNet-18: 41 layers, depths 1, 2, 3, 4, 9, 13, 18, 22, 27, 32, 36, 41), so the curve still runs from
the logits to the fully randomised model. Each method's maps of all images come from one call per
randomised model; one working copy of the model is re-initialised in place (no copy per depth); the
trained model's maps are computed once for every draw. Before the long part a progress line estimates the
whole run from the time of the first randomised model.

The class each map explains is fixed by the trained model (the images' true classes when known, else its
predictions) for every randomised copy; the methods are attribution method objects
(`attribution_methods.py`: `Saliency(model)`, `GradCAM(model, layer)`, ...), rebuilt on each copy with
their settings (`method.on(copy)`). Writes figures/sanity_grid.png (the paper's Fig. 2 for draw 0: per
method, rows of images; columns: the input, the trained model's map, the maps as the layers are
re-initialised), figures/sanity_curves.png (similarity per depth, 95% bands over images and draws),
tables/sanity_values.csv (every value: method, mode, layer, depth, draw, image, region, metric, value;
docs/contracts: the verdicts read it) and tables/sanity.csv (the summary: method, mode, layer, depth,
metric, mean, lo, hi, n, draws; region "all")."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, NamedTuple, Optional, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..ops.randomise import cascading, check_layers, depth_schedule, randomisable_layers, randomised
from ..ops.similarity import METRICS, REGION_METRICS, compare, compare_region, edges, foreground_masks, intensity
from ..ops.similarity import summarise
from ..errors import NetsightError
from .attribution_methods import AttributionMethod
from .target import Target
from .base import Option, Ran, ReportItem, Technique, register
from . import _trust

if TYPE_CHECKING:
    from matplotlib.figure import Figure


MODES = ("cascading", "independent")
PERMUTED = "permuted labels"
CHANCE_INPUT, CHANCE_EDGES, CHANCE_RANDOM = "chance: input", "chance: edges", "chance: random models"
CHANCES = (CHANCE_INPUT, CHANCE_EDGES, CHANCE_RANDOM)
COLUMNS = ("method", "mode", "layer", "depth", "metric", "mean", "lo", "hi", "n", "draws")
VALUE_COLUMNS = ("method", "mode", "layer", "depth", "draw", "image", "region", "metric", "value")
DRAWS = 5  # the default number of randomisation draws: see the module docstring and docs/inspect.md
MOST_DEPTHS = 12  # the most depths measured per mode (ops.randomise.depth_schedule)


@dataclass(frozen=True)
class SanityRow:
    """A summary: the mean over images and draws of one (method, mode, depth, metric) and its 95% interval."""

    method: str
    mode: str  # cascading | independent | permuted labels | chance: ...
    layer: str  # cascading: the lowest layer randomised so far; independent: the one layer
    depth: int  # the layer's place from the top (1: the logits' layer)
    metric: str
    mean: float
    lo: float
    hi: float
    n: int  # images with a value (a constant map has none)
    draws: int = 1  # randomisation draws pooled

    def values(self) -> tuple:
        return tuple(getattr(self, c) for c in COLUMNS)


class SanityValue(NamedTuple):
    """One similarity of one image's maps (tables/sanity_values.csv); value NaN: undefined (a constant map)."""

    method: str
    mode: str
    layer: str
    depth: int
    draw: int
    image: int
    region: str  # all | foreground
    metric: str
    value: float

    def cells(self) -> tuple:
        return (*self[:-1], "" if math.isnan(self.value) else self.value)


@dataclass
class SanityResult:
    images: torch.Tensor  # [N, C, H, W] pixels in [0, 1]
    targets: list[int]  # the class each map explains
    layers: list[str]  # the layer of each measured depth (the lowest randomised), from the logits down
    originals: dict[str, torch.Tensor]  # method -> maps on the trained model [N, H, W]
    cascade: dict[str, list[torch.Tensor]]  # method -> draw 0's maps after each measured cascading depth
    rows: list[SanityRow] = field(default_factory=list)
    values: list[SanityValue] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)  # the measured depths (1: the logits' layer)
    n_layers: int = 0  # the randomisable layers considered (every layer, or the top --randomise-layers)
    draws: int = 1
    seed: int = 0

    def row(self, method: str, mode: str, metric: str, depth: int) -> Optional[SanityRow]:
        for r in self.rows:
            if (r.method, r.mode, r.metric, r.depth) == (method, mode, metric, depth):
                return r
        return None


def _maps(methods: Sequence[AttributionMethod], model: nn.Module, x: torch.Tensor, targets: list[int]) -> dict[str, torch.Tensor]:
    """Each method's maps of `x` for `targets` on `model` (the methods' own model, or a copy of it)."""
    return {m.name: m.on(model).attribute(x, targets).maps.detach().float().cpu() for m in methods}


def _pictures(x: torch.Tensor, maps: Mapping[str, torch.Tensor]) -> Optional[torch.Tensor]:
    """`x` as images [N, C, H, W] whose pixels the maps [N, H, W] cover one for one (a recurrent net's [N, T, F]
    input as one channel), or None where they do not: then no chance levels against the input and no foreground."""
    pictures = x[:, None] if x.dim() == 3 else x
    if pictures.dim() != 4 or any(tuple(m.shape) != (len(x), *pictures.shape[2:]) for m in maps.values()):
        return None
    return pictures


def _values(
    method: str, mode: str, layer: str, depth: int, draw: int, ids: Sequence[int], a, b, metrics, masks
) -> list[SanityValue]:
    """Every metric of maps `a` against `b`, per image, on the whole image and on each foreground mask."""
    out = []
    for metric, v in compare(a, b, metrics).items():
        out += [
            SanityValue(method, mode, layer, depth, draw, int(i), "all", metric, float(x))
            for i, x in zip(ids, v.tolist(), strict=True)
        ]
    region = [m for m in metrics if m in REGION_METRICS]
    if region and any(m is not None for m in masks):
        for metric, v in compare_region(a, b, masks, region).items():
            out += [
                SanityValue(method, mode, layer, depth, draw, int(i), "foreground", metric, float(x))
                for i, x, mask in zip(ids, v.tolist(), masks, strict=True)
                if mask is not None
            ]
    return out


def pooled(values: np.ndarray) -> tuple[float, float, float, int]:
    """(mean, lo, hi, images with a value) of values [draws, images] (NaN: none): the mean over every value
    and a 95% interval that adds the spread between images (of their means over draws) and between draws (of
    their means over images), Student's t with Welch-Satterthwaite's degrees of freedom, clipped to [-1, 1]. One
    draw: the t interval over images (`summarise`), clipped. A rough interval for the figure and the summary table."""
    from ..report.stats import t975  # the one t-table of the project (a pure module), as ops.similarity.summarise

    v = np.asarray(values, dtype=float).reshape(-1 if np.ndim(values) == 1 else len(values), -1)
    ok = ~np.isnan(v)
    n = int(ok.any(axis=0).sum())
    rows = [r for r in range(len(v)) if ok[r].any()]
    if len(rows) <= 1:
        s = summarise(torch.from_numpy(v[rows[0]] if rows else np.array([math.nan])))
        return s.mean, max(-1.0, s.lo), min(1.0, s.hi), s.n
    mean = float(v[ok].mean())
    per_image = np.nanmean(v[:, ok.any(axis=0)], axis=0)
    per_draw = np.nanmean(v[rows], axis=1)
    a = per_image.var(ddof=1) / len(per_image) if len(per_image) > 1 else 0.0
    b = per_draw.var(ddof=1) / len(per_draw)
    se2 = a + b
    if not se2 > 0:
        return mean, mean, mean, n
    df = se2**2 / ((a**2 / (len(per_image) - 1) if len(per_image) > 1 else 0.0) + b**2 / (len(per_draw) - 1) or 1e-300)
    h = t975(max(1, int(df))) * math.sqrt(se2)  # whole degrees of freedom, rounded down: wider
    return mean, max(-1.0, mean - h), min(1.0, mean + h), n


def summary_rows(values: Sequence[SanityValue], region: str = "all") -> list[SanityRow]:
    """The summary of `values` of one region: a row per (method, mode, layer, depth, metric), in their order."""
    groups: dict[tuple, dict[tuple[int, int], float]] = {}
    for v in values:
        if v.region == region:
            groups.setdefault((v.method, v.mode, v.layer, v.depth, v.metric), {})[(v.draw, v.image)] = v.value
    out = []
    for (method, mode, layer, depth, metric), cells in groups.items():
        draws = sorted({d for d, _ in cells})
        images = sorted({i for _, i in cells})
        grid = np.full((len(draws), len(images)), math.nan)
        for (d, i), x in cells.items():
            grid[draws.index(d), images.index(i)] = x
        mean, lo, hi, n = pooled(grid)
        out.append(SanityRow(method, mode, layer, depth, metric, mean, lo, hi, n, len(draws)))
    return out


ESTIMATE_FROM_S = 10  # the randomised models' estimated time is printed when it is at least this long


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def sanity_checks(
    methods: Sequence[AttributionMethod],
    x: torch.Tensor,
    targets: list[int],
    modes: Sequence[str] = MODES,
    metrics: Sequence[str] = METRICS,
    seed: int = 0,
    progress: Optional[Callable[[str], None]] = None,
    max_layers: Optional[int] = None,
    draws: int = DRAWS,
    most_depths: Optional[int] = MOST_DEPTHS,
    images: Optional[Sequence[int]] = None,
    chance: bool = True,
) -> SanityResult:
    """The model-parameter randomisation test for every method of `methods` (method objects on one model) on
    images `x` ([N, C, H, W] in [0, 1], on the model's device) and their classes `targets`. The user's model
    is not modified (every randomised model is a copy); draw d of `draws` draws its random weights from seed
    `seed + d` (the same for every method). `max_layers`: only the top that many layers; `most_depths`: the
    most depths measured (`depth_schedule`; None: every depth); `images`: the images' indices in their set
    (for the values table; default 0..N-1); `chance`: also measure the chance levels (input, edges, random
    models). Works on any model whose layers with parameters have a reset_parameters() (CNNs, recurrent nets)."""
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown randomisation mode(s) {bad}; known: {', '.join(MODES)}")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws={draws!r}: expected a whole number of randomisation draws, at least 1")
    model = methods[0].inner
    names = [m.name for m in methods]
    every = randomisable_layers(model)[: max_layers or None]
    check_layers(model, every)
    depths = depth_schedule(len(every), most_depths)
    ids = list(range(len(x))) if images is None else [int(i) for i in images]
    originals = _maps(methods, model, x, targets)
    pictures = _pictures(x, originals)
    masks = foreground_masks(pictures) if pictures is not None else [None] * len(x)
    result = SanityResult(
        x.detach().cpu(), list(targets), [every[d - 1] for d in depths], originals, {m: [] for m in names},
        depths=depths, n_layers=len(every), draws=draws, seed=seed,
    )  # fmt: skip
    values = result.values
    if chance and pictures is not None:
        pixels, sobel = intensity(pictures), edges(pictures)
        for m in names:
            values += _values(m, CHANCE_INPUT, "", 0, 0, ids, originals[m], pixels, metrics, masks)
            values += _values(m, CHANCE_EDGES, "", 0, 0, ids, originals[m], sobel, metrics, masks)
    copies = draws * len(depths) * sum(mode in modes for mode in MODES)
    clock = {"done": 0, "spent": 0.0}

    def measured(twin: nn.Module) -> dict[str, torch.Tensor]:
        start = time.perf_counter()
        maps = _maps(methods, twin, x, targets)
        clock["spent"] += time.perf_counter() - start
        clock["done"] += 1
        if progress and clock["done"] == 1 and copies > 1 and clock["spent"] * copies >= ESTIMATE_FROM_S:
            progress(
                f"about {_minutes(clock['spent'] * copies)} for {len(depths)} of {len(every)} layers x {draws} draws x "
                f"{sum(mode in modes for mode in MODES)} modes x {len(names)} methods on {len(x)} images "
                "(--randomise-depths, --randomise-layers, --draws to change)"
            )
        return maps

    deepest: dict[int, dict[str, torch.Tensor]] = {}
    work: Optional[nn.Module] = None
    for draw in range(draws):
        s = seed + draw
        if "cascading" in modes:
            for depth, (layer, twin) in enumerate(cascading(model, s, copies=False), 1):
                if depth > len(every):
                    break
                if depth not in depths:
                    continue
                if progress:
                    progress(f"draw {draw + 1}/{draws}: cascading randomisation down to {layer}")
                maps = measured(twin)
                if depth == depths[-1]:
                    deepest[draw] = maps
                for m in names:
                    if draw == 0:
                        result.cascade[m].append(maps[m])
                    values += _values(m, "cascading", layer, depth, draw, ids, originals[m], maps[m], metrics, masks)
        if "independent" in modes:
            if work is None:
                work = copy.deepcopy(model).train(model.training)  # one working copy for every layer and draw
            for depth in depths:
                layer = every[depth - 1]
                if progress:
                    progress(f"draw {draw + 1}/{draws}: independent randomisation of {layer}")
                with randomised(work, layer, s) as twin:
                    maps = measured(twin)
                for m in names:
                    values += _values(m, "independent", layer, depth, draw, ids, originals[m], maps[m], metrics, masks)
    if chance and len(deepest) > 1:
        depth = depths[-1]
        for draw in range(draws - 1):
            for m in names:
                a, b = deepest[draw][m], deepest[draw + 1][m]
                values += _values(m, CHANCE_RANDOM, every[depth - 1], depth, draw, ids, a, b, metrics, masks)
    result.rows = summary_rows(values)
    return result


def compare_values(
    methods: Sequence[AttributionMethod],
    other: nn.Module,
    x: torch.Tensor,
    targets: list[int],
    mode: str = PERMUTED,
    metrics: Sequence[str] = METRICS,
    images: Optional[Sequence[int]] = None,
) -> list[SanityValue]:
    """Each method's maps on its own model against its maps on `other` (the same images and classes), per image
    (and foreground region): the data randomisation test when `other` was trained on permuted labels. Layer "",
    depth 0, draw 0."""
    ids = list(range(len(x))) if images is None else [int(i) for i in images]
    a, b = _maps(methods, methods[0].inner, x, targets), _maps(methods, other, x, targets)
    pictures = _pictures(x, a)
    masks = foreground_masks(pictures) if pictures is not None else [None] * len(x)
    return [v for m in methods for v in _values(m.name, mode, "", 0, 0, ids, a[m.name], b[m.name], metrics, masks)]


def compare_models(
    methods: Sequence[AttributionMethod],
    other: nn.Module,
    x: torch.Tensor,
    targets: list[int],
    mode: str = PERMUTED,
    metrics: Sequence[str] = METRICS,
) -> list[SanityRow]:
    """The summary rows of `compare_values` (mean over images and its 95% interval, region "all")."""
    return summary_rows(compare_values(methods, other, x, targets, mode, metrics))


FILES = ["figures/sanity_grid.png", "figures/sanity_curves.png", "tables/sanity.csv", "tables/sanity_values.csv"]


METRIC_TITLES = {
    "spearman": "Spearman rank correlation",
    "spearman_abs": "Spearman of |map|",
    "ssim": "SSIM of |map| (scaled to 0..1)",
    "hog": "HOG similarity of |map|",
}


def plot_sanity_grid(
    images: torch.Tensor,
    originals: Mapping[str, torch.Tensor],
    cascade: Mapping[str, Sequence[torch.Tensor]],
    layers: Sequence[str],
    targets: Sequence[int],
    classes: tuple[str, ...],
    title: str,
    shown: int = 2,
) -> Figure:
    """Adebayo Fig. 2: for each method, rows of `shown` images; columns: the input, the map on the trained
    model, then the map after cascading randomisation down to each layer (logits first). Every map is
    divided by its own largest |value| and drawn on one diverging scale."""
    from .. import style
    from ..plotting import plt, pixel_image, scaled, method_title

    methods = [m for m in originals if cascade.get(m)]
    n = min(shown, len(images))
    depth = min(len(layers), min(len(cascade[m]) for m in methods))
    rows, cols = n * len(methods), depth + 2
    fig = plt.figure(figsize=(1.05 * cols + 1.9, 1.1 * rows + 1.9))
    grid = fig.add_gridspec(rows, cols + 1, width_ratios=[1.0] * cols + [0.07], wspace=0.12, hspace=0.12)
    norm = style.signed_norm(1.0)
    im = None
    for k, m in enumerate(methods):
        for i in range(n):
            r = k * n + i
            axes = [fig.add_subplot(grid[r, j]) for j in range(cols)]
            style.mark(axes[0].imshow(pixel_image(images[i]), cmap="gray", vmin=0, vmax=1), "pixels")
            maps = [originals[m][i]] + [cascade[m][d][i] for d in range(depth)]
            for j, a in enumerate(maps, 1):
                im = style.mark(axes[j].imshow(scaled(a), cmap=style.DIVERGING, norm=norm), "signed")
            for ax in axes:
                ax.set_xticks([])
                ax.set_yticks([])
            name = classes[targets[i]] if 0 <= targets[i] < len(classes) else str(targets[i])
            axes[0].set_ylabel(f"{method_title(m)}\n({name})" if i == 0 else f"({name})", fontsize=style.SMALL)
            if r == 0:
                axes[0].set_title("input", fontsize=style.SMALL)
                axes[1].set_title("trained", fontsize=style.SMALL)
                for d in range(depth):
                    axes[d + 2].set_title(f"random\nto {layers[d]}", fontsize=style.SMALL)
    assert im is not None
    bar = fig.colorbar(im, cax=fig.add_subplot(grid[:, -1]))
    bar.set_label("value / largest |value| of that map (red: raises the class score, blue: lowers it)")
    fig.suptitle(
        f"{title}\ncascading randomisation (Adebayo et al. 2018): each method's map as the weights are re-initialised\n"
        "from the logits down; a map that stays the same does not depend on what the model learned"
    )
    w, h = fig.get_size_inches()  # explicit margins (inches): tight_layout cannot place a colour bar spanning rows
    fig.subplots_adjust(left=1.0 / w, right=1 - 0.75 / w, top=1 - 1.45 / h, bottom=0.15 / h)
    return fig


def _curves_of(rows: Sequence, mode: str, metric: str, method: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:

    sel = sorted((r for r in rows if r.mode == mode and r.metric == metric and r.method == method), key=lambda r: r.depth)
    return (
        np.array([r.depth for r in sel]),
        np.array([r.mean for r in sel], dtype=float),
        np.array([r.lo for r in sel], dtype=float),
        np.array([r.hi for r in sel], dtype=float),
    )


def plot_sanity_curves(rows: Sequence, layers: Sequence[str], title: str, n_images: int) -> Figure:
    """Similarity of the randomised model's maps to the trained model's, per measured depth, with 95% bands
    over images and random draws: rows of panels per randomisation mode present, a column per similarity
    measure. The depths are labelled by the rows' layers (`layers`: the labels of depths 1, 2, ... where a
    row has none)."""
    from matplotlib.lines import Line2D
    from .. import style
    from ..plotting import plt, method_title, tight_with_title

    modes = [m for m in ("cascading", "independent") if any(r.mode == m for r in rows)]
    metrics = [m for m in METRIC_TITLES if any(r.metric == m for r in rows)]
    methods = list(dict.fromkeys(r.method for r in rows if r.mode in modes))
    fig, axes = plt.subplots(len(modes), len(metrics), figsize=(3.3 * len(metrics), 2.9 * len(modes) + 1.0), squeeze=False)
    named = {r.depth: r.layer for r in rows if r.mode in modes and r.layer}
    ticks = sorted({r.depth for r in rows if r.mode in modes})
    x_labels = [named.get(d, layers[d - 1] if 0 < d <= len(layers) else str(d)) for d in ticks]
    for i, mode in enumerate(modes):
        for j, metric in enumerate(metrics):
            ax = axes[i, j]
            for m in methods:
                d, mean, lo, hi = _curves_of(rows, mode, metric, m)
                if not len(d):
                    continue
                colour = style.method_colour(m)
                ax.plot(d, mean, "-o", color=colour, markersize=3, label=method_title(m))
                ok = ~(np.isnan(lo) | np.isnan(hi))
                ax.fill_between(d[ok], lo[ok], hi[ok], color=colour, alpha=0.15, linewidth=0)
            ax.axhline(0, color="#999999", linewidth=0.6)
            ax.set_xticks(ticks)
            ax.set_xticklabels(x_labels, rotation=60, ha="right")
            lo_y = -0.5 if metric.startswith("spearman") or metric == "hog" else -0.1
            ax.set_ylim(lo_y, 1.05)
            if i == 0:
                ax.set_title(METRIC_TITLES[metric])
            if j == 0:
                ax.set_ylabel(f"{mode}: similarity\nto the trained model's maps")
            ax.set_xlabel("re-initialised from the logits down to" if mode == "cascading" else "the one layer re-initialised")

    handles = [Line2D([], [], color=style.method_colour(m), marker="o", markersize=3, label=method_title(m)) for m in methods]
    fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)), frameon=False)
    fig.suptitle(
        f"{title}: how alike each method's maps stay as the weights are randomised\nmean over {n_images} images "
        "and the random draws (band: 95% interval over both); high = the map does not depend on the randomised layers"
    )
    legend_rows = int(np.ceil(len(handles) / 5))
    tight_with_title(fig, title_inches=0.55, bottom_inches=0.25 + 0.22 * legend_rows)
    return fig


@register
class SanityTechnique(Technique):
    name = "sanity"
    summary = "sanity checks of the attribution maps (Adebayo et al. 2018): cascading and independent weight randomisation"
    applies_to = "cnn"
    options = (
        *_trust.options(8),
        Option(
            "randomise_layers",
            "int",
            None,
            "sanity: randomise only the top N layers with parameters (default: all, from the logits down to the first)",
            lo=1,
            hi=100_000,
        ),
        Option(
            "randomise_depths",
            "int",
            MOST_DEPTHS,
            "sanity: measure at most N depths: with more layers, the top 3 and the rest evenly spaced down to the first",
            lo=1,
            hi=100_000,
        ),
        Option("draws", "int", DRAWS, "sanity: randomisation draws (draw d: seed --seed + d)", lo=1, hi=1000),
        Option("seed", "int", 0, "sanity: the seed of the first randomisation draw", lo=0, hi=2**63 - 1),
    )
    section = "trust"
    compute = staticmethod(sanity_checks)

    def prepare(
        self, t: Target, layer, count, target, methods, ig_steps, samples, randomise_layers, randomise_depths, draws, seed
    ) -> dict:
        o = _trust.prepare(t, layer, count, target, methods, ig_steps, samples)
        for flag, value in (
            ("--draws", draws),
            ("--randomise-depths", randomise_depths),
            ("--randomise-layers", randomise_layers),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise NetsightError(f"{flag} {value!r}: expected a whole number, at least 1")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise NetsightError(f"--seed {seed!r}: expected a whole number, at least 0")
        check_layers(t.model, randomisable_layers(t.model)[: randomise_layers or None])  # before any write
        return {**o, "randomise_layers": randomise_layers, "randomise_depths": randomise_depths, "draws": draws, "seed": seed}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return list(FILES)

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..fileio import write_csv
        from ..plotting import save_figure

        idx, x, targets, kind = _trust.images_and_targets(t, o)
        methods = _trust.method_objects(t, o)
        ids = [int(i) for i in idx]

        def say(text: str) -> None:
            if t.progress:
                print(f"sanity: {text}", flush=True)

        result = sanity_checks(
            methods,
            x,
            targets,
            progress=say,
            max_layers=o["randomise_layers"],
            draws=o["draws"],
            seed=o["seed"],
            most_depths=o["randomise_depths"],
            images=ids,
        )
        values = list(result.values)
        for twin in _trust.siblings(t, labels="permuted", same_group=False)[:1]:
            from ..train.rundir import open_run

            other = open_run(twin).model(t.device)
            values += compare_values(methods, other, x, targets, mode=PERMUTED, images=ids)
            say(f"compared with {twin.name}, trained on permuted labels")
        rows = summary_rows(values)
        grid, curves, table, raw = (t.folder / p for p in FILES)
        last = result.seed + result.draws - 1
        seeds = f"seed {result.seed}" if result.draws == 1 else f"seeds {result.seed}-{last}"
        title = f"{t.title}, {result.draws} random draw{'s' if result.draws > 1 else ''} of the weights (randomisation {seeds})"
        return [
            save_figure(
                plot_sanity_grid(
                    result.images,
                    result.originals,
                    result.cascade,
                    result.layers,
                    targets,
                    t.classes,
                    f"{t.title}: the weights' first random draw (randomisation seed {result.seed})",
                ),
                grid,
            ),
            save_figure(plot_sanity_curves(rows, result.layers, title, len(idx)), curves),
            write_csv(table, COLUMNS, [r.values() for r in rows]),
            write_csv(raw, VALUE_COLUMNS, [v.cells() for v in values]),
        ]

    def report(self, run, label: str, ran: Ran) -> list[ReportItem]:
        grid, curves = ran.files[:2]
        return [
            ReportItem(
                "figure",
                f"{label}: cascading randomisation, the paper's Fig. 2. Each method's map of the same images on the trained "
                "model, then after re-initialising the layers from the logits down (the first random draw).",
                grid,
            ),
            ReportItem(
                "figure",
                f"{label}: similarity of each method's maps on the randomised model to its maps on the trained model, "
                "per layer (bands: 95% interval over images and random draws).",
                curves,
            ),
        ]
