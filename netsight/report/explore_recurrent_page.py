"""The recurrent mode of the `netsight explore` page: one recurrent run's hidden units, beside
the conv mode of `explore_page.py` (same page, same script: this module gives the layer's data,
`recurrent_layer_data`, and turns it into the generic panels of `panels.py`, `recurrent_layer`).

A unit's details: its top-9 test images with the row being read when it peaked boxed, under
each the unit's value over all the steps (its trace, the peak marked), the mean trace per class
and the class means as bars (the class colours are `style.class_colour`'s, carried in the JSON),
its class selectivity, and for LSTM/GRU the saturation of its gates (Karpathy, Johnson &
Fei-Fei, "Visualizing and Understanding Recurrent Networks", 2015: the fraction of steps each
gate is left-saturated, < 0.1, or right-saturated, > 0.9) drawn as the paper's scatter of every
unit of the layer with this one marked.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .explore_page import png
from ..plotting import pixel_image
from .panels import Images, card, chart, fmt, num, panel, table, text

MARK = np.array([0.902, 0.098, 0.294])  # the peak row's colour (#e6194b, the page's selection colour)


def _round(values, digits: int = 4) -> list:
    """Floats cut to `digits` significant digits: the page's JSON stays small."""
    return [float(f"{float(v):.{digits}g}") for v in np.asarray(values, dtype=np.float64).ravel()]


def marked_row(picture: np.ndarray, row: int) -> np.ndarray:
    """An image [H,W] or [H,W,3] in [0,1] as RGB with row `row` tinted in the peak colour (the grid's preview)."""
    rgb = np.repeat(picture[..., None], 3, -1) if picture.ndim == 2 else picture.copy()
    rgb[row] = 0.45 * rgb[row] + 0.55 * MARK
    return rgb


def recurrent_layer_data(units, names: Sequence[str], labels: Optional[Sequence[str]]) -> dict:
    """The JSON of a recurrent layer (an `techniques.explore_recurrent_units.RecurrentUnits`)."""
    from matplotlib.colors import to_hex

    from ..style import class_colour

    st = units.stats
    hidden, k = st.top_images.shape
    pictures = {i: pixel_image(x) for i, x in units.images.items()}
    saturation = {g: {"left": _round(st.left[g]), "right": _round(st.right[g])} for g in st.left}
    out_units = []
    for h in range(hidden):
        top = []
        for j in range(k):
            i = int(st.top_images[h, j])
            top.append(
                {
                    "image": i,
                    "file": names[i],
                    "label": labels[i] if labels is not None else "",
                    "step": int(st.top_steps[h, j]),
                    "value": float(st.top_values[h, j]),
                    "trace": _round(st.top_traces[h, j]),
                }
            )
        out_units.append(
            {
                "unit": h,
                "stats": {
                    "peak": top[0]["value"],
                    "selectivity": float(st.selectivity[h]),
                    "preferred": int(st.best_class[h]),
                    "correlation": {f: _finite(c[h]) for f, c in st.correlation.items()},
                },
                "preview": png(marked_row(pictures[int(st.top_images[h, 0])], int(st.top_steps[h, 0]))),
                "top": top,
                "class_mean": [_round(st.class_mean[c, :, h]) for c in range(st.class_mean.shape[0])],
                "gates": {
                    g: {"left": s["left"][h], "right": s["right"][h], "mean": float(st.gate_mean[g][h])}
                    for g, s in saturation.items()
                },
            }
        )
    return {
        "name": units.layer,
        "kind": "recurrent",
        "target": units.layer,
        "cell": units.cell,
        "steps": int(st.steps),
        "images_seen": int(st.images),
        "classes": list(units.classes),
        "class_colours": [to_hex(class_colour(c)) for c in range(len(units.classes))],
        "class_counts": [int(n) for n in st.class_count],
        "gates": list(st.left),
        "saturation": saturation,
        "images": {str(i): png(p) for i, p in pictures.items()},
        "units": out_units,
    }


def _finite(v) -> Optional[float]:
    v = float(v)
    return None if v != v else float(f"{v:.4g}")


def _range(values) -> tuple[float, float]:
    """A plot's value range: the values' and 0, widened to +-1 when flat."""
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    lo, hi = min([0.0, *finite]), max([0.0, *finite])
    return (lo - 1, hi + 1) if hi - lo < 1e-9 else (lo, hi)


def _ticks(lo: float, hi: float) -> list[list[Optional[float]]]:
    """The range's ends, and 0 between them where it is not too close to either to be read."""
    return [[num(lo, 6)], [0.0], [num(hi, 6)]] if min(-lo, hi) > 0.15 * (hi - lo) else [[num(lo, 6)], [num(hi, 6)]]


FIT = [280, 460]  # a plot as wide as the details, within these bounds: its text stays 10 px
HALVES = [[0, "0"], [0.5, "0.5"], [1, "1"]]
STYLES: dict[str, dict[str, Any]] = {
    "spark": {
        "class": "spark",
        "size": [84, 34],
        "margin": [3, 3, 3, 3],
        "axes": False,
        "series": [{"type": "line", "stroke": "#222", "width": 1.3}, {"type": "dots", "r": 2.4, "fill": "#e6194b"}],
    },
    "classtrace": {
        "class": "classtrace",
        "size": [FIT, 190],
        "margin": [44, 10, 8, 38],
        "xlabel": "row read (step)",
        "ylabel": "mean value",
    },
    "classbars": {"class": "classbars", "size": [FIT, 150], "margin": [44, 10, 8, 38], "xlabel": "class", "ylabel": "mean value"},
    "gate": {  # Karpathy's scatter: every unit of the layer (grey), this one (red), the diagonal left + right = 1
        "class": "gate",
        "size": [156, 156],
        "margin": [34, 10, 8, 38],
        "series": [
            {"type": "dots", "r": 2, "fill": "#999", "opacity": 0.55},
            {"type": "dots", "r": 4.2, "fill": "#e6194b", "stroke": "#fff", "class": "this"},
        ],
        "rules": [{"x1": 0, "y1": 1, "x2": 1, "y2": 0, "stroke": "#bbb", "dash": "3 2"}],
        "xticks": HALVES,
        "yticks": HALVES,
        "ylabel": "right (> 0.9)",
    },
}


def recurrent_layer(layer: dict) -> dict:
    """The page's layer: `recurrent_layer_data`'s units as generic panels."""
    pictures = Images()
    keys = {int(i): pictures.key(uri) for i, uri in layer["images"].items()}
    n, classes, colours, name = layer["steps"], layer["classes"], layer["class_colours"], layer["name"]
    cell = layer["cell"].upper()
    units = []
    for u in layer["units"]:
        h, s = u["unit"], u["stats"]
        lo, hi = _range([v for t in u["top"] for v in t["trace"]])
        cards = []
        for r, t in enumerate(u["top"]):
            step, trace = t["step"], t["trace"]
            spark = chart(
                "spark",
                f"value over the {n} steps, peak at row {step + 1}",
                (0, max(n - 1, 1)),
                (lo, hi),
                [
                    {"y": trace},
                    {"x": [step], "y": [trace[step]]},
                ],
                rules=[{"x1": step, "x2": step, "y1": num(lo, 6), "y2": num(hi, 6), "stroke": "#e6194b", "width": 1}],
            )
            caption = f"#{r + 1}{' ' + t['label'] if t['label'] else ''} · row {step + 1} · {fmt(t['value'])}"
            cards.append(
                card(
                    [keys[t["image"]]],
                    caption,
                    f"{t['file']}, row {step + 1}",
                    {"image": t["image"], "step": step, "value": f"{t['value']:.7g}"},
                    [f"image {t['image']}, row {step + 1} marked"],
                    [num(step / n, 6), num(1 / n, 6)],
                    [spark],
                )
            )
        corr = {f: "–" if c is None else f"{c:.2f}" for f, c in s["correlation"].items()}
        flat = [v for m in u["class_mean"] for v in m]
        tlo, thi = _range(flat)
        lines = [
            {"type": "line", "y": m, "stroke": colours[c], "width": 2.4 if c == s["preferred"] else 1.3}
            for c, m in enumerate(u["class_mean"])
        ]
        steps = [0, round((n - 1) / 3), round(2 * (n - 1) / 3), n - 1]
        trace_chart = chart(
            "classtrace",
            "mean value per class over the steps",
            (0, max(n - 1, 1)),
            (tlo, thi),
            lines,
            rules=[{"x1": 0, "x2": max(n - 1, 1), "y1": 0, "y2": 0, "stroke": "#ccc"}] if tlo < 0 < thi else [],
            xticks=[[t, str(t + 1)] for t in steps],
            yticks=_ticks(tlo, thi),
        )
        means = [num(sum(m) / len(m)) for m in u["class_mean"]]
        blo, bhi = _range(means)
        bars_chart = chart(
            "classbars",
            "mean value per class, over all steps",
            (0, len(classes)),
            (blo, bhi),
            [{"type": "bars", "y": means, "base": max(blo, 0.0), "fills": colours, "gap": 4}],
            rules=[{"x1": 0, "x2": len(classes), "y1": 0, "y2": 0, "stroke": "#999"}] if blo < 0 < bhi else [],
            xticks=[[i + 0.5, c if len(c) <= 6 else c[:5] + "…"] for i, c in enumerate(classes)],
            yticks=_ticks(blo, bhi),
        )
        panels = [
            panel(
                "group",
                cls="tables",
                panels=[
                    table(
                        ["peak", "preferred class", "selectivity"],
                        [[fmt(s["peak"]), classes[s["preferred"]], f"{s['selectivity']:.3f}"]],
                    ),
                    table(["r (ink)", "r (position)", "r (row)"], [[corr["ink"], corr["position"], corr["row"]]]),
                ],
            ),
            text("", note="stats"),
            panel(
                "images",
                f"Top-{len(cards)} test images and their traces",
                "top",
                "cards top",
                items=cards,
                pictures=[{"class": "digit"}],
                figure="rpair",
            ),
            panel("chart", "Mean trace per class", "classtrace", charts=[trace_chart]),
            panel(
                "legend",
                items=[
                    {"colour": c, "shape": "swatch", "text": f"{k} ({m})"}
                    for c, k, m in zip(colours, classes, layer["class_counts"], strict=True)
                ],
            ),
            panel("chart", "Class selectivity", "classbars", charts=[bars_chart]),
        ]
        if not layer["gates"]:
            panels.append(text("", title="Gates", note="nogates"))
        else:
            rows = [
                [
                    g,
                    *(
                        f"{100 * v:.1f}%"
                        for v in (
                            u["gates"][g]["left"],
                            u["gates"][g]["right"],
                            1 - u["gates"][g]["left"] - u["gates"][g]["right"],
                        )
                    ),
                ]
                for g in layer["gates"]
            ]
            scatters = [
                chart(
                    "gate",
                    f"{g} gate: fraction of steps left- and right-saturated",
                    (0, 1),
                    (0, 1),
                    [{"from": f"saturation {g}", "skip": h}, {"x": [u["gates"][g]["left"]], "y": [u["gates"][g]["right"]]}],
                    xlabel=f"{g}: left (< 0.1)",
                )
                for g in layer["gates"]
            ]
            panels += [
                table(["gate", "left (< 0.1)", "right (> 0.9)", "neither"], rows, title="Gates", note="gates", cls="gates"),
                panel("chart", cls="gatecharts", charts=scatters),
                panel(
                    "legend",
                    items=[
                        {"colour": "#e6194b", "shape": "dot", "text": f"unit {h}"},
                        {"colour": "#999", "shape": "dot", "text": f"the other units of {name}"},
                        {"colour": "#bbb", "shape": "swatch", "text": "dashed: left + right = 1"},
                    ],
                ),
            ]
        units.append(
            {
                "unit": h,
                "title": f"{name} · unit {h} ({cell} hidden state, {len(layer['units'])} units)",
                "preview": pictures.key(u["preview"]),
                "dead": False,
                "panels": panels,
            }
        )
    notes = {
        "stats": f"Over the {layer['images_seen']:,} test images and {n} steps: the unit's highest value; the class with the "
        "largest |mean value| and its selectivity (0: every class moves the unit alike, 1: only that class; see the bars below); "
        "r: the correlation of the unit's value with the row being read: its ink (mean pixel), the ink's horizontal position, "
        "and the row number.",
        "top": f"Strongest first. Boxed in red: the row being read when the unit peaked. Below each image: the unit's value "
        f"over the {n} rows (grey line: 0; red: the peak).",
        "classtrace": "The unit's mean value after each row over the test images of each class (the preferred class drawn "
        "thicker; in brackets: the images of the class).",
        "classbars": "Each class's mean trace averaged over the steps (the colours as above); the selectivity compares the "
        "largest |bar| with the mean |bar| of the others.",
        "nogates": "A plain RNN has no gates.",
        "gates": "Per gate, the fraction of (test image, step) where this unit's gate is left-saturated (< 0.1) and "
        "right-saturated (> 0.9), as Karpathy et al. (2015) plot them: every unit of the layer.",
    }
    data = {f"saturation {g}": {"x": v["left"], "y": v["right"]} for g, v in layer["saturation"].items()}
    zero = {"x1": 0, "x2": max(n - 1, 1), "y1": 0, "y2": 0, "stroke": "#bbb"}  # under every trace
    styles = {**STYLES, "spark": {**STYLES["spark"], "rules": [zero]}}
    return {"name": name, "units": units, "images": pictures.uris, "notes": notes, "data": data, "styles": styles}
