"""The microscope technique (`netsight microscope`, and `microscope` in a suite's analyses): every unit of
every convolution of a CNN - a whole torchvision ResNet-50 included - as an offline site that opens from
`file://` with no server.

`netsight explore` puts a few layers with every technique into one page (about 30 MB for two
ResNet-18 layers); the microscope trades depth per unit for breadth: for each unit, the k dataset
images that drive it most, cropped to the unit's receptive field, with their activations. It is
built from one streamed, resumable dataset pass over the images (`ops/dataset_pass.py`; its state
is `OUT/pass.safetensors`, so Ctrl-C or a kill and a rerun continue the pass; the layers'
receptive fields are kept in `OUT/fields.json`), and written as:

- `OUT/index.html`: the page (`pages/microscope.js` and `pages/microscope.css`, package data inlined
  into it) and the index of layers (name, number of units, feature-map size, receptive field);
- `OUT/layers/NNN.js`, one per layer, loaded by a `<script>` element when the layer is opened (a
  `fetch` of a local file is blocked in Chromium; a script is not): each unit's k images, values
  and where its field lies in each, as flat arrays (the numbers only: no picture is repeated per unit);
- `OUT/images/N.jpg`: each image that is among some unit's top k, once, as the model sees it
  (after resizing and cropping), JPEG quality 90. A unit's crop is drawn from it by the browser;
- with feature visualisation (`featureviz_steps` > 0), `OUT/featureviz/NNN.png`: every unit's optimised
  image, one sprite per layer, its numbers in the layer's file;
- with deconvnet projections (`projections` N > 0: Zeiler & Fergus 2014, the top-9 figure's left half),
  `OUT/deconv/NNN-CC.png`: each unit's first N images projected back to pixels through the deconvnet
  (`ops/deconvnet_graph.py`) and cropped to the unit's field, a row of N tiles per unit, PROJECTION_UNITS units per
  sprite (a tile at most PROJECTION_TILE px: a larger field is shrunk).

A layer's file also carries, for a netsight run with snapshots, each unit's strongest images at every
snapshot (and with feature visualisation, its optimised image at each: `OUT/featureviz/NNN-SS.png`), and
for a suite run with other seeds beside it, each unit's best match in each of them and in an untrained
network (`ops/unit_matching.py`, Li et al. 2016).

A crop is the receptive field of the unit where it fired (`ops/receptive_field.py`, measured on the
graph), drawn whole: where it reaches past the image's edge it is light blue, as in the top-9
figure. A field found to reach past a probe twice the image's side sees the whole image from any
unit, and is drawn as the whole image.
"""

from __future__ import annotations

import html
import io
import json
import math
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from ..data.images import ImageSource
from ..errors import NetsightError
from ..ops.dataset_pass import UnitTopK, dataset_pass, dataset_pass_on_ray
from ..ops.receptive_field import ReceptiveField, receptive_fields_within
from ..ops.deconvnet_graph import resolve_graph_targets
from ..ops.hooks import evaluating, normalised_input
from ..ops.stages import conv_layers
from .base import Option, Ran, ReportItem, Technique, register
from .target import Target

STATE = "pass.safetensors"  # the dataset pass's state, in OUT
FIELDS = "fields.json"  # the layers' receptive fields, in OUT (measured once per architecture and image size)
JPEG_QUALITY = 90
SPRITE_COLUMNS = 32  # feature visualisations per row of a layer's sprite
SNAPSHOT_K = 3  # images per unit at each weight snapshot of a run
PROJECTION_TILE = 64  # px: a deconvnet projection's largest side in its sprite (a larger field is shrunk to it)
PROJECTION_UNITS = 128  # units per projection sprite: at most 128 x 64 = 8,192 px high
FIELD_GROWTH = 2  # probes up to twice the image side: a field larger than that sees the whole image from any unit


def microscope(
    model: nn.Module,
    source: ImageSource,
    out: str | Path,
    title: str,
    layers: Optional[Sequence[str]] = None,
    k: int = 9,
    batch_size: int = 64,
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    progress: bool = False,
    featureviz: bool = False,
    steps: int = 256,
    others: Sequence[tuple[str, nn.Module]] = (),
    snapshots: Sequence[tuple[int, Path]] = (),
    backend: str = "local",
    address: Optional[str] = None,
    projections: int = 0,
) -> list[Path]:
    """Write the site for `model` over `source` into the folder `out` (see the module's docstring);
    the files written, `index.html` last. With `featureviz`, every unit also gets an image optimised to drive it
    (`techniques.featureviz`, `steps` steps, all of a layer's units in one batch). `others`: (label, network) pairs of
    the same architecture (a suite's other seeds): each unit's best match in each (Li et al. 2016), beside its best
    match in an untrained network of the architecture, the chance level. `snapshots`: a run's (iteration, weights
    file) pairs: each unit's strongest SNAPSHOT_K images at each (the same unit of the network as it trained).
    `backend` "ray": the dataset pass split over a Ray cluster (`dataset_pass_on_ray`; `address` its head).
    `projections` N: each unit's first N images also projected back to pixels by the deconvnet (Zeiler & Fergus 2014)."""
    from ..fileio import claim_output_folder

    out = claim_output_folder(out, "--out")
    if backend == "ray":
        state = dataset_pass_on_ray(
            model, source, layers, k, batch_size, out / STATE, mean, std, address=address, progress=progress
        )
    else:
        state = dataset_pass(model, source, layers, k, batch_size, out / STATE, mean=mean, std=std, progress=progress)
    fields = _fields(model, state, source.shape, out / FIELDS)
    device = next(model.parameters()).device
    # each snapshot's network, loaded once: its dataset pass, and with feature visualisation its optimised images
    snapshot_models = [(iteration, _weights(path, device)) for iteration, path in snapshots]
    history = _over_training(snapshot_models, source, list(state.layers), batch_size, mean, std, progress) if snapshots else []
    written = [out / STATE, out / FIELDS]
    written += _write_images(source, [state, *(h for _, h in history)], out / "images", progress)
    matches = _matches(model, others, source, list(state.layers), mean, std, batch_size) if others else {}
    # None: the final weights, whose image is made below for the layer anyway
    earlier = [None if _same_weights(m, model) else m for _, m in snapshot_models] if featureviz else []
    entries = []
    for i, (name, top) in enumerate(state.layers.items()):
        visualised = None
        if featureviz:
            visualised = _featureviz(model, source, name, out / "featureviz" / f"{i:03d}.png", steps, mean, std, progress)
            written.append(out / "featureviz" / f"{i:03d}.png")
        projected = None
        if projections > 0:
            projected, files = _projections(
                model, source, name, top, fields[name], out, i, projections, batch_size, mean, std, progress
            )
            written += files
        over: list[tuple] = [(iteration, h.layers[name]) for iteration, h in history]
        if featureviz and history:  # the unit's optimised image at each snapshot too: how it formed over training
            visualised_over = []
            for s, then in enumerate(earlier):
                if then is None:  # the final weights: the image above
                    visualised_over.append(visualised)
                    continue
                path = out / "featureviz" / f"{i:03d}-{s:02d}.png"
                visualised_over.append(_featureviz(then, source, name, path, steps, mean, std, progress))
                written.append(path)
            over = [(iteration, h, fv) for (iteration, h), fv in zip(over, visualised_over, strict=True)]
        written.append(
            _write_layer(
                out / "layers" / f"{i:03d}.js", i, top, fields[name], source.shape, visualised, matches.get(name), over, projected
            )
        )
        maps = top.values.shape[0]
        field = fields[name]
        entries.append(
            {
                "name": name,
                "target": top.target,
                "units": maps,
                "file": f"layers/{i:03d}.js",
                "field": list(field.size) if field.jump != (0, 0) else None,
            }
        )
    index = {
        "title": title,
        "images": len(source),
        "source": source.description,
        "size": list(source.shape),
        "k": state.k,
        "layers": entries,
        "names": {
            str(i): source.names[i] for i in sorted(set().union(*(_used_images(x) for x in [state, *(h for _, h in history)])))
        },
    }
    written.append(_write_index(out / "index.html", index))
    return written


def _fields(model: nn.Module, state: UnitTopK, shape: tuple[int, int, int], path: Path) -> dict[str, ReceptiveField]:
    """Each layer's receptive field, measured on its target module (FIELD_GROWTH: see the module doc), or read from
    `path` (fields.json), where an earlier run of the same architecture and image size left them: a field depends on
    nothing else, and measuring a ResNet-50's takes a while (docs/microscope.md: What it costs)."""
    import hashlib

    from ..fileio import read_json, write_json

    whole = ReceptiveField((shape[1], shape[2]), (0, 0), (0, 0))  # every unit sees the whole image
    key = {"architecture": hashlib.sha256(repr(model).encode()).hexdigest()[:16], "size": list(shape)}
    known: dict[str, Optional[ReceptiveField]] = {}
    if path.exists():
        try:
            saved = read_json(path)
            if {k: saved.get(k) for k in key} == key:
                known = {t: None if f is None else ReceptiveField(*(_pair(v) for v in f)) for t, f in saved["fields"].items()}
        except (NetsightError, AttributeError, KeyError, TypeError, ValueError):
            known = {}  # not what this module writes: measured again and written anew
    needed = [top.target for top in state.layers.values() if top.target not in known]
    if needed:  # every layer still to measure in one walk (shared forward passes)
        known.update(receptive_fields_within(model, needed, tuple(shape), FIELD_GROWTH))
    out = {name: known[top.target] or whole for name, top in state.layers.items()}
    saved_fields = {t: None if f is None else [list(f.size), list(f.jump), list(f.start)] for t, f in known.items()}
    write_json(path, {**key, "fields": saved_fields})
    return out


def _pair(v) -> tuple[int, int]:
    a, b = v
    return int(a), int(b)


def _used_images(state: UnitTopK) -> set[int]:
    return {int(i) for top in state.layers.values() for i in top.images.flatten().tolist()}


def _over_training(snapshots, source: ImageSource, layers: list[str], batch_size: int, mean, std, progress: bool):
    """(iteration, the dataset pass of the network at that iteration) for each (iteration, network) of a run."""
    from ..progress import track

    out = []
    for iteration, snapshot in track(snapshots, len(snapshots), "microscope over training", progress, "snapshots"):
        out.append((iteration, dataset_pass(snapshot, source, layers, SNAPSHOT_K, batch_size, mean=mean, std=std)))
    return out


def _weights(path: Path, device) -> nn.Module:
    from ..train import load_weights

    return load_weights(path, device)


def _same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def _write_images(source: ImageSource, states: Sequence[UnitTopK], folder: Path, progress: bool) -> list[Path]:
    from PIL import Image

    from ..fileio import write_bytes
    from ..progress import bar

    used = sorted(set().union(*(_used_images(s) for s in states)))
    written = []
    with bar(len(used), "microscope images", progress, "img") as shown:
        for s in range(0, len(used), 64):
            part = used[s : s + 64]
            x = source.load(part)
            for index, image in zip(part, x, strict=True):
                a = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
                picture = Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a)
                data = io.BytesIO()
                picture.save(data, format="JPEG", quality=JPEG_QUALITY)
                written.append(write_bytes(folder / f"{index}.jpg", data.getvalue()))
            shown.update(len(part))
    return written


def _number(v: float) -> float:
    """4 significant digits: what the page shows, in few characters."""
    if v == 0 or not math.isfinite(v):
        return 0.0
    return round(v, 3 - int(math.floor(math.log10(abs(v)))))


def _featureviz(model, source: ImageSource, layer: str, path: Path, steps: int, mean, std, progress: bool) -> dict:
    """Every unit's optimised image as one sprite (SPRITE_COLUMNS tiles a row, PNG) and, per unit, the image's mean
    activation beside the strongest image's on the same measure (Borowski et al. 2021: show both)."""
    from PIL import Image

    from ..fileio import write_bytes
    from .featureviz import feature_visualisation

    r = feature_visualisation(model, source, layer, None, steps, 0, mean, std, progress=progress)
    n, c, h, w = r.images.shape
    cols = min(n, SPRITE_COLUMNS)
    rows = -(-n // cols)
    sheet = torch.ones(c, rows * h, cols * w)
    for u in range(n):
        sheet[:, (u // cols) * h : (u // cols + 1) * h, (u % cols) * w : (u % cols + 1) * w] = r.images[u]
    a = (sheet.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    data = io.BytesIO()
    Image.fromarray(a[:, :, 0] if c == 1 else a).save(data, format="PNG")
    write_bytes(path, data.getvalue())
    return {
        "sprite": f"featureviz/{path.name}",
        "columns": cols,
        "reached": [_number(v) for v in r.activations.tolist()],
        "best": [_number(v) for v in r.example_activations[:, 0].tolist()],
        "best_image": [source.names[int(i)] for i in r.example_index[:, 0].tolist()],
        "steps": steps,
    }


def _projections(
    model,
    source: ImageSource,
    name: str,
    top,
    field: ReceptiveField,
    out: Path,
    index: int,
    n: int,
    batch_size: int,
    mean,
    std,
    progress: bool,
) -> tuple[dict, list[Path]]:
    """Each unit's first `n` images projected to pixels by the deconvnet at the place the unit fired (the top-9 figure's
    projections, `ops.topk.project_top`), cropped to its field, each tile scaled on its own (grey is zero), as sprites of
    PROJECTION_UNITS rows of `n` tiles; returns the layer file's entry and the sprites written."""
    import numpy as np
    from PIL import Image

    from ..fileio import write_bytes
    from ..ops.deconvnet_graph import make_deconvnet
    from ..ops.topk import TopActivations, project_top
    from ..plotting import projection_image

    n = min(n, top.values.shape[1])
    ranked = TopActivations(top.target, top.values[:, :n], top.images[:, :n], top.positions[:, :n], field)
    with normalised_input(model, mean, std), evaluating(model):
        net = make_deconvnet(model, name, source.shape)
        found = project_top(net, ranked, source.load, None, batch_size, progress=progress, what=f"microscope projections {name}")
    units, _, c, fh, fw = found.projections.shape
    scale = min(1.0, PROJECTION_TILE / max(fh, fw))
    th, tw = max(1, round(fh * scale)), max(1, round(fw * scale))
    sprites, written = [], []
    for first in range(0, units, PROJECTION_UNITS):
        rows = range(first, min(units, first + PROJECTION_UNITS))
        sheet = np.zeros((len(rows) * th, n * tw, 3), dtype=np.uint8)
        for r, u in enumerate(rows):
            for j in range(n):
                a = projection_image(found.projections[u, j])
                tile = Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8))
                if (th, tw) != (fh, fw):
                    tile = tile.resize((tw, th), Image.Resampling.BOX)
                sheet[r * th : (r + 1) * th, j * tw : (j + 1) * tw] = np.asarray(tile.convert("RGB"))
        data = io.BytesIO()
        Image.fromarray(sheet[:, :, 0] if c == 1 else sheet).save(data, format="PNG")
        path = out / "deconv" / f"{index:03d}-{first // PROJECTION_UNITS:02d}.png"
        written.append(write_bytes(path, data.getvalue()))
        sprites.append(f"deconv/{path.name}")
    return {"n": n, "tile": [th, tw], "per_sprite": PROJECTION_UNITS, "sprites": sprites}, written


def _matches(model, others, source: ImageSource, layers: list[str], mean, std, batch_size: int) -> dict[str, dict]:
    """Per layer, each unit's best match in each of `others` and in an untrained twin (`ops.unit_matching`)."""
    from ..ops.unit_matching import best_matches, unit_correlations
    from .explore import fully_randomised

    found: dict[str, dict] = {layer: {"labels": [], "unit": [], "r": []} for layer in layers}
    for label, other in others:
        for layer, corr in unit_correlations(model, other, source, layers, mean, std, batch_size).items():
            best = best_matches(corr)
            found[layer]["labels"].append(label)
            found[layer]["unit"].append(best.unit.tolist())
            found[layer]["r"].append([round(float(v), 3) for v in best.correlation])
    untrained = fully_randomised(model)
    for layer, corr in unit_correlations(model, untrained, source, layers, mean, std, batch_size).items():
        found[layer]["chance"] = [round(float(v), 3) for v in best_matches(corr).correlation]
    return found


def _write_layer(
    path: Path,
    index: int,
    top,
    field: ReceptiveField,
    shape: tuple[int, int, int],
    featureviz: Optional[dict] = None,
    matches: Optional[dict] = None,
    over: Sequence[tuple] = (),
    projections: Optional[dict] = None,
) -> Path:
    from ..fileio import write_text

    _, height, width = shape
    whole = field.jump == (0, 0)

    def corners(positions: torch.Tensor) -> list[int]:
        """Where each field starts, unclipped: negative, or past the far edge, where it leaves the image."""
        out: list[int] = []
        for y, x in positions.reshape(-1, 2).tolist():
            out += [0, 0] if whole else [field.start[0] + y * field.jump[0], field.start[1] + x * field.jump[1]]
        return out

    data = {
        "k": top.values.shape[1],
        "field": [height, width] if whole else list(field.size),
        "values": [_number(v) for v in top.values.flatten().tolist()],
        "images": top.images.flatten().tolist(),
        "at": corners(top.positions),
    }
    if over:
        data["training"] = {
            "iterations": [o[0] for o in over],
            "k": over[0][1].values.shape[1],
            "values": [[_number(v) for v in o[1].values.flatten().tolist()] for o in over],
            "images": [o[1].images.flatten().tolist() for o in over],
            "at": [corners(o[1].positions) for o in over],
        }
        if len(over[0]) > 2:  # each snapshot's feature visualisations
            data["training"]["featureviz"] = [o[2] for o in over]
    if featureviz is not None:
        data["featureviz"] = featureviz
    if matches is not None:
        data["matches"] = matches
    if projections is not None:
        data["projections"] = projections
    text = f"netsightMicroscope.layer({index},{json.dumps(data, separators=(',', ':'))});\n"
    return write_text(path, text)


def _asset(name: str) -> str:
    from importlib.resources import files

    return files("netsight.report").joinpath("pages").joinpath(name).read_text(encoding="utf-8")  # the page's own files


def _write_index(path: Path, index: dict) -> Path:
    from ..fileio import write_text

    esc = html.escape
    data = json.dumps(index, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    c, h, w = index["size"]
    subtitle = (
        f"{sum(e['units'] for e in index['layers']):,} units in {len(index['layers'])} layers; each unit's {index['k']} "
        f"strongest images of {index['images']:,} ({esc(index['source'])}, {w} x {h} px), cropped to the unit's receptive field"
    )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src 'self' file: data:; "
        "style-src 'unsafe-inline'; script-src 'self' file: 'unsafe-inline'\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'><meta name='generator' content='netsight'>"
        f"<title>{esc(index['title'])}: microscope</title><style>{_asset('microscope.css')}</style></head><body>"
        f"<header><h1>{esc(index['title'])}</h1><p>{subtitle}</p></header>"
        "<nav id='bar' aria-label='layers and units'>"
        "<label for='find'>Find</label><input id='find' type='search' list='layer-names' autocomplete='off' "
        "placeholder='layer or layer/unit' aria-describedby='find-help'>"
        "<datalist id='layer-names'></datalist>"
        "<select id='layer' aria-label='layer'></select>"
        "<div id='stepper'><button type='button' id='prev' aria-label='previous unit' title='previous unit (&larr;)'>&lsaquo; prev</button>"
        "<span id='where' aria-live='polite'></span>"
        "<button type='button' id='next' aria-label='next unit' title='next unit (&rarr;)'>next &rsaquo;</button></div></nav>"
        "<p class='help' id='find-help'>Pick a layer, then tap or click a unit. Keys: &larr;/&rarr; previous/next unit, "
        "&uarr;/&darr; previous/next layer. The address (#layer/unit) links to the unit shown; Back returns to the one before. "
        "A unit's images are the ones that drive it most (one place per image, its strongest), cropped to what the unit "
        "can see; they show what the unit responds to in these images, not everything it responds to.</p>"
        "<main><section id='detail' aria-live='polite'></section><div id='grid' role='listbox' aria-label='units'></div></main>"
        f"<script type='application/json' id='microscope-index'>{data}</script>"
        f"<script>{_asset('microscope.js')}</script></body></html>"
    )
    return write_text(path, page)


SITE = "microscope"  # the site's folder in a run directory (or in --out of inspect --model)


@register
class MicroscopeTechnique(Technique):
    name = "microscope"
    summary = "an offline site with every unit of every conv layer: each unit's strongest images, cropped to its field"
    applies_to = "cnn"
    section = "zf"
    flag = False  # its own command, netsight microscope (its options are that command's flags, not inspect's)
    compute = staticmethod(microscope)
    options = (
        Option(
            "featureviz_steps",
            "int",
            0,
            "microscope: optimisation steps of each unit's feature visualisation (0: none; --featureviz --steps N)",
            lo=0,
            hi=100_000,
        ),
        Option(
            "projections",
            "int",
            0,
            "microscope: deconvnet projections of each unit's first N images (0: none; --projections N)",
            lo=0,
            hi=100,
        ),
    )

    def prepare(
        self,
        t: Target,
        layers: Optional[Sequence[str]] = None,
        site: Optional[str | Path] = None,
        top_k: int = 9,
        batch_size: int = 64,
        featureviz_steps: int = 0,
        backend: str = "local",
        address: Optional[str] = None,
        projections: int = 0,
    ) -> dict:
        convs = conv_layers(t.model)
        for layer in layers or []:
            if layer not in convs and layer in dict(t.model.named_modules()):
                raise NetsightError(
                    f"--layers {layer}: not a convolution (the microscope shows the units of conv layers: "
                    f"{', '.join(convs[:8])}{' ...' if len(convs) > 8 else ''})"
                )
        with normalised_input(t.model, **t.norm), evaluating(t.model):  # a clear error before anything is written
            resolve_graph_targets(t.model, list(layers) if layers else convs, t.images.load([0]).to(t.device), flag="--layers")
        from ._trust import siblings

        return {"layers": list(layers) if layers else None, "site": Path(site) if site is not None else None, "top_k": top_k,
                "batch_size": batch_size, "featureviz_steps": featureviz_steps,
                "others": [str(p) for p in siblings(t)], "backend": backend, "address": address,
                "projections": min(projections, top_k)}  # fmt: skip

    def _site(self, t: Target, o: dict) -> Path:
        return o["site"] if o["site"] is not None else t.folder / SITE

    def outputs(self, t: Target, o: dict) -> list[str]:
        return [str(o["site"] / "index.html") if o["site"] is not None else f"{SITE}/index.html"]

    def _others(self, t: Target, o: dict) -> list[tuple[str, nn.Module]]:
        """The other seeds of a suite run's configuration (Li et al. 2016: do they learn the same units?)."""
        from ..train.rundir import open_run

        runs = [open_run(p) for p in o["others"]]
        return [(f"seed {run.config.seed}", run.model(t.device)) for run in runs]

    def write(self, t: Target, o: dict) -> list[Path]:
        written = microscope(
            t.model, t.images, self._site(t, o), t.title, o["layers"], o["top_k"], o["batch_size"], t.mean, t.std, t.progress,
            o["featureviz_steps"] > 0, o["featureviz_steps"], self._others(t, o), t.snapshots() if len(t.snapshots()) >= 2 else [],
            o.get("backend", "local"), o.get("address"), o.get("projections", 0),
        )  # fmt: skip
        return [written[-1]]  # the site's entry; the rest of the folder is the site's own

    def report(self, run, label: str, ran: Ran) -> list[ReportItem]:
        return [
            ReportItem(
                "link",
                f"The microscope of {label}: every unit of every conv layer with the test images that drive it most, "
                "cropped to its receptive field: microscope/index.html",
                ran.files[0],
            )
        ]
