"""The sanity checks of Adebayo et al., "Sanity Checks for Saliency Maps" (NeurIPS 2018) for every
attribution method: cascading and independent randomisation of the weights (analysis/sanity.py,
analysis/randomise.py), and, for a suite run whose configuration was also trained on permuted labels,
the data randomisation test.

Writes figures/sanity_grid.png (the paper's Fig. 2: rows of images per method; columns: the input, the
trained model's map, the maps as the layers are re-initialised from the logits down),
figures/sanity_curves.png (similarity to the trained model's maps per depth, 95% bands over images)
and tables/sanity.csv (method, mode, layer, depth, metric, mean, lo, hi, n)."""

from __future__ import annotations

from pathlib import Path

from ..sanity import COLUMNS, compare_models, default_attribute_fn, sanity_checks
from ..target import Target
from ..randomise import check_layers, randomisable_layers
from ..technique import Option, Ran, ReportItem, Technique, register
from . import _trust

FILES = ["figures/sanity_grid.png", "figures/sanity_curves.png", "tables/sanity.csv"]
PERMUTED = "permuted labels"


def _prepare(t: Target, layer, count, target, methods, ig_steps, samples, randomise_layers) -> dict:
    o = _trust.prepare(t, layer, count, target, methods, ig_steps, samples)
    check_layers(t.model, randomisable_layers(t.model)[: randomise_layers or None])  # before any write
    return {**o, "randomise_layers": randomise_layers}


def _outputs(t: Target, o: dict) -> list[str]:
    return list(FILES)


def _write(t: Target, o: dict) -> list[Path]:
    from ...fileio import write_csv
    from ...report.figures import save_figure
    from ...report.figures_trust import plot_sanity_curves, plot_sanity_grid

    idx, x, targets, kind = _trust.images_and_targets(t, o)
    fn = default_attribute_fn(t.mean, t.std, o["layer"], o["ig_steps"], o["samples"])

    def say(text: str) -> None:
        if t.progress:
            print(f"sanity: {text}", flush=True)

    result = sanity_checks(t.model, x, o["methods"], targets, fn, progress=say, max_layers=o["randomise_layers"])
    rows = list(result.rows)
    for twin in _trust.siblings(t, labels="permuted", same_group=False)[:1]:
        from ...train.rundir import open_run

        other = open_run(twin).model(t.device)
        rows += compare_models(t.model, other, x, o["methods"], targets, fn, mode=PERMUTED)
        say(f"compared with {twin.name}, trained on permuted labels")
    grid, curves, table = (t.folder / p for p in FILES)
    written = [
        save_figure(
            plot_sanity_grid(result.images, result.originals, result.cascade, result.layers, targets, t.classes, t.title),
            grid,
        ),
        save_figure(plot_sanity_curves(result.rows, result.layers, t.title, len(idx)), curves),
        write_csv(table, COLUMNS, [r.values() for r in rows]),
    ]
    return written


def _report(run, label: str, ran: Ran) -> list[ReportItem]:
    grid, curves, _ = ran.files
    return [
        ReportItem(
            "figure",
            f"{label}: cascading randomisation, the paper's Fig. 2. Each method's map of the same images on the trained "
            "model, then after re-initialising the layers from the logits down.",
            grid,
        ),
        ReportItem(
            "figure",
            f"{label}: similarity of each method's maps on the randomised model to its maps on the trained model, "
            "per layer (bands: 95% interval over images).",
            curves,
        ),
    ]


TECHNIQUE = register(
    Technique(
        name="sanity",
        summary="sanity checks of the attribution maps (Adebayo et al. 2018): cascading and independent weight randomisation",
        applies_to="cnn",
        compute=sanity_checks,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        options=(
            *_trust.options(8),
            Option(
                "randomise_layers",
                "int",
                None,
                "sanity: randomise only the top N layers with parameters (default: all, from the logits down to the first)",
                lo=1,
                hi=100_000,
            ),
        ),
        report=_report,
        section="trust",
    )
)
