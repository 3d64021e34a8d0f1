"""Turning many run directories into a study: runs grouped by configuration with their
seeds pooled, comparison tables, the assignment report's numbers beside ours, and the
recurrent-network figures. Everything here reads run directories only."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..fileio import read_csv
from ..models import MODELS
from ..train.rundir import Run, open_run
from .. import style
from ..plotting import plt
from .stats import Summary, summarize, verdict

# Test accuracies the assignment report states for MNIST read row by row (single runs, %).
REPORT_RNN_ACCURACY: dict[tuple[str, Optional[int]], float] = {  # (model, hidden): a CNN's hidden is None
    ("rnn", 32): 90.79,
    ("rnn", 64): 94.64,
    ("rnn", 128): 96.87,
    ("lstm", 32): 96.11,
    ("lstm", 64): 97.35,
    ("lstm", 128): 98.35,
    ("gru", 32): 96.72,
    ("gru", 64): 98.10,
    ("gru", 128): 98.59,
}
THRESHOLDS = (0.95, 0.98)


def find_runs(out: str | Path) -> list[tuple[str, Run]]:
    """(group, run) for the run directories under OUT/runs/<group>/ (or OUT itself): those the
    last suite run listed in OUT/suite.json when it exists, so older runs of other configs in the
    same folder do not leak into the study."""
    out = Path(out)
    base = out / "runs" if (out / "runs").is_dir() else out
    configs = sorted(base.glob("**/config.json"))
    if (out / "suite.json").is_file():
        from ..fileio import read_json

        listed = {base / r["dir"] for r in read_json(out / "suite.json").get("runs", [])}
        configs = [c for c in configs if c.parent in listed]
    found = []
    for config in configs:
        run = open_run(config.parent)
        rel = config.parent.relative_to(base).parts
        found.append((rel[0] if len(rel) > 1 else "runs", run))
    return found


@dataclass
class ConfigGroup:
    group: str
    model: str
    data: str
    hidden: Optional[int]
    runs: list[Run]

    @property
    def label(self) -> str:
        name = f"{self.model}-{self.hidden}" if self.hidden else self.model
        return f"{name} ({self.control})" if self.control else name

    @property
    def control(self) -> str:
        """What makes this configuration a control for the trust checks rather than a model of the study: trained on
        "permuted labels" (data randomisation) or on "masked images" (ROAR/KAR); "" for neither."""
        c = getattr(self.runs[0], "config", None) if self.runs else None  # a stand-in run without a config: no control
        if c is None:
            return ""
        return "permuted labels" if c.labels == "permuted" else "masked images" if c.mask is not None else ""

    def metrics(self) -> list[list[dict]]:
        return [r.metrics() for r in self.runs]

    def final(self, key: str = "final_test_acc") -> Summary:
        return summarize([r.summary.get(key) for r in self.runs if r.summary.get("status") == "completed"])

    def seconds(self) -> Summary:
        return summarize([r.summary.get("seconds") for r in self.runs])

    def parameters(self) -> int:
        return int(self.runs[0].summary.get("parameters") or self.runs[0].info.get("parameters") or 0)

    def iterations_to(self, threshold: float) -> tuple[Summary, int]:
        """Iterations until test accuracy first reaches `threshold` (runs that reached it, count)."""
        reached = []
        for rows in self.metrics():
            hit = next((r["iteration"] for r in rows if r["test_acc"] >= threshold), None)
            if hit is not None:
                reached.append(hit)
        return summarize(reached), len(reached)

    def statuses(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for r in self.runs:
            counts[r.summary.get("status", "unknown")] += 1
        return dict(counts)


def group_configs(runs: list[tuple[str, Run]]) -> list[ConfigGroup]:
    """Pool the seeds of otherwise identical configs; ordered by group and model as they first
    appear, then by hidden size as a number (32, 64, 128 — never 128, 32, 64)."""
    buckets: dict[tuple, ConfigGroup] = {}
    for group, run in runs:
        c = run.config
        hidden = c.hidden if MODELS[c.model].family == "rnn" else None
        identity = (group, {**c.to_dict(), "seed": None, "snapshots": None}.__repr__())
        if identity not in buckets:
            buckets[identity] = ConfigGroup(group, c.model, c.data, hidden, [])
        buckets[identity].runs.append(run)
    groups = list(dict.fromkeys(g.group for g in buckets.values()))
    models = list(dict.fromkeys(g.model for g in buckets.values()))
    return sorted(buckets.values(), key=lambda g: (groups.index(g.group), models.index(g.model), g.hidden or 0, g.data))


def natural_key(value) -> tuple:
    """Numbers by value, before text: the sort order of panels, legends and table rows."""
    return (0, float(value), "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0.0, str(value))


def mean_curve(groups_metrics: list[list[dict]], key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and std over seeds of one metric, on the iterations all seeds share."""
    common = sorted(set.intersection(*[{r["iteration"] for r in rows} for rows in groups_metrics])) if groups_metrics else []
    values = np.array([[{r["iteration"]: r[key] for r in rows}[i] for i in common] for rows in groups_metrics])
    if not len(common):
        return np.array([]), np.array([]), np.array([])
    return np.array(common), values.mean(0), values.std(0, ddof=1) if len(values) > 1 else np.zeros(len(common))


# ------------------------------------------------------------------ tables

COMPARISON_COLUMNS = [
    "group",
    "model",
    "hidden",
    "data",
    "seeds",
    "final_test_acc_%",
    "ci95_%",
    "best_test_acc_%",
    "parameters",
    "train_seconds",
    "iters_to_95%",
    "iters_to_98%",
    "report_%",
    "verdict",
]
# what people read (the report, comparison.md); the CSV keeps the machine names above
COLUMN_TITLES = {
    "group": "group",
    "model": "model",
    "hidden": "hidden units",
    "data": "data",
    "seeds": "seeds",
    "final_test_acc_%": "final test acc (%)",
    "ci95_%": "95% CI (%)",
    "best_test_acc_%": "best test acc (%)",
    "parameters": "parameters",
    "train_seconds": "train s/run",
    "iters_to_95%": "iterations to 95%",
    "iters_to_98%": "iterations to 98%",
    "report_%": "report (%)",
    "verdict": "verdict",
}


def comparison_rows(configs: list[ConfigGroup]) -> list[dict]:
    rows = []
    for g in configs:
        final = g.final()
        ref = REPORT_RNN_ACCURACY.get((g.model, g.hidden)) if g.data == "mnist" else None
        reach = []
        for t in THRESHOLDS:
            s, n = g.iterations_to(t)
            reach.append(
                "not reached" if n == 0 else f"{s.mean:.0f}" + (f" ({n}/{len(g.runs)} seeds)" if n < len(g.runs) else "")
            )
        rows.append(
            {
                "group": g.group,
                "model": g.model,
                "hidden": g.hidden or "",
                "data": g.data,
                "seeds": len(g.runs),
                "final_test_acc_%": final.pm(),
                "ci95_%": final.ci(),
                "best_test_acc_%": g.final("best_test_acc").pm(),
                "parameters": g.parameters(),
                "train_seconds": f"{g.seconds().mean:.1f}",
                "iters_to_95%": reach[0],
                "iters_to_98%": reach[1],
                "report_%": f"{ref:.2f}" if ref is not None else "",
                "verdict": verdict(final, ref / 100) if ref is not None else "",
                "_final": final,
                "_statuses": g.statuses(),
            }
        )
    return rows


# ------------------------------------------------------------------ figures

_KEY_WORDS = {"hidden": "hidden units", "model": "model", "data": "data"}


def _line_label(key: str, value, runs: int) -> str:
    return f"{'h=' if key == 'hidden' else ''}{value} (n={runs})"


def plot_curves_panels(configs: list[ConfigGroup], panel_key: str, line_key: str, title: str):
    """Test accuracy (mean over seeds, band = 1 std): one panel per `panel_key` value. A line's
    colour is its value's colour in every figure (style.colour_of: a model, a hidden size)."""
    panels = sorted({getattr(g, panel_key) for g in configs}, key=natural_key)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.0), squeeze=False, sharey=True)
    shown = []  # every plotted value, band included: the y range shows all of them
    for ax, value in zip(axes[0], panels, strict=True):
        members = sorted((g for g in configs if getattr(g, panel_key) == value), key=lambda g: natural_key(getattr(g, line_key)))
        for g in members:
            it, mean, std = mean_curve(g.metrics(), "test_acc")
            colour = style.colour_of(line_key, getattr(g, line_key))
            ax.plot(
                it,
                mean,
                color=colour,
                lw=1.8,
                marker="." if len(it) < 30 else None,
                label=_line_label(line_key, getattr(g, line_key), len(g.runs)),
            )
            ax.fill_between(it, mean - std, mean + std, color=colour, alpha=0.2)
            shown.extend(np.concatenate([mean - std, mean + std]).tolist())
        ax.set_title(f"{panel_key} = {value}")
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        word = "cell type" if line_key == "model" and all(g.hidden for g in configs) else _KEY_WORDS.get(line_key, line_key)
        ax.legend(loc="lower right", title=f"{word} (n = seeds)")
    if shown:
        lo, hi = max(0.0, float(np.min(shown))), min(1.0, float(np.max(shown)))
        pad = max(0.01, 0.04 * (hi - lo))
        axes[0, 0].set_ylim(max(0.0, lo - pad), min(1.0, hi + pad) if hi < 0.97 else 1.0)
    for ax in axes[0]:
        style.percent_axis(ax)
    axes[0, 0].set_ylabel("test accuracy (%, whole test set)")
    fig.suptitle(title + " (mean over seeds, band = 1 std)")
    fig.tight_layout()
    return fig


def plot_train_test_bands(configs: list[ConfigGroup], title: str):
    """The overfitting picture: per model (colour), test accuracy (solid) and train accuracy in eval mode on
    the fixed training subset (dashed; the training minibatches' interval mean for runs written before
    netsight measured it), mean over seeds with a 1-std band."""
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.6, 4.4))
    handles = []
    eval_mode = all(rows and not any(np.isnan(r["train_eval_acc"]) for r in rows) for g in configs for rows in g.metrics())
    for g in configs:
        colour = style.model_colour(g.model)
        metrics = g.metrics()
        for key, ls in (("test_acc", "-"), ("train_eval_acc" if eval_mode else "train_acc_mean", "--")):
            it, mean, std = mean_curve(metrics, key)
            ax.plot(it, mean, color=colour, ls=ls, lw=1.8)
            ax.fill_between(it, mean - std, mean + std, color=colour, alpha=0.15)
        handles.append(Line2D([], [], color=colour, lw=2, label=f"{g.model} ({len(g.runs)} seeds)"))
    handles += [
        Line2D([], [], color="k", lw=1.8, label="test (whole test set)"),
        Line2D(
            [], [], color="k", lw=1.8, ls="--", label="train (eval mode, fixed subset)" if eval_mode else "train (minibatches)"
        ),
    ]
    ax.set_xlabel("iteration")
    ax.set_ylabel("accuracy (%)")
    style.percent_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, title="colour = model")
    ax.set_title(title + ": train and test accuracy\n(mean over seeds, band = 1 std)")
    fig.tight_layout()
    return fig


def _place_size_labels(ax, labels: list[tuple[str, float, float]], points: list[tuple[float, float]]) -> None:
    """Each hidden-size label beside its marker, at the first of a few offsets where it covers no marker
    (its own included) and no label placed before it (display pixels; the axes' limits as they stand)."""
    ax.autoscale_view()
    fig = ax.figure
    to_px = ax.transData.transform
    marks = [to_px(p) for p in points]
    scale = fig.dpi / 72
    placed: list[tuple[float, float, float, float]] = []
    for text, x, y in labels:
        cx, cy = to_px((x, y))
        w, h = (len(text) * 5.2 + 2) * scale, 9 * scale  # the label's box at SMALL size, in pixels
        for dx, dy in ((5, -13), (5, 4), (-5 - len(text) * 5.2, 4), (-5 - len(text) * 5.2, -13), (-w / scale / 2, 9)):
            x0, y0 = cx + dx * scale, cy + dy * scale
            box = (x0, y0, x0 + w, y0 + h)
            r = 4 * scale  # a marker's radius: its centre must lie outside the box grown by it
            clear = all(not (box[0] - r <= mx <= box[2] + r and box[1] - r <= my <= box[3] + r) for mx, my in marks)
            if clear and all(box[2] < b[0] or box[0] > b[2] or box[3] < b[1] or box[1] > b[3] for b in placed):
                break
        placed.append(box)
        ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=style.SMALL, va="bottom")


def plot_accuracy_vs_parameters(configs: list[ConfigGroup], title: str):
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    labels: list[tuple[str, float, float]] = []
    points: list[tuple[float, float]] = []
    for model in sorted({g.model for g in configs}):
        members = sorted((g for g in configs if g.model == model), key=lambda g: g.parameters())
        x = [g.parameters() for g in members]
        finals = [g.final() for g in members]
        ax.errorbar(
            x,
            [f.mean * 100 for f in finals],
            yerr=[f.std * 100 for f in finals],
            marker="o",
            capsize=3,
            color=style.model_colour(model),
            label=model,
        )
        labels += [(str(g.hidden), xi, f.mean * 100) for g, xi, f in zip(members, x, finals, strict=True) if g.hidden]
        points += [(xi, f.mean * 100) for xi, f in zip(x, finals, strict=True)]
    ax.set_xscale("log")
    _place_size_labels(ax, labels, points)
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("final test accuracy (%)")
    style.percent_axis(ax, fraction=False)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    ax.set_title(title + ": accuracy against size\n(error bar = 1 std over seeds; numbers = hidden units)")
    fig.tight_layout()
    return fig


def plot_rows_read(configs: list[ConfigGroup], title: str):
    from matplotlib.lines import Line2D

    fig, ax = plt.subplots(figsize=(7.6, 4.6))
    cells: list[str] = []
    sizes: list[int] = []
    for g in configs:
        if not g.hidden:
            continue
        curves = [read_csv(r.dir.tables / "rows_read.csv") for r in g.runs if (r.dir.tables / "rows_read.csv").is_file()]
        if not curves:
            continue
        acc = np.array([[float(row["test_acc"]) for row in c] for c in curves]).mean(0)
        ax.plot(
            np.arange(1, len(acc) + 1), acc, ls=style.hidden_linestyle(g.hidden), color=style.model_colour(g.model), label=g.label
        )
        cells += [g.model] if g.model not in cells else []
        sizes += [g.hidden] if g.hidden not in sizes else []
    ax.set_xlabel("rows read (k)")
    ax.set_ylabel("test accuracy (%) from the state after row k")
    style.percent_axis(ax)
    ax.grid(alpha=0.3)
    # a colour per cell type, a line style per hidden size
    handles = [Line2D([], [], color=style.model_colour(m), lw=2, label=m) for m in cells]
    handles += [Line2D([], [], color="k", ls=style.hidden_linestyle(h), label=f"h={h}") for h in sorted(sizes)]
    if handles:
        ax.legend(handles=handles, loc="upper left", title="colour = cell, line = hidden units")
    ax.set_title(title + ": accuracy after reading only the first k rows")
    fig.tight_layout()
    return fig


def plot_gradient_flow(configs: list[ConfigGroup], title: str):
    from matplotlib.lines import Line2D

    cells = [m for m in ("rnn", "lstm", "gru") if any(g.model == m for g in configs)]
    fig, axes = plt.subplots(1, len(cells), figsize=(4.4 * len(cells), 3.9), squeeze=False, sharey=True)
    sizes: list[int] = []
    for ax, cell in zip(axes[0], cells, strict=True):
        for g in sorted((g for g in configs if g.model == cell), key=lambda g: g.hidden or 0):
            tables = [
                read_csv(r.dir.tables / "gradient_by_step.csv")
                for r in g.runs[:1]
                if (r.dir.tables / "gradient_by_step.csv").is_file()
            ]
            if not tables:
                continue
            sizes += [g.hidden] if g.hidden is not None and g.hidden not in sizes else []  # recurrent: hidden is set
            t = [int(row["step"]) for row in tables[0]]
            for phase, ls in (("init", ":"), ("final", "-")):
                med = [float(row[f"{phase}_median"]) for row in tables[0]]
                lo = [float(row[f"{phase}_q25"]) for row in tables[0]]
                hi = [float(row[f"{phase}_q75"]) for row in tables[0]]
                colour = style.hidden_colour(g.hidden)
                ax.plot(t, med, ls=ls, color=colour, label=f"h={g.hidden} {'at init' if phase == 'init' else 'trained'}")
                ax.fill_between(t, lo, hi, color=colour, alpha=0.12)
        ax.set_yscale("log")
        ax.set_title(cell, color=style.model_colour(cell), fontweight="bold")
        ax.set_xlabel("input row t")
        ax.grid(alpha=0.3, which="both")
    axes[0, 0].set_ylabel("||dLoss/dx_t|| per image\n(median, band = IQR)")
    # one legend for the figure: a colour per hidden size, a line style per phase
    handles = [Line2D([], [], color=style.hidden_colour(h), lw=2, label=f"h={h}") for h in sorted(sizes)]
    handles += [Line2D([], [], color="k", ls=":", label="at initialisation"), Line2D([], [], color="k", label="trained")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    fig.suptitle(title + ": gradient reaching each input row, at initialisation and after training")
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight(), 1, 1))
    return fig


def _display(value) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def write_comparison(out: str | Path, title: str = "recurrent networks on MNIST") -> list[Path]:
    """comparison.csv/.md and the recurrent-network figures for the runs under `out`."""
    from ..fileio import read_json, write_csv, write_text
    from ..plotting import save_figure
    from .tables import markdown_table

    out = Path(out)
    configs = group_configs(find_runs(out))
    rows = comparison_rows(configs)
    recurrent = [g for g in configs if g.hidden]
    meta = read_json(out / "suite.json") if (out / "suite.json").is_file() else {}
    quick = bool(meta.get("quick"))
    cols = [c for c in COMPARISON_COLUMNS if not (quick and c == "verdict")]
    md = (
        "Final test accuracy over the whole test set at the last iteration, mean ± sample std over seeds, with the "
        "95% confidence interval of the mean (Student's t). 'report (%)' is the single-run figure the assignment "
        "report gives; "
        + (
            "QUICK MODE: runs cut short, so no verdicts are given.\n\n"
            if quick
            else "the verdict compares it with our interval (below = the report's figure lies above our interval; "
            "inconclusive = the interval is too wide to tell).\n\n"
        )
        + markdown_table([COLUMN_TITLES[c] for c in cols], [[_display(r[c]) for c in cols] for r in rows])
    )
    written = [write_csv(out / "comparison.csv", cols, rows), write_text(out / "comparison.md", md)]
    if recurrent:
        written += [
            save_figure(plot_curves_panels(recurrent, "hidden", "model", title), out / "curves_by_hidden.png"),
            save_figure(plot_curves_panels(recurrent, "model", "hidden", title), out / "curves_by_cell.png"),
            save_figure(plot_rows_read(recurrent, title), out / "rows_read.png"),
            save_figure(plot_gradient_flow(recurrent, title), out / "gradient_flow.png"),
        ]
    written.append(save_figure(plot_accuracy_vs_parameters(configs, title), out / "accuracy_vs_parameters.png"))
    return written
