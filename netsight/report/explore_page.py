"""The `netsight explore` page: one self-contained HTML file to browse every unit of a CNN.

Each unit is a list of generic panels (`panels.py`: a table, image cards, a heat map, charts, ...)
that one shared script draws (`pages/explore.js`, with `pages/explore.css`: package data, inlined
into the page), the same for conv units and a recurrent run's hidden units (`explore_recurrent_page.py`).
This module is the page's plumbing only: the panels are declared by the techniques, each in its own
module (`Technique.explore_panels`, `Technique.explore_shared`), and `unit_panels`/`layer_shared` ask
every registered technique that applies to the layer, in `registry.ORDER`, naming none.
Pictures are small PNGs inlined as data URIs, each stored once per layer, numbers are JSON drawn as SVG; a Content-Security-Policy
forbids every request, so the page works offline and can never reach the network. The unit
grid shows one preview per unit (the picture a technique marks: a conv unit's strongest top-9
projection); the details of a unit are built only when it is selected, so a page with hundreds of units opens at once. It works by mouse,
keys and touch (tap, previous/next buttons, a swipe on the details) from 360 px wide up, and follows
its address: `#layer/unit` is the unit shown, Back/Forward step through the units visited, and an
invalid address is corrected in place with history.replaceState.
"""

from __future__ import annotations

import html
import json
from typing import Any, Optional, Sequence

from ..plotting import pixel_image
from .panels import Images, PageLayer, png, panel

__all__ = ["PageLayer", "asset", "layer_data", "layer_shared", "png", "render_page", "unit_panels"]


def _applying(kind: str) -> list:
    """The registered techniques that apply to a layer of `kind`, in `registry.ORDER`."""
    from ..techniques import registry

    return [t for t in registry.techniques().values() if t.applies_to in (kind, "any")]


def _plain(p: dict) -> dict:
    return {k: v for k, v in p.items() if k not in ("beside", "preview")}


def unit_panels(layer: PageLayer, unit: int) -> tuple[list[dict], Optional[str]]:
    """(the panels of `unit`, the key of its grid picture): every applying technique's `explore_panels`, in
    `registry.ORDER`; the panels of a row (`panels.beside`) side by side in one group where the row's last
    panel falls; the preview the first picture a technique marked (`panels.preview`)."""
    declared = [p for t in _applying(layer.kind) for p in t.explore_panels(layer, unit)]
    shown = next((p["preview"] for p in declared if "preview" in p), None)
    last = {p["beside"]: i for i, p in enumerate(declared) if "beside" in p}
    out = []
    for i, p in enumerate(declared):
        row = p.get("beside")
        if row is None:
            out.append(_plain(p))
        elif last[row] == i:
            out.append(panel("group", cls=row, panels=[_plain(q) for q in declared if q.get("beside") == row]))
    return out, shown


def layer_shared(layer: PageLayer) -> dict[str, dict]:
    """The layer's `notes`, `styles` and `data`: what each applying technique's panels share (`explore_shared`),
    merged in `registry.ORDER`; a key two techniques declare is an error of theirs."""
    merged: dict[str, dict[str, Any]] = {"notes": {}, "data": {}, "styles": {}}
    owner: dict[tuple[str, str], str] = {}
    for t in _applying(layer.kind):
        for part, entries in t.explore_shared(layer).items():
            if part not in merged:
                raise ValueError(f"technique {t.name!r}: explore_shared gives {part!r}; expected notes, styles or data")
            for key, value in entries.items():
                if (part, key) in owner:
                    raise ValueError(f"techniques {owner[part, key]!r} and {t.name!r} both declare the explore {part} {key!r}")
                owner[part, key] = t.name
                merged[part][key] = value
    return merged


def page_layer(layer: PageLayer, name: str, titles: Sequence[str], dead: Sequence[bool], label: Optional[str] = None) -> dict:
    """The page's JSON of `layer` (its module `name`, the page's address; shown as `label`, the name unless
    given): unit i titled `titles[i]`, greyed in the grid where `dead[i]`."""
    units = []
    for unit, (title, is_dead) in enumerate(zip(titles, dead, strict=True)):
        panels, shown = unit_panels(layer, unit)
        units.append({"unit": unit, "title": title, "preview": shown, "dead": bool(is_dead), "panels": panels})
    return {"name": name, "label": label or name, "units": units, "images": layer.pictures.uris, **layer_shared(layer)}


def layer_data(units, names: Sequence[str], labels: Optional[Sequence[str]], first_layer: bool) -> dict:
    """The page's conv layer (an `techniques.explore_units.LayerUnits`): every unit as the panels the techniques
    declare for it."""
    layer = PageLayer("cnn", units, Images(), names, labels, first_layer)
    layer.image_keys = {i: layer.pictures.key(png(pixel_image(x))) for i, x in units.images.items()}
    maps = units.top.values.shape[0]
    titles = [f"{units.layer} · unit {m} (output of {units.target})" for m in range(maps)]
    return page_layer(layer, units.layer, titles, [s["dead"] for s in units.stats])


def asset(name: str) -> str:
    """A file of the page (`pages/explore.js`, `pages/explore.css`), read from the installed package."""
    from importlib.resources import files

    return files("netsight.report").joinpath("pages").joinpath(name).read_text(encoding="utf-8")


def render_page(title: str, subtitle: str, layers: list[dict]) -> str:
    """The page: the layers' units as panels (`report/panels.py`), drawn by `pages/explore.js` with
    `pages/explore.css`, both inlined so that the page stays one offline file."""
    esc = html.escape
    data = json.dumps({"title": title, "layers": layers}, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    script = asset("explore.js").replace("</", "<\\/")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><meta name='generator' content='netsight'>"
        f"<title>{esc(title)}</title><style>{asset('explore.css')}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>"
        "<nav id='bar' aria-label='layers and units'><div id='layers' role='group' aria-label='layers'></div>"
        "<div id='stepper'><button type='button' id='prev' title='previous unit (&larr;)' aria-label='previous unit'>&lsaquo; prev</button>"
        "<button type='button' id='to-grid' title='show all units' aria-label='show all units'>&#9638;</button>"
        "<span id='where'></span>"
        "<button type='button' id='next' title='next unit (&rarr;)' aria-label='next unit'>next &rsaquo;</button></div></nav>"
        "<p class='help'>Tap or click a unit. Previous/next: the &lsaquo; &rsaquo; buttons, a swipe sideways on the details, "
        "or the keys &larr;/&rarr; (&uarr;/&darr; for the previous/next layer). The address (#layer/unit) links to the unit "
        "shown, and Back returns to the one before.</p>"
        "<main><div id='grid' role='listbox' aria-label='units'></div><section id='detail' aria-live='polite'></section></main>"
        f"<script type='application/json' id='explore-data'>{data}</script>"
        f"<script>{script}</script></body></html>"
    )
