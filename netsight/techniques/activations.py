"""Statistics of every convolution's activations (conv, ReLU, pool and batch-norm stages) over all the
images, streamed in batches: the assignment's activation tables. Memory does not grow with the dataset:
each batch is reduced to float64 per-channel accumulators, merged with Chan et al.'s parallel update of
Welford's algorithm (a numerically stable mean and variance). Percentiles come from a second pass that
fills a histogram of `bins` bins between the observed min and max and report the centre of the bin
holding the nearest-rank percentile, so they are off by at most half a bin, (max - min) / (2 * bins)
(tested); a percentile that falls among the exact zeros (counted exactly, as are the negatives) is
exactly 0."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Optional
from pathlib import Path

import torch
from torch import nn

from ..data import Dataset
from ..ops.hooks import forward_hooks, normalised_input
from ..ops.stages import Stage, conv_stages, conv_layers
from ..fileio import read_csv
from .. import style
from ..ops.inputs import Norm, check_norm, device_of, source_for
from .base import Ran, ReportItem, Technique, register
from .target import Target

if TYPE_CHECKING:
    from matplotlib.figure import Figure


PERCENTILES = (1, 50, 99)
BINS = 8192


@dataclass(frozen=True)
class ChannelMoments:
    """The accumulated per-channel tensors (float64, [C] each) of a ChannelAccumulator that has seen a batch."""

    count: torch.Tensor
    mean: torch.Tensor
    m2: torch.Tensor
    min: torch.Tensor
    max: torch.Tensor
    zeros: torch.Tensor
    negatives: torch.Tensor


@dataclass
class ChannelAccumulator:
    """Per-channel count/mean/M2/min/max/zeros over [N, C, ...] batches, float64 (all None before the first batch)."""

    count: Optional[torch.Tensor] = None
    mean: Optional[torch.Tensor] = None
    m2: Optional[torch.Tensor] = None
    min: Optional[torch.Tensor] = None
    max: Optional[torch.Tensor] = None
    zeros: Optional[torch.Tensor] = None
    negatives: Optional[torch.Tensor] = None

    def moments(self) -> ChannelMoments:
        """The accumulated tensors; a ValueError before the first `update`."""
        count, mean, m2, mn, mx = self.count, self.mean, self.m2, self.min, self.max
        zeros, negatives = self.zeros, self.negatives
        if count is None or mean is None or m2 is None or mn is None or mx is None or zeros is None or negatives is None:
            raise ValueError("ChannelAccumulator has seen no batch yet: nothing to summarise")
        return ChannelMoments(count, mean, m2, mn, mx, zeros, negatives)

    def update(self, x: torch.Tensor) -> None:
        v = x.detach().transpose(0, 1).reshape(x.shape[1], -1).double()  # [C, values]
        n_b = torch.full((v.shape[0],), float(v.shape[1]), dtype=torch.float64, device=v.device)
        mean_b = v.mean(1)
        m2_b = ((v - mean_b[:, None]) ** 2).sum(1)
        mn, mx, zeros, negatives = v.amin(1), v.amax(1), (v == 0).sum(1).double(), (v < 0).sum(1).double()
        if self.count is None:
            self.count, self.mean, self.m2, self.min, self.max = n_b, mean_b, m2_b, mn, mx
            self.zeros, self.negatives = zeros, negatives
            return
        a = self.moments()
        total = a.count + n_b
        delta = mean_b - a.mean
        self.mean = a.mean + delta * n_b / total
        self.m2 = a.m2 + m2_b + delta**2 * a.count * n_b / total
        self.count = total
        self.min, self.max = torch.minimum(a.min, mn), torch.maximum(a.max, mx)
        self.zeros = a.zeros + zeros
        self.negatives = a.negatives + negatives

    def overall(self) -> dict[str, float]:
        """All channels pooled (an exact Chan merge of the per-channel moments)."""
        a = self.moments()
        n = a.count.sum()
        mean = (a.count * a.mean).sum() / n
        m2 = (a.m2 + a.count * (a.mean - mean) ** 2).sum()
        return {
            "count": int(n.item()),
            "mean": mean.item(),
            "std": (m2 / n).sqrt().item(),
            "min": a.min.min().item(),
            "max": a.max.max().item(),
            "zero_frac": (a.zeros.sum() / n).item(),
        }


@dataclass
class ActivationStatistics:
    stages: list[Stage]
    shapes: dict[str, tuple[int, ...]]  # stage label -> (C, H, W)
    rows: list[dict] = field(default_factory=list)  # one per stage
    per_channel: list[dict] = field(default_factory=list)
    histograms: dict[str, tuple[torch.Tensor, float, float]] = field(default_factory=dict)  # label -> (counts, lo, hi)

    def plot(self, title: str = "model") -> Figure:
        """The activation histograms `netsight inspect --activations` draws."""
        return plot_activation_histograms(self, title)


def _batches(images: torch.Tensor, batch_size: int, device: torch.device):
    for start in range(0, len(images), batch_size):
        yield Dataset.normalise(images[start : start + batch_size].to(device))


def percentile_from_histogram(
    counts: torch.Tensor, lo: float, hi: float, q: float, negatives: Optional[float] = None, zeros: Optional[float] = None
) -> float:
    """Nearest-rank q-th percentile (0 < q <= 100) from a histogram over [lo, hi].

    With the exact counts of negative values and of zeros, a rank that falls among the
    zeros gives exactly 0 (after a ReLU most values are zeros)."""
    total = counts.sum()
    rank = torch.ceil(torch.tensor(q / 100.0, dtype=torch.float64) * total).clamp(min=1)
    if negatives is not None and zeros and negatives < rank.item() <= negatives + zeros:
        return 0.0
    index = int(torch.searchsorted(torch.cumsum(counts.double(), 0), rank).item())
    width = (hi - lo) / len(counts)
    return lo + (index + 0.5) * width if width > 0 else lo


@torch.no_grad()
def activation_statistics(
    model: nn.Module, images: torch.Tensor, batch_size: int = 500, bins: int = BINS
) -> ActivationStatistics:
    """Statistics of every conv stage of `model` over `images` (uint8 [N,C,H,W])."""
    device = next(model.parameters()).device
    return stream_activation_statistics(model, lambda: _batches(images, batch_size, device), tuple(images.shape[1:]), bins)


@torch.no_grad()
def stream_activation_statistics(
    model: nn.Module, batches: Callable[[], Iterable[torch.Tensor]], input_shape: tuple[int, ...], bins: int = BINS
) -> ActivationStatistics:
    """Statistics of every conv stage over the float batches `batches()` yields (called twice:
    moments, then histograms). Each stage is read inside its module's forward hook, before any
    later in-place operation (an in-place ReLU, a skip connection's `+=`) can change it; a module
    that runs several times per forward pass (a shared ReLU) counts at its first run only, the
    one `conv_stages` assigned to its convolution."""
    was_training = model.training
    model.eval()
    try:
        stages = conv_stages(model, input_shape)
        by_module: dict[str, list[Stage]] = {}
        for s in stages:
            by_module.setdefault(s.module, []).append(s)
        acc = {s.label: ChannelAccumulator() for s in stages}
        shapes: dict[str, tuple[int, ...]] = {}
        calls: dict[str, int] = {}

        def run(visit: Callable[[Stage, torch.Tensor], None]) -> None:
            def make(name: str):
                def hook(module, inputs, output):
                    calls[name] = calls.get(name, 0) + 1
                    if calls[name] == 1:
                        for stage in by_module[name]:
                            visit(stage, output)

                return hook

            with forward_hooks(model, {name: make(name) for name in by_module}):
                for x in batches():
                    calls.clear()
                    model(x.to(_device(model)))

        def moments(stage: Stage, out: torch.Tensor) -> None:
            acc[stage.label].update(out)
            shapes[stage.label] = tuple(out.shape[1:])

        run(moments)  # pass 1: moments, extremes, zeros
        ranges = {s.label: (acc[s.label].moments().min.min().item(), acc[s.label].moments().max.max().item()) for s in stages}
        hists = {s.label: torch.zeros(bins, dtype=torch.float64, device=_device(model)) for s in stages}

        def histogram(stage: Stage, out: torch.Tensor) -> None:
            lo, hi = ranges[stage.label]
            hists[stage.label] += torch.histc(out.reshape(-1).float(), bins=bins, min=lo, max=hi if hi > lo else lo + 1).double()

        run(histogram)  # pass 2: histograms for the percentiles
    finally:
        model.train(was_training)

    result = ActivationStatistics(stages, shapes)
    for s in stages:
        a = acc[s.label].moments()
        lo, hi = ranges[s.label]
        counts = hists[s.label].cpu()
        dead = (a.max <= 0).cpu()
        row = {
            "layer": s.layer,
            "stage": s.stage,
            "module": s.module,
            "shape": "x".join(map(str, shapes[s.label])),
            **acc[s.label].overall(),
            **{
                f"p{q}": percentile_from_histogram(counts, lo, hi, q, a.negatives.sum().item(), a.zeros.sum().item())
                for q in PERCENTILES
            },
            "dead_channels": int(dead.sum().item()),
            "channels": len(dead),
        }
        result.rows.append(row)
        result.histograms[s.label] = (counts, lo, hi)
        std = (a.m2 / a.count).sqrt()
        for c in range(len(dead)):
            result.per_channel.append(
                {
                    "layer": s.layer,
                    "stage": s.stage,
                    "channel": c,
                    "mean": a.mean[c].item(),
                    "std": std[c].item(),
                    "min": a.min[c].item(),
                    "max": a.max[c].item(),
                    "zero_frac": (a.zeros[c] / a.count[c]).item(),
                    "dead": bool(dead[c].item()),
                }
            )
    return result


STAT_COLUMNS = [
    "layer",
    "stage",
    "module",
    "shape",
    "count",
    "mean",
    "std",
    "min",
    "max",
    "zero_frac",
    "p1",
    "p50",
    "p99",
    "dead_channels",
    "channels",
]
CHANNEL_COLUMNS = ["layer", "stage", "channel", "mean", "std", "min", "max", "zero_frac", "dead"]


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


MD_COLUMNS = ["layer", "stage", "shape", "mean", "std", "min", "max", "zero_frac", "p1", "p50", "p99", "dead_channels"]
BATCH = 64  # images per batch while streaming
_TITLES = {"zero_frac": "zero fraction", "dead_channels": "dead channels"}


def activations(
    model: nn.Module, x, mean: Norm = None, std: Norm = None, batch_size: int = 64, progress: bool = False
) -> ActivationStatistics:
    """Statistics of every convolution's stages (conv, ReLU, pool, BN) over all the images,
    streamed twice (moments, then histograms)."""
    check_norm(model, mean, std)
    source = source_for(model, x)
    device = device_of(model)
    with normalised_input(model, mean, std):
        return stream_activation_statistics(
            model, lambda: (b.to(device) for _, b in source.batches(batch_size, progress, "activations")), source.shape
        )


def plot_activation_histograms(stats, title: str) -> Figure:
    """One panel per conv layer, each stage's value distribution overlaid (log counts)."""
    from ..plotting import _panel_grid, tight_with_title
    import numpy as np
    from matplotlib.ticker import NullLocator

    layers = list(dict.fromkeys(s.layer for s in stats.stages))
    fig, axes = _panel_grid(len(layers), 4.2, 3.4)
    colours = style.STAGE_COLOURS
    names = {"conv": "conv (before ReLU)", "relu": "after ReLU", "pool": "after max-pool", "bn": "after batch norm"}
    for ax, layer in zip(axes.ravel(), layers, strict=False):  # the grid's last row may have spare panels
        for s in (s for s in stats.stages if s.layer == layer):
            counts, lo, hi = stats.histograms[s.label]
            coarse = counts.numpy().reshape(128, -1).sum(1) if len(counts) % 128 == 0 else counts.numpy()
            edges = np.linspace(lo, hi if hi > lo else lo + 1, len(coarse) + 1)
            ax.stairs(np.maximum(coarse, 0.5), edges, label=names.get(s.stage, s.stage), color=colours[s.stage], lw=1.4)
        ax.set_yscale("log")
        ax.yaxis.set_minor_locator(NullLocator())  # no unlabelled minor marks: laying them out was half the drawing time
        ax.set_title(layer)
        ax.set_xlabel("activation value")
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in axes[:, 0]:
        ax.set_ylabel("count (log)")
    fig.suptitle(f"{title}: distribution of activations per conv layer and stage")
    tight_with_title(fig)  # a band kept for the title: plain tight_layout let it touch the first row's titles
    return fig


def _explore_histogram(h: dict) -> dict:
    """The explore page's chart of one unit's histogram ({"edges", "counts"}) of its strongest response per image."""
    from ..report.panels import chart, num

    counts, edges = h["counts"], h["edges"]
    peak = max([1, *counts])
    lo, hi = edges[0], edges[-1]
    ticks = [0, round(peak / 2), peak] if peak >= 2 else [0, peak]
    return chart(
        "histogram",
        "histogram of the strongest response per image",
        (lo, hi),
        (0, peak),
        [{"y": counts}],
        xticks=[[num(lo, 6)], [num((lo + hi) / 2, 6)], [num(hi, 6)]],
        yticks=[[c, str(c)] for c in ticks],
    )


@register
class ActivationsTechnique(Technique):
    name = "activations"
    summary = "statistics of every conv layer's activations over all images"
    applies_to = "cnn"
    section = "cnn"
    compute = staticmethod(activations)

    def prepare(self, t: Target) -> dict:
        conv_layers(t.model)  # a clear error for a model without convolutions, before any image is read
        return {}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return [
            "tables/activations.csv",
            "tables/activations.md",
            "tables/activations_per_channel.csv",
            "figures/activations.png",
        ]

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..fileio import write_csv, write_text
        from ..plotting import save_figure
        from ..report.tables import markdown_table

        stats = activations(t.model, t.images, **t.norm, batch_size=BATCH, progress=t.progress)
        bins = len(next(iter(stats.histograms.values()))[0])
        caption = (
            f"Statistics of activations over {t.images.description}, {t.title}. p1/p50/p99 are nearest-rank "
            f"percentiles from a {bins}-bin histogram (error at most half a bin). Dead channels: never positive on "
            f"any image.\n\n"
        )
        paths = [t.folder / p for p in self.outputs(t, o)]
        return [
            write_csv(paths[0], STAT_COLUMNS, stats.rows),
            write_text(paths[1], caption + markdown_table(MD_COLUMNS, [[r[c] for c in MD_COLUMNS] for r in stats.rows])),
            write_csv(paths[2], CHANNEL_COLUMNS, stats.per_channel),
            save_figure(plot_activation_histograms(stats, t.title), paths[3]),
        ]

    def report(self, run, label: str, ran: Ran) -> list[ReportItem]:
        table, _, _, figure = ran.files
        if not table.is_file():
            return [
                ReportItem("table", f"{label}: statistics of conv activations over the whole test set.", table)
            ]  # noted missing
        rows = [
            [r[c] if c in ("layer", "stage", "shape", "dead_channels") else float(r[c]) for c in MD_COLUMNS]
            for r in read_csv(table)
        ]
        return [
            ReportItem(
                "table",
                f"{label}: statistics of conv activations over the whole test set (the report's tables); "
                "percentiles from an 8192-bin histogram, error at most half a bin.",
                table,
                header=tuple(_TITLES.get(c, c) for c in MD_COLUMNS),
                rows=tuple(map(tuple, rows)),
            ),
            ReportItem("figure", f"{label}: distribution of activations per conv layer and stage.", figure),
        ]

    def explore_panels(self, layer, unit: int) -> list[dict]:
        """The unit's statistics over the set on the explore page, and the histogram of its strongest response per
        image (beside its filter)."""
        from ..report.panels import beside, fmt, panel, table, text

        s = layer.numbers.stats[unit]
        status = "dead (never positive)" if s["dead"] else "alive"
        return [
            table(
                ["mean", "std", "zeros", "max", "status"],
                [[fmt(s["mean"]), fmt(s["std"]), f"{100 * s['zero_frac']:.1f}%", fmt(s["max"]), status]],
            ),
            text("", note="stats"),
            beside(
                "plots",
                panel("chart", "Strongest response per test image", charts=[_explore_histogram(layer.numbers.histograms[unit])]),
            ),
        ]

    def explore_shared(self, layer) -> dict[str, dict]:
        return {
            "notes": {"stats": "Over the test set: mean, standard deviation, fraction of zero outputs and maximum."},
            "styles": {
                "histogram": {
                    "class": "histogram",
                    "size": [300, 160],
                    "margin": [44, 12, 8, 38],
                    "xlabel": "strongest response per image",
                    "series": [{"type": "bars", "base": 0, "fill": "#4363d8", "gap": 1}],
                    "ylabel": "images",
                }
            },
        }
