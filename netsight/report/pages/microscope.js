// The `netsight microscope` site's page (netsight/techniques/microscope.py writes the site): a layer picker and a
// search box, the units of the layer shown as a grid of their strongest crops, and the selected unit's k images.
// A layer's numbers arrive on demand from its own script file (layers/NNN.js calls netsightMicroscope.layer), as a
// local fetch is blocked on file://; each picture is one image file, cropped here with CSS.
(function microscopePage() {
  'use strict';
  const INDEX = JSON.parse(document.getElementById('microscope-index').textContent);
  const LAYERS = INDEX.layers, H = INDEX.size[1], W = INDEX.size[2];
  const loaded = {}, waiting = {};
  let state = {layer: -1, unit: -1}, shownLayer = -1, observer = null;
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
  function fmt(v) { return Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : v.toPrecision(3); }

  window.netsightMicroscope = {
    layer(i, data) {
      loaded[i] = data;
      for (const then of waiting[i] || []) then();
      delete waiting[i];
    },
  };
  function load(i, then) {
    if (loaded[i]) { then(); return; }
    if (waiting[i]) { waiting[i].push(then); return; }
    waiting[i] = [then];
    const s = el('script', {src: LAYERS[i].file});
    s.onerror = () => {
      delete waiting[i];
      $('#detail').replaceChildren(el('p', {class: 'error', role: 'alert',
        text: 'Could not load ' + LAYERS[i].file + ': the site folder is incomplete (run netsight microscope again).'}));
    };
    document.body.appendChild(s);
  }

  // unit `unit`'s field in its rank-th image, `px` wide and high, by CSS background placement: the field whole, its part
  // outside the image in the background colour (light blue, as the top-9 figure marks it)
  function place(e, image, top, left, field, px) {
    const scale = px / Math.max(field[0], field[1], 1);
    e.style.backgroundImage = 'url("images/' + image + '.jpg")';
    e.style.backgroundSize = (W * scale) + 'px ' + (H * scale) + 'px';
    const x = -left * scale + (px - field[1] * scale) / 2, y = -top * scale + (px - field[0] * scale) / 2;
    e.style.backgroundPosition = x + 'px ' + y + 'px';
    if (scale > 2) e.style.imageRendering = 'pixelated';
  }
  function crop(data, unit, rank, px, lazy) {
    const j = unit * data.k + rank, top = data.at[2 * j], left = data.at[2 * j + 1];
    const rows = Math.max(top, 0) + '-' + (Math.min(top + data.field[0], H) - 1);
    const cols = Math.max(left, 0) + '-' + (Math.min(left + data.field[1], W) - 1);
    const e = el('div', {class: 'crop', role: 'img', 'aria-label': 'image ' + INDEX.names[data.images[j]] + ', rows ' + rows +
      ', columns ' + cols});
    e.style.width = e.style.height = px + 'px';
    if (!lazy) place(e, data.images[j], top, left, data.field, px);
    else { e.dataset.image = data.images[j]; e.dataset.at = top + ',' + left; }
    return e;
  }
  // where the field lies in the whole image: the image small, the field outlined (left out when it is the whole image)
  function whereInImage(data, unit, rank, px) {
    const j = unit * data.k + rank, top = data.at[2 * j], left = data.at[2 * j + 1];
    const t = Math.max(top, 0), l = Math.max(left, 0);
    const h = Math.min(top + data.field[0], H) - t, w = Math.min(left + data.field[1], W) - l;
    if (t === 0 && l === 0 && h === H && w === W) return null;
    const scale = px / Math.max(H, W), frame = el('div', {class: 'whole', 'aria-hidden': 'true'});
    frame.style.width = (W * scale) + 'px';
    frame.style.height = (H * scale) + 'px';
    frame.style.backgroundImage = 'url("images/' + data.images[j] + '.jpg")';
    const box = el('span', {class: 'box'});
    Object.assign(box.style, {left: (l * scale) + 'px', top: (t * scale) + 'px', width: (w * scale) + 'px',
      height: (h * scale) + 'px'});
    frame.appendChild(box);
    return frame;
  }

  // the unit's strongest images at each weight snapshot of the run: a row per snapshot, training order
  function overTraining(data, u, units) {
    const tr = data.training, rows = [];
    tr.iterations.forEach((iteration, s) => {
      const view = {k: tr.k, field: data.field, images: tr.images[s], at: tr.at[s]};
      const cells = [];
      if (tr.featureviz) {
        const fv = tr.featureviz[s], best = fv.best[u];
        const said = best > 0 ? (fv.reached[u] / best).toFixed(1) + ' x' : fmt(fv.reached[u]) + ' / ' + fmt(best);
        cells.push(el('figure', {class: 'fv-cell'}, [fvTile(fv, u, units, 48), el('figcaption', {text: said})]));
      }
      for (let r = 0; r < tr.k && u * tr.k + r < view.images.length; r++) {
        cells.push(el('figure', {}, [crop(view, u, r, 48, false),
          el('figcaption', {text: fmt(tr.values[s][u * tr.k + r])})]));
      }
      const label = el('span', {class: 'iteration', text: 'iteration ' + iteration.toLocaleString('en')});
      rows.push(el('div', {class: 'snapshot'}, [label, el('div', {class: 'row'}, cells)]));
    });
    return [el('h3', {text: 'Over training: the ' + tr.k + ' strongest images at each weight snapshot'}),
      el('div', {class: 'training'}, rows),
      el('p', {class: 'note', text: 'The same unit of the network as it trained, each image with its activation at that ' +
        'snapshot; the last row is the final weights.' + (tr.featureviz ? ' First in each row, the image optimised to ' +
        'drive the unit at that snapshot, with its mean activation as a multiple of the strongest image\'s there (both ' +
        'means, optimised / strongest, where the strongest is not above zero).' : '')})];
  }

  // the unit's feature visualisation (a tile of the layer's sprite), beside the strongest image's activation
  function fvTile(fv, u, units, px) {
    const cols = fv.columns, rows = Math.ceil(units / cols), scale = px / Math.max(H, W);
    const tile = el('div', {class: 'fv', role: 'img', 'aria-label': 'an image optimised to drive unit ' + u});
    Object.assign(tile.style, {width: (W * scale) + 'px', height: (H * scale) + 'px', backgroundImage: 'url("' + fv.sprite + '")',
      backgroundSize: (cols * W * scale) + 'px ' + (rows * H * scale) + 'px',
      backgroundPosition: (-(u % cols) * W * scale) + 'px ' + (-Math.floor(u / cols) * H * scale) + 'px'});
    if (scale > 2) tile.style.imageRendering = 'pixelated';
    return tile;
  }
  function featureViz(fv, u, units, px) {
    const tile = fvTile(fv, u, units, px);
    const reached = fv.reached[u], best = fv.best[u];
    const caption = 'mean activation ' + fmt(reached) + ' (' + (best > 0 ? (reached / best).toFixed(2) + ' x ' : '') +
      'the strongest image\'s, ' + fmt(best) + ', ' + fv.best_image[u] + ')';
    return [el('h3', {text: 'Feature visualisation: an image optimised to drive this unit (' + fv.steps + ' steps)'}),
      el('figure', {class: 'fv-figure'}, [tile, el('figcaption', {text: caption})]),
      el('p', {class: 'note', text: 'Its mean activation over the map is compared with the image of the set that drives ' +
        'the mean most. It is an input that drives the unit, not proof of what the unit detects in natural images: the ' +
        'images above say that better (Borowski et al. 2021), and networks can be built whose visualisations mislead ' +
        '(Geirhos et al. 2024).'})];
  }

  // the deconvnet's projections of the unit's first n images (tiles of the layer's sprites, a row of n per unit), in
  // the order and at the size of the crops above
  function projections(pr, data, u, units, px) {
    const sprite = Math.floor(u / pr.per_sprite), row = u % pr.per_sprite;
    const rows = Math.min(pr.per_sprite, units - sprite * pr.per_sprite), th = pr.tile[0], tw = pr.tile[1];
    const scale = px / Math.max(th, tw), cards = [];
    for (let r = 0; r < pr.n && u * data.k + r < data.images.length; r++) {
      const tile = el('div', {class: 'crop proj', role: 'img', 'aria-label': 'deconvnet projection of image #' + (r + 1)});
      Object.assign(tile.style, {width: px + 'px', height: px + 'px', backgroundColor: '#808080',
        backgroundImage: 'url("' + pr.sprites[sprite] + '")', backgroundRepeat: 'no-repeat',
        backgroundSize: (pr.n * tw * scale) + 'px ' + (rows * th * scale) + 'px',
        backgroundPosition: (-r * tw * scale + (px - tw * scale) / 2) + 'px ' +
          (-row * th * scale + (px - th * scale) / 2) + 'px'});
      if (scale > 2) tile.style.imageRendering = 'pixelated';
      const f = el('figure', {}, [tile, el('figcaption', {text: '#' + (r + 1)})]);
      f.style.width = px + 'px';
      cards.push(f);
    }
    return [el('h3', {text: 'Deconvnet projections: what in each crop drives the unit (Zeiler & Fergus 2014)'}),
      el('div', {class: 'cards'}, cards),
      el('p', {class: 'note', text: 'Each of the first ' + pr.n + ' crops above, the unit\'s activation there projected back ' +
        'to pixels (max-pool switches, rectification, transposed filters), scaled on its own: grey is zero, lighter is ' +
        'positive and darker negative (per colour channel in a colour image). A deconvnet projection keeps much of ' +
        'the image whatever the unit (Nie et al. 2018): read the shape it picks out, not the picture it redraws.'})];
  }

  // the unit's best match in each other seed (Li et al. 2016), beside its best match in an untrained network
  function acrossSeeds(m, u) {
    const rows = m.labels.map((label, s) => el('tr', {}, [el('th', {text: label}), el('td', {text: 'unit ' + m.unit[s][u]}),
      el('td', {text: 'r = ' + m.r[s][u].toFixed(2)})]));
    rows.push(el('tr', {class: 'chance'}, [el('th', {text: 'untrained (chance)'}), el('td', {text: '–'}),
      el('td', {text: 'r = ' + m.chance[u].toFixed(2)})]));
    return [el('h3', {text: 'Across seeds: the unit of each other seed that correlates with this one most'}),
      el('table', {class: 'matches'}, [el('tbody', {}, rows)]),
      el('p', {class: 'note', text: 'Pearson correlation of the two units\' activations over every image and position ' +
        '(Li et al. 2016, "Convergent learning"). A best match is a maximum over many units, so it is compared with the ' +
        'best match in a network of the same architecture with untrained weights: a unit learned again by another seed ' +
        'correlates well above that.'})];
  }

  function showGrid(i) {
    const data = loaded[i], grid = $('#grid'), units = LAYERS[i].units;
    if (observer) observer.disconnect();
    observer = new IntersectionObserver((seen) => {
      for (const s of seen) {
        if (!s.isIntersecting) continue;
        const c = s.target;
        const [top, left] = c.dataset.at.split(',').map(Number);
        place(c, c.dataset.image, top, left, data.field, c.offsetWidth || 56);
        observer.unobserve(c);
      }
    }, {rootMargin: '200px'});
    const cells = [];
    for (let u = 0; u < units; u++) {
      const b = el('button', {type: 'button', role: 'option', 'aria-selected': 'false', 'data-unit': u,
        title: LAYERS[i].name + ' unit ' + u + ': strongest ' + fmt(data.values[u * data.k])}, [crop(data, u, 0, 56, true),
        el('span', {text: String(u)})]);
      cells.push(b);
    }
    grid.replaceChildren(...cells);
    for (const b of cells) observer.observe(b.firstChild);
    shownLayer = i;
  }

  function showUnit(i, u) {
    const data = loaded[i], L = LAYERS[i], detail = $('#detail');
    const figures = [], px = Math.max(64, Math.min(112, Math.floor((detail.clientWidth - 44) / 3)));
    for (let r = 0; r < data.k && u * data.k + r < data.images.length; r++) {
      const j = u * data.k + r, name = INDEX.names[data.images[j]];
      const parts = [crop(data, u, r, px, false)];
      const where = whereInImage(data, u, r, 56);
      if (where) parts.push(where);
      parts.push(el('figcaption', {text: '#' + (r + 1) + ' · ' + fmt(data.values[j]) + ' · ' + name}));
      const f = el('figure', {}, parts);
      f.style.width = px + 'px';
      figures.push(f);
    }
    const field = L.field ? 'receptive field ' + L.field[0] + ' x ' + L.field[1] + ' px' : 'sees the whole image';
    const extra = (data.projections ? projections(data.projections, data, u, L.units, px) : []).concat(
      data.training ? overTraining(data, u, L.units) : [],
      data.featureviz ? featureViz(data.featureviz, u, L.units, px) : [], data.matches ? acrossSeeds(data.matches, u) : []);
    detail.replaceChildren(
      el('h2', {text: L.name + ' · unit ' + u + ' of ' + L.units}),
      el('p', {class: 'note', text: 'Output of ' + L.target + '; ' + field + '. The ' + data.k + ' images of ' +
        INDEX.images.toLocaleString('en') + ' that drive this unit most, each at the place it fires most, ' +
        'with its activation and file. Light blue in a crop: the part of the unit\'s field outside the image.'}),
      el('div', {class: 'cards'}, figures), ...extra);
    detail.dataset.layer = L.name;
    detail.dataset.unit = String(u);
    for (const b of document.querySelectorAll('#grid button[aria-selected=true]')) b.setAttribute('aria-selected', 'false');
    const cell = document.querySelector('#grid button[data-unit="' + u + '"]');
    if (cell) cell.setAttribute('aria-selected', 'true');
    $('#where').textContent = L.name + ' · unit ' + u;
    $('#layer').value = String(i);
  }

  function address(i, u) { return '#' + encodeURIComponent(LAYERS[i].name) + '/' + u; }
  function parse(text) {
    const raw = text.replace(/^#/, '').trim();
    let name = raw, unit = 0;
    const slash = raw.lastIndexOf('/');
    if (slash >= 0) { name = raw.slice(0, slash); unit = Number(raw.slice(slash + 1)); }
    try { name = decodeURIComponent(name); } catch { return null; }
    const i = LAYERS.findIndex((l) => l.name === name);
    if (i < 0 || !Number.isInteger(unit) || unit < 0 || unit >= LAYERS[i].units) return null;
    return {layer: i, unit: unit};
  }
  function go(i, u, push) {
    state = {layer: i, unit: u};
    const want = address(i, u);
    if (location.hash !== want) history[push ? 'pushState' : 'replaceState'](null, '', want);
    load(i, () => {
      if (state.layer !== i) return;
      if (shownLayer !== i) showGrid(i);
      showUnit(i, state.unit);
    });
  }
  function follow() {
    const to = parse(decodeURIComponent(location.hash || '')) || parse(location.hash || '');
    if (to) go(to.layer, to.unit, false);
    else go(0, 0, false); // no address or an invalid one: the first unit, corrected in place
  }
  function step(du, dl) {
    if (state.layer < 0) return;
    if (dl) {
      const i = Math.min(LAYERS.length - 1, Math.max(0, state.layer + dl));
      go(i, Math.min(state.unit, LAYERS[i].units - 1), true);
    } else {
      go(state.layer, Math.min(LAYERS[state.layer].units - 1, Math.max(0, state.unit + du)), true);
    }
  }

  const select = $('#layer'), names = $('#layer-names');
  LAYERS.forEach((L, i) => {
    select.appendChild(el('option', {value: String(i), text: L.name + ' (' + L.units + ' units)'}));
    names.appendChild(el('option', {value: L.name}));
  });
  select.addEventListener('change', () => go(Number(select.value), 0, true));
  $('#find').addEventListener('change', (ev) => {
    const to = parse(ev.target.value);
    ev.target.setCustomValidity(to ? '' : 'no such layer or unit');
    ev.target.setAttribute('aria-invalid', to ? 'false' : 'true');
    if (to) go(to.layer, to.unit, true);
  });
  $('#grid').addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-unit]');
    if (!b) return;
    go(state.layer, Number(b.dataset.unit), true);
    if (!window.matchMedia('(min-width: 860px)').matches) $('#detail').scrollIntoView({block: 'start'});
  });
  $('#prev').addEventListener('click', () => step(-1, 0));
  $('#next').addEventListener('click', () => step(1, 0));
  document.addEventListener('keydown', (ev) => {
    if (ev.target.closest('input, select, textarea') || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    const moves = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};
    if (!moves[ev.key]) return;
    ev.preventDefault();
    step(...moves[ev.key]);
  });
  let touch = null; // a sideways swipe on the details: previous/next unit
  $('#detail').addEventListener('pointerdown', (ev) => { touch = [ev.clientX, ev.clientY]; });
  $('#detail').addEventListener('pointerup', (ev) => {
    if (!touch) return;
    const dx = ev.clientX - touch[0], dy = ev.clientY - touch[1];
    touch = null;
    if (Math.abs(dx) > 60 && Math.abs(dx) > 2 * Math.abs(dy)) step(dx < 0 ? 1 : -1, 0);
  });
  window.addEventListener('hashchange', follow);
  window.addEventListener('popstate', follow);
  follow();
})();
