"""The unit browser: every unit of a CNN's conv layers in one offline HTML page (its filter,
top-9 patches and projections, the same projections through the fully randomised model,
statistics, occlusion, invariance, and for a run with snapshots its evolution), so a reader can
walk Zeiler & Fergus's figures unit by unit. The per-unit data is `techniques/explore_units.py` (its
occlusion maps and invariance curves the occlusion and invariance techniques' "every unit" modes); each
technique declares its own panels of a unit (`Technique.explore_panels`: generic panels of
`report/panels.py` that one shared script draws, `report/pages/explore.js`), and the page,
`report/explore_page.py`, asks the registry for them.

For a recurrent run the page browses the hidden units of its `rnn` module instead (the only
layer it takes): top-9 (image, step) pairs with their traces, mean trace per class, class
selectivity and gate saturation (Karpathy, Johnson & Fei-Fei 2015), from one pass over the test
set (`techniques/explore_recurrent_units.py`, `report/explore_recurrent_page.py`)."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path
from typing import Optional, Sequence

from ..errors import NetsightError
from ..ops.deconvnet_graph import resolve_graph_target, unknown_layer
from .explore_units import LayerUnits, explore_layer
from .explore_recurrent_units import LAYER as RECURRENT_LAYER, RecurrentUnits, is_recurrent, recurrent_units
from ..ops.hooks import normalised_input
from ..ops.randomise import randomisable_layers, reinitialise_
from .base import Option, Ran, ReportItem, Technique, register
from ..ops.stages import conv_layers
from .target import Target

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
    each unit's top-9 also projected through the fully randomised model (for a recurrent model,
    `techniques.explore_recurrent_units.explore_recurrent` is the notebook call)."""
    twin = fully_randomised(model) if randomised else None
    with normalised_input(model, mean, std), normalised_input(twin, mean, std) if twin is not None else contextlib.nullcontext():
        return [explore_layer(model, source, layer, batch_size=BATCH, progress=progress, randomised=twin) for layer in layers]


# ------------------------------------------------------------------ recurrent runs


def _prepare_recurrent(t: Target, layers: Optional[Sequence[str]], page: Optional[str | Path]) -> dict:
    """A recurrent run has one layer to browse, its `rnn` module (the default)."""
    modules = dict(t.model.named_modules())
    for layer in layers or []:
        if layer != RECURRENT_LAYER:
            hidden = getattr(modules.get(RECURRENT_LAYER), "hidden_size", "?")
            what = "" if layer in modules else "not a layer of this model; "
            raise NetsightError(
                f"--layers {layer}: {what}a recurrent run has one layer to explore, {RECURRENT_LAYER} (its {hidden} hidden units)"
            )
    if not is_recurrent(t.model):
        raise NetsightError(f"explore: {t.title} is not a netsight row reader (rnn, lstm or gru)")
    if t.labels is None:  # a run's split always has its labels
        raise NetsightError(f"explore: {t.images.description} carry no labels")
    return {"layers": [RECURRENT_LAYER], "page": Path(page) if page is not None else None}


def _write_recurrent(t: Target, o: dict) -> list[Path]:
    from ..fileio import write_text
    from ..report.explore_page import render_page
    from ..report.explore_recurrent_page import recurrent_layer, recurrent_layer_data

    from ._recurrent import pixels, stats  # the pass `units` and `gates` make over the whole set, made once

    index, result = stats(t, len(t.images))
    units: RecurrentUnits = recurrent_units(t.model, result, pixels(t, index), t.classes)
    names = list(t.images.names)
    label_names = [units.classes[int(v)] for v in t.labels] if t.labels is not None else None
    layer = recurrent_layer(recurrent_layer_data(units, names, label_names))
    st = units.stats
    article = "a" if units.cell == "gru" else "an"  # an RNN, an LSTM, a GRU (as they are read aloud)
    subtitle = f"{st.hidden} hidden units of {article} {units.cell.upper()} over {t.images.description}, read row by row ({st.steps} steps)"
    if t.run is not None:
        s = t.run.summary
        subtitle += (
            f"; run {t.run.path.name}, {s.get('iterations_done', '?')} iterations, final test accuracy "
            f"{100 * float(s.get('final_test_acc') or 0):.2f}%"
        )
    page = o["page"] if o["page"] is not None else t.folder / "explore.html"
    return [write_text(page, render_page(f"netsight explore: {t.title}", subtitle, [layer]))]


def _recurrent_run(run) -> bool:
    from ..models import get_entry

    return get_entry(run.config.model).family == "rnn"


@register
class ExploreTechnique(Technique):
    name = "explore"
    summary = "one offline HTML page to browse every unit of a CNN's conv layers or a recurrent run's hidden units"
    applies_to = "any"  # CNNs and recurrent runs (prepare refuses other models)
    section = "zf"
    flag = False
    compute = staticmethod(explore)

    options = (
        Option(
            "featureviz_steps",
            "int",
            0,
            "explore: optimisation steps of each conv unit's feature visualisation panel (0: none; --featureviz --steps N)",
            lo=0,
            hi=100_000,
        ),
    )

    def prepare(
        self, t: Target, layers: Optional[Sequence[str]] = None, page: Optional[str | Path] = None, featureviz_steps: int = 0
    ) -> dict:
        if t.kind == "recurrent":
            if featureviz_steps:
                raise NetsightError("--featureviz is for convolutional networks (their conv units); a recurrent run has none")
            return _prepare_recurrent(t, layers, page)
        if t.kind != "cnn":
            raise NetsightError(f"explore is for convolutional and recurrent networks; {t.title} is neither")
        convs = conv_layers(t.model)
        chosen = list(layers) if layers else convs
        modules = dict(t.model.named_modules())
        first = t.images.load([0]).to(t.device)
        for layer in chosen:
            if layer not in modules:
                raise unknown_layer(layer, t.model, "--layers")
            if layer not in convs:
                raise NetsightError(
                    f"--layers {layer}: not a convolution (explore shows the units of conv layers: "
                    f"{', '.join(convs[:8])}{' ...' if len(convs) > 8 else ''})"
                )
            with normalised_input(t.model, **t.norm):
                resolve_graph_target(t.model, layer, first)  # a clear error before the long pass
        return {"layers": chosen, "page": Path(page) if page is not None else None, "featureviz_steps": featureviz_steps}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return [str(o["page"]) if o["page"] is not None else "explore.html"]

    def write(self, t: Target, o: dict) -> list[Path]:
        if t.kind == "recurrent":
            return _write_recurrent(t, o)
        from ..fileio import write_text
        from ..report.explore_page import layer_data, render_page
        from .evolution import feature_evolution
        from .featureviz import feature_visualisation

        convs = conv_layers(t.model)
        classes, labels = t.images.classes, t.images.labels
        label_names = [classes[int(v)] for v in labels] if classes is not None and labels is not None else None
        snaps = t.snapshots()
        built = []
        for units in explore(t.model, t.images, o["layers"], t.progress, **t.norm):
            if len(snaps) >= 2:
                evo = feature_evolution(snaps, t.run_pixels(), units.layer, units.top.values.shape[0], t.device, t.progress)
                units.evolution = {"iterations": evo.iterations, "projections": evo.projections, "values": evo.values}
            if o.get("featureviz_steps", 0) > 0:  # every unit's optimised image (its panel: techniques/featureviz.py)
                units.featureviz = feature_visualisation(
                    t.model, t.images, units.layer, None, o["featureviz_steps"], 0, progress=t.progress, **t.norm
                )
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

    def report(self, run, label: str, ran: Ran) -> list[ReportItem]:
        if _recurrent_run(run):
            return [
                ReportItem(
                    "link",
                    f"Browse every hidden unit of {label} (top-9 images with the row read at its peak, traces, mean trace "
                    "per class, class selectivity, gate saturation per unit): explore.html",
                    ran.files[0],
                )
            ]
        return [
            ReportItem(
                "link",
                f"Browse every unit of {label} (filters, top-9 patches and projections, statistics, "
                "occlusion, evolution, invariance per unit): explore.html",
                ran.files[0],
            )
        ]
