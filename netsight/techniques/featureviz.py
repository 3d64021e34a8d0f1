"""Feature visualisation by optimisation: Olah, Mordvintsev & Schubert, "Feature Visualization", Distill 2017.

For each of the first `maps` channels of a conv layer, an image is optimised (Adam, `steps` steps) to raise the
channel's mean activation over its positions (the paper's "channel" objective). The image is parameterised as
the paper recommends: a Fourier spectrum scaled by 1/frequency (so that no high-frequency pattern is cheaper than
a smooth one), decorrelated colours for three-channel images (Lucid's ImageNet colour-correlation matrix), and a
sigmoid into [0, 1] pixels; every step sees a randomly translated, scaled and rotated copy (transformation
robustness), so the image must drive the unit wherever the model looks. All the channels are optimised in one
batch; the random start and transformations come from `seed`, so the same call gives the same images.

Beside each image the technique puts the images of the target that drive the channel most on the same measure
(its mean activation), because natural examples predict what a unit does on real data better than synthetic
ones (Borowski et al., "Exemplary Natural Images Explain CNN Activations Better than State-of-the-Art Feature
Visualization", ICLR 2021), and it prints both activations. What a picture like this cannot show is said
beside it: it is an input that drives the unit, not proof of what the unit detects in natural images, and
networks can be built whose visualisations mislead (Geirhos et al., "Don't trust your eyes: on the
(un)reliability of feature visualizations", ICML 2024).

Writes figures/featureviz_<layer>.png (per unit: the optimised image, then the three strongest images of the
target, each with its activation) and tables/featureviz_<layer>.csv (unit, optimised_activation,
best_image_activation, best_image, best_file, ratio, steps, seed). The paper's qualitative result, that
the optimised image drives a unit harder than any natural image, is tested on a trained LeNet5
(tests/techniques/test_featureviz.py)."""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import NetsightError
from ..fileio import write_csv
from ..ops.hooks import evaluating, forward_hooks, normalised_input
from ..ops.inputs import Norm, check_norm, default_layer, device_of, source_for
from .base import MAPS_HELP, LAYER, Option, Technique, checked_layer, register
from .target import Target, layer_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STEPS, LR = 256, 0.05  # Adam on the spectrum, as Lucid and Lucent optimise
EXAMPLES = 3  # the strongest images of the target shown beside each optimised one
COLUMNS = ("unit", "optimised_activation", "best_image_activation", "best_image", "best_file", "ratio", "steps", "seed")
# Lucid's square root of ImageNet's colour correlation (Olah et al. 2017): optimising in these decorrelated colours
COLOUR_CORRELATION = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
CAVEAT = (
    "An optimised image drives the unit; it does not prove what the unit detects in natural images (networks can be "
    "built whose visualisations mislead: Geirhos et al. 2024). The natural images beside it show what drives it on data."
)


@contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """The model's parameters take no gradient for the block (only the image is optimised)."""
    wanted = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in wanted:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in wanted:
            p.requires_grad_(flag)


class _Stop(Exception):
    """Raised by the layer's hook: the forward pass need not go past the layer optimised."""


@dataclass
class FeatureVisualisation:
    """`feature_visualisation`'s result: per unit the optimised image [U, C, H, W] in [0, 1] and its mean
    activation, the target's strongest images on the same measure, and what it ran with."""

    layer: str
    units: list[int]
    images: torch.Tensor
    activations: torch.Tensor  # [U] the optimised images' mean activation of their unit
    examples: torch.Tensor  # [U, EXAMPLES, C, H, W] the target's strongest images per unit
    example_activations: torch.Tensor  # [U, EXAMPLES]
    example_index: torch.Tensor  # [U, EXAMPLES] their indices in the target's images
    steps: int
    seed: int
    variants: Optional[torch.Tensor] = (
        None  # [U, V, C, H, W] with variants > 1: every image optimised per unit (images: the first)
    )
    variant_activations: Optional[torch.Tensor] = None  # [U, V]
    diversity: float = 0.0

    def plot(self, title: str = "model") -> Figure:
        return plot_featureviz(self, title)


class FourierImage(nn.Module):
    """n images of `channels` x h x w, parameterised by a 1/f-scaled spectrum, decorrelated colours and a sigmoid
    (Olah et al. 2017, "Preconditioning and parameterization"); `forward()` gives pixels in [0, 1]."""

    scale: torch.Tensor  # [h, w // 2 + 1] buffers
    colours: torch.Tensor  # [channels, channels]

    def __init__(self, n: int, channels: int, h: int, w: int, generator: torch.Generator, decay: float = 1.0):
        super().__init__()
        fy, fx = torch.fft.fftfreq(h)[:, None], torch.fft.rfftfreq(w)[None, :]
        frequency = torch.sqrt(fx**2 + fy**2)
        self.register_buffer("scale", 1.0 / torch.clamp(frequency, min=1.0 / max(h, w)) ** decay)
        self.spectrum = nn.Parameter(0.01 * torch.randn(n, channels, h, w // 2 + 1, 2, generator=generator))
        self.size = (h, w)
        colours = COLOUR_CORRELATION / COLOUR_CORRELATION.norm(dim=0).max()
        self.register_buffer("colours", colours if channels == 3 else torch.eye(channels))

    def forward(self) -> torch.Tensor:
        spectrum = torch.view_as_complex(self.spectrum) * self.scale
        image = torch.fft.irfft2(spectrum, s=self.size, norm="ortho") / 4.0
        image = torch.einsum("nchw,dc->ndhw", image, self.colours)
        return torch.sigmoid(image)


def _robust(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One random translation (up to 1/16 of the side), scale (0.9-1.1) and rotation (up to 10 degrees) of the
    batch, the same size out (the paper's transformation robustness; the border filled with grey)."""
    r = torch.rand(4, generator=generator)
    angle = math.radians((r[0].item() * 2 - 1) * 10)
    scale = 0.9 + 0.2 * r[1].item()
    shift = (r[2:] * 2 - 1) / 8  # [-1/8, 1/8] of the half-side: 1/16 of the side
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    theta = torch.tensor([[cos, -sin, shift[0].item()], [sin, cos, shift[1].item()]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(len(x), 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x - 0.5, grid, padding_mode="zeros", align_corners=False) + 0.5


def _channel_means(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """[N, channels] the layer's output averaged over its positions (the forward stops at the layer)."""
    return _means(_layer_output(model, layer, x))


def _means(out: torch.Tensor) -> torch.Tensor:
    return out.flatten(2).mean(2) if out.dim() > 2 else out


def _layer_output(model: nn.Module, layer: str, x: torch.Tensor) -> torch.Tensor:
    """The layer's output for `x` (the forward stops at the layer)."""
    found: dict[str, torch.Tensor] = {}

    def hook(module, inputs, output):
        found["out"] = output
        raise _Stop

    with forward_hooks(model, {layer: hook}):
        try:
            model(x)
        except _Stop:
            pass
    return found["out"]


def feature_visualisation(
    model: nn.Module,
    x,
    layer: Optional[str] = None,
    maps: Optional[int] = 8,
    steps: int = STEPS,
    seed: int = 0,
    mean: Norm = None,
    std: Norm = None,
    batch_size: int = 64,
    progress: bool = False,
    variants: int = 1,
    diversity: float = 0.0,
) -> FeatureVisualisation:
    """Per unit (the first `maps` channels of `layer`, the last conv by default), an image optimised to raise its
    mean activation, and the `EXAMPLES` images of `x` (a tensor of [0, 1] images or a folder) that raise it most.
    `variants` > 1: that many images per unit, and with `diversity` > 0 the paper's diversity term pushes them
    apart (the mean cosine similarity of their Gram matrices at `layer`, times `diversity`, is added to the loss)."""
    if variants < 1 or diversity < 0:
        raise NetsightError(f"featureviz: variants {variants} (at least 1) and diversity {diversity} (at least 0)")
    check_norm(model, mean, std)
    source = source_for(model, x)
    layer = default_layer(model, layer)
    device = device_of(model)
    with evaluating(model), _frozen(model), normalised_input(model, mean, std):
        means = []
        for _, batch in source.batches(batch_size, progress, "featureviz: the images"):
            with torch.no_grad():
                means.append(_channel_means(model, layer, batch.to(device)).cpu())
        data = torch.cat(means)  # [N, channels]
        units = list(range(min(maps or data.shape[1], data.shape[1])))
        generator = torch.Generator().manual_seed(seed)
        channels, h, w = source.shape
        image = FourierImage(len(units) * variants, channels, h, w, generator).to(device)
        optimiser = torch.optim.Adam(image.parameters(), lr=LR)
        pick = torch.tensor(units, device=device).repeat_interleave(variants)  # a unit's variants side by side
        for _ in range(steps):
            optimiser.zero_grad()
            out = _layer_output(model, layer, _robust(image(), generator))
            loss = -_means(out).gather(1, pick[:, None]).sum()
            if diversity > 0 and variants > 1:
                loss = loss + diversity * gram_similarity(out, variants).sum()
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            final = image().detach()
            reached = _channel_means(model, layer, final).gather(1, pick[:, None])[:, 0].cpu()
    top = data[:, units].topk(min(EXAMPLES, len(data)), dim=0)  # [k, U]
    index = top.indices.T.contiguous()
    examples = torch.stack([source.load(row.tolist()).cpu() for row in index])
    every = final.cpu().reshape(len(units), variants, *final.shape[1:])
    reached_all = reached.reshape(len(units), variants)
    return FeatureVisualisation(
        layer, units, every[:, 0], reached_all[:, 0], examples, top.values.T.contiguous(), index, steps, seed,
        every if variants > 1 else None, reached_all if variants > 1 else None, diversity,
    )  # fmt: skip


def gram_similarity(activations: torch.Tensor, variants: int) -> torch.Tensor:
    """Per unit, the mean cosine similarity between the Gram matrices (channels x channels, over positions) of its
    `variants` images, consecutive in `activations` [U * variants, C, H, W]: Olah et al.'s diversity term (lower:
    the variants differ more in style, not only in where things are). [U]."""
    a = activations.flatten(2) if activations.dim() > 2 else activations[:, :, None]
    gram = a @ a.transpose(1, 2) / a.shape[2]
    g = F.normalize(gram.flatten(1), dim=1).reshape(-1, variants, gram.shape[1] * gram.shape[2])
    similarity = g @ g.transpose(1, 2)  # [U, V, V]
    off = ~torch.eye(variants, dtype=torch.bool, device=a.device)
    return similarity[:, off].mean(1)


def plot_featureviz(r: FeatureVisualisation, title: str) -> Figure:
    """Per unit a block: the optimised image (purple title), then the target's strongest images (#index: file names
    are long, the table has them), each titled with the unit's mean activation on it; two blocks a row."""
    from ..plotting import pixel_image, plt
    from ..style import SMALL

    k = r.examples.shape[1]
    optimised = r.variants if r.variants is not None else r.images[:, None]
    reached = r.variant_activations if r.variant_activations is not None else r.activations[:, None]
    v = optimised.shape[1]
    per_row = 2 if v == 1 else 1
    rows = math.ceil(len(r.units) / per_row)
    ratios = ([1.0] * (v + k) + [0.35]) * per_row
    fig = plt.figure(figsize=(1.35 * sum(ratios), 1.75 * rows + 1.5))
    grid = fig.add_gridspec(rows, len(ratios), width_ratios=ratios, hspace=0.55, wspace=0.08)
    grey = "gray" if r.images.shape[1] == 1 else None
    for i, unit in enumerate(r.units):
        row, block = divmod(i, per_row)
        base = block * (1 + v + k)
        pictures = [
            (optimised[i, j], f"unit {unit}: optimised{f' {j + 1}/{v}' if v > 1 else ''}\n{float(reached[i, j]):.3g}", "#7a0177")
            for j in range(v)
        ]
        pictures += [
            (r.examples[i, j], f"#{int(r.example_index[i, j])}\n{float(r.example_activations[i, j]):.3g}", "black")
            for j in range(k)
        ]
        for j, (picture, text, colour) in enumerate(pictures):
            ax = fig.add_subplot(grid[row, base + j])
            ax.imshow(pixel_image(picture), cmap=grey, vmin=0, vmax=1)
            ax.set_title(text, fontsize=SMALL, color=colour)
            ax.axis("off")
    fig.suptitle(
        f"{title}: feature visualisation of {r.layer} (Olah et al. 2017), {r.steps} steps, seed {r.seed}"
        f"{f', {v} images per unit, diversity {r.diversity:g}' if v > 1 else ''}\n"
        f"per unit: the image{'s' if v > 1 else ''} optimised to raise its mean activation (purple), then the {k} images "
        "that raise it most (#index); numbers: the unit's mean activation",
        fontsize=SMALL + 1,
    )
    fig.text(0.5, 0.01, CAVEAT, ha="center", va="bottom", fontsize=SMALL, wrap=True)
    fig.subplots_adjust(left=0.02, right=0.98, top=1 - 0.85 / fig.get_figheight(), bottom=0.75 / fig.get_figheight())
    return fig


@register
class FeatureVizTechnique(Technique):
    name = "featureviz"
    summary = (
        "feature visualisation: per unit an image optimised to drive it (Olah et al. 2017), beside the images that drive it most"
    )
    applies_to = "cnn"
    compute = staticmethod(feature_visualisation)
    options = (
        LAYER,
        Option("maps", "int", 8, MAPS_HELP, lo=1, hi=65536),
        Option("steps", "int", STEPS, "featureviz: optimisation steps per image", lo=1, hi=100_000),
        Option("seed", "int", 0, "featureviz: the seed of the random start and transformations", lo=0, hi=2**63 - 1),
        Option("variants", "int", 1, "featureviz: images optimised per unit", lo=1, hi=16),
        Option(
            "diversity",
            "float",
            0.0,
            "featureviz: weight of the diversity term pushing a unit's --variants apart (Olah et al. 2017; try 1)",
            lo=0,
            hi=1e6,
        ),
    )
    section = "zf"

    def prepare(self, t: Target, layer: Optional[str], maps: int, steps: int, seed: int, variants: int, diversity: float) -> dict:
        asked, _ = checked_layer(t, layer)
        if diversity > 0 and variants < 2:
            raise NetsightError(f"--diversity {diversity:g}: pushes a unit's images apart, so give --variants 2 or more")
        return {"layer": asked, "maps": maps, "steps": steps, "seed": seed, "variants": variants, "diversity": diversity}

    def outputs(self, t: Target, o: dict) -> list[str]:
        name = layer_file(o["layer"])
        return [f"figures/featureviz_{name}.png", f"tables/featureviz_{name}.csv"]

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..plotting import save_figure

        r = feature_visualisation(
            t.model, t.images, o["layer"], o["maps"], o["steps"], o["seed"], progress=t.progress,
            variants=o.get("variants", 1), diversity=o.get("diversity", 0.0), **t.norm,
        )  # fmt: skip
        names = list(t.images.names)
        figure, table = (t.folder / p for p in self.outputs(t, o))
        rows = []
        for i, unit in enumerate(r.units):
            best = int(r.example_index[i, 0])
            best_value = float(r.example_activations[i, 0])
            reached = float(r.activations[i])
            ratio = reached / best_value if best_value > 0 else math.nan
            rows.append([unit, f"{reached:.6g}", f"{best_value:.6g}", best, names[best], f"{ratio:.4g}", r.steps, r.seed])
        return [save_figure(plot_featureviz(r, t.title), figure), write_csv(table, COLUMNS, rows)]

    def caption(self, ran) -> str:
        return f"feature visualisation ({ran.options['steps']} steps, seed {ran.options['seed']}). " + CAVEAT

    def explore_panels(self, layer, unit: int) -> list[dict]:
        """The unit's optimised image beside the image of the set that drives its mean activation most, each with that
        mean (explore page, where it was made with feature visualisation: `netsight explore --featureviz`)."""
        r = layer.numbers.featureviz  # a conv layer's LayerUnits: set where the page asked for feature visualisation
        if r is None:
            return []
        from ..plotting import pixel_image
        from ..report.panels import card, fmt, panel, png

        reached, best = float(r.activations[unit]), float(r.example_activations[unit, 0])
        index = int(r.example_index[unit, 0])
        ratio = f" ({reached / best:.2f} x the strongest image's)" if best > 0 else ""
        name = layer.names[index] if index < len(layer.names) else str(index)
        cards = [
            card([layer.pictures.key(png(pixel_image(r.images[unit])))], f"optimised: {fmt(reached)}{ratio}",
                 alt=[f"an image optimised to drive unit {unit}"]),
            card([layer.pictures.key(png(pixel_image(r.examples[unit, 0])))], f"strongest image: {fmt(best)} ({name})",
                 alt=[f"the image of the set that drives unit {unit}'s mean activation most"]),
        ]  # fmt: skip
        title = f"Feature visualisation ({r.steps} steps, seed {r.seed})"
        return [panel("images", title, "featureviz", "cards featureviz", items=cards, pictures=[{"class": "featureviz"}])]

    def explore_shared(self, layer) -> dict[str, dict]:
        if layer.numbers.featureviz is None:
            return {}
        return {
            "notes": {
                "featureviz": "The unit's mean activation over its map, for an image optimised to raise it (Olah et al. 2017) and "
                "for the image of the set that raises it most (Borowski et al. 2021: natural images explain a unit better). "
                + CAVEAT
            }
        }
