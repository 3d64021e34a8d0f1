"""What several technique modules share: the layer option, and checking a layer on the target's
first image before anything is written."""

from __future__ import annotations

from typing import Optional

from ..deconvnet_graph import resolve_graph_target
from ..hooks import normalised_input
from ..technique import Option
from ..stages import conv_layers
from ..target import Target

LAYER = Option("layer", "str", None, "layer name, e.g. conv2 or layer2.1 (filters: the first conv; the others: the last conv)")


def count_option(default: int) -> Option:
    return Option("count", "int", default, "images used", lo=1, hi=1_000_000)


MAPS_HELP = "top9: maps in the figure (the table has every map); evolution: maps followed"


def checked_layer(t: Target, layer: Optional[str]) -> tuple[str, str]:
    """(the layer asked for, or the last convolution; the module whose output is ranked), checked
    on the first image: an unknown layer or one without feature maps fails here, before any write."""
    asked = layer or conv_layers(t.model)[-1]
    with normalised_input(t.model, **t.norm):
        ranked = resolve_graph_target(t.model, asked, t.images.load([0]).to(t.device))
    return asked, ranked
