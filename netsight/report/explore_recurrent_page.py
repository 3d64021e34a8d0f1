"""The recurrent mode of the `netsight explore` page: one recurrent run's hidden units, beside
the conv mode of `explore_page.py` (same page, same script: this module gives the layer's data,
`recurrent_layer_data`, and `recurrent_layer` the page's layer, whose panels the techniques that apply
to recurrent runs declare in their modules: `units.py` and `gates.py`).

A unit's details: its top-9 test images with the row being read when it peaked boxed, under
each the unit's value over all the steps (its trace, the peak marked), the mean trace per class
and the class means as bars (the class colours are `style.class_colour`'s, carried in the JSON),
its class selectivity, and for LSTM/GRU the saturation of its gates (Karpathy, Johnson &
Fei-Fei, "Visualizing and Understanding Recurrent Networks", 2015: the fraction of steps each
gate is left-saturated, < 0.1, or right-saturated, > 0.9) drawn as the paper's scatter of every
unit of the layer with this one marked.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .explore_page import page_layer
from ..plotting import pixel_image
from .panels import Images, PageLayer, png

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


def recurrent_layer(layer: dict) -> dict:
    """The page's layer: `recurrent_layer_data`'s units as the panels the techniques that apply to recurrent runs
    declare for them (`units`, `gates`: `explore_page.unit_panels`)."""
    page = PageLayer("recurrent", layer, Images())
    page.image_keys = {int(i): page.pictures.key(uri) for i, uri in layer["images"].items()}
    cell, hidden = layer["cell"].upper(), len(layer["units"])
    label = f"{cell} layer ({layer['name']})"  # a recurrent classifier's module is "rnn" whatever its cell
    titles = [f"{cell} layer · unit {u['unit']} (hidden state, {hidden} units)" for u in layer["units"]]
    return page_layer(page, layer["name"], titles, [False] * hidden, label)
