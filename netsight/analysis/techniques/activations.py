"""Statistics of every convolution's activations (conv, ReLU, pool, batch norm stages) over all
the images, streamed: the assignment's activation tables."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from ...fileio import read_csv
from ..activations import CHANNEL_COLUMNS, STAT_COLUMNS, ActivationStatistics, stream_activation_statistics
from ..hooks import normalised_input
from ..inputs import Norm, check_norm, device_of, source_for
from ..technique import Ran, ReportItem, Technique, register
from ..stages import conv_layers
from ..target import Target

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


def _prepare(t: Target) -> dict:
    conv_layers(t.model)  # a clear error for a model without convolutions, before any image is read
    return {}


def _outputs(t: Target, o: dict) -> list[str]:
    return ["tables/activations.csv", "tables/activations.md", "tables/activations_per_channel.csv", "figures/activations.png"]


def _write(t: Target, o: dict) -> list[Path]:
    from ...fileio import write_csv, write_text
    from ...report.figures import plot_activation_histograms, save_figure
    from ...report.tables import markdown_table

    stats = activations(t.model, t.images, **t.norm, batch_size=BATCH, progress=t.progress)
    bins = len(next(iter(stats.histograms.values()))[0])
    caption = (
        f"Statistics of activations over {t.images.description}, {t.title}. p1/p50/p99 are nearest-rank "
        f"percentiles from a {bins}-bin histogram (error at most half a bin). Dead channels: never positive on "
        f"any image.\n\n"
    )
    paths = [t.folder / p for p in _outputs(t, o)]
    return [
        write_csv(paths[0], STAT_COLUMNS, stats.rows),
        write_text(paths[1], caption + markdown_table(MD_COLUMNS, [[r[c] for c in MD_COLUMNS] for r in stats.rows])),
        write_csv(paths[2], CHANNEL_COLUMNS, stats.per_channel),
        save_figure(plot_activation_histograms(stats, t.title), paths[3]),
    ]


def _report(run, label: str, ran: Ran) -> list[ReportItem]:
    table, _, _, figure = ran.files
    if not table.is_file():
        return [ReportItem("table", f"{label}: statistics of conv activations over the whole test set.", table)]  # noted missing
    rows = [
        [r[c] if c in ("layer", "stage", "shape", "dead_channels") else float(r[c]) for c in MD_COLUMNS] for r in read_csv(table)
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


TECHNIQUE = register(
    Technique(
        name="activations",
        summary="statistics of every conv layer's activations over all images",
        applies_to="cnn",
        compute=activations,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        report=_report,
        section="cnn",
    )
)
