"""First-layer (or any convolution's) filters as pictures, and the weight distribution of every
layer: the assignment's Figures 2 and 4."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from torch import nn

from ..filters import FilterBank, filter_bank, weight_tensors
from ..technique import Option, Ran, ReportItem, Technique, register
from ..stages import conv_layers
from ..target import Target, layer_file
from ._common import LAYER


def filters(model: nn.Module, layer: Optional[str] = None, scale: str = "filter") -> FilterBank:
    """The filters of a convolution (default: the first) as pictures."""
    return filter_bank(model, layer or conv_layers(model)[0], scale)


def _prepare(t: Target, layer: Optional[str], scale: str) -> dict:
    convs = conv_layers(t.model)  # a clear error for a model without convolutions
    # --layer is shared with the other techniques: a convolution is drawn, anything else leaves the first one
    chosen = layer if layer is not None and isinstance(dict(t.model.named_modules()).get(layer), nn.Conv2d) else convs[0]
    return {"layer": chosen, "scale": scale}


def _outputs(t: Target, o: dict) -> list[str]:
    return [f"figures/filters_{layer_file(o['layer'])}.png", "figures/weights_hist.png"]


def _write(t: Target, o: dict) -> list[Path]:
    from ...report.figures import plot_filters, plot_weight_histograms, save_figure

    bank = filters(t.model, o["layer"], o["scale"])
    return [
        save_figure(plot_filters(bank, t.title), t.folder / _outputs(t, o)[0]),
        save_figure(plot_weight_histograms(weight_tensors(t.model), t.title), t.folder / _outputs(t, o)[1]),
    ]


def _report(run, label: str, ran: Ran) -> list[ReportItem]:
    grid, hist = ran.files
    what = "first-layer filters (the report's Figure 2/4)" if ran.options["layer"] == conv_layers(run.model())[0] else "filters"
    return [
        ReportItem("figure", f"{label}: {what}, {ran.options['layer']}.", grid),
        ReportItem("figure", f"{label}: weight distributions per layer.", hist),
    ]


TECHNIQUE = register(
    Technique(
        name="filters",
        summary="filter grid of --layer (default: the first conv) + weight histograms",
        applies_to="cnn",
        compute=filters,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        options=(
            LAYER,
            Option("scale", "choice", "filter", "filters: each on its own scale, or one shared", choices=("filter", "shared")),
        ),
        report=_report,
        section="cnn",
    )
)
