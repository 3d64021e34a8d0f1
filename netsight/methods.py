"""The attribution family as method objects, in the field's idiom (Captum, pytorch-grad-cam):
construct a method on a model (and a layer where the method needs one), call it with images and a
target, get a result that plots itself.

    import torchvision, netsight
    model = netsight.Normalize(torchvision.models.resnet18(), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    cam = netsight.GradCAM(model, "layer4").attribute(images, target=3)   # images: [N, 3, H, W] pixels in [0, 1]
    cam.maps                                                               # [N, H, W]
    cam.plot()                                                             # a matplotlib Figure

Images are always pixels in [0, 1]. A model trained on normalised inputs is wrapped once in
`Normalize(model, mean, std)` and that wrapped model is what every method, check and
`faithfulness` is given; layers are named (or passed as modules) as in the model inside.

Each method's own settings are its constructor's arguments and nothing else is: integrated
gradients' `steps`, SmoothGrad's (and SmoothGrad-squared's, VarGrad's) `samples`, Grad-CAM's `layer`, occlusion's `size`. `batch_size`
(every method: how many images go through the model at a time; a folder or `ImageSource` is
streamed) is the one setting they share. `attribute(x, target=...)`: `target` is a class index
for every image, one class per image (a list or tensor), or "predicted" (the model's own class,
the default).

The trust checks take method objects: `sanity_checks(method, x)` (Adebayo et al.'s cascading and
independent randomisation), `faithfulness(method, x)` (deletion and insertion against a random and
an edge-detector map), `seed_agreement(method, models, x)` (the same maps from models trained with
other seeds). Their results carry `.rows` and `.plot()`.

The method objects live in `techniques/attribution_methods.py` (the sanity-check technique takes them
too); every one computes through `ops.attribution.attribution_maps`, the code the command line runs
(`netsight inspect --attributions`): the same maps, the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import torch
from torch import nn

from .techniques.attribution_methods import (  # the method objects, public here
    METHOD_CLASSES as METHOD_CLASSES,
    AttributionMethod,
    Deconvolution,
    GradCAM,
    GuidedBackprop,
    GuidedGradCAM,
    InputXGradient,
    IntegratedGradients,
    Maps,
    Normalize,
    Occlusion,
    Saliency,
    SmoothGrad,
    SmoothGradSquared,
    VarGrad,
    Target,
    _positive,
    plot_maps,
)
from .techniques import agreement as _agreement
from .techniques import faithfulness as _faith
from .techniques import sanity as _sanity
from .techniques.recurrent_trust import (  # the recurrent runs' trust checks by rows, public here
    informative_row_images,
    mass_per_row,
    row_curves,
    row_faithfulness,
    row_scores,
)
from .ops.attribution import PYTHON, _resolve_targets
from .ops.hooks import evaluating
from .ops.inputs import device_of
from .ops.randomise import randomisable_layers
from .ops.recurrent import run_steps, unit_stats
from .ops.similarity import METRICS
from .errors import NetsightError


__all__ = [
    "Normalize",
    "AttributionMethod",
    "Saliency",
    "InputXGradient",
    "GuidedBackprop",
    "IntegratedGradients",
    "SmoothGrad",
    "SmoothGradSquared",
    "VarGrad",
    "GradCAM",
    "GuidedGradCAM",
    "Deconvolution",
    "Occlusion",
    "Maps",
    "plot_maps",
    "sanity_checks",
    "Sanity",
    "faithfulness",
    "Faithfulness",
    "seed_agreement",
    "Agreement",
    "run_steps",
    "unit_stats",
    "row_importance",
    "RowScores",
    "trajectories",
    "Trajectories",
    "row_scores",
    "mass_per_row",
    "row_curves",
    "row_faithfulness",
    "informative_row_images",
]


# ------------------------------------------------------------------ the trust checks


def _as_list(methods) -> list[AttributionMethod]:
    found = [methods] if isinstance(methods, AttributionMethod) else list(methods)
    if not found or not all(isinstance(m, AttributionMethod) for m in found):
        raise NetsightError("methods: expected an attribution method object (Saliency(model), ...) or a list of them")
    names = [m.name for m in found]
    if len(set(names)) != len(names):
        raise NetsightError(f"methods: {', '.join(names)}: each method once")
    if any(m.inner is not found[0].inner for m in found):
        raise NetsightError("methods: every method must be constructed on the same model")
    return found


def _fixed(first: AttributionMethod, x: torch.Tensor, target: Target) -> tuple[list[int], str]:
    """The class per image, fixed on the model the method was built on ("predicted": its predictions;
    a class beyond the model's outputs is refused by the first maps computed)."""
    if isinstance(target, str):
        if target != "predicted":
            raise NetsightError(f'target={target!r}: expected a class index, one class per image or "predicted"')
        with evaluating(first.inner), torch.no_grad():
            out = first.model(x.to(device=device_of(first.inner)))
        return [int(v) for v in out.argmax(1)], "predicted class"
    chosen, kind = _resolve_targets(target, None, None, len(x), None, PYTHON)
    assert chosen is not None
    return chosen, kind


def _images(x) -> torch.Tensor:
    if not torch.is_tensor(x) or x.dim() != 4:
        raise NetsightError("x: the checks take a tensor of images [N, C, H, W] (pixels in [0, 1])")
    return x.float() / 255 if x.dtype == torch.uint8 else x


@dataclass
class Sanity:
    """Adebayo et al.'s model-parameter randomisation test of some methods: `rows` (method, mode, layer, depth,
    metric, mean, lo, hi, n): the randomised model's maps against the trained model's, by each similarity metric."""

    result: _sanity.SanityResult
    target_kind: str

    @property
    def rows(self) -> list[_sanity.SanityRow]:
        return self.result.rows

    def plot(self, title: str = "model"):
        """The similarity after each cascading depth, per method and metric, with 95% intervals: a Figure."""
        from .techniques.sanity import plot_sanity_curves

        return plot_sanity_curves(self.result.rows, self.result.layers, title, len(self.result.targets))

    def plot_grid(self, title: str = "model", classes: Optional[Sequence[str]] = None, shown: int = 2):
        """Adebayo's Figure 2: the maps of the first `shown` images on the trained model and after each depth."""
        from .techniques.sanity import plot_sanity_grid

        r = self.result
        names = tuple(classes) if classes is not None else tuple(str(i) for i in range(max(r.targets) + 1))
        return plot_sanity_grid(r.images, r.originals, r.cascade, r.layers, r.targets, names, title, shown)


def sanity_checks(
    methods: Union[AttributionMethod, Sequence[AttributionMethod]],
    x,
    target: Target = "predicted",
    modes: Sequence[str] = _sanity.MODES,
    metrics: Sequence[str] = METRICS,
    max_layers: Optional[int] = None,
    seed: int = 0,
    draws: int = _sanity.DRAWS,
) -> Sanity:
    """Each method's maps of the images `x` [N, C, H, W] on its model, against its maps on copies of the model
    with the top layers re-initialised one more at a time ("cascading") and with one layer re-initialised
    ("independent"), for the same classes (fixed on the trained model). `max_layers`: only the top that many
    layers; `draws` random draws of the weights, draw d from seed `seed + d` (`result.values`: every value per
    draw and image). The model is not modified (every copy is a deep copy)."""
    found = _as_list(methods)
    x = _images(x)
    bad = [m for m in modes if m not in _sanity.MODES]
    if bad:
        raise NetsightError(f"modes={list(modes)}: expected some of {', '.join(_sanity.MODES)}")
    if max_layers is not None:
        _positive("max_layers", max_layers)
    _positive("draws", draws)
    targets, kind = _fixed(found[0], x, target)
    if not randomisable_layers(found[0].inner):
        raise NetsightError("sanity_checks: the model has no layer with parameters to randomise")
    result = _sanity.sanity_checks(found, x, targets, modes, metrics, seed, max_layers=max_layers, draws=draws)
    return Sanity(result, kind)


@dataclass
class Faithfulness:
    """Petsiuk et al.'s deletion and insertion curves (p(class) as the pixels go in the map's order, or come back
    onto a blurred copy) and their areas, per method and for a `random` and a `sobel` (edge) baseline map:
    `rows` (name, curve, auc mean, lo, hi, n). A faithful map: low deletion area, high insertion area."""

    result: _faith.FaithfulnessResult
    target_kind: str

    @property
    def rows(self) -> list[tuple]:
        return self.result.rows()

    def verdict(self, method: str) -> Optional[str]:
        """How `method`'s areas stand against the baselines, in words."""
        return _faith.verdict(self.result, method)

    def plot(self, title: str = "model"):
        from .techniques.faithfulness import plot_faithfulness

        r = self.result
        return plot_faithfulness(r.fractions, r.curves, r.auc, title, self.target_kind)


def faithfulness(
    methods: Union[AttributionMethod, Sequence[AttributionMethod]],
    x,
    target: Target = "predicted",
    steps: int = 20,
    order: str = "signed",
    seed: int = 0,
) -> Faithfulness:
    """Deletion and insertion for each method's maps of images `x` [N, C, H, W] on its model, in `steps` steps;
    pixels ranked by the signed map (`order="absolute"`: by |map|); `seed` draws the random baseline map."""
    found = _as_list(methods)
    x = _images(x)
    if order not in ("signed", "absolute"):
        raise NetsightError(f'order={order!r}: expected "signed" or "absolute"')
    if not 1 <= steps <= 10_000:
        raise NetsightError(f"steps={steps}: expected 1..10000")
    targets, kind = _fixed(found[0], x, target)
    maps = {m.name: m.attribute(x, targets).maps for m in found}
    first = found[0]
    r = _faith.faithfulness(
        first.inner, x.to(device_of(first.inner)), maps, targets, steps, order, seed, mean=first.mean, std=first.std
    )
    return Faithfulness(r, kind)


@dataclass
class Agreement:
    """How alike the same method's maps are across models trained with different seeds: `rows` (method, metric,
    seeds, pairs, mean, lo, hi, n), per image the Spearman correlation averaged over every pair of models."""

    rows: list[_agreement.AgreementRow]

    def plot(self, title: str = "model"):
        """Each method's mean agreement with its 95% interval over the images: a Figure."""
        import matplotlib.pyplot as plt

        from .plotting import method_title

        fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * max(1, len(self.rows))))
        labels = [f"{method_title(r.method)} ({r.metric})" for r in self.rows]
        means = [r.mean for r in self.rows]
        err = [[r.mean - r.lo for r in self.rows], [r.hi - r.mean for r in self.rows]]
        ax.barh(range(len(self.rows)), means, xerr=err, color="#4c72b0", capsize=3)
        ax.set_yticks(range(len(self.rows)), labels)
        ax.axvline(0, color="#808080", linewidth=0.8)
        ax.set_xlim(-1, 1)
        ax.set_xlabel("Spearman correlation of the maps across seeds (mean over images, 95% interval)")
        ax.set_title(f"{title}: seed agreement")
        fig.tight_layout()
        return fig


def seed_agreement(
    method: AttributionMethod, models: Sequence[nn.Module], x, target: Union[int, Sequence[int], torch.Tensor]
) -> Agreement:
    """`method` (with its settings) on each of `models` (the same architecture trained with different seeds;
    unwrapped models get `method`'s normalisation) for images `x` and the given classes (the same for every
    model: a class index or one per image; "predicted" would differ between models)."""
    if not isinstance(method, AttributionMethod):
        raise NetsightError("method: expected an attribution method object (Saliency(model), ...)")
    if isinstance(target, str):
        raise NetsightError(
            "target: seed agreement compares the same classes on every model: give a class index or one per image"
        )
    if len(models) < 2:
        raise NetsightError(f"models: {len(models)} given; seed agreement needs two models at least")
    x = _images(x)
    runs = [{method.name: method.on(m).attribute(x, target).maps} for m in models]
    return Agreement(_agreement.seed_agreement(runs))


# ------------------------------------------------------------------ the recurrent techniques (row readers)


@dataclass
class RowScores:
    """How much each input row (time step) of each image moves the true class's score, by three methods
    (`scores`: "gradient_x_input", "integrated_gradients", "occlusion" -> [N, T]); `per_class(method)` the mean
    per class [classes, T]."""

    result: Any  # techniques.rows.RowImportance
    num_classes: int

    @property
    def scores(self) -> dict[str, torch.Tensor]:
        return self.result.scores

    def per_class(self, method: str) -> torch.Tensor:
        return self.result.per_class(method, self.num_classes)

    def plot(self, title: str = "model", classes: Optional[Sequence[str]] = None):
        """The mean score per class and row, one heat map per method: a Figure."""
        from .techniques.rows import plot_rows

        names = list(classes) if classes is not None else [str(c) for c in range(self.num_classes)]
        counts = torch.bincount(self.result.labels, minlength=self.num_classes).tolist()
        per_class = {m: self.per_class(m).numpy() for m in self.result.scores}
        return plot_rows(per_class, counts, names, title, None, len(self.result.labels))


def row_importance(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int = 32) -> RowScores:
    """A recurrent row reader's (or a CNN's) row scores for `images` ([N, H, W] / [N, C, H, W], uint8 or
    [0, 1]) and their true `labels`: gradient x input and integrated gradients (`steps`) summed per row, and the
    drop in the class score when the row is blanked."""
    from .techniques.rows import row_importance as _rows

    _positive("steps", steps)
    fc = getattr(model, "fc", None)  # a row reader's classifier; otherwise the classes the labels name
    num = int(fc.out_features) if isinstance(fc, nn.Linear) else int(labels.max()) + 1
    return RowScores(_rows(model, images, labels, steps), num)


@dataclass
class Trajectories:
    """The hidden state after every row, projected on its first two principal components: `path` [N, T, 2],
    `labels` [N], `explained` [2] (the share of variance of each component)."""

    result: Any  # techniques.trajectories.Trajectories

    def __getattr__(self, name: str):
        if name == "result":
            raise AttributeError(name)
        return getattr(self.result, name)

    def plot(self, title: str = "model", classes: Optional[Sequence[str]] = None):
        from .techniques.trajectories import plot_trajectories

        r = self.result
        names = list(classes) if classes is not None else [str(c) for c in range(int(r.labels.max()) + 1)]
        return plot_trajectories([(title, r.path, r.labels, r.explained)], names, f"Hidden-state trajectories (PCA): {title}")


def trajectories(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> Trajectories:
    """A recurrent row reader's hidden-state paths over the rows of `images`, coloured by `labels` when plotted."""
    from .techniques.trajectories import trajectories as _trajectories

    return Trajectories(_trajectories(model, images, labels))
