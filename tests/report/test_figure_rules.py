"""Every figure netsight draws follows one visual language (netsight/report/style.py), checked on
the matplotlib Figure itself: readable text, a colour bar or legend on every map, colour scales
that fit the quantity, one colour per cell type and hidden size in every figure, accuracy in %.

Each figure is built from small synthetic inputs (the result dataclasses filled by hand), so the
whole file runs in seconds without training anything. `render_all()` is also what
scripts draw screenshots from."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from matplotlib.text import Text
from matplotlib.ticker import PercentFormatter

from netsight.techniques.activations import ActivationStatistics
from netsight.techniques.evolution import Evolution
from netsight.techniques.filters import FilterBank
from netsight.techniques.invariance import InvarianceCurves
from netsight.techniques.occlusion import OcclusionMaps
from netsight.ops.receptive_field import ReceptiveField
from netsight.ops.stages import Stage
from netsight.ops.topk import TopActivations, TopPatches
from netsight.fileio import write_csv
from netsight import style
from netsight.ops.recurrent import Steps, UnitStats
from netsight import plotting
from netsight.report import figures, study
from netsight.techniques import filters
from netsight.techniques.activations import plot_activation_histograms
from netsight.techniques.attributions import nonlinearity_note, plot_attributions
from netsight.techniques.deconv import plot_deconv
from netsight.techniques.evolution import plot_evolution
from netsight.techniques.faithfulness import plot_faithfulness
from netsight.techniques.card import plot_trust_card
from netsight.techniques.filters import plot_filters, plot_weight_histograms
from netsight.techniques.gates import plot_gates
from netsight.techniques.invariance import plot_invariance
from netsight.techniques.occlusion import plot_occlusion
from netsight.techniques.rows import plot_rows
from netsight.techniques.sanity import plot_sanity_curves, plot_sanity_grid
from netsight.techniques.top9 import plot_top9
from netsight.techniques.trajectories import plot_trajectories
from netsight.techniques.units import plot_units
from netsight.train import curves

CLASSES = tuple(f"class{i}" for i in range(10))


# ------------------------------------------------------------------ synthetic inputs


def curve_rows(n: int = 10, lo: float = 0.1, hi: float = 0.97, seed: int = 0, rate: float = 3.0) -> list[dict]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        a = float(np.clip(lo + (hi - lo) * (1 - np.exp(-i / rate)) + (rng.normal(0, 0.01) if i else 0), 0, 1))
        rows.append(
            {
                "iteration": float(100 * (i + 1)),
                "train_acc": float(min(1, a + rng.normal(0, 0.03))),
                "train_acc_mean": min(1.0, a + 0.01),
                "test_acc": a,
                "train_loss": 2.3 * np.exp(-i / 3) + 0.05,
                "train_loss_mean": 2.2 * np.exp(-i / 3) + 0.05,
                "test_loss": 2.3 * np.exp(-i / 3) + 0.1,
            }
        )
    return rows


class FakeRun:
    """What the study figures read of a run: metrics, summary, info and the tables folder."""

    def __init__(self, folder: Path, model: str, hidden, seed: int):
        gates = {"rnn": 1, "lstm": 4, "gru": 3}.get(model, 1)
        parameters = gates * hidden * (hidden + 29) + 10 * hidden + 10 if hidden else {"lenet5": 3_274_634}.get(model, 2_000_000)
        base = {"rnn": 0.91, "lstm": 0.96, "gru": 0.965, "lenet5": 0.99, "cnn-bn": 0.993}.get(model, 0.9)
        self.summary = {
            "status": "completed",
            "final_test_acc": min(0.999, base + 0.004 * seed + (hidden or 0) / 8000),
            "best_test_acc": 0.95,
            "seconds": 3.0,
            "parameters": parameters,
        }
        self.info = {}
        speed = {"rnn": 3.0, "lstm": 1.8, "gru": 1.4, "lenet5": 1.5, "cnn-bn": 1.0}.get(model, 2.0)
        self._rows = curve_rows(
            8,
            hi=0.9 + (hidden or 100) / 2000 - (0.06 if model == "rnn" else 0),
            seed=seed,
            rate=speed * (1.3 - (hidden or 64) / 256),
        )
        tables = folder / "tables"
        tables.mkdir(parents=True, exist_ok=True)
        self.dir = SimpleNamespace(tables=tables)
        rng = np.random.default_rng(seed)
        power = {"rnn": 3.0, "lstm": 2.0, "gru": 1.6}.get(model, 2.0) * (1.2 - (hidden or 64) / 320)
        write_csv(
            tables / "rows_read.csv",
            ["rows_read", "test_acc"],
            [
                {"rows_read": k + 1, "test_acc": min(1.0, 0.1 + 0.88 * (k / 27) ** power + rng.normal(0, 0.005))}
                for k in range(28)
            ],
        )
        cols = ["step"] + [f"{p}_{q}" for p in ("init", "final") for q in ("median", "q25", "q75")]
        rows = []
        for t in range(28):
            row = {"step": t}
            keep = {"rnn": -0.08, "lstm": 0.0, "gru": 0.01}.get(model, 0.0)
            for p, scale in (("init", 0.82 + keep + (hidden or 64) / 2000), ("final", 0.93 + keep + (hidden or 64) / 4000)):
                med = 1e-3 * scale ** (27 - t)
                row.update({f"{p}_median": med, f"{p}_q25": med * 0.6, f"{p}_q75": med * 1.5})
            rows.append(row)
        write_csv(tables / "gradient_by_step.csv", cols, rows)

    def metrics(self):
        return self._rows


def study_groups(folder: Path) -> list[study.ConfigGroup]:
    groups = []
    for model in ("rnn", "lstm", "gru"):
        for hidden in (32, 64, 128):
            runs = [FakeRun(folder / f"{model}{hidden}s{s}", model, hidden, s) for s in range(2)]
            groups.append(study.ConfigGroup("rnn", model, "mnist", hidden, runs))
    return groups


def cnn_groups(folder: Path) -> list[study.ConfigGroup]:
    return [
        study.ConfigGroup("cnn", model, data, None, [FakeRun(folder / f"{model}{data}s{s}", model, None, s) for s in range(2)])
        for model in ("lenet5", "cnn-bn")
        for data in ("mnist", "cifar10-assignment")
    ]


def filter_bank(rgb: bool = False) -> FilterBank:
    rng = np.random.default_rng(1)
    if rgb:
        w = rng.normal(size=(8, 3, 5, 5))
        shown = (0.5 + 0.5 * w / np.abs(w).max()).transpose(0, 2, 3, 1)
        return FilterBank("conv1", w, shown, "filter", True, 1.0)
    w = rng.normal(size=(6, 4, 3, 3))
    return FilterBank("conv2", w, w / np.abs(w).max(), "shared", False, float(np.abs(w).max()))


def weights() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    return {"conv1": rng.normal(0, 0.1, 800), "conv2": rng.normal(0, 0.05, 3000), "fc1": rng.normal(0, 0.02, 5000)}


def activation_stats() -> ActivationStatistics:
    stages = [
        Stage(layer, stage, f"{stage}{i}") for i, layer in enumerate(("conv1", "conv2"), 1) for stage in ("conv", "relu", "pool")
    ]
    hist = {}
    for s in stages:
        counts = torch.tensor(np.random.default_rng(3).integers(0, 1000, 256), dtype=torch.float64)
        hist[s.label] = (counts, -1.0 if s.stage == "conv" else 0.0, 2.0)
    return ActivationStatistics(stages, {s.label: (4, 8, 8) for s in stages}, histograms=hist)


FIELD = ReceptiveField((6, 6), (2, 2), (-2, -2))


def top_patches(maps: int = 3, k: int = 9) -> TopPatches:
    g = torch.Generator().manual_seed(4)
    top = TopActivations(
        "relu2",
        torch.rand(maps + 2, k, generator=g).sort(1, descending=True).values * 5,
        torch.zeros(maps + 2, k, dtype=torch.long),
        torch.zeros(maps + 2, k, 2, dtype=torch.long),
        FIELD,
    )
    valid = torch.ones(maps, k, 1, 6, 6)
    valid[0, 0, :, :2] = 0  # one field reaches past the image border
    return TopPatches(top, torch.randn(maps, k, 1, 6, 6, generator=g), torch.rand(maps, k, 1, 6, 6, generator=g), valid)


def deconv_inputs():
    g = torch.Generator().manual_seed(5)
    images = torch.rand(2, 1, 12, 12, generator=g)
    rows = []
    for _ in range(2):
        row = []
        for j in range(3):
            valid = torch.ones(1, 6, 6)
            if j == 0:
                valid[:, :2] = 0
            row.append((j + 3, 2.5 - j * 0.3, torch.randn(1, 6, 6, generator=g), valid, (0, 2 * j, 4 + j, 6 + 2 * j)))
        rows.append(row)
    return images, rows


def occlusion_inputs():
    """Two images; class 3 is the most probable class on both maps, among different others."""
    g = torch.Generator().manual_seed(6)
    images = torch.rand(2, 1, 12, 12, generator=g)
    maps = []
    for others in ((3, 1), (3, 7, 8)):
        pred = torch.tensor(others)[torch.randint(0, len(others), (5, 5), generator=g)]
        pred[0, 0] = 3
        prob = 0.55 + 0.1 * torch.rand(5, 5, generator=g)  # a narrow range: a 0-1 scale would show one flat colour
        maps.append(OcclusionMaps(prob, torch.rand(5, 5, generator=g) * 3, pred, "relu2", 4, 0.61, 2.0, 4, 2))
    return images, [3, 3], maps


def invariance_curves() -> InvarianceCurves:
    rng = np.random.default_rng(7)
    c = InvarianceCurves(("relu1", "relu3"))
    for kind, amounts in (("vertical translation (pixels)", np.arange(-4, 5)), ("rotation (degrees)", np.linspace(-90, 90, 7))):
        c.amounts[kind] = amounts.astype(float)
        n = len(amounts)
        c.values[kind] = {
            "first": np.abs(rng.normal(0.5, 0.2, (n, 5))),
            "last": np.abs(rng.normal(0.3, 0.1, (n, 5))),
            "p_true": rng.uniform(0.2, 0.9, (n, 5)),
        }
    return c


def evolution() -> Evolution:
    g = torch.Generator().manual_seed(8)
    return Evolution("relu2", [10, 100, 1000], torch.randn(3, 3, 1, 10, 10, generator=g), torch.rand(3, 3, generator=g))


def attribution_inputs():
    """Three images, every method's signed maps on very different scales, a model with GELUs besides its ReLUs."""
    from netsight.ops.attribution import METHODS

    g = torch.Generator().manual_seed(9)
    maps = {m: torch.randn(3, 12, 12, generator=g) * 10.0 ** (k - 4) for k, m in enumerate(METHODS)}
    maps["gradcam"] = maps["gradcam"].clamp_min(0)
    notes = {m: {"rectified": ["ReLU x3"], "not_rectified": ["GELU x2"]} for m in ("guided_backprop", "deconvnet")}
    return torch.rand(3, 1, 12, 12, generator=g), maps, [3, 1, 3], notes


def sanity_inputs():
    """Three methods' maps of two 10x10 images on a trained model and after 3 cascading depths, and their rows."""
    from netsight.techniques.sanity import SanityRow

    g = torch.Generator().manual_seed(9)
    layers = ["fc2", "fc1", "conv1"]
    methods = ["gradient", "guided_backprop", "gradcam"]
    originals = {m: torch.randn(2, 10, 10, generator=g) for m in methods}
    cascade = {m: [torch.randn(2, 10, 10, generator=g) for _ in layers] for m in methods}
    rows = [
        SanityRow(m, mode, layer, d, metric, v, v - 0.1, v + 0.1, 2)
        for m in methods
        for mode in ("cascading", "independent")
        for d, layer in enumerate(layers, 1)
        for metric, v in (("spearman", 0.9 / d), ("spearman_abs", 0.8 / d), ("ssim", 0.5), ("hog", 0.6))
    ]
    return torch.rand(2, 1, 10, 10, generator=g), originals, cascade, layers, rows


def faithfulness_inputs():
    g = torch.Generator().manual_seed(10)
    names = ["gradient", "integrated_gradients", "random", "sobel"]
    f = torch.linspace(0, 1, 11)
    curves_ = {n: {c: torch.rand(3, 11, generator=g) for c in ("deletion", "insertion")} for n in names}
    auc = {n: {c: torch.trapezoid(v, f, dim=1) for c, v in cs.items()} for n, cs in curves_.items()}
    return f, curves_, auc


def unit_result():
    """A UnitStats result over random steps (8 units, 28 steps, 40 images)."""
    g = torch.Generator().manual_seed(9)
    hidden = torch.randn(40, 28, 8, generator=g).tanh()
    gates = {n: torch.rand(40, 28, 8, generator=g) for n in ("input", "forget", "output")}
    acc = UnitStats("lstm", 8, 10)
    acc.update(Steps(hidden, None, gates), torch.arange(40) % 10, 0, torch.rand(40, 1, 28, 28, generator=g))
    return acc.result()


def recurrent_figures() -> dict:
    g = torch.Generator().manual_seed(10)
    r = unit_result()
    picks = [(1, "most class-selective"), (5, "tracks ink (r = +0.41)")]
    tiles = [torch.randint(0, 256, (9, 28, 28), generator=g, dtype=torch.uint8) for _ in picks]
    tile_labels = [[int(i) % 10 for i in r.top_images[u]] for u, _ in picks]
    per_class = {m: torch.randn(10, 28, generator=g).numpy() for m in ("gradient_x_input", "integrated_gradients", "occlusion")}
    scores = {m: v.mean(0) for m, v in per_class.items()}
    training = [
        {"iteration": i, "gate": gate, "left": 0.1 * j, "right": 0.05 * j}
        for j, i in enumerate((50, 200, 1000))
        for gate in ("input", "forget", "output")
    ]
    path = torch.randn(30, 28, 2, generator=g).cumsum(1)
    labels = torch.arange(30) % 10
    return {
        "rows": plot_rows(per_class, [5] * 10, CLASSES, "lstm", [0.1 + 0.03 * k for k in range(28)], 50),
        "units": plot_units(r, picks, tiles, tile_labels, CLASSES, "lstm", 40),
        "gates": plot_gates(r.left, r.right, "lstm", 40, training, 30),
        "gate_grid": figures.plot_gate_grid(
            [(m, h, r.left, r.right) for m in ("lstm", "gru") for h in (32, 64, 128)], "gate saturation"
        ),
        "row_importance_by_cell": figures.plot_row_importance_by_cell(
            [(m, h, scores) for m in ("rnn", "lstm", "gru") for h in (32, 128)], "rows"
        ),
        "trajectories": plot_trajectories(
            [(f"{m}-128", path, labels, torch.tensor([0.3, 0.2])) for m in ("rnn", "lstm", "gru")], CLASSES, "trajectories"
        ),
    }


def trust_card_inputs() -> list:
    from tests.helpers import agreement_values, faith_values, sanity_values
    from netsight.techniques import _verdicts

    values = _verdicts.Values(sanity_values(level=0.1, permuted=0.4), faith_values(-0.1), agreement_values(0.7))
    return _verdicts.verdicts(values)


def render_all(folder: Path) -> dict:
    """name -> Figure, for every figure function netsight has (synthetic inputs)."""
    groups, cnns = study_groups(folder / "rnn"), cnn_groups(folder / "cnn")
    images, rows = deconv_inputs()
    occ_images, occ_labels, occ_maps = occlusion_inputs()
    rows_a, rows_b = curve_rows(), curve_rows(lo=0.2, hi=0.8, seed=1)
    s_images, s_orig, s_cascade, s_layers, s_rows = sanity_inputs()
    attr_images, attr_maps, attr_targets, attr_notes = attribution_inputs()
    return {
        "curves": curves.plot_curves(rows_a, "lenet5 on mnist"),
        "compare": figures.plot_compare([("lenet5", rows_a), ("cnn-bn", rows_b)]),
        "filters_gray": plot_filters(filter_bank(), "lenet5"),
        "filters_rgb": plot_filters(filter_bank(rgb=True), "lenet5"),
        "weight_histograms": plot_weight_histograms(weights(), "lenet5"),
        "weight_histograms_wide": plot_weight_histograms(  # a deep model's grid: 21 panels, 5 rows (ResNet-18 has 21)
            {f"layer{i}.conv": w for i, w in enumerate([*weights().values()] * 7)}, "resnet18"
        ),
        "activation_histograms": plot_activation_histograms(activation_stats(), "lenet5"),
        "deconv": plot_deconv(images, rows, "relu2", "max", "lenet5", asked="conv2"),
        "top9": plot_top9(top_patches(), "lenet5", asked="conv2"),
        "top9_one": plot_top9(top_patches(1), "lenet5", asked="conv2"),
        "occlusion": plot_occlusion(occ_images, occ_labels, occ_maps, CLASSES, "lenet5", asked="conv2"),
        "evolution": plot_evolution(evolution(), "lenet5", asked="conv2"),
        "invariance": plot_invariance(invariance_curves(), "lenet5"),
        "attributions": plot_attributions(
            attr_images, attr_maps, attr_targets, CLASSES, "lenet5", "true class", attr_notes, "conv2"
        ),
        "curves_by_hidden": study.plot_curves_panels(groups, "hidden", "model", "MNIST"),
        "curves_by_cell": study.plot_curves_panels(groups, "model", "hidden", "MNIST"),
        "cnn_curves": study.plot_curves_panels(cnns, "data", "model", "CNNs"),
        "accuracy_vs_parameters": study.plot_accuracy_vs_parameters(groups + cnns, "MNIST"),
        "rows_read": study.plot_rows_read(groups, "MNIST"),
        "gradient_flow": study.plot_gradient_flow(groups, "MNIST"),
        "sanity_grid": plot_sanity_grid(s_images, s_orig, s_cascade, s_layers, [3, 7], CLASSES, "lenet5"),
        "sanity_curves": plot_sanity_curves(s_rows, s_layers, "lenet5", 2),
        "faithfulness": plot_faithfulness(*faithfulness_inputs(), "lenet5", "true class"),
        "trust_card": plot_trust_card(trust_card_inputs(), "lenet5"),
        **recurrent_figures(),
    }


@pytest.fixture(scope="module")
def rendered(tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setattr(filters, "HISTOGRAM_SAMPLE", 1000)  # conv2's 3,000 weights: every 3rd drawn
    figs = render_all(tmp_path_factory.mktemp("figure-rules"))
    for fig in figs.values():
        fig.canvas.draw()  # ticks, tick labels and layout exist only once drawn
    yield figs
    for fig in figs.values():
        plotting.plt.close(fig)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


FIGURES = [
    "curves",
    "compare",
    "filters_gray",
    "filters_rgb",
    "weight_histograms",
    "weight_histograms_wide",
    "activation_histograms",
    "deconv",
    "top9",
    "top9_one",
    "occlusion",
    "evolution",
    "invariance",
    "attributions",
    "curves_by_hidden",
    "curves_by_cell",
    "cnn_curves",
    "accuracy_vs_parameters",
    "rows_read",
    "gradient_flow",
    "sanity_grid",
    "sanity_curves",
    "faithfulness",
    "trust_card",
    "rows",
    "units",
    "gates",
    "gate_grid",
    "row_importance_by_cell",
    "trajectories",
]


# ------------------------------------------------------------------ rules for every figure


def _texts(fig) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip() and t.figure is not None]


def _all_text(fig) -> str:
    return "\n".join(t.get_text() for t in _texts(fig))


@pytest.mark.parametrize("name", FIGURES)
def test_every_text_is_readable(rendered, name):
    small = [(t.get_text()[:40], t.get_fontsize()) for t in _texts(rendered[name]) if t.get_fontsize() < style.MIN_FONT_PT]
    assert not small, f"{name}: text below {style.MIN_FONT_PT} pt: {small[:8]}"


@pytest.mark.parametrize("name", FIGURES)
def test_titles_are_not_hidden_under_images(rendered, name):
    fig = rendered[name]
    renderer = fig.canvas.get_renderer()
    images = [im.get_window_extent(renderer) for ax in fig.axes for im in ax.get_images()]
    for ax in fig.axes:
        title = ax.title
        if not (title.get_visible() and title.get_text().strip()):
            continue
        box = title.get_window_extent(renderer)
        for extent in images:
            overlap = min(box.x1, extent.x1) - max(box.x0, extent.x0), min(box.y1, extent.y1) - max(box.y0, extent.y0)
            assert not (overlap[0] > 1 and overlap[1] > 1), f"{name}: title {title.get_text()!r} drawn over an image"


@pytest.mark.parametrize("name", FIGURES)
def test_the_figure_title_touches_no_panel_title(rendered, name):
    """The suptitle sits in a band of its own: plain tight_layout once let a 5-column histogram grid's title
    touch the first row's panel titles (ResNet-18's weight histograms)."""
    fig = rendered[name]
    if fig._suptitle is None or not fig._suptitle.get_text().strip():
        return
    renderer = fig.canvas.get_renderer()
    top = fig._suptitle.get_window_extent(renderer)
    for ax in fig.axes:
        if not (ax.title.get_visible() and ax.title.get_text().strip()):
            continue
        box = ax.title.get_window_extent(renderer)
        overlap = min(box.x1, top.x1) - max(box.x0, top.x0), min(box.y1, top.y1) - max(box.y0, top.y0)
        assert not (overlap[0] > 0 and overlap[1] > -2), f"{name}: the title touches the panel title {ax.title.get_text()!r}"


@pytest.mark.parametrize("name", FIGURES)
def test_separate_maps_do_not_touch(rendered, name):
    fig = rendered[name]
    renderer = fig.canvas.get_renderer()
    boxes = [im.get_window_extent(renderer) for ax in fig.axes for im in ax.get_images()]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            gap = max(b.x0 - a.x1, a.x0 - b.x1, b.y0 - a.y1, a.y0 - b.y1)
            assert gap >= 4, f"{name}: two image blocks {gap:.1f} px apart"


def _legend_texts(fig) -> list[str]:
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    return [t.get_text() for lg in legends for t in lg.get_texts()]


@pytest.mark.parametrize("name", FIGURES)
def test_every_map_has_a_colour_bar_or_legend(rendered, name):
    fig = rendered[name]
    images = [im for ax in fig.axes for im in ax.get_images()]
    with_bar = [im for im in images if im.colorbar is not None]
    for im in images:
        kind = style.image_kind(im)
        assert kind in style.IMAGE_KINDS, f"{name}: an image drawn without saying what it shows ({kind!r})"
        if kind == "pixels":
            continue  # the input images themselves
        if kind in ("projection", "classes"):
            assert _legend_texts(fig), f"{name}: a {kind} map without a legend"
            continue
        assert im.colorbar is not None or any(o.norm is im.norm and o.cmap.name == im.cmap.name for o in with_bar), (
            f"{name}: a {kind} map without a colour bar"
        )
        bar = im.colorbar or next(o.colorbar for o in with_bar if o.norm is im.norm)
        assert bar.ax.get_ylabel() or bar.ax.get_xlabel(), f"{name}: colour bar without a label"


@pytest.mark.parametrize("name", FIGURES)
def test_colour_scales_fit_the_quantity(rendered, name):
    for ax in rendered[name].axes:
        for im in ax.get_images():
            kind = style.image_kind(im)
            lo, hi = im.get_clim()
            if kind == "signed":
                assert im.cmap.name == style.DIVERGING and lo == pytest.approx(-hi), f"{name}: signed map not centred on 0"
            if kind == "probability":
                data = np.asarray(im.get_array(), dtype=float)
                assert im.cmap.name != "jet"
                assert (lo, hi) == pytest.approx((data.min(), data.max()), abs=1e-6), (
                    f"{name}: probability scale {lo:.2f}..{hi:.2f}, data {data.min():.2f}..{data.max():.2f}"
                )


@pytest.mark.parametrize("name", FIGURES)
def test_accuracy_axes_are_in_percent(rendered, name):
    for ax in rendered[name].axes:
        for axis, label in ((ax.yaxis, ax.get_ylabel()), (ax.xaxis, ax.get_xlabel())):
            if "accuracy" in label.lower():
                assert isinstance(axis.get_major_formatter(), PercentFormatter), f"{name}: {label!r} not in %"
                shown = [t.get_text() for t in axis.get_ticklabels() if t.get_text()]
                assert shown and all(s.endswith("%") for s in shown), (name, label, shown)


_ORDINAL = re.compile(r"\b(\d+)(st|nd|rd|th)\b")


def _suffix(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


@pytest.mark.parametrize("name", FIGURES)
def test_ordinals_are_english(rendered, name):
    for m in _ORDINAL.finditer(_all_text(rendered[name])):
        assert m.group(2) == _suffix(int(m.group(1))), f"{name}: {m.group(0)!r}"


# ------------------------------------------------------------------ one colour per cell type and hidden size


def _lines(fig) -> list[tuple[str, object]]:
    """(label, colour) of the labelled data lines (an error bar's line is labelled through its container)."""
    lines = [
        (line.get_label(), line.get_color()) for ax in fig.axes for line in ax.get_lines() if not line.get_label().startswith("_")
    ]
    for ax in fig.axes:
        for container in ax.containers:
            label, data_line = container.get_label(), getattr(container, "lines", [None])[0]
            if label and not label.startswith("_") and data_line is not None:
                lines.append((label, data_line.get_color()))
    return lines


def _same(a, b) -> bool:
    from matplotlib.colors import to_rgba

    return np.allclose(to_rgba(a), to_rgba(b))


def test_each_cell_type_has_one_colour_in_every_figure(rendered):
    from matplotlib.colors import to_rgba

    for name in ("curves_by_hidden", "rows_read", "accuracy_vs_parameters", "cnn_curves"):
        lines = _lines(rendered[name])
        assert lines, name
        for label, colour in lines:
            model = re.split(r"[\s(]|-(?=\d)", label)[0]
            assert model in style.MODEL_COLOURS, (name, label)
            assert _same(colour, style.model_colour(model)), (name, label, colour)
    # and no two cell types share a colour
    colours = [to_rgba(style.model_colour(m)) for m in ("rnn", "lstm", "gru", "lenet5", "cnn-bn")]
    assert len(set(colours)) == 5


def test_each_hidden_size_has_one_colour_in_every_figure(rendered):
    for name in ("curves_by_cell", "gradient_flow"):
        lines = _lines(rendered[name])
        assert lines, name
        for label, colour in lines:
            hidden = int(re.search(r"\d+", label).group(0))
            assert _same(colour, style.hidden_colour(hidden)), (name, label)
    # which rows matter: a panel per cell type, so colour says the hidden size there (a CNN's line: its model)
    for label, colour in _lines(rendered["row_importance_by_cell"]):
        if label.startswith("h="):
            assert _same(colour, style.hidden_colour(int(label[2:]))), label
        else:
            assert _same(colour, style.model_colour(label.split()[0])), label
    assert len({style.hidden_colour(h) for h in (8, 16, 32, 64, 128, 256)}) == 6
    assert style.hidden_colour(48) == style.hidden_colour(48)  # a size outside the palette still gets a fixed colour


def test_a_class_keeps_its_colour_whatever_the_number_of_classes():
    assert style.class_colour(3) == style.class_colour(3, 10) == style.class_colour(3, 1000)
    assert len({style.class_colour(c) for c in range(60)}) == 60


def test_model_colours_are_fixed_for_any_name():
    assert style.model_colour("resnet18") == style.model_colour("resnet18")
    assert style.model_colour("LSTM") == style.model_colour("lstm")


# ------------------------------------------------------------------ figure by figure


def test_occlusion_classes_keep_their_colour_across_rows(rendered):
    from matplotlib.colors import to_rgba

    fig = rendered["occlusion"]
    class_maps = [im for ax in fig.axes for im in ax.get_images() if style.image_kind(im) == "classes"]
    assert len(class_maps) == 2
    seen = {}
    for im in class_maps:
        data = np.asarray(im.get_array())
        rgba = im.to_rgba(data)
        for c in np.unique(data):
            colour = tuple(np.round(rgba[data == c][0], 4))
            assert seen.setdefault(int(c), colour) == colour, f"class {c} changes colour between rows"
            assert np.allclose(colour, to_rgba(style.class_colour(int(c))), atol=1e-3)
        legend_classes = {t.get_text() for t in im.axes.get_legend().get_texts()}
        assert legend_classes == {CLASSES[int(c)] for c in np.unique(data)}  # only the classes on this map


def test_occlusion_probability_range_is_printed(rendered):
    fig = rendered["occlusion"]
    probability = [im for ax in fig.axes for im in ax.get_images() if style.image_kind(im) == "probability"]
    assert len(probability) == 2
    for im in probability:
        lo, hi = im.get_clim()
        assert f"{lo:.2f}" in im.colorbar.ax.get_ylabel() and f"{hi:.2f}" in im.colorbar.ax.get_ylabel()


@pytest.mark.parametrize("name", ["deconv", "top9", "top9_one", "occlusion", "evolution"])
def test_titles_name_the_module_ranked_and_the_layer_asked(rendered, name):
    assert "relu2 (after conv2)" in _all_text(rendered[name])


def test_deconv_explains_its_colours(rendered):
    texts = " ".join(_legend_texts(rendered["deconv"]))
    assert "outside the image" in texts and "grey = 0" in texts


def test_invariance_says_what_its_distance_is(rendered):
    assert "||f(x') - f(x)|| / ||f(x)||" in _all_text(rendered["invariance"])


def test_weight_histograms_sample_every_third(rendered):
    assert "every 3rd weight drawn" in _all_text(rendered["weight_histograms"])


def test_attributions_say_what_the_relu_rules_did(rendered):
    text = _all_text(rendered["attributions"])
    assert "rectified: ReLU x3" in text and "(not rectified): GELU x2" in text
    assert "largest |value| of that map" in text
    no_relu = {"deconvnet": {"rectified": [], "not_rectified": ["GELU x18"]}}
    assert nonlinearity_note(no_relu) == (
        "the model calls no ReLU: deconvnet is its plain gradient here (not rectified: GELU x18)"
    )
