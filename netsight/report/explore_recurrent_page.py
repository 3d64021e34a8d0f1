"""The recurrent mode of the `netsight explore` page: one recurrent run's hidden units, beside
the conv mode of `explore_page.py` (same bar, grid, keys, address and swipe; this module adds
the layer's JSON, its CSS and the script that draws a recurrent unit's details).

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

from .explore_page import png
from ..plotting import pixel_image

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
    """The JSON of a recurrent layer (an `analysis.explore_recurrent.RecurrentUnits`)."""
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


CSS = """
.rtop figure{position:relative}
.digit{position:relative;line-height:0}
.digit img{display:block;width:100%;aspect-ratio:1;image-rendering:pixelated;border:1px solid #ccc;background:#000}
.digit .row{position:absolute;left:-2px;right:-2px;border:2px solid #e6194b;box-sizing:content-box;margin-top:-2px;pointer-events:none}
svg.spark{width:100%;margin-top:3px;background:#fcfcfc}
.legend{display:flex;flex-wrap:wrap;gap:2px 10px;font-size:.78em;color:#333;margin:.3em 0 0;padding:0;list-style:none;max-width:560px}
.legend li{display:flex;align-items:center;gap:4px}.legend .swatch{display:inline-block;width:14px;height:4px;border-radius:1px}
.legend .dot{display:inline-block;width:8px;height:8px;border-radius:50%}
.tables{display:flex;flex-wrap:wrap;gap:6px 14px}
.gatecharts{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:8px;max-width:520px}
"""

SCRIPT = r"""
// the recurrent mode: called by renderDetail for a layer whose kind is 'recurrent'
// the range's ends, and 0 between them where it is not too close to either to be read
function recTicks(lo, hi) { return Math.min(-lo, hi) > 0.15 * (hi - lo) ? [lo, 0, hi] : [lo, hi]; }
function recRange(values) {
  const finite = values.filter(Number.isFinite);
  let lo = Math.min(0, ...finite), hi = Math.max(0, ...finite);
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  return [lo, hi];
}
// a trace without text: the unit's value over the steps, the zero line grey, the peak step marked
function spark(trace, step, lo, hi) {
  const W = 84, H = 34, P = 3, n = trace.length;
  const svg = svgBox('spark', W, H, 'value over the ' + n + ' steps, peak at row ' + (step + 1));
  const X = (t) => P + (W - 2 * P) * t / Math.max(n - 1, 1), Y = (v) => P + (H - 2 * P) * (1 - (v - lo) / (hi - lo));
  svg.appendChild(svgEl('line', {x1: P, x2: W - P, y1: Y(0), y2: Y(0), stroke: '#bbb'}));
  svg.appendChild(svgEl('line', {x1: X(step), x2: X(step), y1: P, y2: H - P, stroke: '#e6194b', 'stroke-width': 1}));
  svg.appendChild(svgEl('polyline', {points: trace.map((v, t) => X(t) + ',' + Y(v)).join(' '), fill: 'none', stroke: '#222',
    'stroke-width': 1.3}));
  svg.appendChild(svgEl('circle', {cx: X(step), cy: Y(trace[step]), r: 2.4, fill: '#e6194b'}));
  return svg;
}
function classLegend(layer, counts) {
  return el('ul', {class: 'legend'}, layer.classes.map((c, i) => el('li', {}, [
    el('span', {class: 'swatch', style: 'background:' + layer.class_colours[i]}),
    el('span', {text: c + (counts ? ' (' + counts[i] + ')' : '')})])));
}
// the mean trace of every class: one line per class in its colour
function classTrace(layer, u, W) {
  const H = 190, L = 44, R = 10, T = 8, B = 38, pw = W - L - R, ph = H - T - B, n = layer.steps;
  const svg = svgBox('classtrace', W, H, 'mean value per class over the steps');
  const [lo, hi] = recRange(u.class_mean.flat());
  const X = (t) => L + pw * t / Math.max(n - 1, 1), Y = (v) => T + ph * (1 - (v - lo) / (hi - lo));
  if (lo < 0 && hi > 0) svg.appendChild(svgEl('line', {x1: L, x2: L + pw, y1: Y(0), y2: Y(0), stroke: '#ccc'}));
  u.class_mean.forEach((m, c) => svg.appendChild(svgEl('polyline', {points: m.map((v, t) => X(t) + ',' + Y(v)).join(' '),
    fill: 'none', stroke: layer.class_colours[c], 'stroke-width': c === u.stats.preferred ? 2.4 : 1.3})));
  const steps = [0, Math.round((n - 1) / 3), Math.round(2 * (n - 1) / 3), n - 1];
  axes(svg, L, T, pw, ph, steps.map((t) => [X(t), String(t + 1)]), recTicks(lo, hi).map((v) => [Y(v), tick(v)]),
    'row read (step)', 'mean value');
  return svg;
}
// the class means averaged over the steps, one bar per class
function classBars(layer, u, W) {
  const H = 150, L = 44, R = 10, T = 8, B = 38, pw = W - L - R, ph = H - T - B, n = layer.classes.length;
  const svg = svgBox('classbars', W, H, 'mean value per class, over all steps');
  const means = u.class_mean.map((m) => m.reduce((a, b) => a + b, 0) / m.length);
  const [lo, hi] = recRange(means), Y = (v) => T + ph * (1 - (v - lo) / (hi - lo)), bw = pw / n;
  if (lo < 0 && hi > 0) svg.appendChild(svgEl('line', {x1: L, x2: L + pw, y1: Y(0), y2: Y(0), stroke: '#999'}));  // the bars' base
  means.forEach((v, c) => svg.appendChild(svgEl('rect', {x: L + c * bw + 2, width: Math.max(bw - 4, 1),
    y: Math.min(Y(v), Y(Math.max(lo, 0))), height: Math.abs(Y(v) - Y(Math.max(lo, 0))), fill: layer.class_colours[c]})));
  const short = (s) => (s.length > 6 ? s.slice(0, 5) + '…' : s);
  axes(svg, L, T, pw, ph, layer.classes.map((c, i) => [L + (i + 0.5) * bw, short(c)]), recTicks(lo, hi).map((v) => [Y(v), tick(v)]),
    'class', 'mean value');
  return svg;
}
// Karpathy's scatter for one gate: every unit of the layer (grey), this one (red)
function gateScatter(layer, gate, unit) {
  const W = 156, H = 156, L = 34, R = 10, T = 8, B = 38, pw = W - L - R, ph = H - T - B;
  const svg = svgBox('gate', W, H, gate + ' gate: fraction of steps left- and right-saturated');
  const s = layer.saturation[gate], X = (v) => L + pw * v, Y = (v) => T + ph * (1 - v);
  svg.appendChild(svgEl('line', {x1: X(0), y1: Y(1), x2: X(1), y2: Y(0), stroke: '#bbb', 'stroke-dasharray': '3 2'}));
  s.left.forEach((x, i) => { if (i !== unit) svg.appendChild(svgEl('circle', {cx: X(x), cy: Y(s.right[i]), r: 2, fill: '#999',
    'fill-opacity': 0.55})); });
  svg.appendChild(svgEl('circle', {cx: X(s.left[unit]), cy: Y(s.right[unit]), r: 4.2, fill: '#e6194b', stroke: '#fff',
    'stroke-width': 1, class: 'this'}));
  axes(svg, L, T, pw, ph, [[X(0), '0'], [X(0.5), '0.5'], [X(1), '1']], [[Y(0), '0'], [Y(0.5), '0.5'], [Y(1), '1']],
    gate + ': left (< 0.1)', 'right (> 0.9)');
  return svg;
}
function recurrentDetail(layer, u, d) {
  const cell = layer.cell.toUpperCase(), s = u.stats, n = layer.steps;
  const room = Math.round(Math.min(460, Math.max(280, d.clientWidth - 24)));  // plots drawn at the width shown: text stays 10 px
  d.appendChild(el('h2', {text: layer.name + ' · unit ' + u.unit + ' (' + cell + ' hidden state, ' + layer.units.length + ' units)'}));
  const corr = (f) => (s.correlation[f] === null || s.correlation[f] === undefined ? '–' : s.correlation[f].toFixed(2));
  const table = (heads, cells) => el('table', {class: 'stats'}, [el('tr', {}, heads.map((h) => el('th', {text: h}))),
    el('tr', {}, cells.map((v) => el('td', {text: v})))]);
  d.appendChild(el('div', {class: 'tables'}, [
    table(['peak', 'preferred class', 'selectivity'], [fmt(s.peak), layer.classes[s.preferred], s.selectivity.toFixed(3)]),
    table(['r (ink)', 'r (position)', 'r (row)'], [corr('ink'), corr('position'), corr('row')])]));
  d.appendChild(el('p', {class: 'note', text: 'Over the ' + layer.images_seen.toLocaleString('en') + ' test images and ' + n + ' steps: the '
    + 'unit\'s highest value; the class with the largest |mean value| and its selectivity (0: every class moves the unit '
    + 'alike, 1: only that class; see the bars below); r: the correlation of the unit\'s value with the row being read: its '
    + 'ink (mean pixel), the ink\'s horizontal position, and the row number.'}));
  d.appendChild(el('h3', {text: 'Top-' + u.top.length + ' test images and their traces'}));
  d.appendChild(el('p', {class: 'note', text: 'Strongest first. Boxed in red: the row being read when the unit peaked. '
    + 'Below each image: the unit\'s value over the ' + n + ' rows (grey line: 0; red: the peak).'}));
  const [lo, hi] = recRange(u.top.flatMap((t) => t.trace));
  d.appendChild(el('div', {class: 'cards top rtop', style: '--k:' + u.top.length}, u.top.map((t, r) => el('figure', {
    class: 'rpair', title: t.file + ', row ' + (t.step + 1)}, [
    el('div', {class: 'digit'}, [el('img', {class: 'digit', src: layer.images[t.image], alt: 'image ' + t.image + ', row '
      + (t.step + 1) + ' marked', 'data-image': t.image, 'data-step': t.step, 'data-value': t.value}),
      el('span', {class: 'row', style: 'top:' + (100 * t.step / n) + '%;height:' + (100 / n) + '%'})]),
    spark(t.trace, t.step, lo, hi),
    el('figcaption', {text: '#' + (r + 1) + (t.label ? ' ' + t.label : '') + ' · row ' + (t.step + 1) + ' · ' + fmt(t.value)})]))));
  d.appendChild(el('h3', {text: 'Mean trace per class'}));
  d.appendChild(el('p', {class: 'note', text: 'The unit\'s mean value after each row over the test images of each class '
    + '(the preferred class drawn thicker; in brackets: the images of the class).'}));
  d.appendChild(classTrace(layer, u, room));
  d.appendChild(classLegend(layer, layer.class_counts));
  d.appendChild(el('h3', {text: 'Class selectivity'}));
  d.appendChild(el('p', {class: 'note', text: 'Each class\'s mean trace averaged over the steps (the colours as above); '
    + 'the selectivity compares the largest |bar| with the mean |bar| of the others.'}));
  d.appendChild(classBars(layer, u, room));
  d.appendChild(el('h3', {text: 'Gates'}));
  if (!layer.gates.length) {
    d.appendChild(el('p', {class: 'note', text: 'A plain RNN has no gates.'}));
    return;
  }
  d.appendChild(el('p', {class: 'note', text: 'Per gate, the fraction of (test image, step) where this unit\'s gate is '
    + 'left-saturated (< 0.1) and right-saturated (> 0.9), as Karpathy et al. (2015) plot them: every unit of the layer.'}));
  d.appendChild(el('table', {class: 'stats gates'}, [el('tr', {}, ['gate', 'left (< 0.1)', 'right (> 0.9)', 'neither']
    .map((h) => el('th', {text: h})))].concat(layer.gates.map((g) => el('tr', {}, [g, (100 * u.gates[g].left).toFixed(1) + '%',
    (100 * u.gates[g].right).toFixed(1) + '%', (100 * (1 - u.gates[g].left - u.gates[g].right)).toFixed(1) + '%']
    .map((v) => el('td', {text: v})))))));
  d.appendChild(el('div', {class: 'gatecharts'}, layer.gates.map((g) => gateScatter(layer, g, u.unit))));
  d.appendChild(el('ul', {class: 'legend'}, [
    el('li', {}, [el('span', {class: 'dot', style: 'background:#e6194b'}), el('span', {text: 'unit ' + u.unit})]),
    el('li', {}, [el('span', {class: 'dot', style: 'background:#999'}), el('span', {text: 'the other units of ' + layer.name})]),
    el('li', {}, [el('span', {class: 'swatch', style: 'background:#bbb'}), el('span', {text: 'dashed: left + right = 1'})])]));
}
"""
