"""The top-9 activations of every feature map over all the images, with their deconvnet
projections and input patches: Zeiler & Fergus (ECCV 2014), Figure 2. The table holds every
map's top 9 and whether each unit's receptive field reaches past the image border."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from ...fileio import read_json
from ..deconvnet_graph import make_deconvnet
from ..hooks import normalised_input
from ..inputs import Norm, check_norm, default_layer, device_of, source_for
from ..technique import Option, Ran, ReportItem, Technique, register
from ..target import Target, layer_file
from ..topk import TopActivations, TopPatches, project_top, stream_top_activations
from ._common import LAYER, MAPS_HELP, checked_layer

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
) -> TopPatches:
    """The paper's Figure 2: per feature map (the first `maps`; None: all), the top-k
    activations' deconv projections and input patches, cropped to the receptive field."""
    check_norm(model, mean, std)
    source = source_for(model, x)
    top = top_activations(model, source, layer, k, mean, std, batch_size, progress)
    with normalised_input(model, mean, std):
        net = make_deconvnet(model, top.layer, source.shape)
        return project_top(net, top, lambda index: source.load(index), maps, batch_size)


def _prepare(t: Target, layer: Optional[str], maps: int) -> dict:
    asked, _ = checked_layer(t, layer)
    return {"layer": asked, "maps": maps}


def _outputs(t: Target, o: dict) -> list[str]:
    name = layer_file(o["layer"])
    return [f"figures/top9_{name}.png", f"tables/top9_{name}.csv", f"tables/top9_{name}_field.json"]


def _write(t: Target, o: dict) -> list[Path]:
    from ...fileio import write_csv, write_json
    from ...report.figures import save_figure
    from ...report.figures_zf import plot_top9

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
    figure, table, info = (t.folder / p for p in _outputs(t, o))
    return [
        save_figure(plot_top9(tp, t.title, asked=o["layer"]), figure),
        write_csv(table, COLUMNS, rows),
        write_json(info, record),
    ]


def _report(run, label: str, ran: Ran) -> list[ReportItem]:
    figure, _, info = ran.files
    items = [
        ReportItem(
            "figure",
            f"{label}: top-9 activations per feature map of {ran.options['layer']} (the first {ran.options['maps']} maps); "
            "projections beside input patches (paper Fig. 2).",
            figure,
        )
    ]
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


TECHNIQUE = register(
    Technique(
        name="top9",
        summary="top-9 activations per feature map of --layer: projections + patches",
        applies_to="cnn",
        compute=top9,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        options=(LAYER, Option("maps", "int", 16, MAPS_HELP, lo=1, hi=65536)),
        report=_report,
        section="zf",
    )
)
