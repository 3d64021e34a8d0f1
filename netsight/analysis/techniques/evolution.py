"""Feature evolution during training: each map's strongest unit projected from every weight
snapshot of a run: Zeiler & Fergus (ECCV 2014), section 4.1 and Figure 4. Needs a netsight run
trained with --snapshots."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ...errors import NetsightError
from ..evolution import feature_evolution
from ..technique import Option, Ran, ReportItem, Technique, register
from ..target import Target, layer_file
from ._common import LAYER, MAPS_HELP, checked_layer


def _prepare(t: Target, layer: Optional[str], maps: int) -> dict:
    asked, _ = checked_layer(t, layer)
    if len(t.snapshots()) < 2:
        raise NetsightError(f"{t.run.path}: no weight snapshots; train with --snapshots 100,500,1000,... to see features evolve")
    return {"layer": asked, "maps": maps}


def _outputs(t: Target, o: dict) -> list[str]:
    return [f"figures/evolution_{layer_file(o['layer'])}.png"]


def _write(t: Target, o: dict) -> list[Path]:
    from ...report.figures import save_figure
    from ...report.figures_zf import plot_evolution

    evo = feature_evolution(t.snapshots(), t.run_pixels(), o["layer"], o["maps"], t.device)
    return [save_figure(plot_evolution(evo, t.title, asked=o["layer"]), t.folder / _outputs(t, o)[0])]


def _report(run, label: str, ran: Ran) -> list[ReportItem]:
    return [
        ReportItem(
            "figure",
            f"{label}: feature evolution of {ran.options['layer']} during training, {ran.options['maps']} maps (paper Fig. 4).",
            ran.files[0],
        )
    ]


TECHNIQUE = register(
    Technique(
        name="evolution",
        summary="feature evolution across the run's weight snapshots (run directories)",
        applies_to="cnn",
        needs_run=True,
        compute=feature_evolution,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        options=(LAYER, Option("maps", "int", 16, MAPS_HELP, lo=1, hi=65536)),
        report=_report,
        section="zf",
    )
)
