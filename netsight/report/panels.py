"""The unit panels of the `netsight explore` page: what a technique hands the page about one unit.

A technique declares its panels in its own module (`Technique.explore_panels(layer, unit)`, with what
they share across a layer's units in `Technique.explore_shared(layer)`); the page
(`explore_page.py`) asks every registered technique that applies to the layer, in `registry.ORDER`,
and names none. What a technique is handed is a `PageLayer`: the layer's numbers and its pictures.
Two keys of a panel speak to the page, not the script, and are taken off before the page is
written: `beside` (`beside(row, panel)`: panels of one row, shown side by side in a `group` of
that class where the row's last panel falls) and `preview` (`preview(key, panel)`: the picture
standing for the unit in the grid; the first one declared).

A unit is `{"unit": i, "title": str, "preview": image key, "dead": bool, "panels": [panel, ...]}` and
a panel is a dict with a `kind` the page's shared script (`pages/explore.js`) knows how to draw;
no panel names a technique. Every panel may carry `title` (a heading), `note` (a key into the
layer's `notes`: a text shared by its units is stored once; a picture is a key into the layer's
`images`, each data URI stored once) and `class` (extra CSS classes of the
panel's box, which the tests and the stylesheet use). The kinds:

- `table`: `head` [str], `rows` [[str]] (cells formatted here).
- `text`: `text` (a paragraph), `data` {name: str} written as `data-name` attributes.
- `images`: `items` [card]: cards of pictures, each with its caption (`card` describes one);
  `pictures` [{`class`, `alt`}] gives the class and alt text of each card's first, second, ...
  picture (the alt numbered by the card's rank), `figure` the class of every card.
- `heatmap`: `items` [{`src`, `heat`, `low`, `high`, `whole`, `alt`, `heat_alt`, `caption`}]: a
  picture beside its heat map (viridis, from `low` to `high`) and a colour bar marking `whole`.
- `chart`: `charts` [chart]: plots with axes (a chart is described under `chart`).
- `legend`: `items` [{`colour`, `shape` ("swatch" or "dot"), `text`}], or `from`: a key into the layer's `data`
  holding them (a legend every unit shows, stored once).
- `group`: `panels` [panel]: panels side by side.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np


def fmt(v: float) -> str:
    """A number as the page's `fmt` writes it (JavaScript: whole numbers from 100 up and 0, else 3
    significant digits with `toPrecision`, trailing zeros kept, exponents below 1e-6)."""
    v = float(v)
    if v != v:
        return "NaN"
    if abs(v) >= 100 or v == 0:  # toFixed(0): halves away from zero
        return str(int(math.copysign(math.floor(abs(v) + 0.5), v)))
    mantissa, exponent = f"{v:.2e}".split("e")
    e = int(exponent)
    if e < -6:
        return f"{mantissa}e{e}"
    return f"{v:.{2 - e}f}"


class Images:
    """The pictures of one layer, each data URI stored once under a short key."""

    def __init__(self) -> None:
        self.uris: dict[str, str] = {}
        self._keys: dict[str, str] = {}

    def key(self, uri: str) -> str:
        if uri not in self._keys:
            self._keys[uri] = k = str(len(self._keys))
            self.uris[k] = uri
        return self._keys[uri]


@dataclass
class PageLayer:
    """One layer of the page, as the techniques see it while declaring their panels."""

    kind: str  # "cnn" (a conv layer) or "recurrent" (a recurrent run's hidden units): which techniques apply
    numbers: Any  # a conv layer's `techniques.explore_units.LayerUnits`, a recurrent one's `recurrent_layer_data` dict
    pictures: "Images"  # every picture of the layer, stored once: `pictures.key(png(...))` is what a panel refers to
    names: Sequence[str] = ()  # the file name of each image of the set
    labels: Optional[Sequence[str]] = None  # the class name of each image, where the images carry labels
    first: bool = False  # the model's first conv layer
    image_keys: dict[int, str] = field(default_factory=dict)  # image index -> its picture's key (the units' top images)


def png(a: np.ndarray) -> str:
    """[H,W] or [H,W,3] floats in [0,1] -> a PNG data URI."""
    from PIL import Image

    pixels = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "L" if pixels.ndim == 2 else "RGB").save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def heat(values: np.ndarray) -> tuple[str, float, float]:
    """A heat map (viridis, from its lowest to its highest value) as a PNG data URI, and that range."""
    from matplotlib import colormaps

    lo, hi = float(values.min()), float(values.max())
    scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    return png(colormaps["viridis"](scaled)[..., :3]), lo, hi


def beside(row: str, p: dict) -> dict:
    """`p`, shown side by side with the other panels of `row` (a `group` panel of class `row`)."""
    return {**p, "beside": row}


def preview(key: str, p: dict) -> dict:
    """`p`, whose picture `key` stands for the unit in the grid of units."""
    return {**p, "preview": key}


def panel(kind: str, title: str = "", note: str = "", cls: str = "", **fields: Any) -> dict:
    p: dict[str, Any] = {"kind": kind}
    if title:
        p["title"] = title
    if note:
        p["note"] = note
    if cls:
        p["class"] = cls
    p.update(fields)
    return p


def table(head: Sequence[str], rows: Sequence[Sequence[str]], **kw: Any) -> dict:
    return panel("table", head=list(head), rows=[list(r) for r in rows], **kw)


def text(body: str, data: Optional[dict] = None, **kw: Any) -> dict:
    p = panel("text", text=body, **kw)
    if data:
        p["data"] = data
    return p


def card(
    src: list[str],
    caption: str = "",
    title: str = "",
    data: Optional[dict] = None,
    alt: Optional[list[str]] = None,
    band: Optional[list] = None,
    charts: Optional[list[dict]] = None,
) -> dict:
    """One card of an `images` panel: its pictures (keys into the layer's `images`), what every
    picture carries as `data-*` attributes, their alt texts when not the panel's, a band of rows
    [top, height] marked over them (fractions of the height), charts under them, a caption."""
    out: dict[str, Any] = {"src": src}
    for key, value in (("caption", caption), ("title", title), ("alt", alt), ("band", band), ("charts", charts)):
        if value:
            out[key] = value
    if data:
        out["data"] = {k: str(v) for k, v in data.items()}
    return out


def chart(style: str, label: Optional[str], x: Sequence[float], y: Sequence[float], series: list[dict], **fields: Any) -> dict:
    """One plot. `style` names the layer's `styles` entry its shared settings come from: `class`,
    `size` (width, height) in px (a width of [min, max] takes the details' width between them),
    `margin` (left, right, top, bottom), `axes` (false: none), `xlabel`, `ylabel`, `empty` (written
    when no series has a point), `series` (series i's settings under the chart's series i) and `rules`
    (drawn before the chart's own); `fields` may set any of these too, and `xticks`, `yticks`.
    `x`, `y` are the data ranges; `series` of `line` ({x (default: 0, 1, ...), y, stroke, width};
    non-finite points left out), `bars` ({y, base, fill or fills, gap}: one bar per slot of the x
    range) and `dots` ({x, y, r, fill, opacity, stroke, class, from (a key into the layer's `data`
    holding x and y), skip (an index left out)}); `rules` are lines {x1, y1, x2, y2, stroke, dash,
    width} in data coordinates under the series; ticks are [value] or [value, label] (no label: the
    page formats the value). `label` (the plot's description for screen readers) None: the style's."""
    out: dict[str, Any] = {"style": style}
    if label is not None:
        out["label"] = label
    return {**out, "x": [num(v, 6) for v in x], "y": [num(v, 6) for v in y], "series": series, **fields}


def num(v: Any, digits: int = 4) -> Optional[float]:
    """A float cut to `digits` significant digits (the page's JSON stays small); None where not finite."""
    if v is None:
        return None
    v = float(v)
    return float(f"{v:.{digits}g}") if math.isfinite(v) else None


def nums(values: Any, digits: int = 4) -> list:
    return [num(v, digits) for v in values]
