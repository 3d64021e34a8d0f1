"""The hidden units of a recurrent run (`netsight inspect RUN --units`): Karpathy, Johnson &
Fei-Fei, "Visualizing and Understanding Recurrent Networks" (2015), their interpretable cells on
images read row by row. One `unit_stats` pass over the images (ops/recurrent.py) gives, for
every unit at once, its top-9 (image, step) pairs with the unit's trace over the steps, its mean
trace per class, its class selectivity and its correlation with three simple features of the
current row: ink (mean pixel), the stroke's horizontal position (the row's centre of mass, rows
with ink only) and the row index.

Files (the explore page reads the two tables):
- figures/units.png (or figures/units_U.png with --unit U): per unit drawn, its 9 top images with
  the row it peaked at marked, its trace over the steps on each, and its mean trace per class;
- tables/units.csv: one line per unit: unit, selectivity, best_class (index), best_class_name,
  corr_ink, corr_position, corr_row, then top1_image, top1_step, top1_value ... top9_image,
  top9_step, top9_value (image: index in the split; step: 0-based row);
- tables/unit_traces.safetensors: class_mean [classes, T, H], class_count [classes],
  top_values / top_images / top_steps [H, 9], top_traces [H, 9, T], selectivity / best_class [H],
  corr_ink / corr_position / corr_row [H], and for a gated cell left_GATE / right_GATE / mean_GATE [H]
  (the saturation fractions of `gates`; GATE in input, forget, output or reset, update).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import torch

from ..ops.recurrent import FEATURES, UnitStatsResult, unit_stats
from .target import Target
from .base import Technique, register, count_option
from ._recurrent import UNIT, checked_unit, labels, pixels, save_tensors, stats

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SHOWN = 4  # units in the default figure


def shown_units(r: UnitStatsResult, unit: Optional[int]) -> list[tuple[int, str]]:
    """(unit, why it is drawn): the one asked for, else the most class-selective unit and the units
    most correlated with ink, position and the row index (each unit once)."""
    if unit is not None:
        return [(unit, "asked for")]
    picks: list[tuple[int, str]] = [(int(r.selectivity.argmax()), "most class-selective")]
    for f in FEATURES:
        c = torch.nan_to_num(r.correlation[f].abs(), nan=-1.0)
        for u in c.argsort(descending=True).tolist():
            if all(u != p for p, _ in picks):
                picks.append((u, f"tracks {'the row index' if f == 'row' else f} (r = {r.correlation[f][u]:+.2f})"))
                break
    return picks[:SHOWN]


def unit_rows(r: UnitStatsResult, index: torch.Tensor, classes: tuple[str, ...]) -> list[dict]:
    rows = []
    for u in range(r.hidden):
        best = int(r.best_class[u])
        row: dict = {
            "unit": u,
            "selectivity": float(r.selectivity[u]),
            "best_class": best,
            "best_class_name": classes[best] if best < len(classes) else str(best),
        }
        for f in FEATURES:
            v = float(r.correlation[f][u])
            row[f"corr_{f}"] = "" if math.isnan(v) else v
        for j in range(r.top_values.shape[1]):
            row[f"top{j + 1}_image"] = int(index[r.top_images[u, j]])
            row[f"top{j + 1}_step"] = int(r.top_steps[u, j])
            row[f"top{j + 1}_value"] = float(r.top_values[u, j])
        rows.append(row)
    return rows


def tensors_of(r: UnitStatsResult, index: torch.Tensor) -> dict[str, torch.Tensor]:
    out = {
        "class_mean": r.class_mean,
        "class_count": r.class_count,
        "top_values": r.top_values,
        "top_images": index[r.top_images],
        "top_steps": r.top_steps,
        "top_traces": r.top_traces,
        "selectivity": r.selectivity,
        "best_class": r.best_class,
    }
    out.update({f"corr_{f}": r.correlation[f] for f in FEATURES})
    for g in r.left:
        out.update({f"left_{g}": r.left[g], f"right_{g}": r.right[g], f"mean_{g}": r.gate_mean[g]})
    return out


MARKED_ROW = "#ff7f0e"  # the row a unit peaked at, drawn on its top images


def plot_units(
    result, picks: list[tuple[int, str]], images: list, labels: list, classes: Sequence[str], title: str, n_images: int
) -> Figure:
    """Per unit (one row each): its top-9 (image, step) pairs with the row marked (`images`: one
    [9, (C,) H, W] tensor per unit, `labels`: their classes), the unit's trace over the steps on those
    images (coloured by the image's class), its mean trace per class."""
    import numpy as np
    from .. import style
    from ..plotting import plt, _class_legend
    from ..style import SMALL

    k = result.top_values.shape[1]
    steps = result.steps
    height = 2.1 * len(picks) + 1.4
    fig = plt.figure(figsize=(0.82 * k + 9.6, height))
    grid = fig.add_gridspec(
        len(picks), k + 4, width_ratios=[1] * k + [0.9, 4.2, 0.5, 4.2], wspace=0.3, hspace=0.95, left=0.03, right=0.99
    )
    grid.update(top=1 - 1.15 / height, bottom=0.85 / height)
    present: set[int] = set()
    for row, ((u, why), tiles, top_labels) in enumerate(zip(picks, images, labels, strict=True)):
        px = tiles.float() / 255 if not tiles.dtype.is_floating_point else tiles
        px = px[:, None] if px.dim() == 3 else px
        for j in range(k):
            ax = fig.add_subplot(grid[row, j])
            img = px[j].mean(0).numpy()
            style.mark(ax.imshow(img, cmap="gray", vmin=0, vmax=1), "pixels")
            step = int(result.top_steps[u, j])
            ax.axhline(step, color=MARKED_ROW, lw=1.2)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"row {step + 1}", fontsize=SMALL, pad=2)
            if j == 0:
                ax.set_ylabel(f"unit {u}", fontsize=SMALL)
        ax = fig.add_subplot(grid[row, k + 1])
        x = np.arange(1, steps + 1)
        for j in range(k):
            c = int(top_labels[j])
            colour = style.class_colour(c)
            present.add(c)
            ax.plot(x, result.top_traces[u, j].numpy(), color=colour, lw=1, alpha=0.85)
            ax.plot(int(result.top_steps[u, j]) + 1, float(result.top_values[u, j]), "o", color=colour, ms=3)
        ax.set_title(f"unit {u}: its value on the top-{k} images\n({why})", fontsize=SMALL)
        ax.set_xlabel("row (step)", fontsize=SMALL)
        ax.set_ylabel("hidden value", fontsize=SMALL)
        ax.grid(alpha=0.3)
        ax = fig.add_subplot(grid[row, k + 3])
        for c in range(result.class_mean.shape[0]):
            if int(result.class_count[c]):
                present.add(c)
                ax.plot(x, result.class_mean[c, :, u].numpy(), color=style.class_colour(c), lw=1.2)
        best = int(result.best_class[u])
        ax.set_title(
            f"unit {u}: mean over the images of each class\n(selectivity {float(result.selectivity[u]):.2f}: "
            f"class {classes[best] if best < len(classes) else best}, mean {float(result.class_mean[best, :, u].mean()):+.2f})",
            fontsize=SMALL,
        )
        ax.set_xlabel("row (step)", fontsize=SMALL)
        ax.grid(alpha=0.3)
    _class_legend(fig, sorted(present), tuple(classes))
    fig.suptitle(
        f"Hidden units of {title}: top-{k} (image, row) pairs over {n_images:,} test images\n"
        "(orange line: the row the unit peaked at; dots: the peak; traces coloured by the image's class)"
    )
    return fig


EXPLORE_FIT = [280, 460]  # an explore page's plot as wide as the details, within these bounds: its text stays 10 px


def _signed_class(name: str, mean: float) -> str:
    """A class and the unit's mean value over its images, with its sign: "3 (−0.42)" is the class that drives the unit
    most strongly, negative."""
    return f"{name} ({'−' if mean < 0 else '+'}{abs(mean):.2f})"


def _explore_range(values) -> tuple[float, float]:
    """An explore page plot's value range: the values' and 0, widened to +-1 when flat."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    lo, hi = min([0.0, *finite]), max([0.0, *finite])
    return (lo - 1, hi + 1) if hi - lo < 1e-9 else (lo, hi)


def _explore_ticks(lo: float, hi: float) -> list[list[Optional[float]]]:
    """The range's ends, and 0 between them where it is not too close to either to be read."""
    from ..report.panels import num

    return [[num(lo, 6)], [0.0], [num(hi, 6)]] if min(-lo, hi) > 0.15 * (hi - lo) else [[num(lo, 6)], [num(hi, 6)]]


@register
class UnitsTechnique(Technique):
    name = "units"
    summary = "recurrent runs: every hidden unit's top-9 (image, step), mean trace per class, selectivity, input tracking"
    applies_to = "recurrent"
    options = (count_option(10_000), UNIT)
    first_seed = True
    # no report items of its own: the recurrent section compares every run's tables/units.csv
    compute = staticmethod(unit_stats)

    def prepare(self, t: Target, count: int, unit: Optional[int]) -> dict:
        checked_unit(t, unit)
        labels(t, torch.tensor([0]))
        return {"count": count, "unit": unit}

    def outputs(self, t: Target, o: dict) -> list[str]:
        figure = "figures/units.png" if o["unit"] is None else f"figures/units_{o['unit']}.png"
        return [figure, "tables/units.csv", "tables/unit_traces.safetensors"]

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..fileio import write_csv
        from ..plotting import save_figure

        index, r = stats(t, o["count"])
        classes = t.classes or tuple(str(c) for c in range(r.class_mean.shape[0]))
        rows = unit_rows(r, index, classes)
        figure, table, tensors = (t.folder / p for p in self.outputs(t, o))
        picks = shown_units(r, o["unit"])
        images = [pixels(t, index[r.top_images[u]]) for u, _ in picks]
        tile_labels = [labels(t, index[r.top_images[u]]).tolist() for u, _ in picks]
        fig = plot_units(r, picks, images, tile_labels, classes, t.title, len(index))
        return [save_figure(fig, figure), write_csv(table, list(rows[0]), rows), save_tensors(tensors, tensors_of(r, index))]

    def explore_panels(self, layer, unit: int) -> list[dict]:
        """A hidden unit on the explore page (`layer.numbers`: `report.explore_recurrent_page.recurrent_layer_data`'s
        dict): its peak, preferred class and selectivity, its correlations with the row being read, its top-9
        images with the row at its peak marked and its trace under each, its mean trace per class and the class
        means as bars (the class colours of `style.class_colour`)."""
        from ..report.panels import card, chart, fmt, num, panel, preview, table, text

        data, keys = layer.numbers, layer.image_keys
        n, classes = data["steps"], data["classes"]
        u = data["units"][unit]
        s = u["stats"]
        lo, hi = _explore_range([v for t in u["top"] for v in t["trace"]])
        cards = []
        for r, t in enumerate(u["top"]):
            step, trace = t["step"], t["trace"]
            spark = chart(
                "spark",
                f"value over the {n} steps, peak at row {step + 1}",
                (0, max(n - 1, 1)),
                (lo, hi),
                [
                    {"y": trace},
                    {"x": [step], "y": [trace[step]]},
                ],
                rules=[{"x1": step, "x2": step, "y1": num(lo, 6), "y2": num(hi, 6), "stroke": "#e6194b", "width": 1}],
            )
            caption = f"#{r + 1}{' ' + t['label'] if t['label'] else ''} · row {step + 1} · {fmt(t['value'])}"
            cards.append(
                card(
                    [keys[t["image"]]],
                    caption,
                    f"{t['file']}, row {step + 1}",
                    {"image": t["image"], "step": step, "value": f"{t['value']:.7g}"},
                    [f"image {t['image']}, row {step + 1} marked"],
                    [num(step / n, 6), num(1 / n, 6)],
                    [spark],
                )
            )
        corr = {f: "–" if c is None else f"{c:.2f}" for f, c in s["correlation"].items()}
        tlo, thi = _explore_range([v for m in u["class_mean"] for v in m])
        lines = [{"y": m, "width": 2.4} if c == s["preferred"] else {"y": m} for c, m in enumerate(u["class_mean"])]
        trace_chart = chart(
            "classtrace",
            "mean value per class over the steps",
            (0, max(n - 1, 1)),
            (tlo, thi),
            lines,
            rules=[{"x1": 0, "x2": max(n - 1, 1), "y1": 0, "y2": 0, "stroke": "#ccc"}] if tlo < 0 < thi else [],
            yticks=_explore_ticks(tlo, thi),
        )
        means = [num(sum(m) / len(m)) for m in u["class_mean"]]
        blo, bhi = _explore_range(means)
        bars_chart = chart(
            "classbars",
            "mean value per class, over all steps",
            (0, len(classes)),
            (blo, bhi),
            [{"y": means, "base": max(blo, 0.0)}],
            rules=[{"x1": 0, "x2": len(classes), "y1": 0, "y2": 0, "stroke": "#999"}] if blo < 0 < bhi else [],
            xticks=[[i + 0.5, c if len(c) <= 6 else c[:5] + "…"] for i, c in enumerate(classes)],
            yticks=_explore_ticks(blo, bhi),
        )
        return [
            preview(
                layer.pictures.key(u["preview"]),
                panel(
                    "group",
                    cls="tables",
                    panels=[
                        table(
                            ["peak", "strongest class (its mean)", "selectivity"],
                            [
                                [
                                    fmt(s["peak"]),
                                    _signed_class(classes[s["preferred"]], means[s["preferred"]]),
                                    f"{s['selectivity']:.3f}",
                                ]
                            ],
                        ),
                        table(["r (ink)", "r (position)", "r (row)"], [[corr["ink"], corr["position"], corr["row"]]]),
                    ],
                ),
            ),
            text("", note="stats"),
            panel(
                "images",
                f"Top-{len(cards)} test images and their traces",
                "top",
                "cards top",
                items=cards,
                pictures=[{"class": "digit"}],
                figure="rpair",
            ),
            panel("chart", "Mean trace per class", "classtrace", charts=[trace_chart]),
            panel("legend", **{"from": "class legend"}),
            panel("chart", "Class selectivity", "classbars", charts=[bars_chart]),
        ]

    def explore_shared(self, layer) -> dict[str, dict]:
        data = layer.numbers
        n = data["steps"]
        zero = {"x1": 0, "x2": max(n - 1, 1), "y1": 0, "y2": 0, "stroke": "#bbb"}  # under every trace
        steps = [0, round((n - 1) / 3), round(2 * (n - 1) / 3), n - 1]
        legend = [
            {"colour": c, "shape": "swatch", "text": f"{k} ({m})"}
            for c, k, m in zip(data["class_colours"], data["classes"], data["class_counts"], strict=True)
        ]
        return {
            "data": {"class legend": legend},  # the same for every unit: stored once
            "notes": {
                "stats": f"Over the {data['images_seen']:,} test images and {n} steps: the unit's highest value; the class "
                "with the largest |mean value| (its mean in brackets: a minus sign means the class drives the unit negative, "
                "not that the unit prefers it) and the selectivity (0: every class moves the unit alike, 1: only that class; "
                "see the bars below); r: the correlation of the unit's value with the row being read: its ink (mean "
                "pixel), the ink's horizontal position, and the row number.",
                "top": f"Strongest first. Boxed in red: the row being read when the unit peaked. Below each image: the "
                f"unit's value over the {n} rows (grey line: 0; red: the peak).",
                "classtrace": "The unit's mean value after each row over the test images of each class (the strongest "
                "class drawn thicker; in brackets: the images of the class).",
                "classbars": "Each class's mean trace averaged over the steps (the colours as above); the selectivity "
                "compares the largest |bar| with the mean |bar| of the others.",
            },
            "styles": {
                "spark": {
                    "class": "spark",
                    "size": [84, 34],
                    "margin": [3, 3, 3, 3],
                    "axes": False,
                    "series": [{"type": "line", "stroke": "#222", "width": 1.3}, {"type": "dots", "r": 2.4, "fill": "#e6194b"}],
                    "rules": [zero],
                },
                "classtrace": {
                    "class": "classtrace",
                    "size": [EXPLORE_FIT, 190],
                    "margin": [44, 10, 8, 38],
                    "xlabel": "row read (step)",
                    "ylabel": "mean value",
                    # one line per class in its colour (a unit's preferred class drawn thicker: its series says so)
                    "series": [{"type": "line", "stroke": c, "width": 1.3} for c in data["class_colours"]],
                    "xticks": [[t, str(t + 1)] for t in steps],  # rows 1, n/3, 2n/3, n: the same for every unit
                },
                "classbars": {
                    "class": "classbars",
                    "size": [EXPLORE_FIT, 150],
                    "margin": [44, 10, 8, 38],
                    "xlabel": "class",
                    "ylabel": "mean value",
                    "series": [{"type": "bars", "fills": data["class_colours"], "gap": 4}],  # a bar per class in its colour
                },
            },
        }
