"""The `netsight explore` page: one self-contained HTML file to browse every unit of a CNN.

Pictures are small PNGs inlined as data URIs, numbers (statistics, histograms, occlusion and
invariance curves) are JSON drawn by the page's own script as SVG; a Content-Security-Policy
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
from typing import Optional, Sequence

import numpy as np

from ..plotting import _outside_tinted, pixel_image, projection_image


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
    """The JSON of one layer (an `analysis.explore.LayerUnits`)."""
    maps = units.top.values.shape[0]
    rgb = first_layer and units.weights.shape[1] == 3
    image_uri = {i: png(pixel_image(x)) for i, x in units.images.items()}
    out_units = []
    for m in range(maps):
        top = []
        for j in range(units.top.values.shape[1]):
            i = int(units.top.image_index[m, j])
            top.append(
                {
                    "image": i,
                    "file": names[i],
                    "label": labels[i] if labels is not None else "",
                    "activation": float(units.top.values[m, j]),
                    "y": int(units.top.positions[m, j, 0]),
                    "x": int(units.top.positions[m, j, 1]),
                    "patch": png(_outside_tinted(pixel_image(units.patches[m, j]), units.valid[m, j, 0].numpy())),
                    "projection": png(_outside_tinted(projection_image(units.projections[m, j]), units.valid[m, j, 0].numpy())),
                }
            )
            if units.randomised is not None:
                r = units.randomised
                top[-1]["random"] = png(_outside_tinted(projection_image(r.projections[m, j]), units.valid[m, j, 0].numpy()))
                top[-1]["rho"] = r.rho[m][j]
        occlusion = []
        for o in units.occlusion[m]:
            uri, lo, hi = _heat(np.asarray(o["map"]))
            occlusion.append(
                {
                    "image": o["image"],
                    "picture": image_uri[o["image"]],
                    "heat": uri,
                    "low": lo,
                    "high": hi,
                    "unoccluded": o["unoccluded"],
                }
            )
        unit = {
            "unit": m,
            "stats": units.stats[m],
            "histogram": units.histograms[m],
            "top": top,
            "filter": filter_picture(units.weights[m], rgb),
            "occlusion": occlusion,
            "invariance": {k: {"amounts": v["amounts"], "response": v["response"][m]} for k, v in units.invariance.items()},
        }
        if units.randomised is not None:
            unit["random_rho"] = units.randomised.unit_rho[m]
        if units.evolution is not None:
            evo = units.evolution
            unit["evolution"] = [
                {"iteration": it, "picture": png(projection_image(evo["projections"][m, s])), "value": float(evo["values"][m, s])}
                for s, it in enumerate(evo["iterations"])
            ]
        out_units.append(unit)
    return {
        "name": units.layer,
        "target": units.target,
        "field": list(units.field.size),
        "weights": list(units.weights.shape),
        "units": out_units,
        "first": first_layer,  # a first-layer projection is the unit's filter whatever the image
    }


_CSS = """
*,*::before,*::after{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa;line-height:1.35}
header{padding:.6em 1em;background:#243447;color:#fff}header h1{font-size:1.1em;margin:0}header p{margin:.2em 0 0;font-size:.8em;opacity:.85}
#bar{position:sticky;top:0;z-index:5;background:#fafafa;border-bottom:1px solid #ddd;padding:.45em .8em;display:flex;flex-wrap:wrap;gap:.4em .8em;align-items:center}
#layers{display:flex;flex-wrap:wrap;gap:.3em;min-width:0}
#bar button{font:inherit;font-size:.85em;min-height:2.25rem;min-width:2.25rem;padding:.25em .8em;border:1px solid #888;background:#fff;color:#222;border-radius:4px;cursor:pointer}
#layers button[aria-pressed=true]{background:#243447;border-color:#243447;color:#fff}
#stepper{display:flex;gap:.3em;align-items:center;margin-left:auto}
#stepper #where{min-width:8em;text-align:center;font-size:.9em}
.help{font-size:.78em;color:#555;margin:.5em 1em 0}
main{display:grid;grid-template-columns:minmax(0,1fr);gap:1em;padding:.8em;align-items:start}
#grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(56px,1fr));gap:4px;align-content:start}
#grid button{padding:2px;border:2px solid transparent;background:#fff;cursor:pointer;font:inherit;font-size:10px;color:#555;min-width:0}
#grid button img{width:100%;aspect-ratio:1;object-fit:contain;image-rendering:pixelated;display:block}
#grid button.dead{opacity:.35}#grid button[aria-selected=true]{border-color:#e6194b;color:#e6194b;font-weight:600}
#grid button:focus-visible,#bar button:focus-visible{outline:2px solid #05a;outline-offset:1px}
#detail{background:#fff;border:1px solid #ddd;padding:.7em .8em;min-width:0;touch-action:pan-y pinch-zoom}
#detail,#grid{scroll-margin-top:calc(var(--bar, 52px) + .5em)}
#detail h2{font-size:1em;margin:.1em 0 .5em}#detail h3{font-size:.9em;margin:1.1em 0 .35em;color:#243447}
#detail .note{font-size:.78em;color:#555;margin:.1em 0 .4em}
#detail p.rho{font-size:.85em;font-weight:600;margin:.1em 0 .3em}
table.stats{border-collapse:collapse;font-size:.8em}table.stats td,table.stats th{border:1px solid #ddd;padding:2px 6px;text-align:right}
table.stats th{background:#f3f3f3;font-weight:600}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(58px,1fr));gap:8px 6px;max-width:calc(var(--k, 9) * 92px)}
.cards figure{margin:0;font-size:10px;color:#555;text-align:center;min-width:0}
.cards img{display:block;width:100%;aspect-ratio:1;object-fit:contain;image-rendering:pixelated;border:1px solid #ccc;background:#fff}
.cards .pair img.projection{margin-top:3px}
.cards figcaption{margin-top:2px;line-height:1.25;overflow-wrap:anywhere}
.filter img{width:160px;max-width:100%;height:auto;image-rendering:pixelated;border:1px solid #ccc;display:block}
.occlusion{display:flex;flex-wrap:wrap;gap:10px 18px}
.occlusion figure{margin:0;font-size:10px;color:#555}.occlusion .occ-row{display:flex;gap:4px;align-items:flex-start}
.occlusion img{width:84px;height:84px;image-rendering:pixelated;border:1px solid #ccc;display:block}
.plots{display:flex;flex-wrap:wrap;gap:8px 16px}.curves{display:grid;grid-template-columns:repeat(auto-fill,minmax(140px,1fr));gap:8px;max-width:576px}
.curves svg{width:100%}
svg{background:#fcfcfc;max-width:100%;height:auto;display:block}svg text{font-size:10px;fill:#444}
svg.colorbar{background:none}
@media (min-width:860px){
main{grid-template-columns:minmax(250px,36%) minmax(0,1fr)}
#grid{position:sticky;top:calc(var(--bar, 52px) + .8em);max-height:calc(100vh - var(--bar, 52px) - 1.6em);overflow-y:auto;padding-right:2px}
#to-grid{display:none}
}
@media (max-width:520px){#stepper{margin-left:0;width:100%}#stepper #where{flex:1}.help{margin:.5em .8em 0}}
"""

_SCRIPT = r"""
const DATA = JSON.parse(document.getElementById('explore-data').textContent);
const VIRIDIS = ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725'];
const WIDE = window.matchMedia('(min-width: 860px)');
const QUIET = window.matchMedia('(prefers-reduced-motion: reduce)');
let state = {layer: -1, unit: -1}, shownLayer = -1, bars = 0;
const $ = (sel) => document.querySelector(sel);
function el(tag, attrs, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) { if (k === 'text') e.textContent = v; else e.setAttribute(k, v); }
  for (const c of children || []) e.appendChild(c);
  return e;
}
function svgEl(tag, attrs, text) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function fmt(v) { return Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : v.toPrecision(3); }
function tick(v) { return Math.abs(v) >= 1000 ? v.toFixed(0) : String(Number(v.toPrecision(3))); }
function svgBox(cls, W, H, label) {
  return svgEl('svg', {width: W, height: H, viewBox: '0 0 ' + W + ' ' + H, class: cls, role: 'img', 'aria-label': label});
}
// a plot area [L, L+pw] x [T, T+ph] with its axes, ticks and labels (never on top of each other)
function axes(svg, L, T, pw, ph, xticks, yticks, xlabel, ylabel) {
  const W = +svg.getAttribute('width');
  svg.appendChild(svgEl('path', {d: 'M' + L + ' ' + T + 'V' + (T + ph) + 'H' + (L + pw), fill: 'none', stroke: '#777'}));
  xticks.forEach(([x, text], i) => {
    svg.appendChild(svgEl('line', {x1: x, x2: x, y1: T + ph, y2: T + ph + 3, stroke: '#777'}));
    const anchor = i === 0 && xticks.length > 1 ? 'start' : i === xticks.length - 1 && xticks.length > 1 ? 'end' : 'middle';
    svg.appendChild(svgEl('text', {x: anchor === 'start' ? Math.max(x - 3, 1) : anchor === 'end' ? Math.min(x + 3, W - 1) : x,
      y: T + ph + 14, 'text-anchor': anchor}, text));
  });
  yticks.forEach(([y, text]) => {
    svg.appendChild(svgEl('line', {x1: L - 3, x2: L, y1: y, y2: y, stroke: '#777'}));
    svg.appendChild(svgEl('text', {x: L - 5, y: y + 3.5, 'text-anchor': 'end'}, text));
  });
  if (xlabel) svg.appendChild(svgEl('text', {x: L + pw / 2, y: T + ph + 28, 'text-anchor': 'middle', class: 'label'}, xlabel));
  if (ylabel) svg.appendChild(svgEl('text', {x: 0, y: 0, 'text-anchor': 'middle', class: 'label',
    transform: 'translate(10 ' + (T + ph / 2) + ') rotate(-90)'}, ylabel));
}
function histogram(h) {
  const W = 300, H = 160, L = 44, R = 12, T = 8, B = 38, pw = W - L - R, ph = H - T - B;
  const svg = svgBox('histogram', W, H, 'histogram of the strongest response per image');
  const n = h.counts.length, peak = Math.max(1, ...h.counts), bw = pw / n, lo = h.edges[0], hi = h.edges[n];
  h.counts.forEach((c, i) => svg.appendChild(svgEl('rect', {x: L + i * bw + 0.5, y: T + ph - ph * c / peak,
    width: Math.max(bw - 1, 1), height: ph * c / peak, fill: '#4363d8'})));
  const counts = peak >= 2 ? [0, Math.round(peak / 2), peak] : [0, peak];
  axes(svg, L, T, pw, ph, [[L, tick(lo)], [L + pw / 2, tick((lo + hi) / 2)], [L + pw, tick(hi)]],
    counts.map((c) => [T + ph - ph * c / peak, String(c)]), 'strongest response per image', 'images');
  return svg;
}
function curve(name, c) {
  const W = 170, H = 136, L = 32, R = 10, T = 8, B = 38, pw = W - L - R, ph = H - T - B;
  const svg = svgBox('invariance', W, H, name + ': relative response');
  const xs = c.amounts, ys = c.response.map((v) => (v === null ? NaN : v)), x0 = Math.min(...xs), x1 = Math.max(...xs);
  const finite = ys.filter(Number.isFinite), top = Math.max(1.2, ...finite), bottom = Math.min(0, ...finite);
  const X = (x) => L + pw * (x - x0) / ((x1 - x0) || 1), Y = (y) => T + ph * (1 - (y - bottom) / ((top - bottom) || 1));
  svg.appendChild(svgEl('line', {x1: L, x2: L + pw, y1: Y(1), y2: Y(1), stroke: '#999', 'stroke-dasharray': '3 2'}));
  if (finite.length) {
    svg.appendChild(svgEl('polyline', {points: xs.map((x, i) => X(x) + ',' + Y(Number.isFinite(ys[i]) ? ys[i] : 0)).join(' '),
      fill: 'none', stroke: '#e6194b', 'stroke-width': 1.6}));
  } else {
    svg.appendChild(svgEl('text', {x: L + pw / 2, y: T + ph / 2, 'text-anchor': 'middle'}, 'never active'));
  }
  const mid = xs[Math.floor(xs.length / 2)];
  const xt = [[X(x0), tick(x0)]].concat(mid > x0 && mid < x1 ? [[X(mid), tick(mid)]] : [], [[X(x1), tick(x1)]]);
  const yt = [[Y(bottom), tick(bottom)], [Y(1), '1'], [Y(top), tick(top)]];
  axes(svg, L, T, pw, ph, xt, yt, name, '');
  return svg;
}
// a vertical viridis bar from the map's lowest (bottom) to its highest value (top); the line marks the whole image
function colorbar(lo, hi, whole) {
  const W = 60, H = 86, T = 5, B = 5, bh = H - T - B, id = 'viridis-' + (++bars);
  const svg = svgBox('colorbar', W, H, 'colour scale from ' + fmt(lo) + ' to ' + fmt(hi));
  const grad = svgEl('linearGradient', {id: id, x1: 0, y1: 1, x2: 0, y2: 0});
  VIRIDIS.forEach((c, i) => grad.appendChild(svgEl('stop', {offset: i / (VIRIDIS.length - 1), 'stop-color': c})));
  const defs = svgEl('defs', {}); defs.appendChild(grad); svg.appendChild(defs);
  svg.appendChild(svgEl('rect', {x: 1, y: T, width: 11, height: bh, fill: 'url(#' + id + ')', stroke: '#999', 'stroke-width': 0.5}));
  svg.appendChild(svgEl('text', {x: 15, y: T + 8}, fmt(hi)));
  svg.appendChild(svgEl('text', {x: 15, y: T + bh}, fmt(lo)));
  if (hi > lo && whole >= lo && whole <= hi) {
    const y = T + bh * (1 - (whole - lo) / (hi - lo));
    svg.appendChild(svgEl('line', {x1: 0, x2: 13, y1: y, y2: y, stroke: '#fff', 'stroke-width': 2.5}));
    svg.appendChild(svgEl('line', {x1: 0, x2: 13, y1: y, y2: y, stroke: '#000', 'stroke-width': 1}));
  }
  return svg;
}
function cards(items, cls) {
  return el('div', {class: 'cards ' + cls, style: '--k:' + items.length}, items.map((t) => el('figure', {}, [
    el('img', {class: cls, src: t.src, alt: t.alt, 'data-image': t.image, 'data-activation': t.activation}),
    el('figcaption', {text: t.caption})])));
}
function address(layer, unit) { return '#' + encodeURIComponent(DATA.layers[layer].name) + '/' + unit; }
// '#layer/unit' -> {layer, unit}: an unknown layer (or garbage) gives null, a unit out of range the nearest one
function parse(hash) {
  let text;
  try { text = decodeURIComponent(hash.replace(/^#/, '')); } catch (e) { return null; }
  const cut = text.lastIndexOf('/');
  const name = cut < 0 ? text : text.slice(0, cut), rest = cut < 0 ? '' : text.slice(cut + 1);
  const layer = DATA.layers.findIndex((l) => l.name === name);
  if (layer < 0) return null;
  const m = DATA.layers[layer].units.length;
  return {layer: layer, unit: /^\d+$/.test(rest) ? Math.min(parseInt(rest, 10), m - 1) : 0};
}
function renderLayers() {
  const box = $('#layers');
  if (!box.firstChild) {
    DATA.layers.forEach((l, i) => {
      const b = el('button', {type: 'button', 'data-layer': l.name, text: l.name + ' · ' + l.units.length + ' units'});
      b.addEventListener('click', () => go(i, Math.min(state.unit, l.units.length - 1)));
      box.appendChild(b);
    });
  }
  [...box.children].forEach((b, i) => b.setAttribute('aria-pressed', String(i === state.layer)));
}
function renderGrid() {
  const grid = $('#grid'), layer = DATA.layers[state.layer];
  if (shownLayer !== state.layer) {
    grid.textContent = '';
    layer.units.forEach((u, i) => {
      const b = el('button', {type: 'button', class: 'unit' + (u.stats.dead ? ' dead' : ''), 'data-unit': i,
        title: layer.name + ' unit ' + i + (u.stats.dead ? ' (dead)' : '')},
        [el('img', {src: u.preview || u.top[0].projection, alt: 'unit ' + i}), el('span', {text: '#' + i})]);
      b.addEventListener('click', () => {
        go(state.layer, i);
        if (!WIDE.matches) $('#detail').scrollIntoView({block: 'start', behavior: QUIET.matches ? 'auto' : 'smooth'});
      });
      grid.appendChild(b);
    });
    shownLayer = state.layer;
  }
  [...grid.children].forEach((b, i) => b.setAttribute('aria-selected', String(i === state.unit)));
  const tile = grid.children[state.unit];
  if (WIDE.matches && tile) {  // keep the selected tile in sight inside the grid's own scroll box
    const top = tile.offsetTop - grid.offsetTop, bottom = top + tile.offsetHeight;
    if (top < grid.scrollTop) grid.scrollTop = top - 4;
    else if (bottom > grid.scrollTop + grid.clientHeight) grid.scrollTop = bottom - grid.clientHeight + 4;
  }
}
function renderDetail() {
  const layer = DATA.layers[state.layer], u = layer.units[state.unit], d = $('#detail');
  d.textContent = '';
  d.setAttribute('data-layer', layer.name); d.setAttribute('data-unit', String(state.unit));
  if (layer.kind === 'recurrent') { recurrentDetail(layer, u, d); return; }  // explore_recurrent_page.py
  d.appendChild(el('h2', {text: layer.name + ' · unit ' + state.unit + ' (output of ' + layer.target + ')'}));
  const s = u.stats;
  d.appendChild(el('table', {class: 'stats'}, [el('tr', {}, ['mean', 'std', 'zeros', 'max', 'status'].map((h) => el('th', {text: h}))),
    el('tr', {}, [fmt(s.mean), fmt(s.std), (100 * s.zero_frac).toFixed(1) + '%', fmt(s.max), s.dead ? 'dead (never positive)' : 'alive']
      .map((v) => el('td', {text: v})))]));
  d.appendChild(el('p', {class: 'note', text: 'Over the test set: mean, standard deviation, fraction of zero outputs and maximum.'}));
  d.appendChild(el('div', {class: 'plots'}, [
    el('div', {}, [el('h3', {text: 'Filter weights (' + layer.weights.slice(1).join('x') + ')'}),
      el('div', {class: 'filter'}, [el('img', {src: u.filter, alt: 'filter weights'})])]),
    el('div', {}, [el('h3', {text: 'Strongest response per test image'}), histogram(u.histogram)])]));
  d.appendChild(el('h3', {text: 'Top-' + u.top.length + ' test images (receptive field ' + layer.field.join('x') + ' px)'}));
  d.appendChild(el('p', {class: 'note', text: 'Each column: the input patch (top) and its deconvnet projection (below), '
    + 'strongest first; blue marks the part of the field outside the image.'}));
  d.appendChild(el('div', {class: 'cards top', style: '--k:' + u.top.length}, u.top.map((t, r) => el('figure', {class: 'pair',
    title: t.file + ', position (' + t.y + ', ' + t.x + ')'}, [
    el('img', {class: 'patch', src: t.patch, alt: 'patch ' + (r + 1), 'data-image': t.image, 'data-activation': t.activation}),
    el('img', {class: 'projection', src: t.projection, alt: 'projection ' + (r + 1), 'data-image': t.image,
      'data-activation': t.activation}),
    el('figcaption', {text: '#' + (r + 1) + (t.label ? ' ' + t.label : '') + ' ' + fmt(t.activation)})]))));
  if (u.top.length && u.top[0].random) randomRow(d, u, layer.first);
  d.appendChild(el('h3', {text: 'Occlusion'}));
  d.appendChild(el('p', {class: 'note', text: 'The unit\'s strongest activation with a grey square at each position of '
    + 'the image (darker: covering there lowers it more); the bar gives the scale, its line the value for the whole image.'}));
  d.appendChild(el('div', {class: 'occlusion'}, u.occlusion.map((o) => el('figure', {}, [
    el('div', {class: 'occ-row'}, [el('img', {src: o.picture, alt: 'image ' + o.image}),
      el('img', {class: 'heat', src: o.heat, alt: 'occlusion map of image ' + o.image}), colorbar(o.low, o.high, o.unoccluded)]),
    el('figcaption', {text: 'image ' + o.image + ' · whole image ' + fmt(o.unoccluded)})]))));
  if (u.evolution) {
    d.appendChild(el('h3', {text: 'Evolution over the weight snapshots'}));
    d.appendChild(el('p', {class: 'note', text: 'The strongest activation over the test set, projected, at each snapshot.'}));
    d.appendChild(cards(u.evolution.map((e) => ({src: e.picture, alt: 'iteration ' + e.iteration, image: '', activation: e.value,
      caption: 'it. ' + e.iteration + ' ' + fmt(e.value)})), 'evolution'));
  }
  d.appendChild(el('h3', {text: 'Invariance'}));
  d.appendChild(el('p', {class: 'note', text: 'Response to its top images transformed, relative to untransformed (dashed: 1).'}));
  d.appendChild(el('div', {class: 'curves'}, Object.entries(u.invariance).map(([k, c]) => curve(k, c))));
}
// Adebayo et al.'s sanity check: the nine projections again, through the model with every layer re-initialised
function randomRow(d, u, first) {
  const r = u.random_rho, verdict = r === null ? 'no projection to compare (the unit never responds to these images)'
    : first ? 'in the first layer a projection is the unit\'s filter whatever the image: this compares the trained filter with a random one'
    : r >= 0.5 ? 'these pictures are mostly the image' : r >= 0.2 ? 'these pictures are partly the image, partly the trained unit'
    : 'these pictures come from the trained weights';
  d.appendChild(el('h3', {text: 'Sanity check: the same projections through random weights'}));
  d.appendChild(el('p', {class: 'rho', 'data-rho': r === null ? '' : String(r),
    text: 'projections through random weights: ρ = ' + (r === null ? '–' : r.toFixed(2)) + ' — ' + verdict}));
  d.appendChild(el('p', {class: 'note', text: 'The same nine images, unit and positions, projected through the model with '
    + 'every layer re-initialised by its own init (seed 0; Adebayo et al. 2018). ρ: Spearman rank correlation of the trained '
    + 'and the random projection over the pixels, per image below, their mean above. The higher it is (0.2–0.5: "partly", '
    + '≥ 0.5: "mostly"), the more the picture is the image rather than what the unit learned.'}));
  d.appendChild(cards(u.top.map((t, i) => ({src: t.random, alt: 'random-weights projection ' + (i + 1), image: t.image,
    activation: t.activation, caption: '#' + (i + 1) + ' ρ ' + (t.rho === null ? '–' : t.rho.toFixed(2))})), 'randomised'));
}
function show(layer, unit) {
  const n = DATA.layers.length;
  layer = ((layer % n) + n) % n;
  const m = DATA.layers[layer].units.length;
  unit = ((unit % m) + m) % m;
  if (layer === state.layer && unit === state.unit) return;
  state = {layer: layer, unit: unit};
  renderLayers(); renderGrid(); renderDetail();
  $('#where').textContent = 'unit ' + unit + ' (0–' + (m - 1) + ')';
}
// a unit chosen on the page: a new history entry, so Back returns to the unit before
function go(layer, unit) {
  show(layer, unit);
  const want = address(state.layer, state.unit);
  if (location.hash !== want) history.pushState(null, '', want);
}
// the address changed (typed, a link, Back/Forward): show it, and correct an invalid one in place
function follow() {
  const p = parse(location.hash) || (state.layer < 0 ? {layer: 0, unit: 0} : state);
  show(p.layer, p.unit);
  const want = address(state.layer, state.unit);
  if (location.hash !== want) history.replaceState(null, '', want);
}
function step(du) { go(state.layer, state.unit + du); }
window.addEventListener('hashchange', follow);
window.addEventListener('popstate', follow);
$('#prev').addEventListener('click', () => step(-1));
$('#next').addEventListener('click', () => step(1));
$('#to-grid').addEventListener('click', () => {
  const tile = $('#grid').children[state.unit];
  $('#grid').scrollIntoView({block: 'start', behavior: QUIET.matches ? 'auto' : 'smooth'});
  if (tile) tile.focus({preventScroll: true});
});
document.addEventListener('keydown', (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey || e.defaultPrevented || /^(INPUT|SELECT|TEXTAREA)$/.test(e.target.tagName)) return;
  const moves = {ArrowRight: [0, 1], ArrowLeft: [0, -1], ArrowDown: [1, 0], ArrowUp: [-1, 0]};
  if (e.key in moves) {
    const [dl, du] = moves[e.key], n = DATA.layers.length, next = (state.layer + dl + n) % n;
    if (dl) go(next, Math.min(state.unit, DATA.layers[next].units.length - 1)); else step(du);
    e.preventDefault();
  }
});
// swipe the details sideways (touch or pen): left for the next unit, right for the previous one
(function swipe() {
  const d = $('#detail');
  let start = null;
  const begin = (x, y) => { start = {x: x, y: y, t: Date.now()}; };
  const end = (x, y) => {
    if (!start) return;
    const dx = x - start.x, dy = y - start.y, quick = Date.now() - start.t < 1000;
    start = null;
    if (quick && Math.abs(dx) > 50 && Math.abs(dx) > 1.5 * Math.abs(dy)) step(dx < 0 ? 1 : -1);
  };
  if (window.PointerEvent) {
    d.addEventListener('pointerdown', (e) => { if (e.isPrimary && e.pointerType !== 'mouse') begin(e.clientX, e.clientY); });
    d.addEventListener('pointerup', (e) => { if (e.isPrimary && e.pointerType !== 'mouse') end(e.clientX, e.clientY); });
    d.addEventListener('pointercancel', () => { start = null; });
  } else {
    d.addEventListener('touchstart', (e) => { if (e.touches.length === 1) begin(e.touches[0].clientX, e.touches[0].clientY); },
      {passive: true});
    d.addEventListener('touchend', (e) => { const t = e.changedTouches[0]; if (t) end(t.clientX, t.clientY); });
  }
})();
// the sticky bar's height, so that a unit scrolled to (or the grid) starts just below it
function measureBar() { document.documentElement.style.setProperty('--bar', $('#bar').offsetHeight + 'px'); }
(function start() {
  follow();
  measureBar();
  if (window.ResizeObserver) new ResizeObserver(measureBar).observe($('#bar'));
  else window.addEventListener('resize', measureBar);
  document.body.setAttribute('data-ready', 'true');
})();
"""


def render_page(title: str, subtitle: str, layers: list[dict], css: str = "", script: str = "") -> str:
    """The page; `css` and `script` are a mode's own (`explore_recurrent_page`'s), run before the page's script."""
    esc = html.escape
    data = json.dumps({"title": title, "layers": layers}, separators=(",", ":")).replace("</", "<\\/")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><meta name='generator' content='netsight'>"
        f"<title>{esc(title)}</title><style>{_CSS}{css}</style></head><body>"
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
        f"<script>{script}</script><script>{_SCRIPT}</script></body></html>"
    )
