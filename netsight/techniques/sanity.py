"""Sanity checks for attribution maps: Adebayo et al., "Sanity Checks for Saliency Maps" (NeurIPS 2018).
The model-parameter randomisation test (section 3) compares each method's maps of a few images on the
trained model with its maps of the same images, for the same classes, after cascading randomisation (the
layers re-initialised from the logits down, one more at each depth) and independent randomisation (one
layer alone; the randomisation: `ops/randomise.py`), by the similarity measures of `ops/similarity.py`
(Spearman with and without absolute values, SSIM, HOG), each a mean over the images with its 95%
interval: a method whose maps stay alike when the weights they should explain are gone shows the image
more than the model. The data randomisation test (section 4, `compare_models`) makes the same comparison
with a model trained on permuted labels, for a suite run whose configuration was also trained so. The
class each map explains is fixed by the trained model (the images' true classes when known, else its
predictions) for every randomised copy; the methods are attribution method objects
(`attribution_methods.py`: `Saliency(model)`, `GradCAM(model, layer)`, ...), rebuilt on each copy with
their settings (`method.on(copy)`). Writes figures/sanity_grid.png (the paper's Fig. 2: per method, rows
of images; columns: the input, the trained model's map, the maps as the layers are re-initialised),
figures/sanity_curves.png (similarity per depth, 95% bands over images) and tables/sanity.csv (method,
mode, layer, depth, metric, mean, lo, hi, n)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping, Optional, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..ops.randomise import cascading, independent, randomisable_layers, check_layers
from ..ops.similarity import METRICS, compare, summarise
from .attribution_methods import AttributionMethod
from .target import Target
from .base import Option, Ran, ReportItem, Technique, register
from . import _trust

if TYPE_CHECKING:
    from matplotlib.figure import Figure


MODES = ("cascading", "independent")
COLUMNS = ("method", "mode", "layer", "depth", "metric", "mean", "lo", "hi", "n")


@dataclass(frozen=True)
class SanityRow:
    method: str
    mode: str  # cascading | independent | permuted labels
    layer: str  # cascading: the lowest layer randomised so far; independent: the one layer
    depth: int  # the layer's place from the top (1: the logits' layer)
    metric: str
    mean: float
    lo: float
    hi: float
    n: int  # images with a value (a constant map has none)

    def values(self) -> tuple:
        return tuple(getattr(self, c) for c in COLUMNS)


@dataclass
class SanityResult:
    images: torch.Tensor  # [N, C, H, W] pixels in [0, 1]
    targets: list[int]  # the class each map explains
    layers: list[str]  # the randomisable layers, from the logits down
    originals: dict[str, torch.Tensor]  # method -> maps on the trained model [N, H, W]
    cascade: dict[str, list[torch.Tensor]]  # method -> maps after each cascading depth (1..len(layers))
    rows: list[SanityRow] = field(default_factory=list)

    def row(self, method: str, mode: str, metric: str, depth: int) -> Optional[SanityRow]:
        for r in self.rows:
            if (r.method, r.mode, r.metric, r.depth) == (method, mode, metric, depth):
                return r
        return None


def _maps(methods: Sequence[AttributionMethod], model: nn.Module, x: torch.Tensor, targets: list[int]) -> dict[str, torch.Tensor]:
    """Each method's maps of `x` for `targets` on `model` (the methods' own model, or a copy of it)."""
    return {m.name: m.on(model).attribute(x, targets).maps.detach().float().cpu() for m in methods}


def _rows(method: str, mode: str, layer: str, depth: int, a: torch.Tensor, b: torch.Tensor, metrics) -> list[SanityRow]:
    out = []
    for metric, values in compare(a, b, metrics).items():
        s = summarise(values)
        out.append(SanityRow(method, mode, layer, depth, metric, s.mean, s.lo, s.hi, s.n))
    return out


def sanity_checks(
    methods: Sequence[AttributionMethod],
    x: torch.Tensor,
    targets: list[int],
    modes: Sequence[str] = MODES,
    metrics: Sequence[str] = METRICS,
    seed: int = 0,
    progress: Optional[Callable[[str], None]] = None,
    max_layers: Optional[int] = None,
) -> SanityResult:
    """The model-parameter randomisation test for every method of `methods` (method objects on one model) on
    images `x` ([N, C, H, W] in [0, 1], on the model's device) and their classes `targets`. The user's model
    is not modified (every randomised model is a copy); `seed` draws the random weights (the same for every
    method). `max_layers`: only the top that many layers (cascading: that many depths; independent: those layers)."""
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"unknown randomisation mode(s) {bad}; known: {', '.join(MODES)}")
    model = methods[0].inner
    names = [m.name for m in methods]
    layers = randomisable_layers(model)[: max_layers or None]
    originals = _maps(methods, model, x, targets)
    result = SanityResult(x.detach().cpu(), list(targets), layers, originals, {m: [] for m in names})
    if "cascading" in modes:
        for depth, (layer, twin) in enumerate(cascading(model, seed), 1):
            if depth > len(layers):
                break
            if progress:
                progress(f"cascading randomisation down to {layer}")
            maps = _maps(methods, twin, x, targets)
            for m in names:
                result.cascade[m].append(maps[m])
                result.rows += _rows(m, "cascading", layer, depth, originals[m], maps[m], metrics)
    if "independent" in modes:
        for depth, layer in enumerate(layers, 1):
            if progress:
                progress(f"independent randomisation of {layer}")
            twin = independent(model, layer, seed)
            maps = _maps(methods, twin, x, targets)
            for m in names:
                result.rows += _rows(m, "independent", layer, depth, originals[m], maps[m], metrics)
    return result


def compare_models(
    methods: Sequence[AttributionMethod],
    other: nn.Module,
    x: torch.Tensor,
    targets: list[int],
    mode: str = "permuted labels",
    metrics: Sequence[str] = METRICS,
) -> list[SanityRow]:
    """Each method's maps on its own model against its maps on `other` (the same images and classes): the data
    randomisation test when `other` was trained on permuted labels. Rows have layer "" and depth 0."""
    a, b = _maps(methods, methods[0].inner, x, targets), _maps(methods, other, x, targets)
    return [row for m in methods for row in _rows(m.name, mode, "", 0, a[m.name], b[m.name], metrics)]


FILES = ["figures/sanity_grid.png", "figures/sanity_curves.png", "tables/sanity.csv"]
PERMUTED = "permuted labels"


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
    fig = plt.figure(figsize=(1.05 * cols + 1.9, 1.1 * rows + 1.7))
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
        f"{title}: cascading randomisation (Adebayo et al. 2018): each method's map as the weights are\n"
        "re-initialised from the logits down; a map that stays the same does not depend on what the model learned"
    )
    w, h = fig.get_size_inches()  # explicit margins (inches): tight_layout cannot place a colour bar spanning rows
    fig.subplots_adjust(left=1.0 / w, right=1 - 0.75 / w, top=1 - 1.25 / h, bottom=0.15 / h)
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
    """Similarity of the randomised model's maps to the trained model's, per depth, with 95% bands over
    images: rows of panels per randomisation mode present, a column per similarity measure."""
    from matplotlib.lines import Line2D
    from .. import style
    from ..plotting import plt, method_title, tight_with_title

    modes = [m for m in ("cascading", "independent") if any(r.mode == m for r in rows)]
    metrics = [m for m in METRIC_TITLES if any(r.metric == m for r in rows)]
    methods = list(dict.fromkeys(r.method for r in rows if r.mode in modes))
    fig, axes = plt.subplots(len(modes), len(metrics), figsize=(3.3 * len(metrics), 2.9 * len(modes) + 1.0), squeeze=False)
    x_labels = list(layers)
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
            ax.set_xticks(range(1, len(x_labels) + 1))
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
        f"{title}: how alike each method's maps stay as the weights are randomised (mean over {n_images} images, "
        "band: 95% interval)\nhigh = the map does not depend on the randomised layers"
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
    )
    section = "trust"
    compute = staticmethod(sanity_checks)

    def prepare(self, t: Target, layer, count, target, methods, ig_steps, samples, randomise_layers) -> dict:
        o = _trust.prepare(t, layer, count, target, methods, ig_steps, samples)
        check_layers(t.model, randomisable_layers(t.model)[: randomise_layers or None])  # before any write
        return {**o, "randomise_layers": randomise_layers}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return list(FILES)

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..fileio import write_csv
        from ..plotting import save_figure

        idx, x, targets, kind = _trust.images_and_targets(t, o)
        methods = _trust.method_objects(t, o)

        def say(text: str) -> None:
            if t.progress:
                print(f"sanity: {text}", flush=True)

        result = sanity_checks(methods, x, targets, progress=say, max_layers=o["randomise_layers"])
        rows = list(result.rows)
        for twin in _trust.siblings(t, labels="permuted", same_group=False)[:1]:
            from ..train.rundir import open_run

            other = open_run(twin).model(t.device)
            rows += compare_models(methods, other, x, targets, mode=PERMUTED)
            say(f"compared with {twin.name}, trained on permuted labels")
        grid, curves, table = (t.folder / p for p in FILES)
        written = [
            save_figure(
                plot_sanity_grid(result.images, result.originals, result.cascade, result.layers, targets, t.classes, t.title),
                grid,
            ),
            save_figure(plot_sanity_curves(result.rows, result.layers, t.title, len(idx)), curves),
            write_csv(table, COLUMNS, [r.values() for r in rows]),
        ]
        return written

    def report(self, run, label: str, ran: Ran) -> list[ReportItem]:
        grid, curves, _ = ran.files
        return [
            ReportItem(
                "figure",
                f"{label}: cascading randomisation, the paper's Fig. 2. Each method's map of the same images on the trained "
                "model, then after re-initialising the layers from the logits down.",
                grid,
            ),
            ReportItem(
                "figure",
                f"{label}: similarity of each method's maps on the randomised model to its maps on the trained model, "
                "per layer (bands: 95% interval over images).",
                curves,
            ),
        ]
