"""The `netsight explore` page: one self-contained HTML file to browse every unit of a CNN.

Pictures are small PNGs inlined as data URIs, numbers (statistics, histograms, occlusion and
invariance curves) are JSON drawn by the page's own script as SVG; a Content-Security-Policy
forbids every request, so the page works offline and can never reach the network. The unit
grid shows one preview per unit (its strongest top-9 projection); the details of a unit are
built only when it is selected, so a page with hundreds of units opens at once.
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Optional, Sequence

import numpy as np

from .figures_zf import _outside_tinted, pixel_image, projection_image


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
        canvas[r * (k + 1): r * (k + 1) + k, c * (w.shape[2] + 1): c * (w.shape[2] + 1) + w.shape[2]] = 0.5 + 0.5 * w[i] / m
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
            top.append({
                "image": i, "file": names[i], "label": labels[i] if labels is not None else "",
                "activation": float(units.top.values[m, j]),
                "y": int(units.top.positions[m, j, 0]), "x": int(units.top.positions[m, j, 1]),
                "patch": png(_outside_tinted(pixel_image(units.patches[m, j]), units.valid[m, j, 0].numpy())),
                "projection": png(_outside_tinted(projection_image(units.projections[m, j]), units.valid[m, j, 0].numpy())),
            })
        occlusion = []
        for o in units.occlusion[m]:
            uri, lo, hi = _heat(np.asarray(o["map"]))
            occlusion.append({"image": o["image"], "picture": image_uri[o["image"]], "heat": uri, "low": lo, "high": hi,
                              "unoccluded": o["unoccluded"]})
        unit = {"unit": m, "stats": units.stats[m], "histogram": units.histograms[m], "top": top,
                "filter": filter_picture(units.weights[m], rgb), "occlusion": occlusion,
                "invariance": {k: {"amounts": v["amounts"], "response": v["response"][m]} for k, v in units.invariance.items()}}
        if units.evolution is not None:
            evo = units.evolution
            unit["evolution"] = [{"iteration": it, "picture": png(projection_image(evo["projections"][m, s])),
                                  "value": float(evo["values"][m, s])} for s, it in enumerate(evo["iterations"])]
        out_units.append(unit)
    return {"name": units.layer, "target": units.target, "field": list(units.field.size), "weights": list(units.weights.shape),
            "units": out_units}


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#fafafa}
header{padding:.6em 1em;background:#243447;color:#fff}header h1{font-size:1.1em;margin:0}header p{margin:.2em 0 0;font-size:.8em;opacity:.85}
main{display:flex;gap:1em;padding:1em;align-items:flex-start;flex-wrap:wrap}
#layers{margin:.5em 1em 0}#layers button{margin-right:.3em;padding:.3em .8em;border:1px solid #888;background:#fff;border-radius:3px;cursor:pointer}
#layers button[aria-pressed=true]{background:#243447;color:#fff}
#grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(58px,1fr));gap:4px;flex:1 1 360px;max-width:560px}
#grid button{padding:2px;border:2px solid transparent;background:#fff;cursor:pointer;font-size:10px;color:#555}
#grid button img{width:100%;image-rendering:pixelated;display:block}
#grid button.dead{opacity:.35}#grid button[aria-selected=true]{border-color:#e6194b}
#detail{flex:2 1 520px;background:#fff;border:1px solid #ddd;padding:.8em 1em;min-width:300px}
#detail h2{font-size:1em;margin:.1em 0 .5em}#detail h3{font-size:.9em;margin:1em 0 .3em;color:#243447}
.row{display:flex;gap:5px;flex-wrap:wrap;align-items:flex-start}.pics img{width:54px;height:54px;image-rendering:pixelated;border:1px solid #ccc}
figure{margin:0;text-align:center;font-size:10px;color:#555}table{border-collapse:collapse;font-size:.8em}td,th{border:1px solid #ddd;padding:2px 6px;text-align:right}
.filter img{height:120px;image-rendering:pixelated;border:1px solid #ccc}.help{font-size:.75em;color:#666}
svg{background:#fcfcfc;border:1px solid #eee}svg text{font-size:9px;fill:#555}
"""

_SCRIPT = r"""
const DATA = JSON.parse(document.getElementById('explore-data').textContent);
let state = {layer: 0, unit: 0};
const $ = (sel) => document.querySelector(sel);
function el(tag, attrs, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) { if (k === 'text') e.textContent = v; else e.setAttribute(k, v); }
  for (const c of children || []) e.appendChild(c);
  return e;
}
function svgEl(tag, attrs) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}
function fmt(v) { return Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : v.toPrecision(3); }
function histogram(h) {
  const W = 260, H = 90, svg = svgEl('svg', {width: W, height: H + 16, class: 'histogram'});
  const peak = Math.max(1, ...h.counts), bw = (W - 10) / h.counts.length;
  h.counts.forEach((c, i) => svg.appendChild(svgEl('rect', {x: 5 + i * bw, y: H - H * c / peak, width: Math.max(bw - 1, 1),
    height: H * c / peak, fill: '#4363d8'})));
  const lo = svgEl('text', {x: 5, y: H + 12}); lo.textContent = fmt(h.edges[0]); svg.appendChild(lo);
  const hi = svgEl('text', {x: W - 5, y: H + 12, 'text-anchor': 'end'}); hi.textContent = fmt(h.edges[h.edges.length - 1]);
  svg.appendChild(hi);
  return svg;
}
function curve(name, c) {
  const W = 200, H = 80, svg = svgEl('svg', {width: W, height: H + 28, class: 'invariance'});
  const xs = c.amounts, ys = c.response.map((v) => (v === null ? NaN : v)), x0 = Math.min(...xs), x1 = Math.max(...xs);
  const top = Math.max(1.2, ...ys.filter(Number.isFinite));
  const X = (x) => 8 + (W - 16) * (x - x0) / ((x1 - x0) || 1), Y = (y) => 4 + (H - 8) * (1 - y / top);
  svg.appendChild(svgEl('line', {x1: 8, x2: W - 8, y1: Y(1), y2: Y(1), stroke: '#bbb', 'stroke-dasharray': '3 2'}));
  const one = svgEl('text', {x: 10, y: Y(1) - 2}); one.textContent = '1'; svg.appendChild(one);
  const most = svgEl('text', {x: 10, y: 12}); most.textContent = fmt(top); svg.appendChild(most);
  if (ys.some(Number.isFinite)) {
    svg.appendChild(svgEl('polyline', {points: xs.map((x, i) => X(x) + ',' + Y(Number.isFinite(ys[i]) ? ys[i] : 0)).join(' '),
      fill: 'none', stroke: '#e6194b', 'stroke-width': 1.6}));
  } else {
    const none = svgEl('text', {x: W / 2, y: H / 2, 'text-anchor': 'middle'}); none.textContent = 'never active on its top images';
    svg.appendChild(none);
  }
  const t = svgEl('text', {x: W / 2, y: H + 12, 'text-anchor': 'middle'}); t.textContent = name; svg.appendChild(t);
  const r = svgEl('text', {x: W / 2, y: H + 24, 'text-anchor': 'middle'}); r.textContent = fmt(x0) + ' .. ' + fmt(x1);
  svg.appendChild(r);
  return svg;
}
function pics(items, cls) {
  return el('div', {class: 'row pics ' + cls}, items.map((t) => el('figure', {}, [
    el('img', {class: cls, src: t.src, alt: t.alt, 'data-image': t.image, 'data-activation': t.activation}),
    el('figcaption', {text: t.caption})])));
}
function renderLayers() {
  const box = $('#layers'); box.textContent = '';
  DATA.layers.forEach((l, i) => {
    const b = el('button', {type: 'button', 'aria-pressed': String(i === state.layer), 'data-layer': l.name,
      text: l.name + ' (' + l.units.length + ' units)'});
    b.addEventListener('click', () => select(i, 0));
    box.appendChild(b);
  });
}
function renderGrid() {
  const grid = $('#grid'); grid.textContent = '';
  const layer = DATA.layers[state.layer];
  layer.units.forEach((u, i) => {
    const b = el('button', {type: 'button', class: 'unit' + (u.stats.dead ? ' dead' : ''), 'data-unit': i,
      'aria-selected': String(i === state.unit), title: layer.name + ' unit ' + i},
      [el('img', {src: u.top[0].projection, alt: 'unit ' + i}), el('span', {text: '#' + i})]);
    b.addEventListener('click', () => select(state.layer, i));
    grid.appendChild(b);
  });
}
function renderDetail() {
  const layer = DATA.layers[state.layer], u = layer.units[state.unit], d = $('#detail');
  d.textContent = '';
  d.setAttribute('data-layer', layer.name); d.setAttribute('data-unit', String(state.unit));
  d.appendChild(el('h2', {text: layer.name + ' · unit ' + state.unit + ' (output of ' + layer.target + ')'}));
  const s = u.stats;
  d.appendChild(el('table', {class: 'stats'}, [el('tr', {}, ['mean', 'std', 'zero fraction', 'max', 'status'].map((h) => el('th', {text: h}))),
    el('tr', {}, [fmt(s.mean), fmt(s.std), (100 * s.zero_frac).toFixed(1) + '%', fmt(s.max), s.dead ? 'dead (never positive)' : 'alive']
      .map((v) => el('td', {text: v})))]));
  d.appendChild(el('h3', {text: 'Filter weights (' + layer.weights.slice(1).join('x') + ')'}));
  d.appendChild(el('div', {class: 'filter'}, [el('img', {src: u.filter, alt: 'filter weights'})]));
  d.appendChild(el('h3', {text: 'Strongest response per test image (histogram)'}));
  d.appendChild(histogram(u.histogram));
  d.appendChild(el('h3', {text: 'Top-' + u.top.length + ' test images: input patches (receptive field ' + layer.field.join('x') + ' px)'}));
  d.appendChild(pics(u.top.map((t, r) => ({src: t.patch, alt: 'patch ' + (r + 1), image: t.image, activation: t.activation,
    caption: (t.label ? t.label + ' ' : '') + fmt(t.activation)})), 'patch'));
  d.appendChild(el('h3', {text: 'Their deconvnet projections'}));
  d.appendChild(pics(u.top.map((t, r) => ({src: t.projection, alt: 'projection ' + (r + 1), image: t.image, activation: t.activation,
    caption: 'image ' + t.image})), 'projection'));
  d.appendChild(el('h3', {text: 'Occlusion: this unit\'s strongest activation with a grey square at each position'}));
  d.appendChild(el('div', {class: 'row pics occlusion'}, u.occlusion.map((o) => el('figure', {}, [
    el('img', {src: o.picture, alt: 'image ' + o.image}), el('img', {src: o.heat, alt: 'occlusion map'}),
    el('figcaption', {text: 'image ' + o.image + ': ' + fmt(o.low) + '..' + fmt(o.high) + ' (whole ' + fmt(o.unoccluded) + ')'})]))));
  if (u.evolution) {
    d.appendChild(el('h3', {text: 'Evolution: strongest activation over the test set, projected, per weight snapshot'}));
    d.appendChild(pics(u.evolution.map((e) => ({src: e.picture, alt: 'iteration ' + e.iteration, image: '', activation: e.value,
      caption: 'it. ' + e.iteration})), 'evolution'));
  }
  d.appendChild(el('h3', {text: 'Invariance: response to its top images transformed / untransformed (dashed: 1)'}));
  d.appendChild(el('div', {class: 'row'}, Object.entries(u.invariance).map(([k, c]) => curve(k, c))));
}
function select(layer, unit) {
  const n = DATA.layers.length;
  state.layer = ((layer % n) + n) % n;
  const m = DATA.layers[state.layer].units.length;
  state.unit = ((unit % m) + m) % m;
  renderLayers(); renderGrid(); renderDetail();
  history.replaceState(null, '', '#' + DATA.layers[state.layer].name + '/' + state.unit);
}
document.addEventListener('keydown', (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey) return;
  const moves = {ArrowRight: [0, 1], ArrowLeft: [0, -1], ArrowDown: [1, 0], ArrowUp: [-1, 0]};
  if (e.key in moves) {
    const [dl, du] = moves[e.key];
    select(state.layer + dl, dl ? Math.min(state.unit, DATA.layers[(state.layer + dl + DATA.layers.length) % DATA.layers.length].units.length - 1) : state.unit + du);
    e.preventDefault();
  }
});
(function start() {
  const [name, unit] = decodeURIComponent(location.hash.slice(1)).split('/');
  const i = DATA.layers.findIndex((l) => l.name === name);
  select(i < 0 ? 0 : i, i < 0 ? 0 : Math.min(parseInt(unit, 10) || 0, DATA.layers[i].units.length - 1));
  document.body.setAttribute('data-ready', 'true');
})();
"""


def render_page(title: str, subtitle: str, layers: list[dict]) -> str:
    esc = html.escape
    data = json.dumps({"title": title, "layers": layers}, separators=(",", ":")).replace("</", "<\\/")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><meta name='generator' content='netsight'>"
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>"
        "<nav id='layers' aria-label='layers'></nav>"
        "<p class='help' style='margin:.3em 1em'>Click a unit, or use the keys: &larr;/&rarr; previous/next unit, "
        "&uarr;/&darr; previous/next layer. The address (#layer/unit) links to the unit shown.</p>"
        "<main><div id='grid' role='listbox' aria-label='units'></div><section id='detail' aria-live='polite'></section></main>"
        f"<script type='application/json' id='explore-data'>{data}</script>"
        f"<script>{_SCRIPT}</script></body></html>"
    )
