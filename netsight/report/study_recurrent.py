"""The study report's look inside the recurrent networks (section 3): RNN, LSTM and GRU at every
hidden size side by side, from the tables the techniques rows, units, gates and trajectories
wrote in each model's first-seed run: Karpathy, Johnson & Fei-Fei, "Visualizing and Understanding
Recurrent Networks" (2015). Everything here is read from the run directories; nothing is computed
from a model."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import numpy as np

from ..fileio import read_csv
from .study import ConfigGroup

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METHODS = ("gradient_x_input", "integrated_gradients", "occlusion")
CLIMB_WINDOW = 3  # rows: "just before the accuracy climbs"


def _first_runs(recurrent: list[ConfigGroup], table: str) -> list[tuple[ConfigGroup, Path]]:
    """(group, its first seed's tables folder) for the groups whose first run wrote `table`."""
    found = []
    for g in sorted(
        recurrent,
        key=lambda g: (("rnn", "lstm", "gru").index(g.model) if g.model in ("rnn", "lstm", "gru") else 9, g.hidden or 0),
    ):
        if g.runs and (g.runs[0].dir.tables / table).is_file():
            found.append((g, g.runs[0].dir.tables))
    return found


def _number(v: str) -> float:
    return float(v) if v not in ("", None) else math.nan


def inside_recurrent(doc, recurrent: list[ConfigGroup], figdir: Path, cnn: Sequence[ConfigGroup] = ()) -> None:
    """The subsection: row importance (with the CNNs' on the same digits, where they ran `rows`),
    gate saturation, trajectories, the most selective units."""
    from safetensors.torch import load_file

    from ..plotting import save_figure
    from ..techniques.trajectories import plot_trajectories
    from .figures import plot_gate_grid, plot_row_importance_by_cell

    rows, units = _first_runs(recurrent, "rows.csv"), _first_runs(recurrent, "units.csv")
    cnn_rows = _first_runs(list(cnn), "rows.csv")
    gates, paths = _first_runs(recurrent, "gates.csv"), _first_runs(recurrent, "trajectories.safetensors")
    if not (rows or units or gates or paths or _first_runs(recurrent, "recurrent_trust_rows.csv")):
        return
    doc.h(3, "Inside the recurrent networks (Karpathy, Johnson & Fei-Fei 2015)", fold=True)
    doc.p(
        "Each model's first seed, looked at from the inside: which input rows its decision rests on, what its "
        "hidden units respond to, how often its gates saturate, the path its hidden state takes while it "
        "reads the rows, and how far its attributions per pixel and per row can be trusted. The LSTM/GRU gates are recomputed from each cell's own weights and checked against "
        "its output."
    )
    if rows:
        entries = []
        images = set()
        for g, tables in rows + cnn_rows:
            table = [r for r in read_csv(tables / "rows.csv") if r["class"] == "all"]
            images.add(int(table[0]["images"]))
            entries.append((g.model, int(g.hidden or 0), {m: np.array([_number(r[m]) for r in table]) for m in METHODS}))
        doc.figure(
            save_figure(
                plot_row_importance_by_cell(entries, "Which rows matter: mean score per input row"), figdir / "rnn_rows.png"
            ),
            f"Row importance per cell type (columns) and method (rows), one line per hidden size, mean over "
            f"{_list(images)} test images (spread over the test set) of the true class's score: gradient x input and "
            "integrated gradients (from the black image, 32 steps) summed over each row's pixels, and the drop of "
            "p(true class) when the row is set to black. Per-class heat maps: each run's figures/rows.png."
            + (
                f" The CNN{'s' if len(cnn_rows) > 1 else ''} ({', '.join(g.model for g, _ in cnn_rows)}) see the whole "
                "image at once; their scores on the same test images, summed per row the same way, show which rows "
                "the convolutional reading rests on."
                if cnn_rows
                else ""
            ),
        )
        _rows_and_climb(doc, rows)
    if gates:
        entries_g = []
        images = set()
        lines: list[list[str]] = []
        for g, tables in gates:
            table = read_csv(tables / "gates.csv")
            left: dict[str, list[float]] = {}
            right: dict[str, list[float]] = {}
            for r in table:
                left.setdefault(r["gate"], []).append(float(r["left"]))
                right.setdefault(r["gate"], []).append(float(r["right"]))
            entries_g.append((g.model, int(g.hidden or 0), left, right))
            if (tables / "unit_traces.safetensors").is_file():
                images.add(_units_images(tables))
            for gate in left:
                lines.append([g.label, gate, f"{np.mean(left[gate]):.0%}", f"{np.mean(right[gate]):.0%}"])
        doc.figure(
            save_figure(plot_gate_grid(entries_g, "Gate saturation per unit (Karpathy et al. Fig. 3)"), figdir / "rnn_gates.png"),
            "One dot per unit and gate: the fraction of (image, row) pairs where the gate is below 0.1 "
            f"(left-saturated) against the fraction above 0.9 (right-saturated), over {_list(images)} test images "
            "and all 28 rows. A gate near the top always lets through; one near the right always blocks; one near "
            "the origin works in its linear range. Each run's figures/gates.png adds the same fractions over its "
            "weight snapshots.",
        )
        doc.table(
            ["run", "gate", "left-saturated (< 0.1)", "right-saturated (> 0.9)"],
            lines,
            "Mean over the units of each gate of the fraction of (image, row) pairs where it is saturated.",
        )
    if paths:
        panels = []
        classes: tuple[str, ...] = tuple(str(c) for c in range(10))
        for g, tables in paths:
            t = load_file(str(tables / "trajectories.safetensors"))
            panels.append((g.label, t["path"].numpy(), t["label"].numpy(), t["explained"].numpy()))
        doc.figure(
            save_figure(
                plot_trajectories(panels, classes, "Hidden-state trajectories, PCA to 2-D"), figdir / "rnn_trajectories.png"
            ),
            f"The hidden state after each of the 28 rows for {_list({len(p[1]) for p in panels})} test images per run, "
            "projected on the first two principal components of all those states (the share of variance on each "
            "axis); colour: the true class.",
        )
    trust = _first_runs(recurrent, "recurrent_trust_rows.csv")
    if trust:
        _trust_block(doc, trust, figdir)
    if units:
        table_rows = []
        counts = set()
        for g, tables in units:
            table = read_csv(tables / "units.csv")
            counts.add(len(table))
            best = max(table, key=lambda r: float(r["selectivity"]))
            ink = max(table, key=lambda r: abs(_number(r["corr_ink"])) if r["corr_ink"] else -1)
            pos = max(table, key=lambda r: abs(_number(r["corr_position"])) if r["corr_position"] else -1)
            table_rows.append(
                [
                    g.label,
                    f"{best['unit']} ({best['best_class_name']}, {float(best['selectivity']):.2f})",
                    f"{ink['unit']} (r = {_number(ink['corr_ink']):+.2f})",
                    f"{pos['unit']} (r = {_number(pos['corr_position']):+.2f})",
                ]
            )
        images = {_units_images(tables) for _, tables in units}
        doc.table(
            ["run", "most class-selective unit (class, selectivity)", "unit tracking ink", "unit tracking the stroke's position"],
            table_rows,
            f"Every hidden unit of each run ({_list(counts, 'and')} units) over {_list(images)} test images in one pass: "
            "selectivity = (a_max - mean of the other a_c) / (a_max + mean of the other a_c), a_c the unit's |mean "
            "value| over the images of class c and all rows (0: every class alike, 1: one class only); r: the "
            "correlation over all (image, row) pairs of the unit's value with the current row's ink or centre of "
            "mass. The top-9 images of each unit: each run's figures/units.png and tables/units.csv.",
        )


def _climb_row(tables: Path, chance: float = 0.1) -> Optional[int]:
    """The first k at which the accuracy after reading k rows (the sequence analysis's rows_read.csv) has made
    half its way from chance to its value after all rows; None without that table."""
    if not (tables / "rows_read.csv").is_file():
        return None
    acc = [float(r["test_acc"]) for r in read_csv(tables / "rows_read.csv")]
    half = chance + (acc[-1] - chance) / 2
    return next((k + 1 for k, a in enumerate(acc) if a >= half), None) if acc[-1] > chance else None


def _rows_and_climb(doc, rows: list[tuple[ConfigGroup, Path]]) -> None:
    """Per run, the row whose removal costs most beside the row by which its accuracy climbs (a table), and
    one sentence counting the runs where the first lies in the few rows before the second."""
    table, near = [], 0
    for g, tables in rows:
        occ = np.array([_number(r["occlusion"]) for r in read_csv(tables / "rows.csv") if r["class"] == "all"])
        peak = int(np.nanargmax(occ)) + 1
        climb = _climb_row(tables)
        close = climb is not None and climb - CLIMB_WINDOW <= peak <= climb
        near += close
        table.append([g.label, peak, "" if climb is None else climb, "yes" if close else "no" if climb else ""])
    measured = sum(1 for r in table if r[2] != "")
    doc.table(
        ["run", "costliest row (occlusion)", "accuracy half-way at row", f"costliest row within {CLIMB_WINDOW} rows before"],
        table,
        "Costliest row: the row whose blacking out lowers p(true class) most (mean over the images above). "
        "Accuracy half-way: the first k at which the accuracy from the state after k rows has made half its way from "
        "chance (10%) to its accuracy after all 28 rows (the sequence analysis, first seed)."
        + (
            f" In {near} of {measured} runs the costliest row lies in the {CLIMB_WINDOW} rows before (or at) that point."
            if measured
            else " No run has the accuracy after k rows (the sequence analysis), so the two are not compared."
        ),
    )


def _units_images(tables: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(tables / "unit_traces.safetensors"), framework="pt") as f:
        return int(f.get_tensor("class_count").sum())


def _list(values: set, word: str = "or") -> str:
    shown = [f"{v:,}" for v in sorted(values)]
    if not shown:
        return "the"  # "over the test images"
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + f" {word} " + shown[-1]


# ------------------------------------------------------------------ the trust checks of the recurrent runs' attributions
TRUST_TESTS = (
    ("verdicts_sanity.csv", "depends on the model", ""),
    ("verdicts_faithfulness.csv", "is faithful", "deletion area minus the random"),
    ("verdicts_agreement.csv", "agrees across seeds", ""),
)


def _verdict_cell(rows: list[dict], method: str, test: str, measure: str) -> str:
    """One method's verdict on one test as the table cell reads it: the word, the estimate and its 95% interval,
    beside the chance level it is judged against (verdict tables: CONTRACTS section 2)."""
    for r in rows:
        if r["method"] == method and r["test"] == test and measure in r["measure"]:
            interval = f" [{_short(r['lo'])}, {_short(r['hi'])}]" if r["lo"] not in ("", "nan") else " (no interval)"
            chance = f"; chance {_short(r['chance'])}" if r["chance"] not in ("", "nan") else ""
            return f"{r['verdict']}: {_short(r['estimate'])}{interval}{chance}"
    return "not run"


def _short(value: str) -> str:
    """Two decimals, or two significant digits for a value under 0.01 (a difference of areas can be that small)."""
    v = float(value)
    return f"{v:.2f}" if v == 0 or abs(v) >= 0.01 else f"{v:.1e}"


def plot_trust_mass(entries: list[tuple[str, int, dict[str, np.ndarray]]], title: str) -> Figure:
    """The mean share of |attribution| per input row, one panel per method, one line per run (colour: cell type,
    line style: hidden size), the even share 1 / rows dotted."""
    from .. import style
    from ..plotting import method_title, plt, tight_with_title

    methods = list(dict.fromkeys(m for _, _, mass in entries for m in mass))
    fig, axes = plt.subplots(1, len(methods), figsize=(3.6 * len(methods) + 0.4, 3.9), squeeze=False, sharey=True)
    for ax, m in zip(axes[0], methods, strict=True):
        steps = 28
        for model, hidden, mass in entries:
            if m in mass:
                v = mass[m]
                steps = len(v)
                ax.plot(np.arange(1, len(v) + 1), v, color=style.model_colour(model), ls=style.hidden_linestyle(hidden),
                        label=f"{model}-{hidden}")  # fmt: skip
        ax.axhline(1 / steps, color="0.5", lw=0.8, ls=":", label="even share (1 / rows)")
        ax.set_title(method_title(m))
        ax.set_xlabel("input row (time step)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("share of the map's |values| in the row")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 10), frameon=False)
    fig.suptitle(title)
    tight_with_title(fig, 0.45, 0.2 + 0.22 * math.ceil(len(labels) / 10))
    return fig


def _trust_block(doc, trust: list[tuple[ConfigGroup, Path]], figdir: Path) -> None:
    """Section 3's trust checks (technique recurrent_trust, first seed of each configuration): where the attribution
    lies per time step (Ismail et al. 2019's fading saliency), and one line per run and method with its verdicts."""
    from ..plotting import method_title, save_figure

    entries = []
    images = set()
    for g, tables in trust:
        table = read_csv(tables / "recurrent_trust_rows.csv")
        mass: dict[str, list[float]] = {}
        for r in table:
            mass.setdefault(r["method"], []).append(_number(r["mass_mean"]))
            images.add(int(r["n"]))
        entries.append((g.model, int(g.hidden or 0), {m: np.array(v) for m, v in mass.items()}))
    doc.h(4, "Which attributions of the recurrent nets to trust")
    doc.figure(
        save_figure(
            plot_trust_mass(entries, "Where the attribution lies: share of |map| per input row"), figdir / "rnn_trust_mass.png"
        ),
        f"The share of each method's |attribution| that lies in each input row (time step), mean over {_list(images)} "
        "test images per run (first seed). Ismail et al. (NeurIPS 2019) found that a recurrent net's saliency fades "
        "for what it read early even where the decision rests on it: a curve that rises towards row 28 for every "
        "image says as much about the recurrence as about the digit. Each run's figures/recurrent_trust_rows.png "
        "sets the trained model beside its randomised copy, figures/recurrent_trust_sanity.png and "
        "figures/recurrent_trust_rows_faith.png hold the sanity curves and the row deletion/insertion curves.",
    )
    table_rows = []
    for g, tables in trust:
        verdicts = {name: read_csv(tables / name) if (tables / name).is_file() else [] for name, _, _ in TRUST_TESTS}
        methods = list(dict.fromkeys(r["method"] for rows in verdicts.values() for r in rows))
        for m in methods:
            table_rows.append([g.label, method_title(m)] + [_verdict_cell(verdicts[n], m, t, k) for n, t, k in TRUST_TESTS])
    doc.table(
        ["run", "method", "depends on the model (Spearman of |map|, trained vs randomised)",
         "is faithful (row deletion area minus a random row order's)", "agrees across seeds (Spearman of |map|)"],
        table_rows,
        "Each cell: the verdict (yes, no or unsettled), the estimate and its 95% interval, and the chance level it sits "
        "beside. Depends on the model: the mean over the cascading depth curve (fc, then the recurrent cell "
        "re-initialised) of the Spearman correlation of |map| with the trained model's, per image and randomisation "
        "draw; yes below 0.5, and the chance level is how alike two randomised models' maps are (what the images and "
        "the recurrence alone make maps share). Is faithful: per image, the area under p(class) as the rows go in the "
        "method's order minus the area for a random row order (lower: more faithful; yes below 0); "
        "each run's tables/verdicts_faithfulness.csv adds insertion and the rows by ink. Agrees across seeds: the "
        "Spearman of |map| between the seeds' maps of the same images, against the same chance level as above.",
    )  # fmt: skip
