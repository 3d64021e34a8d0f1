"""The study report's section "Which pictures to trust": for each CNN configuration of the suite whose runs
ran the trust checks — the sanity checks (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018),
faithfulness (Petsiuk et al., "RISE", BMVC 2018), seed agreement, and any other trust test that wrote a verdict
table (input invariance, Kindermans et al. 2019; ROAR/KAR, Hooker et al. 2019, suite-level) — one line per
method saying, for each test, yes, no or unsettled; then the trust card (the same verdicts with their estimates,
intervals, chance levels and thresholds), a table of every verdict with its note (n, images dropped and why,
what would settle it), and the checks' own figures and tables.

The verdicts pool every seed of the configuration that has the checks' raw values (each run's
tables/sanity_values.csv, faithfulness_values.csv, seed_agreement_values.csv), by the rules of
`techniques/_verdicts.py` (docs/trust.md), and are written to OUT/tables/verdicts.csv (CONTRACTS §2, with a
leading `model` column; the rows of OUT/tables/verdicts_roar.csv included). In quick mode nothing is judged:
every line and card says "not judged" and why. Nothing is computed here but the pooled bootstrap intervals."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence

from ..fileio import read_csv, read_json
from ..plotting import method_title
from ..text import plural
from ..techniques import _verdicts as V

ROAR_TABLE = "tables/verdicts_roar.csv"
TABLE = "tables/verdicts.csv"
QUICK_WHY = (
    "Quick mode: nothing here is judged. A quick suite runs the checks on a handful of images, random draws and seeds "
    '(its quick_options), too few for any interval to settle, so every verdict reads "not judged"; the estimates '
    "and intervals are shown only to check that the checks ran. Run without --quick for the verdicts."
)


def _num(v: str) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _ci(mean: float, lo: float, hi: float, n: int = 2) -> str:
    if math.isnan(mean):
        return "n/a"
    if n < 2 or math.isnan(lo):
        return f"{mean:.2f}"
    return f"{mean:.2f} [{lo:.2f}, {hi:.2f}]"


def _rows(path: Path) -> list[dict]:
    return read_csv(path) if path.is_file() else []


def config_label(model: str, data: str) -> str:
    """The `model` column of the suite-level verdict tables: e.g. 'lenet5 / cifar10-assignment'."""
    return f"{model} / {data}"


def line(method: str, verdicts: Sequence[V.Verdict]) -> str:
    """One line on `method`: each test and its verdict (in quick mode: not judged)."""
    mine = [v for v in verdicts if v.method == method]
    if mine and not any(v.judged for v in mine):
        return f"{method_title(method)}: not judged (quick mode) — " + "; ".join(f"{v.test}: not judged" for v in mine) + "."
    return f"{method_title(method)}: " + "; ".join(f"{v.test}: {v.word}" for v in mine) + "."


def verdict_table(verdicts: Sequence[V.Verdict]) -> tuple[list[str], list[list]]:
    """Every verdict with what it read: the estimate and interval, what it was judged against, the note."""
    rows = []
    for v in verdicts:
        against = [] if math.isnan(v.threshold) else [f"threshold {v.threshold:g}"]
        if not math.isnan(v.upper):
            against = [f"yes below {v.threshold:g}, no above {v.upper:g}"]
        if not math.isnan(v.chance) and v.test != V.FAITHFUL:
            against.append(f"chance {v.chance:.2f}")
        rows.append(
            [
                method_title(v.method),
                v.test,
                v.word,
                _ci(v.estimate, v.lo, v.hi),
                v.measure,
                "; ".join(against),
                v.note,
            ]
        )
    return ["method", "test", "verdict", "estimate [95% interval]", "measure", "judged against", "note"], rows


def faith_table(faith: list[dict]) -> tuple[list[str], list[list]]:
    by: dict[str, dict] = {}
    for r in faith:
        by.setdefault(r["method"], {})[r["curve"]] = _ci(
            _num(r["auc_mean"]), _num(r["auc_lo"]), _num(r["auc_hi"]), int(r["n"] or 0)
        )
    return ["method", "deletion area (lower: better)", "insertion area (higher: better)"], [
        [method_title(m), c.get("deletion", ""), c.get("insertion", "")] for m, c in by.items()
    ]


def agreement_table(agreement: list[dict]) -> tuple[list[str], list[list]]:
    """Seed agreement by the one measure every sentence calls "correlate": Spearman of |map|."""
    rows = [
        [method_title(r["method"]), r["seeds"], _ci(_num(r["mean"]), _num(r["lo"]), _num(r["hi"]), int(r["n"] or 0))]
        for r in agreement
        if r["metric"] == V.METRIC
    ]
    return ["method", "seeds", "Spearman of |map|"], rows


def permuted_table(permuted: list[dict]) -> tuple[list[str], list[list]]:
    by: dict[str, dict] = {}
    for r in permuted:
        by.setdefault(r["method"], {})[r["metric"]] = _ci(_num(r["mean"]), _num(r["lo"]), _num(r["hi"]), int(r["n"] or 0))
    metrics = ["spearman", "spearman_abs", "ssim", "hog"]
    return ["method", "Spearman (signed)", "Spearman of |map|", "SSIM", "HOG"], [
        [method_title(m), *(c.get(k, "") for k in metrics)] for m, c in by.items()
    ]


def _methods(options: dict) -> str:
    methods = options.get("methods") or []
    names = methods.split(",") if isinstance(methods, str) else list(methods)
    return ", ".join(method_title(m) for m in names if m) or "every method"


def settings_text(ran: dict) -> str:
    """The images, methods and steps the checks ran with on one run, from its record (`techniques.inspection.ran`)."""
    parts = []
    if "sanity" in ran:
        s = ran["sanity"].options
        layers = "every layer" if s.get("randomise_layers") is None else f"the top {s['randomise_layers']} layers"
        parts.append(
            f"sanity checks on {s['count']} test images, methods {_methods(s)} (integrated gradients {s['ig_steps']} "
            f"steps, SmoothGrad {s['samples']} noisy copies), {layers} in both randomisation modes"
        )
    if "faithfulness" in ran:
        f = ran["faithfulness"].options
        parts.append(
            f"faithfulness on {f['count']} images, methods {_methods(f)}, in {f['steps']} steps "
            f"({100 / f['steps']:.0f}% of the pixels each)"
        )
    if "agreement" in ran:
        a = ran["agreement"].options
        parts.append(f"seed agreement on {a['count']} images, methods {_methods(a)}")
    return ("Settings these checks ran with: " + "; ".join(parts) + ".") if parts else ""


def suite_folder(configs) -> Optional[Path]:
    """OUT of a suite, from its runs (OUT/runs/<group>/<run>), or None."""
    for g in configs:
        for r in g.runs:
            out = Path(r.path).resolve().parent.parent.parent
            if (out / "suite.json").is_file():
                return out
    return None


def is_quick(out: Optional[Path]) -> bool:
    """Whether the suite in `out` was built with --quick (its suite.json says so)."""
    if out is None or not (out / "suite.json").is_file():
        return False
    return bool(read_json(out / "suite.json").get("quick"))


def configuration_verdicts(g, quick: bool, roar: Sequence[V.Verdict] = ()) -> list[V.Verdict]:
    """The verdicts of one configuration: pooled over its seeds' values, then the other trust tests' tables of
    its first seed, then its ROAR/KAR rows."""
    completed = [r for r in g.runs if r.summary.get("status") == "completed"] or list(g.runs)
    values = V.read_values([(int(r.config.seed), Path(r.path)) for r in completed])
    label = config_label(g.model, g.data)
    found = V.verdicts(values, quick) + V.other_tables(Path(g.runs[0].path))
    found += [v for v in roar if v.model == label]
    if quick:
        for v in found:
            v.judged = False
    return found


def _trust_runs(configs) -> list:
    from ..techniques.inspection import ran

    names = ("sanity", "faithfulness", "agreement", "card")
    return [g for g in configs if g.hidden is None and any(n in ran(g.runs[0].path) for n in names)]


def trust_section(doc, configs, out: Optional[Path] = None, quick: Optional[bool] = None) -> None:
    """The section, into `doc` (report.html's Doc): each CNN configuration whose first seed's record says a trust
    check ran; `out`: the suite's folder (OUT/tables/verdicts.csv and the cards go there; default: found from
    the runs); `quick`: a --quick suite (default: from OUT/suite.json)."""
    from ..fileio import write_csv
    from ..plotting import save_figure
    from ..techniques.card import plot_trust_card
    from ..techniques.inspection import ran

    out = out if out is not None else suite_folder(configs)
    quick = is_quick(out) if quick is None else quick
    doc.h(2, "Which pictures to trust")
    cnn = _trust_runs(configs)
    if not cnn:
        doc.p('No run of this suite asked for the sanity checks (add "sanity" and "faithfulness" to a CNN group\'s analyses).')
        return
    doc.p(
        "The pictures of the sections above are explanations, and explanations can mislead. Each attribution method "
        "is put to these tests (docs/trust.md says each in two sentences, with its paper): it depends on the model "
        "(Adebayo et al. 2018: re-initialise the weights from the logits down; the maps must change), it depends on "
        "the data (the same network trained on permuted labels must give other maps), it is faithful (Petsiuk et al. "
        "2018: deleting the pixels it ranks first must lower p(class) faster than deleting them in a random order or "
        "in the order of an edge detector), and it agrees across seeds (independently trained seeds must draw more "
        'alike maps than two random networks do). "Correlate" is always the Spearman rank correlation of |map|.'
    )
    if quick:
        doc.p(QUICK_WHY)
    doc.h(3, "How a verdict is decided", fold=True)
    doc.p(
        f"Each test reads a 95% percentile-bootstrap interval that resamples training seeds, "
        f"then random draws within a seed, then images (so it covers all three and stays inside the measure's range), "
        f"beside its chance levels: the map against the input image, against its edge map, and two randomly initialised "
        f"networks' maps against each other. Depends on the model: the similarity to the randomised model's maps "
        f"averaged over the whole depth curve, yes when the interval lies below {V.MODEL_BELOW}, no when above "
        f"{V.MODEL_ABOVE}; depends on the data: the same for the permuted-label model; is faithful: the deletion area "
        f"minus each baseline's, image by image, yes when both intervals lie below 0, no when one lies above; agrees "
        f"across seeds: yes when the interval lies above the two-random-networks chance level, no when below. Anything "
        f"else is unsettled, and its note says what would settle it. A test settles only with {V.MIN_IMAGES} images, "
        f"{V.MIN_DRAWS} random draws (depends on the model), {V.MIN_SEEDS_DATA} seeds (depends on the data) and "
        f"{V.MIN_SEEDS_AGREE} seeds (agrees across seeds) at least. On images with a constant background (MNIST's "
        "black) the similarities are judged on the foreground: a background of zeros in both maps makes any two maps "
        "correlate."
    )
    roar = [V.from_row(r) for r in _rows(out / ROAR_TABLE)] if out is not None else []
    table_rows: list[V.Verdict] = []
    models: list[str] = []
    for g in cnn:
        run = g.runs[0]
        tables = run.dir.tables
        verdicts = configuration_verdicts(g, quick, roar)
        label = config_label(g.model, g.data)
        doc.h(3, f"{g.model} on {g.data}")
        settings = settings_text(ran(run.path))
        if settings:
            doc.p(settings)
        if not verdicts:
            doc.p(
                "No raw values of the checks in these runs (tables/sanity_values.csv, faithfulness_values.csv, "
                "seed_agreement_values.csv), so no verdict: run the checks again with this version of netsight."
            )
        for m in dict.fromkeys(v.method for v in verdicts):
            doc.p(line(m, verdicts))
        # the card, the tables and the figures: folded, so the report still opens at a few screens
        doc.h(3, f"{g.model} on {g.data}: the trust card, every verdict and the checks' figures", fold=True)
        if verdicts and out is not None:
            name = f"trust_card_{g.model}_{g.data}.png".replace("/", "_")
            title = f"{g.model} on {g.data}" + (" (quick mode: not judged)" if quick else "")
            path = save_figure(plot_trust_card(verdicts, title), out / "figures" / name)
            with_values = [r for r in g.runs if any((Path(r.path) / f).is_file() for f in (V.SANITY_VALUES, V.FAITH_VALUES))]
            doc.figure(
                path,
                f"{label}: the trust card, pooled over the values of {plural(len(with_values), 'seed')} (seed agreement: "
                "every pair of the configuration's seeds). Per method a row, per test a "
                "column: the verdict (colour and word), the estimate and its 95% interval, the threshold(s) dashed, the "
                "chance levels as markers.",
            )
        if verdicts:
            header, rows = verdict_table(verdicts)
            doc.table(header, rows, "Every verdict, what it read and what it was judged against (docs/trust.md).")
        table_rows += [v for v in verdicts if v.model == ""]
        models += [label] * len([v for v in verdicts if v.model == ""])
        doc.techniques(run, g.model, "trust")
        faith = _rows(tables / "faithfulness.csv")
        agreement = _rows(tables / "seed_agreement.csv")
        permuted = [r for r in _rows(tables / "sanity.csv") if r["mode"] == "permuted labels"]
        if faith:
            header, rows = faith_table(faith)
            doc.table(header, rows, "Areas under the deletion and insertion curves, mean [95% interval] over images.")
        if agreement:
            header, rows = agreement_table(agreement)
            doc.table(
                header,
                rows,
                "Seed agreement: Spearman rank correlation of |map| of one image's maps between two independently trained "
                "seeds, averaged over the seed pairs; mean [95% interval] over images.",
            )
        if permuted:
            header, rows = permuted_table(permuted)
            doc.table(
                header,
                rows,
                "Data randomisation: maps of the model trained on the true labels against the same configuration trained "
                "on permuted labels; mean [95% interval] over images. High values: the map does not reflect what was learned.",
            )
        else:
            doc.p(
                "Data randomisation: this suite has no run of this configuration trained on permuted labels "
                '(a group with labels = "permuted" adds one; see docs/inspect.md).'
            )
    if out is not None:
        for v in roar:
            if v.model:
                v.judged = v.judged and not quick
        write_csv(
            out / TABLE,
            ("model", *V.COLUMNS),
            [{"model": k, **_quick_row(v)} for k, v in zip(models, table_rows, strict=True)]
            + [{"model": v.model, **_quick_row(v)} for v in roar],
        )


def _quick_row(v: V.Verdict) -> dict:
    """The table row; in quick mode the verdict column reads unsettled and the note starts with why."""
    row = v.row()
    if not v.judged:
        row["verdict"] = "unsettled"
        if not row["note"].startswith(V.QUICK_NOTE):
            row["note"] = V.QUICK_NOTE + "; " + row["note"]
    return row
