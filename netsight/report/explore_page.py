"""The `netsight explore` page: one self-contained HTML file to browse every unit of a CNN.

Each unit is a list of generic panels (`panels.py`: a table, image cards, a heat map, charts, ...)
that one shared script draws (`pages/explore.js`, with `pages/explore.css`: package data, inlined
into the page), the same for conv units and a recurrent run's hidden units (`explore_recurrent_page.py`).
Pictures are small PNGs inlined as data URIs, each stored once per layer, numbers are JSON drawn as SVG; a Content-Security-Policy
forbids every request, so the page works offline and can never reach the network. The unit
grid shows one preview per unit (its strongest top-9 projection); beside a unit's top-9
projections stand the same projections through randomised weights and their rank correlation; the details of a unit are
built only when it is selected, so a page with hundreds of units opens at once. It works by mouse,
keys and touch (tap, previous/next buttons, a swipe on the details) from 360 px wide up, and follows
its address: `#layer/unit` is the unit shown, Back/Forward step through the units visited, and an
invalid address is corrected in place with history.replaceState.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from typing import Optional, Sequence

import numpy as np

from ..plotting import _outside_tinted, pixel_image, projection_image
from .panels import Images, card, chart, fmt, num, nums, panel, table, text


def png(a: np.ndarray) -> str:
    """[H,W] or [H,W,3] floats in [0,1] -> a PNG data URI."""
    from PIL import Image

    pixels = (np.clip(a, 0, 1) * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "L" if pixels.ndim == 2 else "RGB").save(buf, "PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _heat(values: np.ndarray) -> tuple[str, float, float]:
    from matplotlib import colormaps

    lo, hi = float(values.min()), float(values.max())
    scaled = (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)
    return png(colormaps["viridis"](scaled)[..., :3]), lo, hi


def filter_picture(w: np.ndarray, first_rgb: bool) -> str:
    """One unit's weights [in, k, k]: RGB for a colour first layer, else a grid of the kernels
    of each input channel (grey = 0, scaled by the unit's largest |w|)."""
    m = float(np.abs(w).max()) or 1.0
    if first_rgb:
        return png(0.5 + 0.5 * w.transpose(1, 2, 0) / m)
    n, k = w.shape[0], w.shape[1]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    canvas = np.ones((rows * (k + 1) - 1, cols * (w.shape[2] + 1) - 1))
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * (k + 1) : r * (k + 1) + k, c * (w.shape[2] + 1) : c * (w.shape[2] + 1) + w.shape[2]] = 0.5 + 0.5 * w[i] / m
    return png(canvas)


def layer_data(units, names: Sequence[str], labels: Optional[Sequence[str]], first_layer: bool) -> dict:
    """The page's layer (an `techniques.explore_units.LayerUnits`): every unit as a list of generic panels."""
    maps = units.top.values.shape[0]
    rgb = first_layer and units.weights.shape[1] == 3
    pictures = Images()
    image_key = {i: pictures.key(png(pixel_image(x))) for i, x in units.images.items()}
    out_units = []
    for m in range(maps):
        top, random_cards = [], []
        for j in range(units.top.values.shape[1]):
            i, activation = int(units.top.image_index[m, j]), float(units.top.values[m, j])
            valid = units.valid[m, j, 0].numpy()
            y, x = int(units.top.positions[m, j, 0]), int(units.top.positions[m, j, 1])
            data = {"image": i, "activation": f"{activation:.7g}"}
            label = labels[i] if labels is not None else ""
            patch = pictures.key(png(_outside_tinted(pixel_image(units.patches[m, j]), valid)))
            projection = pictures.key(png(_outside_tinted(projection_image(units.projections[m, j]), valid)))
            top.append(
                card(
                    [patch, projection],
                    f"#{j + 1}{' ' + label if label else ''} {fmt(activation)}",
                    f"{names[i]}, position ({y}, {x})",
                    data,
                )
            )
            if units.randomised is not None:
                rho = units.randomised.rho[m][j]
                random = pictures.key(png(_outside_tinted(projection_image(units.randomised.projections[m, j]), valid)))
                random_cards.append(card([random], f"#{j + 1} ρ {'–' if rho is None else f'{rho:.2f}'}", data=data))
        s = units.stats[m]
        status = "dead (never positive)" if s["dead"] else "alive"
        filter_title = "Filter weights (" + "x".join(str(v) for v in units.weights.shape[1:]) + ")"
        filter_key = pictures.key(filter_picture(units.weights[m], rgb))
        panels = [
            table(
                ["mean", "std", "zeros", "max", "status"],
                [[fmt(s["mean"]), fmt(s["std"]), f"{100 * s['zero_frac']:.1f}%", fmt(s["max"]), status]],
            ),
            text("", note="stats"),
            panel(
                "group",
                cls="plots",
                panels=[
                    panel("images", filter_title, cls="filter", items=[card([filter_key], alt=["filter weights"])]),
                    panel("chart", "Strongest response per test image", charts=[_histogram(units.histograms[m])]),
                ],
            ),
            panel(
                "images",
                f"Top-{len(top)} test images (receptive field {'x'.join(str(v) for v in units.field.size)} px)",
                "top",
                "cards top",
                items=top,
                pictures=[{"class": "patch", "alt": "patch"}, {"class": "projection", "alt": "projection"}],
                figure="pair",
            ),
        ]
        if units.randomised is not None:
            rho = units.randomised.unit_rho[m]
            panels += [
                text(
                    _rho_sentence(rho, first_layer),
                    {"rho": "" if rho is None else repr(float(rho))},
                    title="Sanity check: the same projections through random weights",
                    cls="rho",
                ),
                panel(
                    "images",
                    note="random",
                    cls="cards randomised",
                    items=random_cards,
                    pictures=[{"class": "randomised", "alt": "random-weights projection"}],
                ),
            ]
        occlusion = []
        for o in units.occlusion[m]:
            heat, lo, hi = _heat(np.asarray(o["map"]))
            occlusion.append(
                {
                    "src": image_key[o["image"]],
                    "heat": pictures.key(heat),
                    "low": num(lo, 6),
                    "high": num(hi, 6),
                    "whole": num(o["unoccluded"], 6),
                    "alt": f"image {o['image']}",
                    "heat_alt": f"occlusion map of image {o['image']}",
                    "caption": f"image {o['image']} · whole image {fmt(o['unoccluded'])}",
                }
            )
        panels.append(panel("heatmap", "Occlusion", "occlusion", "occlusion", items=occlusion))
        if units.evolution is not None:
            evo = units.evolution
            snapshots = []
            for n, it in enumerate(evo["iterations"]):
                value = float(evo["values"][m, n])
                key = pictures.key(png(projection_image(evo["projections"][m, n])))
                snapshots.append(
                    card([key], f"it. {it} {fmt(value)}", data={"activation": f"{value:.7g}"}, alt=[f"iteration {it}"])
                )
            panels.append(
                panel(
                    "images",
                    "Evolution over the weight snapshots",
                    "evolution",
                    "cards evolution",
                    items=snapshots,
                    pictures=[{"class": "evolution"}],
                )
            )
        curves = [_invariance(k, v["amounts"], v["response"][m]) for k, v in units.invariance.items()]
        panels.append(panel("chart", "Invariance", "invariance", "curves", charts=curves))
        out_units.append(
            {
                "unit": m,
                "title": f"{units.layer} · unit {m} (output of {units.target})",
                "preview": top[0]["src"][1],  # the strongest projection
                "dead": bool(s["dead"]),
                "panels": panels,
            }
        )
    return {"name": units.layer, "units": out_units, "images": pictures.uris, "notes": NOTES, "data": {}, "styles": STYLES}


NOTES = {
    "stats": "Over the test set: mean, standard deviation, fraction of zero outputs and maximum.",
    "top": "Each column: the input patch (top) and its deconvnet projection (below), strongest first; "
    "blue marks the part of the field outside the image.",
    "random": "The same nine images, unit and positions, projected through the model with every layer re-initialised by its "
    "own init (seed 0; Adebayo et al. 2018). ρ: Spearman rank correlation of the trained and the random projection over the "
    'pixels, per image below, their mean above. The higher it is (0.2–0.5: "partly", ≥ 0.5: "mostly"), the more the picture '
    "is the image rather than what the unit learned.",
    "occlusion": "The unit's strongest activation with a grey square at each position of the image (darker: covering there "
    "lowers it more); the bar gives the scale, its line the value for the whole image.",
    "evolution": "The strongest activation over the test set, projected, at each snapshot.",
    "invariance": "Response to its top images transformed, relative to untransformed (dashed: 1).",
}


def _rho_sentence(r: Optional[float], first: bool) -> str:
    """Adebayo et al.'s sanity check in one line: the unit's mean rank correlation and what it says."""
    if r is None:
        verdict = "no projection to compare (the unit never responds to these images)"
    elif first:
        verdict = (
            "in the first layer a projection is the unit's filter whatever the image: this compares the trained filter "
            "with a random one"
        )
    elif r >= 0.5:
        verdict = "these pictures are mostly the image"
    elif r >= 0.2:
        verdict = "these pictures are partly the image, partly the trained unit"
    else:
        verdict = "these pictures come from the trained weights"
    return f"projections through random weights: ρ = {'–' if r is None else f'{r:.2f}'} — {verdict}"


STYLES = {
    "histogram": {
        "class": "histogram",
        "size": [300, 160],
        "margin": [44, 12, 8, 38],
        "xlabel": "strongest response per image",
        "series": [{"type": "bars", "base": 0, "fill": "#4363d8", "gap": 1}],
        "ylabel": "images",
    },
    "invariance": {
        "class": "invariance",
        "size": [170, 136],
        "margin": [32, 10, 8, 38],
        "empty": "never active",
        "series": [{"type": "line", "stroke": "#e6194b", "width": 1.6}],
    },
}


def _histogram(h: dict) -> dict:
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


def _invariance(name: str, amounts: list, response: list) -> dict:
    """A unit's response to its top images transformed by `amounts`, relative to the originals (1: dashed)."""
    finite = [v for v in response if v is not None and math.isfinite(v)]
    x0, x1 = min(amounts), max(amounts)
    top, bottom = max([1.2, *finite]), min([0.0, *finite])  # no finite response (a dead unit): still an axis
    mid = amounts[len(amounts) // 2]
    return chart(
        "invariance",
        f"{name}: relative response",
        (x0, x1),
        (bottom, top),
        [{"x": nums(amounts), "y": nums(response)}] if finite else [],
        rules=[{"x1": x0, "x2": x1, "y1": 1, "y2": 1, "stroke": "#999", "dash": "3 2"}],
        xticks=[[x0]] + ([[mid]] if x0 < mid < x1 else []) + [[x1]],
        yticks=[[num(bottom, 6)], [1, "1"], [num(top, 6)]],
        xlabel=name,
    )


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
