"""Invariance to vertical translation, rotation and scaling: Zeiler & Fergus, "Visualizing and
Understanding Convolutional Networks" (ECCV 2014), section 4 and Figure 5. For each transform amount,
the feature vector of each image is compared with its transformed copy's at the first layer and at the
last hidden layer (the final classifier's input) by the normalised Euclidean distance
||f(x) - f(T x)|| / ||f(x)||, and the probability of the true class is recorded; the curves are means
over the images with their standard deviation as the spread.

Its "every unit" mode (`unit_invariance`) sweeps the same transforms for each unit of a layer: the unit's
strongest response to its own top images transformed, relative to the untransformed ones (the
explore page's invariance curves, whose panel is declared here, `explore_panels`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator, Optional

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import NetsightError
from ..ops.hooks import capture_outputs, evaluating, leaf_execution_order, normalised_input
from ..ops.stages import conv_stages
from ..ops.inputs import Norm, check_norm, device_of, labels_to_follow, source_for
from .base import Ran, Technique, register, count_option
from .target import Target, spread

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def sweeps_for(height: int) -> dict[str, np.ndarray]:
    """The transform amounts: shifts of up to 8/28 of the image height (+-8 px on 28x28, +-64 px
    on 224x224, the paper's range), rotations 0..360 degrees, scales 0.6..1.4."""
    reach = 8 * height / 28
    return {
        "vertical translation (pixels)": np.round(np.linspace(-reach, reach, 9)),
        "rotation (degrees)": np.arange(0, 361, 30, dtype=float),
        "scale (factor)": np.round(np.arange(0.6, 1.41, 0.1), 2),
    }


SWEEPS = sweeps_for(28)


def transform(images: torch.Tensor, kind: str, amount: float) -> torch.Tensor:
    """Apply one transform to float images [N,C,H,W] (bilinear, zero fill, same size)."""
    # imported here, not at the top: torchvision's import (~1.5 s, it loads torch._dynamo) would otherwise be paid
    # by every command line, which imports each technique to build its flags
    from torchvision.transforms.v2 import InterpolationMode, functional as TF

    bilinear = InterpolationMode.BILINEAR
    if kind.startswith("vertical"):
        return TF.affine(images, angle=0.0, translate=[0, int(amount)], scale=1.0, shear=[0.0, 0.0], interpolation=bilinear)
    if kind.startswith("rotation"):
        return TF.rotate(images, float(amount), interpolation=bilinear)
    if kind.startswith("scale"):
        return TF.affine(images, angle=0.0, translate=[0, 0], scale=float(amount), shear=[0.0, 0.0], interpolation=bilinear)
    raise NetsightError(f"unknown transform {kind!r}; expected one of {', '.join(SWEEPS)}")


# Modules that only carry their input through at evaluation time: measuring "at" one of them
# would name a layer that computes nothing (cnn-bn's drop4), so the features are read at the
# layer before it.
_CARRY = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity, nn.Flatten)


def feature_layers(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[str, str]:
    """(first layer, last hidden layer): the last stage of the first conv layer (after its
    ReLU/pool/BN), and the last module before the final Linear that computes something
    (a ReLU, pool or BN; dropout and flatten are passed over), named as the model names them."""
    stages = conv_stages(model, input_shape)
    first = [s for s in stages if s.layer == stages[0].layer][-1].module
    order = leaf_execution_order(model, torch.zeros(1, *input_shape, device=next(model.parameters()).device))
    linear = [i for i, (_, m) in enumerate(order) if isinstance(m, nn.Linear)]
    if not linear or linear[-1] == 0:
        raise NetsightError("invariance: the model needs a final Linear classifier")
    before = [name for name, m in order[: linear[-1]] if not isinstance(m, _CARRY)]
    if not before:
        raise NetsightError("invariance: no layer computes anything before the final Linear classifier")
    return first, before[-1]


@dataclass
class InvarianceCurves:
    layers: tuple[str, str]
    amounts: dict[str, np.ndarray] = field(default_factory=dict)
    # transform -> metric -> [amounts, images]; metrics: "first", "last", "p_true"
    values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def mean_std(self, kind: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
        v = self.values[kind][metric]
        return v.mean(1), v.std(1)


def swept(images: torch.Tensor, sweeps: dict) -> Iterator[tuple[str, int, torch.Tensor]]:
    """(transform, amount's index, `images` transformed by it) for every amount of every transform of
    `sweeps`: the one loop both measures below go through."""
    for kind, amounts in sweeps.items():
        for i, amount in enumerate(amounts):
            yield kind, i, transform(images, kind, float(amount))


@torch.no_grad()
def invariance_curves(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, sweeps: dict | None = None
) -> InvarianceCurves:
    """`images` float [N,C,H,W] in [0,1], `labels` [N] (the class whose probability is tracked).
    `sweeps` defaults to `sweeps_for(image height)`."""
    sweeps = sweeps if sweeps is not None else sweeps_for(images.shape[2])
    layers = feature_layers(model, tuple(images.shape[1:]))
    curves = InvarianceCurves(layers, {kind: np.asarray(amounts) for kind, amounts in sweeps.items()})
    rows: dict[str, dict[str, list[np.ndarray]]] = {kind: {"first": [], "last": [], "p_true": []} for kind in sweeps}
    with evaluating(model), capture_outputs(model, list(layers), clone=True) as out:
        model(images)
        base = {name: out[name].flatten(1) for name in layers}
        for kind, _, moved in swept(images, sweeps):
            probs = model(moved).softmax(1)
            for key, name in zip(("first", "last"), layers, strict=True):
                f = out[name].flatten(1)
                rows[kind][key].append(((f - base[name]).norm(dim=1) / base[name].norm(dim=1).clamp_min(1e-12)).cpu().numpy())
            rows[kind]["p_true"].append(probs[torch.arange(len(labels)), labels].cpu().numpy())
    curves.values = {kind: {k: np.stack(v) for k, v in r.items()} for kind, r in rows.items()}
    return curves


@dataclass
class UnitInvariance:
    """Every unit's invariance curve: per transform, its strongest response to its own images transformed,
    relative to the untransformed ones (1 = invariant), averaged over those of the images it responds to."""

    amounts: dict[str, np.ndarray]  # transform -> its amounts
    response: dict[str, torch.Tensor]  # transform -> [units, amounts] float64; nan for a unit that responds to none


@torch.no_grad()
def unit_invariance(
    activations: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    chosen: torch.Tensor,
    whole: Optional[torch.Tensor] = None,
    sweeps: Optional[dict] = None,
    batch_size: int = 256,
) -> UnitInvariance:
    """The "every unit" mode of invariance, for the units of one layer: `activations` maps a float batch
    [B,C,H,W] to the layer's output [B, units, h, w]; `images` [N,C,H,W] in [0,1]; `chosen` [units, k]
    the indices into `images` of each unit's own images (its top-k); `whole` [N, units] the units'
    strongest activations on the untransformed images where the caller has them. Every transformed
    batch gives every unit's response at once. `sweeps` defaults to `sweeps_for(image height)`."""
    sweeps = sweeps if sweeps is not None else sweeps_for(images.shape[2])

    def strongest(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([activations(x[s : s + batch_size]).flatten(2).amax(2) for s in range(0, len(x), batch_size)])

    base = strongest(images) if whole is None else whole
    units = torch.arange(chosen.shape[0], device=base.device)[:, None]
    mine = chosen.to(base.device)
    reference = base[mine, units]  # [units, k]
    responds = (reference > 0).double()
    response = {kind: torch.zeros(chosen.shape[0], len(amounts), dtype=torch.float64) for kind, amounts in sweeps.items()}
    for kind, i, moved in swept(images, sweeps):
        ratio = (strongest(moved)[mine, units] / reference.clamp_min(1e-30)).double() * responds
        response[kind][:, i] = (ratio.sum(1) / responds.sum(1)).cpu()  # 0/0 = nan where the unit responds to none
    return UnitInvariance({kind: np.asarray(amounts) for kind, amounts in sweeps.items()}, response)


INVARIANCE_COLUMNS = ["transform", "amount", "first_mean", "first_std", "last_mean", "last_std", "p_true_mean", "p_true_std"]


def invariance_rows(curves: InvarianceCurves) -> list[dict]:
    """One row per transform amount: mean and std over images of each metric (tables/invariance.csv)."""
    rows = []
    for kind, amounts in curves.amounts.items():
        for a_i, amount in enumerate(amounts):
            row = {"transform": kind, "amount": float(amount)}
            for metric in ("first", "last", "p_true"):
                v = curves.values[kind][metric][a_i]
                row[f"{metric}_mean"], row[f"{metric}_std"] = float(v.mean()), float(v.std())
            rows.append(row)
    return rows


@dataclass
class InvarianceResult:
    curves: InvarianceCurves
    label_kind: str

    def plot(self, title: str = "model") -> Figure:
        """The figure `netsight inspect --invariance` draws."""
        return plot_invariance(self.curves, title, "images", self.label_kind)


def invariance(model: nn.Module, x, labels=None, mean: Norm = None, std: Norm = None) -> InvarianceResult:
    """Distances of the first and last hidden layers' features under vertical translation,
    rotation and scaling, and p(label) (without labels: the class predicted on the original)."""
    check_norm(model, mean, std)
    source = source_for(model, x)
    batch = source.load(range(len(source))).to(device_of(model))
    with normalised_input(model, mean, std):
        chosen, kind = labels_to_follow(model, batch, labels)
        curves = invariance_curves(model, batch, torch.tensor(chosen, device=batch.device))
    return InvarianceResult(curves, kind)


DISTANCE = "||f(x') - f(x)|| / ||f(x)||"


def plot_invariance(curves, title: str, images_word: str = "test images", label_kind: str = "true class") -> Figure:
    from ..plotting import plt, tight_with_title
    from ..style import SMALL

    kinds = list(curves.values)
    metrics = [
        ("first", f"distance at {curves.layers[0]}"),
        ("last", f"distance at {curves.layers[1]}"),
        ("p_true", f"p({label_kind})"),
    ]
    fig, axes = plt.subplots(len(metrics), len(kinds), figsize=(4.4 * len(kinds), 2.8 * len(metrics) + 0.6), squeeze=False)
    for j, kind in enumerate(kinds):
        x = curves.amounts[kind]
        for i, (metric, label) in enumerate(metrics):
            mean, std = curves.mean_std(kind, metric)
            ax = axes[i, j]
            ax.plot(x, mean, color=f"C{i}", lw=2)
            ax.fill_between(x, mean - std, mean + std, color=f"C{i}", alpha=0.2)
            ax.grid(alpha=0.3)
            if i == len(metrics) - 1:
                ax.set_xlabel(kind)
                ax.set_ylim(0, 1)
            if j == 0:
                ax.set_ylabel(label if metric == "p_true" else f"{label}\n{DISTANCE}")
    n = next(iter(curves.values.values()))["first"].shape[1]
    fig.suptitle(f"{title}: invariance over {n} {images_word} (mean, band = 1 std)")
    fig.text(
        0.5,
        0.01,
        f"distance = {DISTANCE}: how far a layer's output f moves when the image x is transformed into x', "
        "relative to its size (0 = unchanged)",
        ha="center",
        va="bottom",
        fontsize=SMALL,
    )
    tight_with_title(fig, 0.45, 0.3)
    return fig


def _unit_curve(name: str, amounts: list, response: list) -> dict:
    """The explore page's chart of a unit's response to its top images transformed by `amounts`, relative to the
    originals (1: dashed)."""
    import math

    from ..report.panels import chart, num, nums

    finite = [v for v in response if v is not None and math.isfinite(v)]
    x0, x1 = min(amounts), max(amounts)
    top, bottom = max([1.2, *finite]), min([0.0, *finite])  # no finite response (a dead unit): still an axis
    mid = amounts[len(amounts) // 2]
    return chart(
        "invariance",
        f"{name}: relative response",
        (x0, x1),
        (bottom, top),
        [{"x": nums(amounts), "y": nums(response)}] if finite else [],
        rules=[{"x1": x0, "x2": x1, "y1": 1, "y2": 1, "stroke": "#999", "dash": "3 2"}],
        xticks=[[x0]] + ([[mid]] if x0 < mid < x1 else []) + [[x1]],
        yticks=[[num(bottom, 6)], [1, "1"], [num(top, 6)]],
        xlabel=name,
    )


@register
class InvarianceTechnique(Technique):
    name = "invariance"
    summary = "translation/rotation/scale invariance curves"
    applies_to = "cnn"
    options = (count_option(100),)
    section = "zf"
    compute = staticmethod(invariance)

    def prepare(self, t: Target, count: int) -> dict:
        feature_layers(t.model, t.images.shape)  # a model with no layer to measure fails here, before any write
        return {"count": count}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return ["figures/invariance.png", "tables/invariance.csv"]

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..data.images import tensor_images
        from ..fileio import write_csv
        from ..plotting import save_figure

        idx = spread(len(t.images), o["count"])
        labels = t.labels[idx] if t.labels is not None else None
        r = invariance(t.model, tensor_images(t.images.load(idx)), labels, **t.norm)
        figure, table = (t.folder / p for p in self.outputs(t, o))
        return [
            save_figure(plot_invariance(r.curves, t.title, t.images_word, r.label_kind), figure),
            write_csv(table, INVARIANCE_COLUMNS, invariance_rows(r.curves)),
        ]

    def caption(self, ran: Ran) -> str:
        return f"invariance to vertical translation, rotation and scale on {ran.options['count']} test images (paper Fig. 5)."

    def explore_panels(self, layer, unit: int) -> list[dict]:
        """The unit's invariance curves on the explore page (from `unit_invariance`), one chart per transform."""
        from ..report.panels import panel

        curves = [_unit_curve(k, v["amounts"], v["response"][unit]) for k, v in layer.numbers.invariance.items()]
        return [panel("chart", "Invariance", "invariance", "curves", charts=curves)]

    def explore_shared(self, layer) -> dict[str, dict]:
        return {
            "notes": {"invariance": "Response to its top images transformed, relative to untransformed (dashed: 1)."},
            "styles": {
                "invariance": {
                    "class": "invariance",
                    "size": [170, 136],
                    "margin": [32, 10, 8, 38],
                    "empty": "never active",
                    "series": [{"type": "line", "stroke": "#e6194b", "width": 1.6}],
                }
            },
        }
