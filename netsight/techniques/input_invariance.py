"""Input invariance of the attribution maps: Kindermans, Hooker, Adebayo, Alber, Schütt, Dähne, Erhan & Kim,
"The (Un)reliability of Saliency Methods" (in Explainable AI, LNCS 11700, Springer 2019).

The test: a second model takes every image shifted by a constant, x + c, and computes exactly what the
trained model computes on x, because its first convolution subtracts the shift's contribution again
(`shifted_twin`: the first layer's bias, made exact at the borders of a zero-padded convolution by
subtracting the convolution of the constant image itself). The two models are the same function of the
image's content, so a method whose map changes between (model, x) and (twin, x + c) explains the input's
offset rather than the model: the paper's result is that the gradient and the methods built on it alone
(SmoothGrad, guided backprop, Grad-CAM) are invariant, while gradient x input and integrated gradients from a
black (zero) baseline are not, nor is occlusion with a fixed grey square. The shift defaults to -1, the paper's
MNIST shift of [0, 1] to [-1, 0]. The twin's outputs are checked against the model's on every image (they must
agree to 1e-4 of the largest logit, else netsight refuses the model: its first convolution is not the first
operation on the input).

A map "changed" when its relative L2 change exceeds `TOLERANCE`, 5%: float32 rounding in the compensated
convolution changes an invariant map by about 1e-6, except where it flips a ReLU whose input is within rounding
of zero (measured: SmoothGrad's map on one of 8 images of a cnn-bn run moved by 0.6%), while the methods that are
not invariant move by 100% and more (gradient x input 2.1, integrated gradients 1.9, occlusion 15-24 on LeNet5
and cnn-bn). One counterexample shows a method is not invariant; no change on n images is reported with the
95% Clopper-Pearson upper bound on the fraction of images whose map would change. Writes
figures/input_invariance.png (per method: an image's map on the model, on the twin with the shifted image, and
their difference), tables/input_invariance.csv (method, image, relative_change, spearman_abs, output_change)
and tables/verdicts_input_invariance.csv (the verdict table every trust test writes: test "input invariant")."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import NetsightError
from ..ops.similarity import compare
from ..ops.stages import conv_layers
from .attribution_methods import AttributionMethod, Normalize
from .base import Option, Ran, ReportItem, Technique, register
from .target import Target
from . import _trust

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TOLERANCE = 0.05  # relative L2 change of a map above which it "changed" (float32 rounding: up to ~0.006 measured)
OUTPUT_TOLERANCE = 1e-4  # the twin's largest |logit difference|, relative to the largest |logit|
TEST = "input invariant"
MEASURE = f"fraction of images whose map changed (relative L2 change > {TOLERANCE:g})"
FILES = ["figures/input_invariance.png", "tables/input_invariance.csv", "tables/verdicts_input_invariance.csv"]
COLUMNS = ("method", "image", "relative_change", "spearman_abs", "output_change")
VERDICT_COLUMNS = (
    "method",
    "test",
    "verdict",
    "measure",
    "estimate",
    "lo",
    "hi",
    "chance",
    "threshold",
    "n_images",
    "n_draws",
    "n_seeds",
    "note",
)


class _Compensated(nn.Module):
    """A convolution fed `z + delta` (delta a constant per input channel) that returns what `conv` returns on `z`:
    conv(z + delta) - conv_without_bias(delta everywhere), the second term computed with the same padding, so the
    compensation is exact at the borders too."""

    conv: nn.Conv2d
    delta: torch.Tensor

    def __init__(self, conv: nn.Conv2d, delta: torch.Tensor):
        super().__init__()
        self.conv = conv
        self.register_buffer("delta", delta.detach().clone().view(1, -1, 1, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        constant = self.delta.to(z.dtype).expand(z.shape[0], -1, z.shape[2], z.shape[3])
        return self.conv(z) - self.conv._conv_forward(constant, self.conv.weight, None)


def _set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def shifted_twin(model: nn.Module, shift: float) -> nn.Module:
    """A copy of `model` (a `Normalize`-wrapped model or a bare one taking pixels) that gives on `x + shift` what
    `model` gives on `x`: the first convolution compensates the shift (in its own input's units: shift / std
    behind a `Normalize`). The user's model is not modified."""
    inner = model.model if isinstance(model, Normalize) else model
    convs = conv_layers(inner)
    if not convs:
        raise NetsightError(f"input invariance: {type(inner).__name__} has no convolution to compensate the shift in")
    first = convs[0]
    conv = inner.get_submodule(first)
    if not isinstance(conv, nn.Conv2d):
        raise NetsightError(f"input invariance: the first convolution {first!r} is a {type(conv).__name__}, not a Conv2d")
    channels = conv.in_channels
    std = torch.tensor(model.std if isinstance(model, Normalize) else (1.0,) * channels, dtype=torch.float32)
    if len(std) != channels:
        raise NetsightError(f"input invariance: {len(std)} std values for {channels} input channels of {first!r}")
    twin = copy.deepcopy(inner)
    twin.train(inner.training)
    delta = (float(shift) / std).to(conv.weight.device)
    _set_module(twin, first, _Compensated(twin.get_submodule(first), delta))  # type: ignore[arg-type]
    return Normalize(twin, model.mean, model.std) if isinstance(model, Normalize) else twin


@dataclass
class InputInvariance:
    images: torch.Tensor  # [N, C, H, W] pixels in [0, 1]
    shift: float
    output_change: float  # the largest |logit difference| between the model on x and the twin on x + shift
    originals: dict[str, torch.Tensor]  # method -> maps on the model [N, H, W]
    shifted: dict[str, torch.Tensor]  # method -> maps on the twin with the shifted images
    relative_change: dict[str, np.ndarray]  # method -> per image ||shifted - original|| / ||original||
    spearman_abs: dict[str, np.ndarray]  # method -> per image Spearman of |map| between the two

    def changed(self, method: str) -> int:
        return int((self.relative_change[method] > TOLERANCE).sum())

    def rows(self, image_indices: Sequence[int]) -> list[tuple]:
        return [
            (m, int(i), float(r), float(s), self.output_change)
            for m in self.originals
            for i, r, s in zip(image_indices, self.relative_change[m], self.spearman_abs[m], strict=True)
        ]


def input_invariance(
    methods: Sequence[AttributionMethod], x: torch.Tensor, targets: Sequence[int], shift: float = -1.0
) -> InputInvariance:
    """Kindermans et al.'s test for every method of `methods` (method objects on one model) on images `x`
    ([N, C, H, W] in [0, 1], on the model's device) for `targets`: each method's maps on (model, x) against its
    maps on (`shifted_twin`, x + `shift`)."""
    if not methods:
        raise NetsightError("input invariance: no attribution method given")
    if not np.isfinite(shift) or shift == 0:
        raise NetsightError(f"shift={shift!r}: expected a non-zero finite number (the constant added to every pixel)")
    model = methods[0].model
    twin = shifted_twin(model, shift)
    moved = x + float(shift)
    was = model.training
    model.eval()
    twin.eval()
    try:
        with torch.no_grad():
            a, b = model(x), twin(moved)
    finally:
        model.train(was)
    output_change = float((a - b).abs().max())
    scale = max(1.0, float(a.abs().max()))
    if output_change > OUTPUT_TOLERANCE * scale:
        raise NetsightError(
            f"input invariance: the compensated model's outputs differ by {output_change:.3g} from the model's "
            f"(largest |logit| {scale:.3g}): its first convolution is not the first operation on the input, so the "
            "shift cannot be compensated there"
        )
    t = list(targets)
    originals, shifted, rel, rho = {}, {}, {}, {}
    for m in methods:
        o = m.attribute(x, t).maps.detach().float().cpu()
        s = m.on(twin).attribute(moved, t).maps.detach().float().cpu()
        norm = o.flatten(1).norm(dim=1).clamp_min(torch.finfo(torch.float32).tiny)
        originals[m.name], shifted[m.name] = o, s
        rel[m.name] = ((s - o).flatten(1).norm(dim=1) / norm).numpy()
        rho[m.name] = np.asarray(compare(o, s, ["spearman_abs"])["spearman_abs"], dtype=float)
    return InputInvariance(x.detach().cpu(), float(shift), output_change, originals, shifted, rel, rho)


def _binomial_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a fraction k / n: the p at which k or more (k or fewer) of n is
    just as likely as half the missing level, found by bisection on the binomial distribution."""

    def solve(f) -> float:  # f increasing in p on [0, 1], f(0) < 0 < f(1)
        lo, hi = 0.0, 1.0
        for _ in range(80):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
        return (lo + hi) / 2

    tail = (1 - level) / 2
    lower = 0.0 if k == 0 else solve(lambda p: (1 - _binomial_cdf(k - 1, n, p)) - tail)  # P(X >= k) = tail
    upper = 1.0 if k == n else solve(lambda p: tail - _binomial_cdf(k, n, p))  # P(X <= k) = tail
    return lower, upper


def verdict_rows(result: InputInvariance) -> list[tuple]:
    """One row per method in the verdict table's columns: "no" when any image's map changed (one counterexample
    decides it), "yes" when none did (the interval's upper end: how large a fraction of images could still change)."""
    out = []
    for m, rel in result.relative_change.items():
        n = int(np.isfinite(rel).sum())
        k = result.changed(m)
        lo, hi = clopper_pearson(k, n)
        if k:
            verdict = "no"
            note = f"the map changed on {k} of {n} images (largest relative change {np.nanmax(rel):.3g})"
        else:
            verdict = "yes"
            note = f"no map changed on {n} images (largest relative change {np.nanmax(rel):.1g}, shift {result.shift:g})"
        out.append((m, TEST, verdict, MEASURE, k / n, lo, hi, "", TOLERANCE, n, "", 1, note))
    return out


def sentence(method_title: str, verdict: str, hi: float, note: str) -> str:
    """The report's line for one method's verdict row (`hi`: the interval's upper end)."""
    name = method_title[:1].upper() + method_title[1:]
    if verdict == "no":
        return f"{name}: not input invariant: {note}."
    return f"{name}: input invariant on these images: {note}; the fraction of images whose map could still change is at most {hi:.2f} (95%)."


def plot_input_invariance(result: InputInvariance, targets: Sequence[int], classes: tuple[str, ...], title: str) -> Figure:
    """Per method a row: the first image's map on the model, on the twin with the shifted image, and their
    difference, all divided by the largest |value| of the model's map and drawn on one diverging scale."""
    from .. import style
    from ..plotting import method_title, pixel_image, plt

    methods = list(result.originals)
    fig = plt.figure(figsize=(7.6, 1.45 * len(methods) + 1.5))
    grid = fig.add_gridspec(len(methods), 5, width_ratios=[1, 1, 1, 1, 0.07], wspace=0.15, hspace=0.25)
    norm = style.signed_norm(1.0)
    im = None
    name = classes[targets[0]] if 0 <= targets[0] < len(classes) else str(targets[0])
    for r, m in enumerate(methods):
        o, s = result.originals[m][0], result.shifted[m][0]
        scale = float(o.abs().max()) or 1.0
        axes = [fig.add_subplot(grid[r, j]) for j in range(4)]
        style.mark(axes[0].imshow(pixel_image(result.images[0]), cmap="gray", vmin=0, vmax=1), "pixels")
        for ax, a in zip(axes[1:], (o, s, s - o), strict=True):
            im = style.mark(ax.imshow((a / scale).numpy(), cmap=style.DIVERGING, norm=norm), "signed")
        for ax in axes:
            ax.set_xticks([])
            ax.set_yticks([])
        changed = result.changed(m)
        n = len(result.relative_change[m])
        verdict = "invariant" if not changed else f"changed on {changed} of {n}"
        axes[0].set_ylabel(f"{method_title(m)}\n{verdict}", fontsize=style.SMALL)
        if r == 0:
            for ax, t in zip(
                axes,
                (f"input ({name})", "map: model, x", f"map: twin, x {result.shift:+g}".replace("-", "\u2212"), "difference"),
                strict=True,
            ):
                ax.set_title(t, fontsize=style.SMALL)
    assert im is not None
    bar = fig.colorbar(im, cax=fig.add_subplot(grid[:, -1]))
    bar.set_label("value / largest |value| of the model's map")
    fig.suptitle(
        f"{title}: input invariance (Kindermans et al. 2019)\nthe twin takes every pixel shifted by {result.shift:+g} and "
        "computes the same outputs:\na method whose map changes explains the offset, not the model"
    )
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=1.25 / w, right=1 - 0.8 / w, top=1 - 1.0 / h, bottom=0.15 / h)
    return fig


@register
class InputInvarianceTechnique(Technique):
    name = "input_invariance"
    summary = (
        "input invariance of the attribution maps (Kindermans et al. 2019): the same model fed images shifted by a "
        "constant, compensated in its first layer"
    )
    applies_to = "cnn"
    options = (
        *_trust.options(8),
        Option(
            "input_shift",
            "float",
            -1.0,
            "input invariance: the constant added to every pixel (-1: the paper's shift of [0, 1] to [-1, 0])",
            lo=-100.0,
            hi=100.0,
        ),
    )
    section = "trust"
    compute = staticmethod(input_invariance)

    def prepare(self, t: Target, layer, count, target, methods, ig_steps, samples, input_shift: float) -> dict:
        o = _trust.prepare(t, layer, count, target, methods, ig_steps, samples)
        if input_shift == 0 or not np.isfinite(input_shift):
            raise NetsightError(f"--input-shift {input_shift}: expected a non-zero number (the constant added to every pixel)")
        shifted_twin(_trust.method_objects(t, o)[0].model, input_shift)  # a model it cannot compensate fails before any write
        return {**o, "input_shift": float(input_shift)}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return list(FILES)

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..fileio import write_csv
        from ..plotting import save_figure

        idx, x, targets, _ = _trust.images_and_targets(t, o)
        result = input_invariance(_trust.method_objects(t, o), x, targets, o["input_shift"])
        figure, table, verdicts = (t.folder / p for p in FILES)
        return [
            save_figure(plot_input_invariance(result, targets, t.classes, t.title), figure),
            write_csv(table, COLUMNS, result.rows([int(i) for i in idx])),
            write_csv(verdicts, VERDICT_COLUMNS, verdict_rows(result)),
        ]

    def report(self, run, label: str, ran: Ran) -> list[ReportItem]:
        from ..fileio import read_csv
        from ..plotting import method_title
        from ._verdicts import quick_suite

        figure, _, verdicts = ran.files
        items = [
            ReportItem(
                "figure",
                f"{label}: input invariance (Kindermans et al. 2019): each method's map of one image on the model and on "
                f"a twin that takes the image shifted by {ran.options['input_shift']:+g} and computes the same outputs.",
                figure,
            )
        ]
        if quick_suite(Path(run.path)):
            items.append(ReportItem("p", "Quick mode: no verdicts (too few images to say anything of a method)."))
        elif verdicts.is_file():
            for r in read_csv(verdicts):
                items.append(ReportItem("p", sentence(method_title(r["method"]), r["verdict"], float(r["hi"]), r["note"])))
        return items
