"""The gates of an LSTM (input, forget, output) or GRU (reset, update) run (`netsight inspect RUN
--gates`): Karpathy, Johnson & Fei-Fei, "Visualizing and Understanding Recurrent Networks" (2015),
their Fig. 3: for every unit and gate, the fraction of (image, step) pairs where the gate is
left-saturated (< 0.1) against the fraction where it is right-saturated (> 0.9), one colour per
gate; and, from the run's weight snapshots, the mean of both fractions per gate over training.
The gate values are recomputed from the cell's own weights and checked against its output
(`ops/recurrent.run_steps`); the pass over the images is the one `units` makes.

Files:
- figures/gates.png: the scatter, and the saturation over training beside it when the run kept
  weight snapshots (`netsight train --snapshots`);
- tables/gates.csv: unit, gate, left (fraction < 0.1), right (fraction > 0.9), mean (mean gate value);
- tables/gates_training.csv (with snapshots): iteration, gate, left, right (means over the units),
  measured on the first `TRAINING_IMAGES` of the images used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from pathlib import Path

import torch

from ..errors import NetsightError
from ..train.rundir import load_weights
from ..ops.recurrent import LEFT, RIGHT, check_recurrent, gate_names, run_steps
from .target import Target
from .base import Technique, register, count_option
from ._recurrent import chosen, labels, pixels, recurrent, stats

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TRAINING_IMAGES = 500  # images each snapshot's gates are measured on


@torch.no_grad()
def saturation_over_training(snapshots: list[tuple[int, Path]], images: torch.Tensor, device) -> list[dict]:
    """Per snapshot and gate: the mean over units of the left- and right-saturated fractions."""
    rows = []
    for iteration, path in snapshots:
        model = check_recurrent(load_weights(path, device)).eval()
        steps = run_steps(model, images)
        for g in gate_names(model.cell):
            v = steps.gates[g]
            rows.append(
                {
                    "iteration": iteration,
                    "gate": g,
                    "left": (v < LEFT).double().mean().item(),
                    "right": (v > RIGHT).double().mean().item(),
                }
            )
    return rows


def _training(t: Target) -> bool:
    return len(t.snapshots()) >= 2


def plot_gates(
    left: dict, right: dict, title: str, n_images: int, training: Optional[list[dict]] = None, n_training: int = 0
) -> Figure:
    """Karpathy et al.'s Fig. 3 (one dot per unit and gate), and the mean saturation per gate over training."""
    from matplotlib.ticker import NullLocator
    from .. import style
    from ..plotting import plt, _gate_scatter, tight_with_title

    panels = 2 if training else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels + 0.4, 5.0), squeeze=False)
    _gate_scatter(axes[0][0], left, right)
    axes[0][0].legend(loc="upper right")
    axes[0][0].set_title(f"every unit, {n_images:,} test images x all rows")
    if training:
        ax = axes[0][1]
        for g in left:
            rows = [r for r in training if r["gate"] == g]
            its = [r["iteration"] for r in rows]
            ax.plot(its, [r["right"] for r in rows], color=style.gate_colour(g), marker="o", ms=3, label=f"{g}: > 0.9")
            ax.plot(its, [r["left"] for r in rows], color=style.gate_colour(g), marker="o", ms=3, ls="--", label=f"{g}: < 0.1")
        ax.set_xscale("log")
        snapshots = sorted({r["iteration"] for r in training})
        ax.set_xticks(snapshots, [str(i) for i in snapshots])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel("training iteration (weight snapshot)")
        ax.set_ylabel("mean fraction saturated")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", ncol=2)
        ax.set_title(f"over training ({n_training:,} test images)")
    fig.suptitle(f"Gate saturation: {title}")
    tight_with_title(fig)
    return fig


@register
class GatesTechnique(Technique):
    name = "gates"
    summary = "LSTM/GRU runs: gate saturation per unit (Karpathy et al. Fig. 3) and over the run's snapshots"
    applies_to = "recurrent"
    options = (count_option(10_000),)
    first_seed = True
    models = ("lstm", "gru")  # a suite's plain RNN runs skip it (`inspect --gates` on one says why)
    # no report items of its own: the recurrent section compares every run's tables/gates.csv
    compute = staticmethod(run_steps)

    def prepare(self, t: Target, count: int) -> dict:
        model = recurrent(t)
        if not gate_names(model.cell):
            raise NetsightError(f"--gates: {model.cell} has no gates (LSTM, GRU have)")
        labels(t, torch.tensor([0]))
        return {"count": count}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return ["figures/gates.png", "tables/gates.csv"] + (["tables/gates_training.csv"] if _training(t) else [])

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..fileio import write_csv
        from ..plotting import save_figure

        index, r = stats(t, o["count"])
        rows = [
            {"unit": u, "gate": g, "left": float(r.left[g][u]), "right": float(r.right[g][u]), "mean": float(r.gate_mean[g][u])}
            for g in r.left
            for u in range(r.hidden)
        ]
        paths = [t.folder / p for p in self.outputs(t, o)]
        training = None
        if _training(t):
            training = saturation_over_training(t.snapshots(), pixels(t, chosen(t, o["count"])[:TRAINING_IMAGES]), t.device)
        fig = plot_gates(r.left, r.right, t.title, len(index), training, min(len(index), TRAINING_IMAGES))
        written = [save_figure(fig, paths[0]), write_csv(paths[1], ["unit", "gate", "left", "right", "mean"], rows)]
        if training is not None:
            written.append(write_csv(paths[2], ["iteration", "gate", "left", "right"], training))
        return written

    def explore_panels(self, layer, unit: int) -> list[dict]:
        """A hidden unit's gate saturation on the explore page: a table per gate and Karpathy's scatter of every unit
        of the layer with this one marked (a plain RNN: a line saying it has no gates)."""
        from ..report.panels import chart, panel, table, text

        data = layer.numbers
        if not data["gates"]:
            return [text("", title="Gates", note="nogates")]
        gates = data["units"][unit]["gates"]
        rows = [
            [g, *(f"{100 * v:.1f}%" for v in (gates[g]["left"], gates[g]["right"], 1 - gates[g]["left"] - gates[g]["right"]))]
            for g in data["gates"]
        ]
        scatters = [
            chart(
                f"gate {g}",
                None,  # the style's label and axis label: the same for every unit
                (0, 1),
                (0, 1),
                [{"from": f"saturation {g}", "skip": unit}, {"x": [gates[g]["left"]], "y": [gates[g]["right"]]}],
            )
            for g in data["gates"]
        ]
        return [
            table(["gate", "left (< 0.1)", "right (> 0.9)", "neither"], rows, title="Gates", note="gates", cls="gates"),
            panel("chart", cls="gatecharts", charts=scatters),
            panel(
                "legend",
                items=[
                    {"colour": "#e6194b", "shape": "dot", "text": f"unit {unit}"},
                    {"colour": "#999", "shape": "dot", "text": f"the other units of {data['name']}"},
                    {"colour": "#bbb", "shape": "swatch", "text": "dashed: left + right = 1"},
                ],
            ),
        ]

    def explore_shared(self, layer) -> dict[str, dict]:
        halves = [[0, "0"], [0.5, "0.5"], [1, "1"]]
        return {
            "notes": {
                "nogates": "A plain RNN has no gates.",
                "gates": "Per gate, the fraction of (test image, step) where this unit's gate is left-saturated (< 0.1) and "
                "right-saturated (> 0.9), as Karpathy et al. (2015) plot them: every unit of the layer.",
            },
            "data": {f"saturation {g}": {"x": v["left"], "y": v["right"]} for g, v in layer.numbers["saturation"].items()},
            "styles": {
                f"gate {g}": {  # Karpathy's scatter: every unit of the layer (grey), this one (red), the diagonal left + right = 1
                    "class": "gate",
                    "label": f"{g} gate: fraction of steps left- and right-saturated",
                    "xlabel": f"{g}: left (< 0.1)",
                    "size": [156, 156],
                    "margin": [34, 10, 8, 38],
                    "series": [
                        {"type": "dots", "r": 2, "fill": "#999", "opacity": 0.55},
                        {"type": "dots", "r": 4.2, "fill": "#e6194b", "stroke": "#fff", "class": "this"},
                    ],
                    "rules": [{"x1": 0, "y1": 1, "x2": 1, "y2": 0, "stroke": "#bbb", "dash": "3 2"}],
                    "xticks": halves,
                    "yticks": halves,
                    "ylabel": "right (> 0.9)",
                }
                for g in layer.numbers["gates"]
            },
        }
