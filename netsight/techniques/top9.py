"""The top-9 activations of every feature map over all the images, with their deconvnet
projections and input patches: Zeiler & Fergus (ECCV 2014), Figure 2. The table holds every
map's top 9 and whether each unit's receptive field reaches past the image border."""

from __future__ import annotations

from dataclasses import dataclass, fields

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import torch
from torch import nn

from ..fileio import read_json
from ..ops.deconvnet_graph import make_deconvnet
from ..ops.hooks import normalised_input
from ..ops.inputs import Norm, check_norm, default_layer, device_of, source_for
from .base import Option, Ran, ReportItem, Technique, register, LAYER, MAPS_HELP, checked_layer
from .target import Target, layer_file
from ..ops.topk import TopActivations, TopPatches, project_top, stream_top_activations

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = ["map", "rank", "activation", "image", "file", "label", "y", "x", "rf_clipped"]
BATCH = 64  # images per batch while streaming


def top_activations(
    model: nn.Module,
    x,
    layer: Optional[str] = None,
    k: int = 9,
    mean: Norm = None,
    std: Norm = None,
    batch_size: int = BATCH,
    progress: bool = False,
) -> TopActivations:
    """Per feature map of `layer`, the k strongest activations over all the images (streamed in
    batches: memory independent of their number), with image index and position."""
    check_norm(model, mean, std)
    source = source_for(model, x)
    device = device_of(model)
    with normalised_input(model, mean, std):
        net = make_deconvnet(model, default_layer(model, layer), source.shape)
        return stream_top_activations(net, ((s, b.to(device)) for s, b in source.batches(batch_size, progress, "top-9")), k)


@dataclass
class Top9(TopPatches):
    """`top9`'s result: the top-k patches and projections (`TopPatches`), which plot themselves."""

    def plot(self, title: str = "model") -> Figure:
        """The paper's Figure 2, as `netsight inspect --top9` draws it."""
        return plot_top9(self, title)


def top9(
    model: nn.Module,
    x,
    layer: Optional[str] = None,
    k: int = 9,
    maps: Optional[int] = 16,
    mean: Norm = None,
    std: Norm = None,
    batch_size: int = BATCH,
    progress: bool = False,
) -> Top9:
    """The paper's Figure 2: per feature map (the first `maps`; None: all), the top-k
    activations' deconv projections and input patches, cropped to the receptive field."""
    check_norm(model, mean, std)
    source = source_for(model, x)
    top = top_activations(model, source, layer, k, mean, std, batch_size, progress)
    with normalised_input(model, mean, std):
        net = make_deconvnet(model, top.layer, source.shape)
        found = project_top(net, top, lambda index: source.load(index), maps, batch_size)
    return Top9(**{f.name: getattr(found, f.name) for f in fields(found)})


FIGURE_MAPS = 8  # maps drawn in the figure (the table keeps them all): two blocks a row, large enough to read


def plot_top9(tp, title: str, per_row: int = 2, asked: Optional[str] = None, shown: int = FIGURE_MAPS) -> Figure:
    """One block per feature map (the first `shown`): 3x3 projections (left) beside the 3x3 input patches
    (right). Blocks are laid out in inches (a title band above each, a gap between them), `per_row` a row,
    so that in a report page about 1,000 px wide a tile is about 60 px and a title at least 8 pt."""
    import numpy as np
    from .. import style
    from ..plotting import projection_image, _outside_tinted, pixel_image, _mosaic, plt, _key_legend, _projection_key
    from ..style import SMALL, layer_name

    total, k = tp.projections.shape[:2]
    maps = min(total, max(1, shown))
    side = int(np.ceil(np.sqrt(k)))
    tile = tp.projections.shape[-1]
    spacer_px = max(3, tile // 2)  # projections and patches: two grids, visibly apart
    blocks = []
    clipped = bool((tp.valid[:maps] == 0).any())
    for m in range(maps):
        proj = [projection_image(tp.projections[m, j]) for j in range(k)]
        patch = [_outside_tinted(pixel_image(tp.patches[m, j]), tp.valid[m, j, 0].numpy()) for j in range(k)]
        grid_p = _mosaic([proj[r * side : (r + 1) * side] for r in range(side)])
        grid_q = _mosaic([patch[r * side : (r + 1) * side] for r in range(side)])
        spacer = np.ones((grid_p.shape[0], spacer_px, 3))
        blocks.append(np.concatenate([grid_p, spacer, grid_q], 1))
    per_row = max(1, min(per_row, maps))
    rows = int(np.ceil(maps / per_row))
    bh = 1.9  # inches: block height
    bw = bh * blocks[0].shape[1] / blocks[0].shape[0]
    gap_x, title_band, below, margin = 0.6, 0.32, 0.28, 0.3  # inches
    width = max(2 * margin + per_row * bw + (per_row - 1) * gap_x, 7.5)
    one_line_key = width >= 9.2
    top_band, key_band = 0.6, (0.45 if one_line_key else 0.8)
    height = top_band + rows * (title_band + bh + below) + key_band
    fig = plt.figure(figsize=(width, height))
    x0 = (width - (per_row * bw + (per_row - 1) * gap_x)) / 2
    half = (blocks[0].shape[1] - spacer_px) / 2 / blocks[0].shape[1]  # where each grid's centre sits, as a share
    for m, block in enumerate(blocks):
        r, c = divmod(m, per_row)
        left = x0 + c * (bw + gap_x)
        bottom = height - top_band - r * (title_band + bh + below) - title_band - bh
        ax = fig.add_axes((left / width, bottom / height, bw / width, bh / height))
        style.mark(ax.imshow(block, interpolation="nearest"), "projection")
        ax.axis("off")
        ax.set_title(f"map {m}: top activation {tp.top.values[m, 0]:.2f}", fontsize=style.NORMAL, pad=3)
        for x, word in ((half / 2, "projections"), (1 - half / 2, "input patches")):
            ax.text(x, -0.03, word, transform=ax.transAxes, ha="center", va="top", fontsize=SMALL, color="0.3")
    s = tp.top.field.size
    fig.suptitle(
        f"{title}: top-{k} activations of {layer_name(tp.top.layer, asked)} over the dataset"
        + (f" (maps 0-{maps - 1} of {total})" if maps < total else "")
        + "\n"
        f"per map: deconv projections (left) and the input patches (right), receptive field {s[0]}x{s[1]} px",
        fontsize=style.NORMAL,
        y=1 - 0.12 / height,
        va="top",
    )
    _key_legend(fig, _projection_key(clipped), ncol=None if one_line_key else 1)
    return fig


def _rho_sentence(r: Optional[float], first: bool) -> str:
    """Adebayo et al.'s sanity check of a unit's projections in one line (the explore page): the unit's mean rank
    correlation between its trained and random-weights projections, and what it says."""
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


@register
class Top9Technique(Technique):
    name = "top9"
    summary = "top-9 activations per feature map of --layer: projections + patches"
    applies_to = "cnn"
    options = (LAYER, Option("maps", "int", 16, MAPS_HELP, lo=1, hi=65536))
    section = "zf"
    compute = staticmethod(top9)

    def prepare(self, t: Target, layer: Optional[str], maps: int) -> dict:
        asked, _ = checked_layer(t, layer)
        return {"layer": asked, "maps": maps}

    def outputs(self, t: Target, o: dict) -> list[str]:
        name = layer_file(o["layer"])
        return [f"figures/top9_{name}.png", f"tables/top9_{name}.csv", f"tables/top9_{name}_field.json"]

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..fileio import write_csv, write_json
        from ..plotting import save_figure

        tp = top9(t.model, t.images, o["layer"], 9, o["maps"], **t.norm, progress=t.progress)
        top, field = tp.top, tp.top.field
        h, w = t.images.shape[1:]
        classes, labels = t.images.classes, t.images.labels
        rows: list[dict[str, Any]] = []
        for m in range(top.values.shape[0]):
            for j in range(top.values.shape[1]):
                i, y, x = int(top.image_index[m, j]), int(top.positions[m, j, 0]), int(top.positions[m, j, 1])
                rows.append(
                    {
                        "map": m,
                        "rank": j + 1,
                        "activation": float(top.values[m, j]),
                        "image": i,
                        "file": t.images.names[i],
                        "label": classes[int(labels[i])] if labels is not None and classes else "",
                        "y": y,
                        "x": x,
                        "rf_clipped": int(field.clipped(y, x, h, w)),
                    }
                )
        # how often would a unit's field be clipped if the top units sat anywhere on the map?
        with normalised_input(t.model, **t.norm):
            act = make_deconvnet(t.model, top.layer, t.images.shape).activations(torch.zeros(1, *t.images.shape, device=t.device))
        hf, wf = (act.shape[2], act.shape[3]) if act.dim() == 4 else (1, 1)
        share = sum(field.clipped(y, x, h, w) for y in range(hf) for x in range(wf)) / (hf * wf)
        record = {
            "layer": o["layer"],
            "ranked": top.layer,
            "receptive_field": list(field.size),
            "jump": list(field.jump),
            "start": list(field.start),
            "image": [h, w],
            "feature_map": [hf, wf],
            "units": len(rows),
            "clipped": sum(r["rf_clipped"] for r in rows),
            "positions_clipped_share": share,
        }
        figure, table, info = (t.folder / p for p in self.outputs(t, o))
        return [
            save_figure(plot_top9(tp, t.title, asked=o["layer"]), figure),
            write_csv(table, COLUMNS, rows),
            write_json(info, record),
        ]

    def caption(self, ran: Ran) -> str:
        return (
            f"top-9 activations per feature map of {ran.options['layer']} (the first "
            f"{min(ran.options['maps'], FIGURE_MAPS)} of the {ran.options['maps']} maps ranked; every map's top-9 in the "
            "table and the unit browser); projections beside input patches (paper Fig. 2)."
        )

    def report(self, run, label: str, ran: Ran) -> list[ReportItem]:
        items = super().report(run, label, ran)  # the figure, then what the receptive-field record says
        info = ran.files[2]
        if info.is_file():
            b = read_json(info)
            share = b["clipped"] / max(b["units"], 1)
            items.append(
                ReportItem(
                    "p",
                    (
                        f"Border effect: {b['clipped']} of {b['units']} top-9 units of {label} ({share:.0%}) sit where their "
                        f"{b['receptive_field'][0]}x{b['receptive_field'][1]}-pixel receptive field reaches past the image border into "
                        f"the zero padding ('SAME' padding), against {b['positions_clipped_share']:.0%} of all positions of the "
                        f"{b['feature_map'][0]}x{b['feature_map'][1]} feature map. "
                        + (
                            "The strongest units sit at the border more often than position alone would explain, so the artificial "
                            "edge the zero padding draws there may drive some of them."
                            if share > b["positions_clipped_share"] + 0.05
                            else "That is about what position alone explains."
                        )
                    ),
                )
            )
        return items

    def explore_panels(self, layer, unit: int) -> list[dict]:
        """The unit's top-9 patches and projections on the explore page (the strongest projection is the unit's
        picture in the grid), and the same projections through the fully randomised model with their rank
        correlation (Adebayo et al.'s sanity check, computed by `explore_units`) where the page has them."""
        from ..plotting import _outside_tinted, pixel_image, projection_image
        from ..report.panels import card, fmt, panel, png, preview, text

        units, pictures, m = layer.numbers, layer.pictures, unit
        top, random_cards = [], []
        for j in range(units.top.values.shape[1]):
            i, activation = int(units.top.image_index[m, j]), float(units.top.values[m, j])
            valid = units.valid[m, j, 0].numpy()
            y, x = int(units.top.positions[m, j, 0]), int(units.top.positions[m, j, 1])
            data = {"image": i, "activation": f"{activation:.7g}"}
            label = layer.labels[i] if layer.labels is not None else ""
            patch = pictures.key(png(_outside_tinted(pixel_image(units.patches[m, j]), valid)))
            projection = pictures.key(png(_outside_tinted(projection_image(units.projections[m, j]), valid)))
            top.append(
                card(
                    [patch, projection],
                    f"#{j + 1}{' ' + label if label else ''} {fmt(activation)}",
                    f"{layer.names[i]}, position ({y}, {x})",
                    data,
                )
            )
            if units.randomised is not None:
                rho = units.randomised.rho[m][j]
                random = pictures.key(png(_outside_tinted(projection_image(units.randomised.projections[m, j]), valid)))
                random_cards.append(card([random], f"#{j + 1} ρ {'–' if rho is None else f'{rho:.2f}'}", data=data))
        panels = [
            preview(
                top[0]["src"][1],  # the strongest projection
                panel(
                    "images",
                    f"Top-{len(top)} test images (receptive field {'x'.join(str(v) for v in units.field.size)} px)",
                    "top",
                    "cards top",
                    items=top,
                    pictures=[{"class": "patch", "alt": "patch"}, {"class": "projection", "alt": "projection"}],
                    figure="pair",
                ),
            )
        ]
        if units.randomised is not None:
            rho = units.randomised.unit_rho[m]
            panels += [
                text(
                    _rho_sentence(rho, layer.first),
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
        return panels

    def explore_shared(self, layer) -> dict[str, dict]:
        return {
            "notes": {
                "top": "Each column: the input patch (top) and its deconvnet projection (below), strongest first; "
                "blue marks the part of the field outside the image.",
                "random": "The same nine images, unit and positions, projected through the model with every layer "
                "re-initialised by its own init (seed 0; Adebayo et al. 2018). ρ: Spearman rank correlation of the trained "
                "and the random projection over the pixels, per image below, their mean above. The higher it is (0.2–0.5: "
                '"partly", ≥ 0.5: "mostly"), the more the picture is the image rather than what the unit learned.',
            }
        }
