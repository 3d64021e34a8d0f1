"""The trust card: every trust test's verdict on every attribution method of one model, on one page. It runs on
a folder where the trust checks already ran and reads their raw values (tables/sanity_values.csv from the sanity
checks of Adebayo et al. 2018, tables/faithfulness_values.csv from the deletion metric of Petsiuk et al. 2018,
tables/seed_agreement_values.csv from seed agreement) and the verdict tables other trust tests wrote there
(tables/verdicts_<test>.csv, e.g. input invariance, Kindermans et al. 2019); the rules that turn values into
verdicts are `_verdicts.py`'s (docs/trust.md). In a suite built with --quick it judges nothing: every verdict
reads "not judged" (too few images and draws for any interval to settle).

Writes figures/trust_card.png (per method a row, per test a column: the estimate and its 95% interval, the
chance levels, the threshold, and the verdict as the cell's colour and word) and tables/verdicts.csv (method,
test, verdict, measure, estimate, lo, hi, chance, threshold, n_images, n_draws, n_seeds, note: one row per
method and test, CONTRACTS §2). The study report draws the same card pooled over a configuration's seeds
(`report/trust.py`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import NetsightError
from .base import Ran, ReportItem, Technique, register
from .target import Target
from . import _verdicts as V

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FILES = ["figures/trust_card.png", "tables/verdicts.csv"]
ESTIMATE_Y, CHANCE_Y = 0.42, 0.13  # heights in a cell: the estimate and its interval above the chance levels' markers
AXIS_TITLES = {  # what the x axis of each test's column is
    V.MODEL: "Spearman |map|, trained vs\nrandomised (mean over depths)",
    V.DATA: "Spearman |map|, trained vs\ntrained on permuted labels",
    V.FAITHFUL: "deletion area minus the\nbaseline's (lower: better)",
    V.AGREES: "Spearman |map|,\none seed vs another",
}


def card_verdicts(folder: Path, quick: bool = False) -> list[V.Verdict]:
    """Every verdict on the trust checks `folder` holds: those made from its value tables, then those other
    trust tests wrote there."""
    values = V.read_values([(0, folder)])
    return V.verdicts(values, quick) + V.other_tables(folder)


def _span(cells: Sequence[V.Verdict]) -> tuple[float, float]:
    xs = [
        x
        for v in cells
        for x in (v.estimate, v.lo, v.hi, v.threshold, v.upper, *v.chances.values())
        if x is not None and not math.isnan(x)
    ]
    lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    if all(-1 <= x <= 1 for x in xs):  # a correlation or a difference of areas: show 0..1 at least
        lo, hi = min(lo, 0.0), max(hi, 1.0 if lo >= -0.05 else 0.0)
    pad = 0.06 * (hi - lo or 1.0)
    return lo - pad, hi + pad


def plot_trust_card(verdicts: Sequence[V.Verdict], title: str) -> Figure:
    """Per method a row, per test a column; each cell: the verdict (its colour and word), the estimate with its
    95% interval, the threshold(s) as dashed lines and the chance levels as markers."""
    from matplotlib.artist import Artist
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from .. import style
    from ..plotting import method_title, plt, tight_with_title

    methods = list(dict.fromkeys(v.method for v in verdicts))
    tests = list(dict.fromkeys(v.test for v in verdicts))
    by = {(v.method, v.test): v for v in verdicts}
    spans = {t: _span([v for v in verdicts if v.test == t]) for t in tests}
    cols = max(1, len(tests))
    ncol = min(5, 1 + 2 * cols)  # legend columns: a card of one or two tests keeps its legend within its width
    title_in = 0.2 if cols > 2 else 0.4
    legend_in = 0.12 + 0.2 * math.ceil(11 / ncol)  # at most 4 verdicts, 2 line kinds and 5 chance markers
    fig, axes = plt.subplots(
        len(methods),
        cols,
        figsize=(1.25 + 2.15 * cols, 1.1 + title_in + legend_in + 0.72 * len(methods)),
        squeeze=False,
        sharex="col",
    )
    markers_used: dict[str, tuple[str, str]] = {}
    for r, m in enumerate(methods):
        for c, t in enumerate(tests):
            ax = axes[r, c]
            ax.set_yticks([])
            ax.set_ylim(0, 1)
            ax.set_xlim(*spans[t])
            ax.tick_params(axis="x", labelsize=style.SMALL)
            v = by.get((m, t))
            if v is None:
                ax.set_facecolor("white")
                ax.text(
                    0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes, fontsize=style.SMALL, color="#666666"
                )
                continue
            ax.set_facecolor(style.VERDICT_COLOURS[v.word] + "55")  # the verdict's colour, light
            for x in (v.threshold, v.upper):
                if not math.isnan(x):
                    ax.axvline(x, color="#333333", linestyle="--", linewidth=0.9)
            for name, x in v.chances.items():
                if t == V.FAITHFUL or math.isnan(x):
                    continue  # the faithfulness estimate is a difference: its baseline is the 0 line
                key = name if name in style.CHANCE_MARKERS else "chance"
                marker, colour = style.CHANCE_MARKERS[key]
                markers_used[key] = (marker, colour)
                ax.plot([x], [CHANCE_Y], marker=marker, color=colour, markersize=6, linestyle="none", clip_on=False)
            if not v.chances and not math.isnan(v.chance):
                marker, colour = style.CHANCE_MARKERS["chance"]
                markers_used["chance"] = (marker, colour)
                ax.plot([v.chance], [CHANCE_Y], marker=marker, color=colour, markersize=6, linestyle="none")
            if not math.isnan(v.estimate):
                if not math.isnan(v.lo):
                    ax.plot([v.lo, v.hi], [ESTIMATE_Y, ESTIMATE_Y], color="#111111", linewidth=2.2, solid_capstyle="butt")
                ax.plot([v.estimate], [ESTIMATE_Y], "o", color="#111111", markersize=4.5)
            word = v.word
            number = f"{v.estimate:.2f} [{v.lo:.2f}, {v.hi:.2f}]" if not math.isnan(v.lo) else f"{v.estimate:.2f}"
            box = dict(facecolor="white", alpha=0.7, edgecolor="none", pad=0.6)
            said = ax.text(
                0.02, 0.96, word, transform=ax.transAxes, ha="left", va="top", fontsize=style.NORMAL, weight="bold", bbox=box
            )
            ax.annotate(
                number,
                xy=(1, 0),
                xycoords=said,
                xytext=(5, 0),
                textcoords="offset points",
                va="bottom",
                fontsize=style.SMALL,
                bbox=box,
            )
            for side in ("top", "right", "left"):
                ax.spines[side].set_visible(False)
        axes[r, 0].set_ylabel(method_title(m), rotation=0, ha="right", va="center", fontsize=style.NORMAL)
    for c, t in enumerate(tests):
        axes[0, c].set_title(t, fontsize=style.NORMAL, weight="bold", pad=24 if t in AXIS_TITLES else 6)
        if t in AXIS_TITLES:
            axes[0, c].text(
                0.5, 1.04, AXIS_TITLES[t], transform=axes[0, c].transAxes, ha="center", va="bottom", fontsize=style.SMALL
            )
    words = {v.word for v in verdicts}
    handles: list[Artist] = [
        Patch(facecolor=style.VERDICT_COLOURS[k] + "55", edgecolor="#999999", label=k)
        for k in style.VERDICT_COLOURS
        if k in words
    ]
    handles += [
        Line2D([], [], color="#111111", marker="o", markersize=4.5, linewidth=2.2, label="estimate, 95% interval"),
        Line2D([], [], color="#333333", linestyle="--", label="threshold(s)"),
    ]
    labels = {"chance": "chance level", "random map": "random map", "Sobel edge map": "Sobel edge map"}
    handles += [
        Line2D([], [], marker=mk, color=col, linestyle="none", markersize=6, label=f"chance: {labels.get(k, k)}")
        for k, (mk, col) in markers_used.items()
    ]
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=style.SMALL)
    sep = ": " if cols > 2 else ":\n"
    fig.suptitle(f"{title}{sep}trust card (docs/trust.md: each test, its measure and its rule)", fontsize=style.LARGE)
    tight_with_title(fig, title_inches=title_in, bottom_inches=0.12 + 0.2 * math.ceil(len(handles) / ncol))
    return fig


@register
class TrustCardTechnique(Technique):
    name = "card"
    summary = "the trust card: each attribution method's verdict on every trust test that ran (run after sanity, faithfulness, agreement)"
    applies_to = "cnn"
    section = "trust"
    compute = staticmethod(V.verdicts)

    def prepare(self, t: Target) -> dict:
        return {}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return list(FILES)

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..plotting import save_figure

        verdicts = card_verdicts(t.folder, V.quick_suite(t.folder))
        if not verdicts:
            raise NetsightError(
                f"--card: {t.folder} holds no values of the trust checks ({V.SANITY_VALUES}, {V.FAITH_VALUES}, "
                f"{V.AGREEMENT_VALUES}); run --sanity, --faithfulness or --agreement first (or in the same command)"
            )
        figure, table = (t.folder / p for p in FILES)
        return [save_figure(plot_trust_card(verdicts, t.title), figure), V.write_table(table, verdicts)]

    def report(self, run, label: str, ran: Ran) -> list[ReportItem]:
        return []  # the study report's "Which pictures to trust" draws the card pooled over seeds (report/trust.py)
