// The `netsight explore` page: a layer picker, a grid of every unit and the selected unit's details.
// The details are a list of panels of a few generic kinds (netsight/report/panels.py describes them):
// this script draws each kind and knows nothing of the techniques that made them.
(function explorePage() {
  'use strict';
  const DATA = JSON.parse(document.getElementById('explore-data').textContent);
  const VIRIDIS = ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58', '#b5de2b', '#fde725'];
  const WIDE = window.matchMedia('(min-width: 860px)');
  const QUIET = window.matchMedia('(prefers-reduced-motion: reduce)');
  let state = {layer: -1, unit: -1}, shownLayer = -1, bars = 0;
  const $ = (sel) => document.querySelector(sel);

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'text') e.textContent = v;
      else e.setAttribute(k, v);
    }
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
    if (ylabel) {
      svg.appendChild(svgEl('text', {x: 0, y: 0, 'text-anchor': 'middle', class: 'label',
        transform: 'translate(10 ' + (T + ph / 2) + ') rotate(-90)'}, ylabel));
    }
  }
  const finite = (v) => v !== null && Number.isFinite(v);

  // a chart (its settings over its style's): rules under the series (lines, bars, dots), then the axes; all positions in
  // data coordinates
  function chart(own, layer, unit, room) {
    const style = layer.styles[own.style] || {};
    const c = Object.assign({xticks: [], yticks: [], axes: true}, style, own);
    c.rules = (style.rules || []).concat(own.rules || []); // the style's rules, then the chart's own
    c.series = own.series.map((s, i) => Object.assign({}, (style.series || [])[i], s)); // series i over the style's series i
    const W = Array.isArray(c.size[0]) ? Math.round(Math.min(c.size[0][1], Math.max(c.size[0][0], room))) : c.size[0];
    const H = c.size[1], [L, R, T, B] = c.margin, pw = W - L - R, ph = H - T - B;
    const svg = svgBox(c.class, W, H, c.label);
    const [x0, x1] = c.x, [y0, y1] = c.y;
    const X = (x) => L + pw * (x - x0) / ((x1 - x0) || 1), Y = (y) => T + ph * (1 - (y - y0) / ((y1 - y0) || 1));
    for (const r of c.rules) {
      const attrs = {x1: X(r.x1), x2: X(r.x2), y1: Y(r.y1), y2: Y(r.y2), stroke: r.stroke};
      if (r.dash) attrs['stroke-dasharray'] = r.dash;
      if (r.width) attrs['stroke-width'] = r.width;
      svg.appendChild(svgEl('line', attrs));
    }
    let drawn = 0;
    for (const s of c.series) {
      const source = s.from ? layer.data[s.from] : s;
      const ys = source.y, xs = source.x || ys.map((v, i) => i);
      if (s.type === 'line') {
        const points = xs.map((x, i) => [x, ys[i]]).filter(([, y]) => finite(y));
        drawn += points.length;
        if (points.length) {
          svg.appendChild(svgEl('polyline', {points: points.map(([x, y]) => X(x) + ',' + Y(y)).join(' '), fill: 'none',
            stroke: s.stroke, 'stroke-width': s.width}));
        }
      } else if (s.type === 'bars') {
        const bw = pw / ys.length, gap = s.gap || 0;
        ys.forEach((v, i) => {
          if (!finite(v)) return;
          drawn += 1;
          svg.appendChild(svgEl('rect', {x: L + i * bw + gap / 2, width: Math.max(bw - gap, 1), y: Math.min(Y(v), Y(s.base)),
            height: Math.abs(Y(v) - Y(s.base)), fill: s.fills ? s.fills[i] : s.fill}));
        });
      } else if (s.type === 'dots') {
        xs.forEach((x, i) => {
          if (i === s.skip || !finite(ys[i])) return;
          drawn += 1;
          const attrs = {cx: X(x), cy: Y(ys[i]), r: s.r, fill: s.fill};
          if (s.opacity !== undefined) attrs['fill-opacity'] = s.opacity;
          if (s.stroke) { attrs.stroke = s.stroke; attrs['stroke-width'] = 1; }
          if (s.class) attrs.class = s.class;
          svg.appendChild(svgEl('circle', attrs));
        });
      }
    }
    if (!drawn && c.empty) svg.appendChild(svgEl('text', {x: L + pw / 2, y: T + ph / 2, 'text-anchor': 'middle'}, c.empty));
    if (c.axes) {
      const label = ([v, text]) => (text === undefined ? tick(v) : text);
      const xt = c.xticks.map((t) => [X(t[0]), label(t)]), yt = c.yticks.map((t) => [Y(t[0]), label(t)]);
      axes(svg, L, T, pw, ph, xt, yt, c.xlabel, c.ylabel);
    }
    return svg;
  }
  // a vertical viridis bar from the map's lowest (bottom) to its highest value (top); the line marks `mark`
  function colorbar(lo, hi, mark) {
    const W = 60, H = 86, T = 5, B = 5, bh = H - T - B, id = 'viridis-' + (++bars);
    const svg = svgBox('colorbar', W, H, 'colour scale from ' + fmt(lo) + ' to ' + fmt(hi));
    const grad = svgEl('linearGradient', {id: id, x1: 0, y1: 1, x2: 0, y2: 0});
    VIRIDIS.forEach((c, i) => grad.appendChild(svgEl('stop', {offset: i / (VIRIDIS.length - 1), 'stop-color': c})));
    const defs = svgEl('defs', {});
    defs.appendChild(grad);
    svg.appendChild(defs);
    svg.appendChild(svgEl('rect', {x: 1, y: T, width: 11, height: bh, fill: 'url(#' + id + ')', stroke: '#999',
      'stroke-width': 0.5}));
    svg.appendChild(svgEl('text', {x: 15, y: T + 8}, fmt(hi)));
    svg.appendChild(svgEl('text', {x: 15, y: T + bh}, fmt(lo)));
    if (hi > lo && mark >= lo && mark <= hi) {
      const y = T + bh * (1 - (mark - lo) / (hi - lo));
      svg.appendChild(svgEl('line', {x1: 0, x2: 13, y1: y, y2: y, stroke: '#fff', 'stroke-width': 2.5}));
      svg.appendChild(svgEl('line', {x1: 0, x2: 13, y1: y, y2: y, stroke: '#000', 'stroke-width': 1}));
    }
    return svg;
  }
  // picture i of card r of an images panel: its class and alt text from the panel's `pictures` (the alt numbered by the
  // card's rank) unless the card gives its own; the card's data on every picture; a band of rows marked over it
  function picture(p, item, i, r, layer) {
    const spec = (p.pictures || [])[i] || {};
    const attrs = {src: layer.images[item.src[i]], alt: item.alt ? item.alt[i] : spec.alt ? spec.alt + ' ' + (r + 1) : ''};
    if (spec.class) attrs.class = spec.class;
    for (const [k, v] of Object.entries(item.data || {})) attrs['data-' + k] = v;
    const img = el('img', attrs);
    if (!item.band) return img;
    const style = 'top:' + (100 * item.band[0]) + '%;height:' + (100 * item.band[1]) + '%';
    return el('div', {class: 'band'}, [img, el('span', {class: 'row', style: style})]);
  }
  const withClass = (base, p) => (p.class ? base + ' ' + p.class : base);

  // one panel -> its heading, its note and its body
  const KINDS = {
    table: (p) => el('table', {class: withClass('stats', p)}, [el('tr', {}, p.head.map((h) => el('th', {text: h})))]
      .concat(p.rows.map((r) => el('tr', {}, r.map((v) => el('td', {text: v})))))),
    text: (p) => {
      if (!p.text) return null;
      const attrs = {text: p.text};
      if (p.class) attrs.class = p.class;
      for (const [k, v] of Object.entries(p.data || {})) attrs['data-' + k] = v;
      return el('p', attrs);
    },
    images: (p, layer, unit, room) => el('div', {class: withClass('images', p), style: '--k:' + p.items.length},
      p.items.map((item, r) => {
        const attrs = p.figure ? {class: p.figure} : {};
        if (item.title) attrs.title = item.title;
        return el('figure', attrs, item.src.map((k, i) => picture(p, item, i, r, layer))
          .concat((item.charts || []).map((c) => chart(c, layer, unit, room)),
            item.caption ? [el('figcaption', {text: item.caption})] : []));
      })),
    heatmap: (p, layer) => el('div', {class: withClass('heatmaps', p)}, p.items.map((o) => el('figure', {}, [
      el('div', {class: 'heat-row'}, [el('img', {src: layer.images[o.src], alt: o.alt}),
        el('img', {class: 'heat', src: layer.images[o.heat], alt: o.heat_alt}), colorbar(o.low, o.high, o.whole)]),
      el('figcaption', {text: o.caption})]))),
    chart: (p, layer, unit, room) => el('div', {class: withClass('charts', p)}, p.charts.map((c) => chart(c, layer, unit, room))),
    legend: (p, layer) => el('ul', {class: withClass('legend', p)},
      (p.from ? layer.data[p.from] : p.items).map((i) => el('li', {}, [
        el('span', {class: i.shape, style: 'background:' + i.colour}), el('span', {text: i.text})]))),
    group: (p, layer, unit, room) => el('div', {class: withClass('group', p)},
      p.panels.map((q) => el('div', {}, panel(q, layer, unit, room)))),
  };
  function panel(p, layer, unit, room) {
    const out = [];
    if (p.title) out.push(el('h3', {text: p.title}));
    if (p.note) out.push(el('p', {class: 'note', text: layer.notes[p.note]}));
    const body = KINDS[p.kind](p, layer, unit, room);
    if (body) out.push(body);
    return out;
  }

  function address(layer, unit) { return '#' + encodeURIComponent(DATA.layers[layer].name) + '/' + unit; }
  // '#layer/unit' -> {layer, unit}: an unknown layer (or garbage) gives null, a unit out of range the nearest one
  function parse(hash) {
    let text;
    try { text = decodeURIComponent(hash.replace(/^#/, '')); } catch { return null; }
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
        const b = el('button', {type: 'button', 'data-layer': l.name, text: l.label + ' · ' + l.units.length + ' units'});
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
        const b = el('button', {type: 'button', class: 'unit' + (u.dead ? ' dead' : ''), 'data-unit': i,
          title: layer.label + ' unit ' + i + (u.dead ? ' (dead)' : '')},
        [el('img', {src: layer.images[u.preview], alt: 'unit ' + i}), el('span', {text: '#' + i})]);
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
    if (WIDE.matches && tile) { // keep the selected tile in sight inside the grid's own scroll box
      const top = tile.offsetTop - grid.offsetTop, bottom = top + tile.offsetHeight;
      if (top < grid.scrollTop) grid.scrollTop = top - 4;
      else if (bottom > grid.scrollTop + grid.clientHeight) grid.scrollTop = bottom - grid.clientHeight + 4;
    }
  }
  function renderDetail() {
    const layer = DATA.layers[state.layer], u = layer.units[state.unit], d = $('#detail');
    // a chart that takes the details' width is drawn at the width shown, so that its text stays 10 px; measured before the
    // details are emptied (a layout of the empty page would pull the scroll position up)
    const room = d.clientWidth - 24;
    d.textContent = '';
    d.setAttribute('data-layer', layer.name);
    d.setAttribute('data-unit', String(state.unit));
    d.appendChild(el('h2', {text: u.title}));
    for (const p of u.panels) for (const node of panel(p, layer, u.unit, room)) d.appendChild(node);
  }
  function show(layer, unit) {
    const n = DATA.layers.length;
    layer = ((layer % n) + n) % n;
    const m = DATA.layers[layer].units.length;
    unit = ((unit % m) + m) % m;
    if (layer === state.layer && unit === state.unit) return;
    state = {layer: layer, unit: unit};
    renderLayers();
    renderGrid();
    renderDetail();
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
      if (dl) go(next, Math.min(state.unit, DATA.layers[next].units.length - 1));
      else step(du);
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
      d.addEventListener('touchend', (e) => {
        const t = e.changedTouches[0];
        if (t) end(t.clientX, t.clientY);
      });
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
})();
