"""netsight's one visual language, used by every figure.

- each palette means one thing, and no colour of one palette is (or looks like) a colour of
  another (`palettes`, `colour_distance`): classes take tab10, models dark shades, gates, methods,
  the histograms' stages and the curves' train/test hues and tints of their own;
- one colour per model / cell type (rnn, lstm, gru, lenet5, cnn-bn; any other name gets a fixed
  colour of its own), and one per attribution method (`method_colour`, the baselines random and
  Sobel in grey and black), and one per hidden size (32, 64, 128: light to dark purple; other sizes a
  fixed shade of orange), the same in every figure;
- accuracy is read in percent: `percent_axis` puts % on the tick values and the label;
- text is at least MIN_FONT_PT points (the rcParams below are set once, on import);
- colour scales fit the quantity: `DIVERGING`, centred on 0 with a symmetric range, for signed
  values (`signed_norm`); a scale fitted to the data for probabilities (`fitted_range`, the range
  printed in the colour bar's label); a colour bar or a legend on every map;
- a class always has the same colour (`class_colour`, by class index), and a legend lists only
  the classes present (`class_legend_handles`).

Every image a figure draws says what it shows (`mark`): the test in
tests/report/test_figure_rules.py checks each kind has what it needs to be read.
"""

from __future__ import annotations

import math
import zlib
from typing import Iterable, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import ListedColormap, Normalize  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

MIN_FONT_PT = 8  # nothing smaller anywhere (figures are saved at 120 dpi: 8 pt = 13 px)
SMALL = 8  # tick labels, legends, tile titles
NORMAL = 9  # panel titles, axis labels
LARGE = 10  # figure titles

plt.rcParams.update(
    {
        "font.size": NORMAL,
        "axes.titlesize": NORMAL,
        "axes.labelsize": NORMAL,
        "xtick.labelsize": SMALL,
        "ytick.labelsize": SMALL,
        "legend.fontsize": SMALL,
        "legend.title_fontsize": SMALL,
        "figure.titlesize": LARGE,
    }
)

# ------------------------------------------------------------------ colours of things

# Every palette below means one thing, and no two palettes share a colour (or one too close to tell apart:
# CIE76 distance under MIN_PALETTE_DISTANCE) for different meanings: the classes take tab10's mid-tone
# hues, so the models are dark shades, the gates and methods hues or tints tab10 lacks
# (tests/test_style.py checks every pair of `PALETTES`).

# cell types and models: dark shades, one hue each
MODEL_COLOURS = {
    "rnn": "#67000d",  # dark red
    "lstm": "#08306b",  # navy
    "gru": "#00441b",  # dark green
    "lenet5": "#543005",  # dark brown
    "cnn-bn": "#7a0177",  # plum-magenta
}
_OTHER_MODELS = ["#17becf", "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#843c39", "#7b4173", "#000000"]

# hidden sizes: an ordered quantity, so ordered shades of one hue (purple, used by no model):
# more units, darker
HIDDEN_COLOURS = {32: "#bcbddc", 64: "#807dba", 128: "#54278f"}
# other sizes (a quick suite's 8 and 16, a 256): shades of orange, by the nearest power of two
_OTHER_HIDDEN = ["#fdae6b", "#f16913", "#a63603", "#fd8d3c", "#d94801", "#7f2704"]


# attribution methods (and the two faithfulness baselines): one hue each, the same in every figure
METHOD_COLOURS = {
    "gradient": "#6baed6",  # light blue
    "gradient_x_input": "#00c2a8",  # turquoise
    "guided_backprop": "#fb6a4a",  # salmon
    "integrated_gradients": "#74c476",  # light green
    "smoothgrad": "#bf812d",  # ochre
    "smoothgrad_squared": "#3300ff",  # violet blue
    "vargrad": "#ee00ee",  # magenta
    "gradcam": "#8c2d04",  # rust
    "guided_gradcam": "#d8b365",  # tan
    "deconvnet": "#fa9fb5",  # light pink
    "occlusion": "#6b6ecf",  # periwinkle
    "random": "#b0b0b0",  # light grey: a baseline
    "sobel": "#000000",  # black: a baseline
}


def method_colour(method: str) -> str:
    """The colour of an attribution method (or baseline) in every figure (any other name: a fixed colour of its own)."""
    key = str(method).lower()
    if key in METHOD_COLOURS:
        return METHOD_COLOURS[key]
    return _OTHER_MODELS[zlib.crc32(key.encode()) % len(_OTHER_MODELS)]


# the trust card's verdicts (techniques/card.py): settled yes / no, unsettled, and quick mode's "not judged"
VERDICT_COLOURS = {"yes": "#1a9850", "no": "#d73027", "unsettled": "#fdae61", "not judged": "#d9d9d9"}

# the chance levels and baselines a trust verdict is judged against: (marker, colour); the edge map and the random
# map keep the colours of the faithfulness baselines (METHOD_COLOURS "sobel" and "random")
CHANCE_MARKERS = {
    "input image": ("s", "#8c6d31"),
    "edge map": ("^", "#000000"),
    "Sobel edge map": ("^", "#000000"),
    "two random models": ("X", "#7f7f7f"),
    "random map": ("X", "#7f7f7f"),
    "chance": ("D", "#6a3d9a"),  # any other chance level a verdict table gives
}


def model_colour(model: str) -> str:
    """The colour of a model or cell type in every figure (any name: a fixed colour of its own)."""
    key = str(model).lower()
    if key in MODEL_COLOURS:
        return MODEL_COLOURS[key]
    return _OTHER_MODELS[zlib.crc32(key.encode()) % len(_OTHER_MODELS)]


def hidden_colour(hidden) -> str:
    """The colour of a hidden size in every figure."""
    try:
        h = int(hidden)
    except (TypeError, ValueError):
        return "#7f7f7f"
    if h in HIDDEN_COLOURS:
        return HIDDEN_COLOURS[h]
    return _OTHER_HIDDEN[round(math.log2(max(h, 1))) % len(_OTHER_HIDDEN)]


# gates of the recurrent cells (LSTM input/forget/output, GRU reset/update): one hue each, none a model's
GATE_COLOURS = {"input": "#c99700", "forget": "#c51b7d", "output": "#35978f", "reset": "#fdae6b", "update": "#1a1a6e"}

# the stages of a CNN block in the activation histograms (conv output, after the ReLU, after pooling, after batch norm)
STAGE_COLOURS = {"conv": "#01665e", "relu": "#f0027f", "pool": "#66a61e", "bn": "#9e0142"}
# train and test in a run's curves
SPLIT_COLOURS = {"train": "#3d3d3d", "test": "#e08214"}
MIN_PALETTE_DISTANCE = 15.0  # CIE76 (Lab) distance: two colours of different palettes at least this far apart


def gate_colour(gate: str) -> str:
    return GATE_COLOURS.get(gate, "#7f7f7f")


def hidden_linestyle(hidden) -> str:
    """Where colour already says the cell type: hidden sizes as line styles (32 dotted, 64 dashed,
    128 solid; others dash-dot)."""
    return {32: ":", 64: "--", 128: "-"}.get(hidden, "-.")


def colour_of(key: str, value) -> str:
    """The colour for a value of a ConfigGroup attribute: models by model, hidden sizes by size."""
    if key == "hidden":
        return hidden_colour(value)
    if key == "model":
        return model_colour(value)
    return f"C{zlib.crc32(str(value).encode()) % 10}"


def _listed_colours(name: str) -> list:
    """The colours of one of matplotlib's listed (qualitative) colour maps."""
    cmap = plt.get_cmap(name)
    colours = cmap.colors if isinstance(cmap, ListedColormap) else None
    if not isinstance(colours, (list, tuple)):
        raise TypeError(f"colour map {name!r} is not a listed colour map")
    return list(colours)


def _class_palette() -> list:
    """60 colours: tab10 first (classes 0-9), then tab20's light shades, tab20b, tab20c."""
    tab20 = _listed_colours("tab20")
    return _listed_colours("tab10") + tab20[1::2] + _listed_colours("tab20b") + _listed_colours("tab20c")


CLASS_PALETTE = _class_palette()
REPORT_CLASSES = 10  # the report's data sets (MNIST, CIFAR-10) have 10 classes: classes 0-9 take tab10


def palettes() -> dict[str, dict[str, str]]:
    """Every palette the report's figures use, by meaning: name -> {thing: colour}."""
    from matplotlib.colors import to_hex

    return {
        "class": {f"class {c}": to_hex(CLASS_PALETTE[c]) for c in range(REPORT_CLASSES)},
        "model": dict(MODEL_COLOURS),
        "hidden": {f"h={h}": c for h, c in HIDDEN_COLOURS.items()},
        "method": dict(METHOD_COLOURS),
        "gate": dict(GATE_COLOURS),
        "stage": dict(STAGE_COLOURS),
        "split": dict(SPLIT_COLOURS),
    }


def lab(colour) -> tuple[float, float, float]:
    """A colour in CIE L*a*b* (D65): distances there follow what the eye tells apart."""
    from matplotlib.colors import to_rgb

    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in to_rgb(colour)]
    m = ((0.4124, 0.3576, 0.1805), (0.2126, 0.7152, 0.0722), (0.0193, 0.1192, 0.9505))
    x, y, z = (sum(m[i][j] * lin[j] for j in range(3)) for i in range(3))

    def f(t: float) -> float:
        return t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116

    fx, fy, fz = f(x / 0.95047), f(y), f(z / 1.08883)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def colour_distance(a, b) -> float:
    """CIE76 distance between two colours (about 2.3: just noticeable side by side)."""
    return math.dist(lab(a), lab(b))


def class_colour(index: int, num_classes: Optional[int] = None):
    """The colour of class `index`, the same in every row and figure whatever the number of
    classes (tab10 for classes 0-9; beyond 60 classes, colours repeat by class index).
    `num_classes` is accepted for symmetry with class_cmap and does not change the colour."""
    return CLASS_PALETTE[int(index) % len(CLASS_PALETTE)]


def class_cmap(num_classes: int) -> tuple[ListedColormap, Normalize]:
    """A colour map and norm that paint class index c in class_colour(c) (imshow of class indices)."""
    n = max(int(num_classes), 1)
    return ListedColormap([class_colour(c) for c in range(n)], name="netsight-classes"), Normalize(-0.5, n - 0.5)


def class_legend_handles(present: Iterable[int], classes: tuple[str, ...]) -> list[Patch]:
    """One legend entry per class present (in class order), in the class's colour; a long name
    (ImageNet's 'German shepherd, German shepherd dog, ...') is cut at its first comma."""

    def short(name: str) -> str:
        name = name.split(",")[0]
        return name if len(name) <= 28 else name[:27] + "…"

    return [Patch(facecolor=class_colour(c), edgecolor="none", label=short(classes[c])) for c in sorted(set(present))]


# ------------------------------------------------------------------ colour scales

DIVERGING = "RdBu_r"  # signed values: blue negative, white 0, red positive
SEQUENTIAL = "viridis"  # magnitudes (activations)
PROBABILITY = "magma"  # probabilities, on a range fitted to the data


def signed_norm(limit: float) -> Normalize:
    """A symmetric range around 0 (one Normalize can be shared by many images and one colour bar)."""
    limit = float(limit) if limit and limit > 0 else 1.0
    return Normalize(-limit, limit)


def fitted_range(values) -> tuple[float, float]:
    """(lo, hi) of the data; a flat map gets a small range around its one value."""
    import numpy as np

    a = np.asarray(values, dtype=float)
    lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
    if hi - lo < 1e-6:
        lo, hi = lo - 5e-3, hi + 5e-3
    return lo, hi


# ------------------------------------------------------------------ what an image shows

# pixels: the input itself; signed: a diverging map centred on 0; magnitude: a sequential map;
# probability: fitted to the data; classes: a categorical map with a legend; projection: RGB
# deconv projections (grey = 0) explained by a legend
IMAGE_KINDS = ("pixels", "signed", "magnitude", "probability", "classes", "projection")


def mark(image, kind: str):
    """Say what an image shows (checked by the figure-rules test); returns the image."""
    if kind not in IMAGE_KINDS:
        raise ValueError(f"image kind {kind!r}: expected one of {IMAGE_KINDS}")
    image.set_gid(f"netsight:{kind}")
    return image


def image_kind(image) -> Optional[str]:
    gid = image.get_gid() or ""
    return gid.split(":", 1)[1] if gid.startswith("netsight:") else None


# ------------------------------------------------------------------ axes


def percent_axis(ax, axis: str = "y", fraction: bool = True, decimals: Optional[int] = None) -> None:
    """Tick values in % on an accuracy axis; `fraction`: the data are 0..1 (else already 0..100)."""
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_formatter(PercentFormatter(xmax=1.0 if fraction else 100.0, decimals=decimals))


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 12th, 13th, 21st, ..."""
    n = int(n)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def layer_name(ranked: str, asked: Optional[str] = None) -> str:
    """How a title names the layer: 'relu2 (after conv2)' when the module whose output is ranked is
    not the layer asked for (a convolution followed by its ReLU), else the name itself."""
    return f"{ranked} (after {asked})" if asked and asked != ranked else ranked
