"""Faithfulness of each attribution method: the deletion and insertion metrics of Petsiuk, Das and
Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box Models" (BMVC 2018, section 4.1),
beside two baselines every map should beat: a random map (uniform, seeded) and the Sobel edge magnitude
of the image, which knows nothing of the model. Pixels are taken in the map's order, most important first
(the largest value of the signed map, the evidence for the class; `order="absolute"` ranks |map|; ties in
a random order drawn from `seed`), in `steps` equal steps (20: 5% of the pixels per step), every step of
an image in one batch. Deletion sets them to 0 (black, in the [0, 1] pixels the model is handed, as the
paper does): a faithful map makes p(class) fall fast, a low area under the curve. Insertion puts them
back onto a blurred copy (the paper's canvas; a Gaussian of sigma = 1/8 of the image side, 3.5 px on
28 px images): a faithful map makes p(class) rise fast, a high area. The area is the trapezoid rule over
the fraction of pixels, 0..1, per image, reported as the mean over images with its 95% interval (a
percentile bootstrap: inside 0..1). Writes figures/faithfulness.png (the mean curves and the areas),
tables/faithfulness.csv (method, curve, auc_mean, auc_lo, auc_hi, n) and tables/faithfulness_values.csv
(method, curve, image, auc: every image's area, which the verdict "is faithful" pairs with the baselines'
image by image, `_verdicts.py`); the maps are those the attributions technique saved for the same images
and classes where it ran first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Mapping, Optional
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.hooks import evaluating, normalised_input
from ..ops.similarity import summarise
from ..errors import NetsightError
from .target import Target
from .base import Option, Ran, Technique, register
from . import _trust

if TYPE_CHECKING:
    from matplotlib.figure import Figure


CURVES = ("deletion", "insertion")
BASELINES = ("random", "sobel")
COLUMNS = ("method", "curve", "auc_mean", "auc_lo", "auc_hi", "n")
VALUE_COLUMNS = ("method", "curve", "image", "auc")


def random_maps(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """A random attribution: [N, H, W] uniform in [0, 1) from a generator of its own."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def sobel_maps(x: torch.Tensor) -> torch.Tensor:
    """The Sobel edge magnitude of each image (channels averaged first): [N, H, W]."""
    g = x.detach().float().cpu().mean(dim=1, keepdim=True)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]).view(1, 1, 3, 3)
    padded = F.pad(g, (1, 1, 1, 1), mode="replicate")
    gx, gy = F.conv2d(padded, kx), F.conv2d(padded, kx.transpose(2, 3))
    return torch.sqrt(gx**2 + gy**2)[:, 0]


def blurred(x: torch.Tensor) -> torch.Tensor:
    """The insertion canvas: a Gaussian blur of sigma = side / 8 (kernel within the image)."""
    from torchvision.transforms.v2 import functional as TF

    side = min(x.shape[-2:])
    sigma = max(side / 8, 0.5)
    k = min(2 * int(3 * sigma) + 1, side - 1 if side % 2 == 0 else side)
    return TF.gaussian_blur(x, [k, k], [sigma, sigma])


def importance_ranks(maps: torch.Tensor, order: str = "signed", seed: int = 0) -> torch.Tensor:
    """[N, H*W]: each pixel's place in the order of removal (0: first); ties in a seeded random order."""
    m = maps.detach().float().cpu().reshape(maps.shape[0], -1)
    if order == "absolute":
        m = m.abs()
    elif order != "signed":
        raise ValueError(f"order {order!r}: expected signed or absolute")
    d = m.shape[1]
    perm = torch.randperm(d, generator=torch.Generator().manual_seed(seed))
    idx = torch.sort(m[:, perm], dim=1, descending=True, stable=True).indices
    pixel_order = perm[idx]  # [N, D]: the pixels, most important first
    ranks = torch.empty_like(pixel_order)
    ranks.scatter_(1, pixel_order, torch.arange(d).expand_as(pixel_order).contiguous())
    return ranks


@dataclass
class FaithfulnessResult:
    fractions: torch.Tensor  # [S + 1]: 0, 1/S, ..., 1
    targets: list[int]
    curves: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # name -> curve -> [N, S + 1] p(class)
    auc: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)  # name -> curve -> [N]

    def rows(self) -> list[tuple]:
        out = []
        for name, by_curve in self.auc.items():
            for curve in CURVES:
                s = summarise(by_curve[curve])
                out.append((name, curve, s.mean, s.lo, s.hi, s.n))
        return out

    def values(self, images: list[int]) -> list[tuple]:
        """(method, curve, image, area) for every image: the values the verdict pairs image by image."""
        return [
            (name, curve, int(i), float(a))
            for name, by_curve in self.auc.items()
            for curve in CURVES
            for i, a in zip(images, by_curve[curve].tolist(), strict=True)
        ]


def _probabilities(model: nn.Module, batch: torch.Tensor, classes: torch.Tensor, batch_size: int) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for start in range(0, len(batch), batch_size):
            p = model(batch[start : start + batch_size]).softmax(dim=1)
            out.append(p.gather(1, classes[start : start + batch_size, None])[:, 0])
    return torch.cat(out).float().cpu()


def curves(
    model: nn.Module,
    x: torch.Tensor,
    maps: torch.Tensor,
    targets: list[int],
    steps: int = 20,
    order: str = "signed",
    seed: int = 0,
    batch_size: int = 256,
    mean=None,
    std=None,
) -> dict[str, torch.Tensor]:
    """{"deletion": [N, steps + 1], "insertion": [N, steps + 1]}: p(target) as the pixels go (come) in
    the order of `maps` ([N, H, W]) on images `x` ([N, C, H, W] in [0, 1], on the model's device)."""
    n, c, h, w = x.shape
    if maps.shape != (n, h, w):
        raise ValueError(f"maps {tuple(maps.shape)} do not match images {tuple(x.shape)}")
    dev = x.device
    ranks = importance_ranks(maps, order, seed).to(dev).view(n, 1, 1, h, w)
    counts = torch.round(torch.linspace(0, 1, steps + 1) * h * w).long().to(dev).view(1, -1, 1, 1, 1)
    canvas = blurred(x)
    out: dict[str, list[torch.Tensor]] = {k: [] for k in CURVES}
    per_chunk = max(1, batch_size // (steps + 1))
    with evaluating(model), normalised_input(model, mean, std):
        for start in range(0, n, per_chunk):
            sl = slice(start, start + per_chunk)
            k = len(x[sl])
            taken = (ranks[sl] < counts).to(x.dtype)  # [k, S + 1, 1, H, W]: 1 where the pixel has gone (come)
            img = x[sl].unsqueeze(1)
            classes = torch.tensor(targets[sl], device=dev).repeat_interleave(steps + 1)
            deleted = (img * (1 - taken)).reshape(-1, c, h, w)
            inserted = (canvas[sl].unsqueeze(1) * (1 - taken) + img * taken).reshape(-1, c, h, w)
            out["deletion"].append(_probabilities(model, deleted, classes, batch_size).view(k, steps + 1))
            out["insertion"].append(_probabilities(model, inserted, classes, batch_size).view(k, steps + 1))
    return {key: torch.cat(v) for key, v in out.items()}


def faithfulness(
    model: nn.Module,
    x: torch.Tensor,
    maps: dict[str, torch.Tensor],
    targets: list[int],
    steps: int = 20,
    order: str = "signed",
    seed: int = 0,
    baselines: bool = True,
    batch_size: int = 256,
    mean=None,
    std=None,
) -> FaithfulnessResult:
    """Deletion and insertion curves and their areas for each map of `maps` (name -> [N, H, W]), and
    (`baselines`) for a random map and the Sobel edge map of the images."""
    if not 1 <= steps <= 10_000:
        raise ValueError(f"steps {steps}: expected 1..10000")
    all_maps = dict(maps)
    if baselines:
        all_maps["random"] = random_maps((x.shape[0], *x.shape[2:]), seed)
        all_maps["sobel"] = sobel_maps(x)
    fractions = torch.linspace(0, 1, steps + 1)
    result = FaithfulnessResult(fractions, list(targets))
    for name, m in all_maps.items():
        cs = curves(model, x, m, targets, steps, order, seed, batch_size, mean, std)
        result.curves[name] = cs
        result.auc[name] = {k: torch.trapezoid(v, fractions, dim=1) for k, v in cs.items()}
    return result


def verdict(result: FaithfulnessResult, name: str) -> Optional[str]:
    """The verdict "is faithful" on `name`, in words, by the rule of `_verdicts.faithful_verdict`: its deletion area
    minus the random map's and minus the Sobel map's, paired per image, with bounded 95% intervals (yes: both below
    0; no: either above 0; else unsettled, and what would settle it). None without baselines."""
    from . import _verdicts

    if "random" not in result.auc or name in BASELINES:
        return None
    images = list(range(len(result.auc[name]["deletion"])))
    rows = [dict(method=m, curve=c, image=i, auc=a) for m, c, i, a in result.values(images)]
    v = _verdicts.faithful_verdict(rows, name)
    if v is None:
        return None
    return f"is faithful: {v.verdict} ({v.measure}: {v.estimate:.2f} [{v.lo:.2f}, {v.hi:.2f}]; {v.note})"


FILES = ["figures/faithfulness.png", "tables/faithfulness.csv", "tables/faithfulness_values.csv"]


def plot_faithfulness(fractions: torch.Tensor, curves: Mapping, auc: Mapping, title: str, target_kind: str) -> Figure:
    """Mean deletion and insertion curves per method and baseline, and their areas with 95% intervals."""
    from matplotlib.lines import Line2D
    import numpy as np
    from .. import style
    from ..plotting import plt, BASELINE_TITLES, method_title, tight_with_title
    from ..ops.similarity import summarise

    names = list(curves)
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.4), gridspec_kw={"width_ratios": [1, 1, 1.25]})
    f = np.asarray(fractions, dtype=float)
    for ax, curve in zip(axes[:2], ("deletion", "insertion"), strict=True):
        for name in names:
            c = np.asarray(curves[name][curve], dtype=float)
            style_ = "--" if name in BASELINE_TITLES else "-"
            ax.plot(f, c.mean(0), style_, color=style.method_colour(name), label=method_title(name), linewidth=1.4)
        ax.set_xlabel(f"fraction of pixels {'removed (set to 0)' if curve == 'deletion' else 'put back on a blurred copy'}")
        ax.set_ylabel(f"p({target_kind}), mean over images")
        ax.set_title(f"{curve} ({'lower area = more faithful' if curve == 'deletion' else 'higher area = more faithful'})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
    ax = axes[2]
    y = np.arange(len(names))
    for k, (curve, offset, hatch) in enumerate((("deletion", -0.2, ""), ("insertion", 0.2, "//"))):
        for i, name in enumerate(names):
            s = summarise(auc[name][curve])
            err = [[s.mean - s.lo], [s.hi - s.mean]] if s.n > 1 else None
            ax.barh(
                y[i] + offset,
                s.mean,
                height=0.38,
                color=style.method_colour(name),
                alpha=0.55 if k == 0 else 0.9,
                hatch=hatch,
                edgecolor="white" if k else "none",
                xerr=err,
                ecolor="#333333",
                capsize=2,
            )
    ax.set_yticks(y)
    ax.set_yticklabels([method_title(n) for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("area under the curve (95% interval over images)")
    ax.set_title("areas under the curves")
    from matplotlib.patches import Patch

    handles = [
        Line2D([], [], color=style.method_colour(n), linestyle="--" if n in BASELINE_TITLES else "-", label=method_title(n))
        for n in names
    ] + [
        Patch(facecolor="#999999", alpha=0.55, label="light bar: deletion area (lower: better)"),
        Patch(facecolor="#999999", hatch="//", edgecolor="white", label="hatched bar: insertion area (higher: better)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=4, frameon=False)
    n_images = len(next(iter(auc.values()))["deletion"])
    fig.suptitle(f"{title}: deletion and insertion (Petsiuk et al. 2018), pixels in the order of each map, {n_images} images")
    tight_with_title(fig, bottom_inches=0.3 + 0.22 * int(np.ceil(len(handles) / 4)))
    return fig


@register
class FaithfulnessTechnique(Technique):
    name = "faithfulness"
    summary = "deletion and insertion curves of the attribution maps (Petsiuk et al. 2018) beside random and Sobel baselines"
    applies_to = "cnn"
    options = (
        *_trust.options(8),
        Option(
            "faith_steps",
            "int",
            20,
            "faithfulness: steps of the deletion/insertion curves (20: 5 per cent of the pixels each)",
            lo=1,
            hi=10_000,
        ),
        Option(
            "faith_order",
            "choice",
            "signed",
            "faithfulness: pixels in the order of the signed map (evidence for the class first) or of |map|",
            choices=("signed", "absolute"),
        ),
    )
    section = "trust"
    compute = staticmethod(faithfulness)

    def prepare(self, t: Target, layer, count, target, methods, ig_steps, samples, faith_steps: int, faith_order: str) -> dict:
        o = _trust.prepare(t, layer, count, target, methods, ig_steps, samples)
        if faith_order not in ("signed", "absolute"):
            raise NetsightError(f"--faith-order {faith_order!r}: expected signed or absolute")
        return {**o, "steps": faith_steps, "order": faith_order}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return list(FILES)

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..fileio import write_csv
        from ..plotting import save_figure

        idx, x, targets, kind = _trust.images_and_targets(t, o)
        maps = _trust.maps_of(t, t.model, x, idx, targets, o, t.folder)
        r = faithfulness(t.model, x, maps, targets, steps=o["steps"], order=o["order"], **t.norm)
        figure, table, values = (t.folder / p for p in FILES)
        return [
            save_figure(plot_faithfulness(r.fractions, r.curves, r.auc, t.title, kind), figure),
            write_csv(table, COLUMNS, r.rows()),
            write_csv(values, VALUE_COLUMNS, r.values([int(i) for i in idx])),
        ]

    def caption(self, ran: Ran) -> str:
        return (
            "deletion and insertion curves (Petsiuk et al. 2018) and their areas, with a random map and the "
            "Sobel edge map as baselines."
        )
