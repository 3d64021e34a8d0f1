"""The attribution family on a few images: gradient (Simonyan et al. 2014), gradient x input,
guided backprop (Springenberg et al. 2015), integrated gradients (Sundararajan et al. 2017),
SmoothGrad (Smilkov et al. 2017), Grad-CAM and guided Grad-CAM (Selvaraju et al. 2017), the
deconvnet and occlusion (Zeiler & Fergus 2014) as class attributions; the methods live in
ops/attribution.py.

Writes figures/attributions.png (rows: images; columns: the input and each method),
tables/attributions.csv (per method: images, target, layer, integrated gradients' completeness
error, seconds, the non-linearities the ReLU rules rectified and passed) and
tables/attribution_maps.safetensors (every method's maps [N,H,W], `image_indices` into the
target's image source and `targets`, so maps of two runs can be compared on the same images).
For `--model`, inspection.json also records which non-linearities were rectified."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

import numpy as np
import torch

from ..errors import NetsightError
from ..ops.attribution import (
    METHODS,
    RELU_RULE,
    Attribution,
    attribution_maps,
    check_class,
    check_methods,
    parse_methods,
    parse_target,
)
from ..ops.hooks import evaluating, normalised_input
from .target import Target, spread
from .base import Option, Technique, register, LAYER, count_option

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = [
    "method",
    "images",
    "target_kind",
    "layer",
    "completeness_error",
    "seconds",
    "rectified",
    "not_rectified",
]
FILES = ["figures/attributions.png", "tables/attributions.csv", "tables/attribution_maps.safetensors"]


def table_rows(results: dict[str, Attribution]) -> list[dict]:
    rows = []
    for m, a in results.items():
        rows.append(
            {
                "method": m,
                "images": len(a.maps),
                "target_kind": a.target_kind,
                "layer": a.layer or "",
                "completeness_error": a.notes.get("completeness_error", ""),
                "seconds": round(float(a.notes["seconds"]), 4),
                "rectified": "; ".join(a.notes.get("rectified", [])) if m in RELU_RULE else "",
                "not_rectified": "; ".join(a.notes.get("not_rectified", [])) if m in RELU_RULE else "",
            }
        )
    return rows


def _save_maps(path: Path, results: dict[str, Attribution], idx: torch.Tensor) -> Path:
    from safetensors.torch import save_file

    from ..fileio import atomic_write

    first = next(iter(results.values()))
    tensors = {m: a.maps.contiguous() for m, a in results.items()}
    tensors["image_indices"] = idx.to(torch.int64).contiguous()
    tensors["targets"] = torch.tensor(first.targets, dtype=torch.int64)
    metadata = {"target_kind": first.target_kind, "layer": first.layer or "", "methods": ",".join(results)}
    for a in results.values():
        if a.layer:
            metadata["layer"] = a.layer
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def _record_nonlinearities(t: Target, results: dict[str, Attribution]) -> None:
    """inspection.json (a --model target's record) says what the ReLU rules did."""
    from ..fileio import read_json, write_json

    path = t.folder / "inspection.json"
    rule = next((a for m, a in results.items() if m in RELU_RULE), None)
    if t.run is not None or rule is None or not path.is_file():
        return
    record = read_json(path)
    record["attributions"] = {
        "methods": list(results),
        "target": rule.target_kind,
        "relu_rule_methods": [m for m in results if m in RELU_RULE],
        "rectified": rule.notes.get("rectified", []),
        "not_rectified": rule.notes.get("not_rectified", []),
    }
    write_json(path, record)


def nonlinearity_note(notes: Mapping[str, dict]) -> Optional[str]:
    """One line on what the ReLU rules did, from any ReLU-rule method's notes (None: no such method shown)."""
    from ..plotting import TITLES

    ruled = [m for m, note in notes.items() if "rectified" in note]
    if not ruled:
        return None
    note = notes[ruled[0]]
    done = ", ".join(note["rectified"]) or "none"
    passed = ", ".join(note["not_rectified"]) or "none"
    shown = [TITLES.get(r, r).replace("\n", " ") for r in ruled]
    names = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    if not note["rectified"]:
        verb = "is" if len(shown) == 1 else "are"
        return f"the model calls no ReLU: {names} {verb} its plain gradient here (not rectified: {passed})"
    return f"the ReLU rule of {names} rectified: {done}; passed as an ordinary gradient (not rectified): {passed}"


def _column(tiles: Sequence[np.ndarray], gap: int) -> np.ndarray:
    """Tiles [H,W] or [H,W,3] stacked top to bottom, `gap` rows of NaN (drawn white) between them."""

    shape = tiles[0].shape
    rows = []
    for k, tile in enumerate(tiles):
        if k:
            rows.append(np.full((gap, *shape[1:]), np.nan))
        rows.append(tile)
    return np.concatenate(rows, 0)


def plot_attributions(
    images: torch.Tensor,
    maps: Mapping[str, torch.Tensor],
    targets: Sequence[int],
    classes: tuple[str, ...],
    title: str,
    target_kind: str,
    notes: Mapping[str, dict],
    layer: Optional[str] = None,
) -> Figure:
    """`images` [N,C,H,W] in [0, 1]; `maps` method -> [N,H,W] signed maps; `targets` the class each row explains.
    Each column is one image (the images or one method's maps stacked, white gaps between rows):
    eleven axes whatever the number of images, so the figure stays quick to draw."""
    from matplotlib.patches import Rectangle
    from .. import style
    from ..plotting import plt, pixel_image, scaled, TITLES, tight_with_title

    methods = list(maps)
    n, cols = len(images), len(methods) + 1
    h = images.shape[-2]
    gap = max(2, h // 6)
    fig = plt.figure(figsize=(1.45 * cols + 1.2, 1.45 * n + 1.3))
    grid = fig.add_gridspec(1, cols + 1, width_ratios=[1.0] * cols + [0.08])
    axes = [fig.add_subplot(grid[0, j]) for j in range(cols)]
    pixels = _column([pixel_image(img) for img in images], gap)
    white = plt.get_cmap("gray").with_extremes(bad="white")
    if pixels.ndim == 3:
        pixels = np.where(np.isnan(pixels), 1.0, pixels)  # RGB: the gaps white
    style.mark(axes[0].imshow(pixels, cmap=white, vmin=0, vmax=1, interpolation="nearest"), "pixels")
    names = [classes[t] if 0 <= t < len(classes) else str(t) for t in targets]
    axes[0].set_yticks([i * (h + gap) + h / 2 for i in range(n)], names)
    axes[0].tick_params(length=0)
    axes[0].set_xticks([])
    axes[0].set_title("input")
    norm = style.signed_norm(1.0)
    diverging = plt.get_cmap(style.DIVERGING).with_extremes(bad="white")
    im = None
    for ax, m in zip(axes[1:], methods, strict=True):
        column = _column([scaled(maps[m][i]) for i in range(n)], gap)
        im = style.mark(ax.imshow(column, cmap=diverging, norm=norm, interpolation="nearest"), "signed")
        label = TITLES.get(m, m)
        if m in ("gradcam", "guided_gradcam") and layer:
            label += f"\nat {layer}"
        ax.set_title(label, fontsize=style.SMALL)
        ax.set_xticks([])
        ax.set_yticks([])
    w = images.shape[-1]
    for ax in axes:
        for side in ax.spines.values():
            side.set_visible(False)
        for i in range(n):  # a thin frame per tile: a map that is 0 everywhere still shows where it is
            ax.add_patch(Rectangle((-0.5, i * (h + gap) - 0.5), w, h, fill=False, edgecolor="#808080", linewidth=0.6))
    assert im is not None
    bar = fig.colorbar(im, cax=fig.add_subplot(grid[0, -1]))
    bar.set_label("value / largest |value| of that map\n(red: raises the score, blue: lowers it)")
    note = nonlinearity_note(notes)
    fig.suptitle(f"{title}: what each method says the {target_kind} score depends on (row label: the class explained)")
    if note:
        fig.text(0.01, 0.005, note, fontsize=style.SMALL, ha="left", va="bottom", wrap=True)
    tight_with_title(fig, bottom_inches=0.35 if note else 0.0)
    return fig


@register
class AttributionsTechnique(Technique):
    name = "attributions"
    summary = "attribution maps (gradient, guided backprop, integrated gradients, SmoothGrad, Grad-CAM, ...) for a few images"
    applies_to = "cnn"
    options = (
        LAYER,
        count_option(8),
        Option(
            "target",
            "str",
            None,
            "attributions: the class each map explains: true, predicted or a class index N "
            "(default: true where the images have classes, else predicted)",
        ),
        Option("methods", "str", None, f"attributions: comma list of methods (default: all): {', '.join(METHODS)}"),
        Option("ig_steps", "int", 32, "attributions: integrated gradients' steps (Gauss-Legendre points)", lo=1, hi=4096),
        Option("samples", "int", 16, "attributions: SmoothGrad's noisy copies per image", lo=1, hi=4096),
    )
    compute = staticmethod(attribution_maps)

    def prepare(
        self,
        t: Target,
        layer: Optional[str],
        count: int,
        target: Optional[str],
        methods: Optional[str],
        ig_steps: int,
        samples: int,
    ) -> dict:
        chosen = parse_methods(methods)
        wanted = parse_target(target)
        example = t.images.load([0]).to(t.device)
        with evaluating(t.model), normalised_input(t.model, **t.norm):
            with torch.no_grad():
                outputs = t.model(example)
            if outputs.dim() != 2:
                raise NetsightError(
                    f"--attributions: the model's output is {tuple(outputs.shape)}, not class scores [N, classes]"
                )
            if isinstance(wanted, int):
                check_class(wanted, outputs.shape[1])
            if wanted == "true" and t.labels is None:
                raise NetsightError("--target true: these images have no classes the model knows; use --target predicted or N")
            used_layer, _ = check_methods(t.model, example, chosen, layer)
        return {
            "layer": used_layer,
            "count": count,
            "target": wanted,
            "methods": chosen,
            "ig_steps": ig_steps,
            "samples": samples,
        }

    def outputs(self, t: Target, o: dict) -> list[str]:
        return list(FILES)

    def write(self, t: Target, o: dict) -> list[Path]:
        from ..data.images import tensor_images
        from ..fileio import write_csv
        from ..plotting import save_figure

        idx = spread(len(t.images), o["count"])
        images = t.images.load(idx)
        labels = t.labels[idx] if t.labels is not None else None
        results = attribution_maps(
            t.model,
            tensor_images(images, labels),
            o["methods"],
            o["target"],
            labels,
            o["layer"],
            steps=o["ig_steps"],
            samples=o["samples"],
            **t.norm,
        )
        figure, table, maps = (t.folder / p for p in FILES)
        first = next(iter(results.values()))
        notes = {m: a.notes for m, a in results.items()}
        fig = plot_attributions(
            images,
            {m: a.maps for m, a in results.items()},
            first.targets,
            t.classes,
            t.title,
            first.target_kind,
            notes,
            o["layer"],
        )
        written = [save_figure(fig, figure), write_csv(table, COLUMNS, table_rows(results)), _save_maps(maps, results, idx)]
        _record_nonlinearities(t, results)
        return written
