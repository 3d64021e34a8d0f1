"""Feature evolution during training: Zeiler & Fergus, "Visualizing and Understanding Convolutional
Networks" (ECCV 2014), section 4 and Figure 4. For every weight snapshot of a netsight run (trained with
`--snapshots`), each feature map's strongest activation over the images is found with that snapshot's
weights and projected to pixels with the deconvnet, so a row read left to right shows one feature
forming."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import torch

from ..data import Dataset
from ..errors import NetsightError
from ..train.rundir import load_weights
from ..ops.deconvnet_graph import make_deconvnet
from ..ops.topk import top_activations
from .base import Option, Ran, Technique, register, LAYER, MAPS_HELP, checked_layer
from .target import Target, layer_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class Evolution:
    layer: str
    iterations: list[int]
    projections: torch.Tensor  # [maps, snapshots, C, H, W]
    values: torch.Tensor  # [maps, snapshots] strongest activation


@torch.no_grad()
def feature_evolution(
    snapshots: list[tuple[int, Path]],
    images: torch.Tensor,
    layer: str,
    maps: int = 16,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> Evolution:
    """`snapshots`: (iteration, weights file) pairs, in training order (with `progress`, a bar over them)."""
    from ..progress import track

    if not snapshots:
        raise NetsightError("no weight snapshots; train with --snapshots 100,500,1000,... to see features evolve")
    projections, values = [], []
    for _, path in track(snapshots, len(snapshots), f"evolution of {layer}", progress, "snapshots"):
        model = load_weights(path, device)
        top = top_activations(model, images, layer, k=1)
        n = min(maps, top.values.shape[0])
        deconv = make_deconvnet(model, layer, tuple(images.shape[1:]))
        x = Dataset.normalise(images[top.image_index[:n, 0]].to(device))
        proj = deconv.project(x, torch.arange(n, device=x.device), "max", top.positions[:n, 0])
        projections.append(proj.images.cpu())
        values.append(top.values[:n, 0])
    return Evolution(deconv.target, [i for i, _ in snapshots], torch.stack(projections, 1), torch.stack(values, 1))


def plot_evolution(evo, title: str, asked: Optional[str] = None) -> Figure:
    from .. import style
    from ..plotting import projection_image, plt, _mosaic, _key_legend, _projection_key
    from ..style import layer_name

    maps, snaps = evo.projections.shape[:2]
    tiles = [[projection_image(evo.projections[m, s]) for s in range(snaps)] for m in range(maps)]
    h, w = evo.projections.shape[-2:]
    fig, ax = plt.subplots(figsize=(max(1.0 * snaps + 2.0, 6.5), 1.0 * maps + 2.2))
    style.mark(ax.imshow(_mosaic(tiles, gap=2), interpolation="nearest"), "projection")
    ax.set_xticks([s * (w + 2) + w / 2 for s in range(snaps)], [str(i) for i in evo.iterations])
    ax.set_yticks([m * (h + 2) + h / 2 for m in range(maps)], [f"map {m}" for m in range(maps)])
    ax.tick_params(length=0)
    ax.set_xlabel("training iteration (weight snapshot)")
    ax.set_title(
        f"{title}: strongest activation of each {layer_name(evo.layer, asked)} map,\nprojected, as training goes on "
        "(each tile scaled to its own largest |value|)"
    )
    _key_legend(fig, _projection_key(False), ncol=1)
    fig.tight_layout(rect=(0, 0.6 / fig.get_figheight(), 1, 1))
    return fig


@register
class EvolutionTechnique(Technique):
    name = "evolution"
    summary = "feature evolution across the run's weight snapshots (run directories)"
    applies_to = "cnn"
    options = (LAYER, Option("maps", "int", 16, MAPS_HELP, lo=1, hi=65536))
    needs_run = True
    section = "zf"
    compute = staticmethod(feature_evolution)

    def prepare(self, t: Target, layer: Optional[str], maps: int) -> dict:
        asked, _ = checked_layer(t, layer)
        if len(t.snapshots()) < 2:
            raise NetsightError(
                f"{t.run.path}: no weight snapshots; train with --snapshots 100,500,1000,... to see features evolve"
            )
        return {"layer": asked, "maps": maps}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return [f"figures/evolution_{layer_file(o['layer'])}.png"]

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..plotting import save_figure

        evo = feature_evolution(t.snapshots(), t.run_pixels(), o["layer"], o["maps"], t.device, t.progress)
        return [save_figure(plot_evolution(evo, t.title, asked=o["layer"]), t.folder / self.outputs(t, o)[0])]

    def caption(self, ran: Ran) -> str:
        return f"feature evolution of {ran.options['layer']} during training, {ran.options['maps']} maps (paper Fig. 4)."

    def explore_panels(self, layer, unit: int) -> list[dict]:
        """The unit's strongest activation over the set, projected, at each weight snapshot (explore page; a run
        with snapshots only)."""
        evo = layer.numbers.evolution
        if evo is None:
            return []
        from ..plotting import projection_image
        from ..report.panels import card, fmt, panel, png

        snapshots = []
        for n, it in enumerate(evo["iterations"]):
            value = float(evo["values"][unit, n])
            key = layer.pictures.key(png(projection_image(evo["projections"][unit, n])))
            snapshots.append(card([key], f"it. {it} {fmt(value)}", data={"activation": f"{value:.7g}"}, alt=[f"iteration {it}"]))
        return [
            panel(
                "images",
                "Evolution over the weight snapshots",
                "evolution",
                "cards evolution",
                items=snapshots,
                pictures=[{"class": "evolution"}],
            )
        ]

    def explore_shared(self, layer) -> dict[str, dict]:
        return {"notes": {"evolution": "The strongest activation over the test set, projected, at each snapshot."}}
