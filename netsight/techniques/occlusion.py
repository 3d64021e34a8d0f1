"""Occlusion sensitivity: Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks"
(ECCV 2014), section 4.2 and Figure 7. A grey square slides over the image (its positions:
`ops/occluding.py`); at every position the probability of the true class, the strongest activation of
one feature map (by default the map of the top conv layer that responds most to the unoccluded image)
and the most probable class are recorded. All occluded copies of an image go through the network in
batches, and every feature map of the layer is read from them at once (`unit_occlusion`, the "every
unit" mode): the figure shows one map, the explore page (`explore_units.py`) every map of every
explored layer for its strongest images, with the panel it draws declared here (`explore_panels`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Optional

import torch
from torch import nn

from ..ops.deconvnet_graph import resolve_graph_target
from ..ops.inputs import Norm, check_norm, default_layer, device_of, labels_to_follow, source_for
from ..ops.hooks import capture_outputs, evaluating, normalised_input
from ..ops.occluding import default_square, occluded_copies, positions
from ..errors import NetsightError
from .base import Option, Ran, Technique, register, LAYER, checked_layer, count_option
from .target import Target, layer_file, spread

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class UnitOcclusion:
    """Every unit's occlusion maps: for each image and each feature map (unit) of a layer, the map's
    strongest activation with the grey square at each position, and with no square (`whole`)."""

    maps: torch.Tensor  # [images, units, rows, cols]
    whole: torch.Tensor  # [images, units]
    size: int
    stride: int


def _copies_in_batches(images: torch.Tensor, size: int, stride: int, fill: float, batch_size: int) -> Iterator[torch.Tensor]:
    """The occluded copies of every image in turn (`occluded_copies`), in batches of up to `batch_size`
    that run across images: a few large batches rather than one small one per image."""
    waiting: list[torch.Tensor] = []
    held = 0
    for image in images:
        copies, _, _ = occluded_copies(image, size, stride, fill)
        waiting.append(copies)
        held += len(copies)
        while held >= batch_size:
            joined = torch.cat(waiting)
            yield joined[:batch_size]
            waiting, held = [joined[batch_size:]], held - batch_size
    if held:
        yield torch.cat(waiting)


@torch.no_grad()
def unit_occlusion(
    activations: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    size: int,
    stride: int,
    fill: float = 0.5,
    batch_size: int = 512,
    whole: Optional[torch.Tensor] = None,
) -> UnitOcclusion:
    """Every unit's occlusion maps at once (the "every unit" mode: one pass over the occluded copies gives
    all the units of the layer). `activations` maps a float batch [B,C,H,W] to the layer's output
    [B, units, h, w] (a deconvnet's `activations`, or a hook on the model); `images` [N,C,H,W] in [0,1];
    `whole` [N, units], the units' strongest activations on the unoccluded images where the caller has
    them already (else computed first, before any copy)."""
    if whole is None:
        out = activations(images)
        if out.dim() != 4:
            raise NetsightError(f"occlusion needs a layer with feature maps; its output is {tuple(out.shape[1:])}")
        whole = out.flatten(2).amax(2)
    rows, cols = (len(positions(side, size, stride)) for side in images.shape[2:])
    responses = [activations(batch).flatten(2).amax(2) for batch in _copies_in_batches(images, size, stride, fill, batch_size)]
    units = whole.shape[1]
    maps = torch.cat(responses) if responses else torch.zeros(0, units)
    return UnitOcclusion(maps.reshape(len(images), rows, cols, units).permute(0, 3, 1, 2).cpu(), whole.cpu(), size, stride)


@dataclass
class OcclusionMaps:
    true_class_prob: torch.Tensor  # [rows, cols]
    feature_max: torch.Tensor  # [rows, cols]: strongest activation of `feature_map` in `layer`
    predicted_class: torch.Tensor  # [rows, cols] long
    layer: str
    feature_map: int
    unoccluded_prob: float
    unoccluded_feature: float
    size: int
    stride: int


@torch.no_grad()
def occlusion_maps(
    model: nn.Module,
    image: torch.Tensor,
    label: int,
    layer: str,
    size: int = 6,
    stride: int = 2,
    fill: float = 0.5,
    feature_map: Optional[int] = None,
    batch_size: int = 512,
) -> OcclusionMaps:
    """`image` is float [C,H,W] in [0,1]; `layer` a module whose output has feature maps. The layer's
    maps come from `unit_occlusion` (every unit at once, in the same forward passes that give the
    class probabilities); the figure shows one of them."""
    probs: list[torch.Tensor] = []
    with evaluating(model), capture_outputs(model, [layer], clone=True) as out:

        def forward(x: torch.Tensor) -> torch.Tensor:
            probs.append(model(x).softmax(1))
            return out[layer]

        act0 = forward(image[None])
        if act0.dim() != 4:
            raise NetsightError(
                f"--layer {layer}: occlusion needs a layer with feature maps, its output is {tuple(act0.shape[1:])}"
            )
        whole = act0.flatten(2).amax(2)
        if feature_map is None:
            feature_map = int(whole[0].argmax())
        elif not 0 <= feature_map < act0.shape[1]:
            raise NetsightError(f"--feature-map {feature_map}: layer {layer} has {act0.shape[1]} feature maps")
        every = unit_occlusion(forward, image[None], size, stride, fill, batch_size, whole=whole)
    probs0, probs_all = probs[0][0], torch.cat(probs[1:])
    rows, cols = every.maps.shape[2:]
    return OcclusionMaps(
        probs_all[:, label].reshape(rows, cols).cpu(),
        every.maps[0, feature_map],
        probs_all.argmax(1).reshape(rows, cols).cpu(),
        layer,
        feature_map,
        probs0[label].item(),
        float(every.whole[0, feature_map]),
        size,
        stride,
    )


@dataclass
class OcclusionResult:
    inputs: torch.Tensor
    labels: list[int]  # the class whose probability each map shows
    label_kind: str  # "true class" (labels given) or "predicted class" (the model's, unoccluded)
    maps: list[OcclusionMaps]

    def plot(self, title: str = "model") -> Figure:
        """The figure `netsight inspect --occlusion` draws (classes named by index)."""
        top = max(self.labels + [int(m.predicted_class.max()) for m in self.maps])
        return plot_occlusion(self.inputs, self.labels, self.maps, tuple(str(i) for i in range(top + 1)), title, self.label_kind)


def occlusion(
    model: nn.Module,
    x,
    layer: Optional[str] = None,
    labels=None,
    size: Optional[int] = None,
    stride: Optional[int] = None,
    fill: float = 0.5,
    feature_map: Optional[int] = None,
    mean: Norm = None,
    std: Norm = None,
) -> OcclusionResult:
    """Occlusion sensitivity per image: p(label) and `layer`'s strongest map as a grey square
    slides over the image. Without `labels`, the model's own prediction on the whole image is
    tracked. `size`/`stride` default to 6/28 and 2/28 of the image height (the course's 6 and 2 px)."""
    check_norm(model, mean, std)
    source = source_for(model, x)
    h = source.shape[1]
    size, stride = size or default_square(h)[0], stride or default_square(h)[1]
    batch = source.load(range(len(source))).to(device_of(model))
    with normalised_input(model, mean, std):
        layer = resolve_graph_target(model, default_layer(model, layer), batch[:1])
        chosen, kind = labels_to_follow(model, batch, labels)
        maps = [occlusion_maps(model, batch[i], chosen[i], layer, size, stride, fill, feature_map) for i in range(len(batch))]
    return OcclusionResult(batch.cpu(), chosen, kind, maps)


def plot_occlusion(
    images: torch.Tensor,
    labels: list[int],
    results: list,
    classes: tuple[str, ...],
    title: str,
    label_kind: str = "true class",
    asked: Optional[str] = None,
) -> Figure:
    """Per image: the input, p(label) per square position (on a scale fitted to that map, the
    range in the colour bar's label), the tracked feature map's strongest activation, and the
    most probable class (a class has one colour in every row, style.class_colour; the legend
    lists the classes on that map). `label_kind` says what the label is ("true class", or
    "predicted class" when the images carry no class the model knows)."""
    from .. import style
    from ..plotting import plt, pixel_image, tight_with_title
    from ..style import layer_name

    n = len(results)
    class_cmap, class_norm = style.class_cmap(len(classes))
    fig, axes = plt.subplots(n, 4, figsize=(14, 3.0 * n + 0.6), squeeze=False)
    short = label_kind.split()[0]
    for i, (img, label, r) in enumerate(zip(images, labels, results, strict=True)):
        style.mark(axes[i, 0].imshow(pixel_image(img), cmap="gray", vmin=0, vmax=1), "pixels")
        axes[i, 0].set_title(f"input, {label_kind} {classes[label]}\np({short}) unoccluded {r.unoccluded_prob:.2f}")
        prob = r.true_class_prob.numpy()
        lo, hi = style.fitted_range(prob)
        im = style.mark(axes[i, 1].imshow(prob, cmap=style.PROBABILITY, vmin=lo, vmax=hi), "probability")
        axes[i, 1].set_title(f"p({classes[label]}) with the {r.size}x{r.size}\ngrey square at each position")
        cb = fig.colorbar(im, ax=axes[i, 1], fraction=0.046)
        cb.set_label(f"p({classes[label]}): {lo:.2f} to {hi:.2f}\n(scale fitted to this map)")
        im = style.mark(axes[i, 2].imshow(r.feature_max.numpy(), cmap=style.SEQUENTIAL), "magnitude")
        axes[i, 2].set_title(
            f"strongest act. of {layer_name(r.layer, asked)}\nmap {r.feature_map} (unoccluded {r.unoccluded_feature:.2f})"
        )
        fig.colorbar(im, ax=axes[i, 2], fraction=0.046).set_label("activation")
        predicted = r.predicted_class.numpy()
        style.mark(axes[i, 3].imshow(predicted, cmap=class_cmap, norm=class_norm, interpolation="nearest"), "classes")
        axes[i, 3].set_title("most probable class")
        axes[i, 3].legend(
            handles=style.class_legend_handles(predicted.ravel().tolist(), classes),
            loc="upper left",
            bbox_to_anchor=(1.03, 1.0),
            borderaxespad=0,
            frameon=False,
            handlelength=1.0,
        )
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        f"{title}: occlusion sensitivity (grey {results[0].size}x{results[0].size} px square, stride "
        f"{results[0].stride} px); each map pixel is one position of the square"
    )
    tight_with_title(fig)
    return fig


@register
class OcclusionTechnique(Technique):
    name = "occlusion"
    summary = "occlusion sensitivity maps for a few images"
    applies_to = "cnn"
    options = (
        LAYER,
        count_option(3),
        Option(
            "occlusion_size",
            "int",
            None,
            "side of the grey square in pixels (6/28 of the image height: 6 px on 28x28 images)",
            lo=1,
            hi=4096,
        ),
        Option("occlusion_stride", "int", None, "pixels between square positions (2/28 of the image height)", lo=1, hi=4096),
        Option("occlusion_fill", "float", 0.5, "grey level of the square, 0..1 (0.5)", lo=0, hi=1),
        Option("feature_map", "int", None, "occlusion: which map of --layer to track (default: the strongest)", lo=0, hi=65535),
    )
    section = "zf"
    compute = staticmethod(occlusion)

    def prepare(
        self,
        t: Target,
        layer: Optional[str],
        count: int,
        occlusion_size: Optional[int],
        occlusion_stride: Optional[int],
        occlusion_fill: float,
        feature_map: Optional[int],
    ) -> dict:
        asked, _ = checked_layer(t, layer)
        h, w = t.images.shape[1:]
        if occlusion_size is not None and occlusion_size > min(h, w):
            raise NetsightError(f"--occlusion-size {occlusion_size}: larger than the {h}x{w} images")
        return {
            "layer": asked,
            "count": count,
            "size": occlusion_size,
            "stride": occlusion_stride,
            "fill": occlusion_fill,
            "feature_map": feature_map,
        }

    def outputs(self, t: Target, o: dict) -> list[str]:
        return [f"figures/occlusion_{layer_file(o['layer'])}.png"]

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..data.images import tensor_images
        from ..plotting import save_figure

        idx = spread(len(t.images), o["count"])
        labels = t.labels[idx] if t.labels is not None else None
        r = occlusion(
            t.model,
            tensor_images(t.images.load(idx)),
            o["layer"],
            labels,
            o["size"],
            o["stride"],
            o["fill"],
            o["feature_map"],
            **t.norm,
        )
        fig = plot_occlusion(r.inputs, r.labels, r.maps, t.classes, t.title, r.label_kind, asked=o["layer"])
        return [save_figure(fig, t.folder / self.outputs(t, o)[0])]

    def caption(self, ran: Ran) -> str:
        return (
            f"occlusion sensitivity on {ran.options['count']} test images, with the strongest map of "
            f"{ran.options['layer']} (paper Fig. 7)."
        )

    def explore_panels(self, layer, unit: int) -> list[dict]:
        """The unit's occlusion maps on the explore page (from `unit_occlusion`, for its strongest images), each
        beside its image, on the map's own scale."""
        import numpy as np

        from ..report.panels import fmt, heat, num, panel

        items = []
        for o in layer.numbers.occlusion[unit]:
            picture, lo, hi = heat(np.asarray(o["map"]))
            items.append(
                {
                    "src": layer.image_keys[o["image"]],
                    "heat": layer.pictures.key(picture),
                    "low": num(lo, 6),
                    "high": num(hi, 6),
                    "whole": num(o["unoccluded"], 6),
                    "alt": f"image {o['image']}",
                    "heat_alt": f"occlusion map of image {o['image']}",
                    "caption": f"image {o['image']} · whole image {fmt(o['unoccluded'])}",
                }
            )
        return [panel("heatmap", "Occlusion", "occlusion", "occlusion", items=items)]

    def explore_shared(self, layer) -> dict[str, dict]:
        return {
            "notes": {
                "occlusion": "The unit's strongest activation with a grey square at each position of the image (darker: "
                "covering there lowers it more); the bar gives the scale, its line the value for the whole image."
            }
        }
