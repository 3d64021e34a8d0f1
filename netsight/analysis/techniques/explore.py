"""The unit browser: every unit of a CNN's conv layers in one offline HTML page (its filter,
top-9 patches and projections, the same projections through the fully randomised model,
statistics, occlusion, invariance, and for a run with snapshots its evolution), so a reader can
walk Zeiler & Fergus's figures unit by unit. The per-unit data is `analysis/explore.py`; the
page is `report/explore_page.py`."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Optional, Sequence

from ...errors import NetsightError
from ..deconvnet_graph import resolve_graph_target, unknown_layer
from ..explore import LayerUnits, explore_layer
from ..hooks import normalised_input
from ..randomise import randomisable_layers, reinitialise_
from ..technique import ReportItem, Technique, register
from ..stages import conv_layers
from ..target import Target

BATCH = 64  # images per batch while streaming
RANDOM_SEED = 0  # of the fully randomised model the projections are compared with


def fully_randomised(model, seed: int = RANDOM_SEED):
    """A copy of `model` with every layer re-initialised by its own init: the last step of the
    cascading randomisation (`randomise.cascading`, the same weights), made on one copy."""
    twin = copy.deepcopy(model)
    for layer in randomisable_layers(twin):
        reinitialise_(twin, layer, seed)
    return twin


def explore(
    model, source, layers: Sequence[str], progress: bool = False, mean=None, std=None, randomised: bool = True
) -> list[LayerUnits]:
    """Every unit of each conv layer in `layers` over all the images of `source`; with `randomised`,
    each unit's top-9 also projected through the fully randomised model."""
    twin = fully_randomised(model) if randomised else None
    with normalised_input(model, mean, std), normalised_input(twin, mean, std) if twin is not None else contextlib.nullcontext():
        return [explore_layer(model, source, layer, batch_size=BATCH, progress=progress, randomised=twin) for layer in layers]


def _prepare(t: Target, layers: Optional[Sequence[str]] = None, page: Optional[str | Path] = None) -> dict:
    convs = conv_layers(t.model)
    chosen = list(layers) if layers else convs
    modules = dict(t.model.named_modules())
    first = t.images.load([0]).to(t.device)
    for layer in chosen:
        if layer not in modules:
            raise unknown_layer(layer, t.model)
        if layer not in convs:
            raise NetsightError(
                f"--layers {layer}: not a convolution (explore shows the units of conv layers: "
                f"{', '.join(convs[:8])}{' ...' if len(convs) > 8 else ''})"
            )
        with normalised_input(t.model, **t.norm):
            resolve_graph_target(t.model, layer, first)  # a clear error before the long pass
    return {"layers": chosen, "page": Path(page) if page is not None else None}


def _outputs(t: Target, o: dict) -> list[str]:
    return [str(o["page"]) if o["page"] is not None else "explore.html"]


def _write(t: Target, o: dict) -> list[Path]:
    from ...fileio import write_text
    from ...report.explore_page import layer_data, render_page
    from ..evolution import feature_evolution

    convs = conv_layers(t.model)
    classes, labels = t.images.classes, t.images.labels
    label_names = [classes[int(v)] for v in labels] if classes is not None and labels is not None else None
    snaps = t.snapshots()
    built = []
    for units in explore(t.model, t.images, o["layers"], t.progress, **t.norm):
        if len(snaps) >= 2:
            evo = feature_evolution(snaps, t.run_pixels(), units.layer, units.top.values.shape[0], t.device)
            units.evolution = {"iterations": evo.iterations, "projections": evo.projections, "values": evo.values}
        built.append(layer_data(units, t.images.names, label_names, units.layer == convs[0]))
    subtitle = f"{sum(len(b['units']) for b in built)} units over {t.images.description}"
    if t.run is not None:
        s = t.run.summary
        subtitle += (
            f"; run {t.run.path.name}, {s.get('iterations_done', '?')} iterations, final test accuracy "
            f"{100 * float(s.get('final_test_acc') or 0):.2f}%"
        )
    else:
        subtitle += f", {t.images.shape[1]}x{t.images.shape[2]} px as the model takes them"
    page = o["page"] if o["page"] is not None else t.folder / "explore.html"
    return [write_text(page, render_page(f"netsight explore: {t.title}", subtitle, built))]


def _report(run, label: str) -> list[ReportItem]:
    return [
        ReportItem(
            "link",
            f"Browse every unit of {label} (filters, top-9 patches and projections, statistics, "
            "occlusion, evolution, invariance per unit): explore.html",
            run.path / "explore.html",
        )
    ]


TECHNIQUE = register(
    Technique(
        name="explore",
        summary="one offline HTML page to browse every unit of a CNN's conv layers",
        applies_to="cnn",
        compute=explore,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        report=_report,
        section="zf",
        flag=False,
    )
)
