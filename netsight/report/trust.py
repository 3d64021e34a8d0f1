"""The study report's section "Which pictures to trust": for each CNN of the suite whose first seed ran
the sanity checks (Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018) and the faithfulness
metrics (Petsiuk et al., "RISE", BMVC 2018), their figures, the areas under the deletion and insertion
curves beside the random and Sobel baselines, seed agreement over the configuration's seeds, the
permuted-label comparison where the suite trained one, and one plain sentence per method generated
from those numbers (the thresholds are `PASSES_BELOW` and `FAILS_ABOVE`).

Everything is read from the runs' tables (sanity.csv, faithfulness.csv, seed_agreement.csv); nothing is
computed here."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

from ..fileio import read_csv
from ..plotting import method_title

# The verdict on a method's cascading randomisation: the Spearman rank correlation of |map| between the
# trained model's maps and those with every layer re-initialised (Adebayo et al.'s "rank correlation (abs)").
PASSES_BELOW = 0.3  # the whole 95% interval below: the maps depend on the learned weights
FAILS_ABOVE = 0.5  # the whole interval above: the maps mostly redraw the image, whatever the weights
VERDICT_METRIC = "spearman_abs"


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


def full_depth(sanity: list[dict], method: str, metric: str = VERDICT_METRIC) -> Optional[dict]:
    """The cascading row of `method` with every layer randomised (the deepest depth)."""
    rows = [r for r in sanity if r["method"] == method and r["mode"] == "cascading" and r["metric"] == metric]
    return max(rows, key=lambda r: int(r["depth"])) if rows else None


def sentence(method: str, sanity: list[dict], faith: list[dict], agreement: list[dict], permuted: list[dict]) -> Optional[str]:
    """One plain sentence on `method` from the measured numbers (None without a sanity row)."""
    row = full_depth(sanity, method)
    if row is None:
        return None
    mean, lo, hi, n = _num(row["mean"]), _num(row["lo"]), _num(row["hi"]), int(row["n"] or 0)
    ci = _ci(mean, lo, hi, n)
    if not math.isnan(hi) and hi < PASSES_BELOW:
        what = f"after every layer is randomised its maps correlate only {ci} with the trained model's: they depend on what the model learned"
    elif not math.isnan(lo) and lo > FAILS_ABOVE:
        what = f"after every layer is randomised its maps still correlate {ci} with the trained model's: it mostly redraws the image, whatever the weights"
    else:
        what = f"after every layer is randomised its maps correlate {ci} with the trained model's: between the two thresholds, part image, part model"
    parts = [what]
    f = {(r["method"], r["curve"]): r for r in faith}
    if (method, "deletion") in f and ("random", "deletion") in f:
        own, rnd, sob = f[(method, "deletion")], f[("random", "deletion")], f.get(("sobel", "deletion"))

        def below(a: dict, b: Optional[dict]) -> bool:  # a's interval entirely below b's
            return b is not None and _num(a["auc_hi"]) < _num(b["auc_lo"])

        beaten = [name for name, b in (("the random map", rnd), ("the Sobel edge map", sob)) if below(own, b)]
        area = _ci(_num(own["auc_mean"]), _num(own["auc_lo"]), _num(own["auc_hi"]), int(own["n"] or 0))
        parts.append(
            f"removing its most important pixels first, p(class) falls with an area of {area}, "
            + (f"clearly below {' and '.join(beaten)}" if beaten else "not clearly below either baseline")
        )
    a = next((r for r in agreement if r["method"] == method and r["metric"] == "spearman"), None)
    if a is not None:
        parts.append(
            f"two seeds' maps of the same image correlate {_ci(_num(a['mean']), _num(a['lo']), _num(a['hi']), int(a['n'] or 0))}"
        )
    p = next((r for r in permuted if r["method"] == method and r["metric"] == VERDICT_METRIC), None)
    if p is not None:
        parts.append(
            f"a model trained on permuted labels gives maps correlating {_ci(_num(p['mean']), _num(p['lo']), _num(p['hi']), int(p['n'] or 0))}"
        )
    return f"{method_title(method)}: " + "; ".join(parts) + "."


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
    by: dict[str, dict] = {}
    for r in agreement:
        by.setdefault(r["method"], {"seeds": r["seeds"]})[r["metric"]] = _ci(
            _num(r["mean"]), _num(r["lo"]), _num(r["hi"]), int(r["n"] or 0)
        )
    return ["method", "seeds", "Spearman", "Spearman of |map|"], [
        [method_title(m), c["seeds"], c.get("spearman", ""), c.get("spearman_abs", "")] for m, c in by.items()
    ]


def permuted_table(permuted: list[dict]) -> tuple[list[str], list[list]]:
    by: dict[str, dict] = {}
    for r in permuted:
        by.setdefault(r["method"], {})[r["metric"]] = _ci(_num(r["mean"]), _num(r["lo"]), _num(r["hi"]), int(r["n"] or 0))
    metrics = ["spearman", "spearman_abs", "ssim", "hog"]
    return ["method", "Spearman", "Spearman of |map|", "SSIM", "HOG"], [
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


def trust_section(doc, configs) -> None:
    """The section, into `doc` (report.html's Doc): each CNN whose first seed's record says the sanity checks ran."""
    from ..techniques.inspection import ran

    doc.h(2, "Which pictures to trust")
    cnn = [g for g in configs if g.hidden is None and "sanity" in ran(g.runs[0].path)]
    if not cnn:
        doc.p('No run of this suite asked for the sanity checks (add "sanity" and "faithfulness" to a CNN group\'s analyses).')
        return
    doc.p(
        'The pictures of the sections above are explanations, and explanations can mislead. Adebayo et al. ("Sanity '
        'Checks for Saliency Maps", NeurIPS 2018) showed that some methods (guided backprop, guided Grad-CAM, the '
        "deconvnet) draw nearly the same map when the weights they explain are replaced by random ones: they redraw the "
        "image. Here every method is checked on our own trained networks (first seed): cascading randomisation "
        "re-initialises the layers from the logits down (each layer by its own initialisation), independent "
        "randomisation one layer at a time, and the maps are compared with the trained model's by Spearman rank "
        "correlation (signed and of |map|), SSIM and HOG similarity of |map| scaled to 0..1, each a mean over images "
        "with its 95% interval. Faithfulness: pixels are removed (set to 0) or put back on a blurred copy in the order of "
        "each map (Petsiuk et al., BMVC 2018); the area under p(class) is compared with a random map and the Sobel edge "
        "map, which know nothing of the model. Seed agreement: the same test images' maps from the configuration's "
        "independently trained seeds, Spearman averaged over seed pairs per image (interval over images)."
    )
    doc.p(
        f"How the sentences are decided: a method passes when the 95% interval of its Spearman correlation of |map| with "
        f"every layer randomised lies below {PASSES_BELOW}, and mostly redraws the image when it lies above {FAILS_ABOVE}; "
        "a faithfulness area is 'clearly below' a baseline when the two 95% intervals do not overlap."
    )
    for g in cnn:
        run = g.runs[0]
        tables = run.dir.tables
        sanity = _rows(tables / "sanity.csv")
        faith = _rows(tables / "faithfulness.csv")
        agreement = _rows(tables / "seed_agreement.csv")
        permuted = [r for r in sanity if r["mode"] == "permuted labels"]
        doc.h(3, f"{g.model} on {g.data}")
        settings = settings_text(ran(run.path))
        if settings:
            doc.p(settings)
        methods = list(dict.fromkeys(r["method"] for r in sanity))
        for m in methods:
            s = sentence(m, sanity, faith, agreement, permuted)
            if s:
                doc.p(s)
        doc.techniques(run, g.model, "trust")
        if faith:
            header, rows = faith_table(faith)
            doc.table(header, rows, "Areas under the deletion and insertion curves, mean [95% interval] over images.")
        if agreement:
            header, rows = agreement_table(agreement)
            doc.table(
                header,
                rows,
                "Seed agreement: Spearman rank correlation of one image's maps between two independently trained seeds, "
                "averaged over the seed pairs; mean [95% interval] over images.",
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
