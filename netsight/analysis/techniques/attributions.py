"""The attribution family on a few images: gradient (Simonyan et al. 2014), gradient x input,
guided backprop (Springenberg et al. 2015), integrated gradients (Sundararajan et al. 2017),
SmoothGrad (Smilkov et al. 2017), Grad-CAM and guided Grad-CAM (Selvaraju et al. 2017), the
deconvnet and occlusion (Zeiler & Fergus 2014) as class attributions; the methods live in
analysis/attribution.py.

Writes figures/attributions.png (rows: images; columns: the input and each method),
tables/attributions.csv (per method: images, target, layer, integrated gradients' completeness
error, seconds, the non-linearities the ReLU rules rectified and passed) and
tables/attribution_maps.safetensors (every method's maps [N,H,W], `image_indices` into the
target's image source and `targets`, so maps of two runs can be compared on the same images).
For `--model`, inspection.json also records which non-linearities were rectified."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from ...errors import NetsightError
from ..attribution import (
    METHODS,
    RELU_RULE,
    Attribution,
    attribution_maps,
    check_class,
    check_methods,
    parse_methods,
    parse_target,
)
from ..hooks import evaluating, normalised_input
from ..target import Target, spread
from ..technique import Option, Technique, register
from ._common import LAYER, count_option

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


def _prepare(
    t: Target, layer: Optional[str], count: int, target: Optional[str], methods: Optional[str], ig_steps: int, samples: int
) -> dict:
    chosen = parse_methods(methods)
    wanted = parse_target(target)
    example = t.images.load([0]).to(t.device)
    with evaluating(t.model), normalised_input(t.model, **t.norm):
        with torch.no_grad():
            outputs = t.model(example)
        if outputs.dim() != 2:
            raise NetsightError(f"--attributions: the model's output is {tuple(outputs.shape)}, not class scores [N, classes]")
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


def _outputs(t: Target, o: dict) -> list[str]:
    return list(FILES)


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

    from ...fileio import atomic_write

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
    from ...fileio import read_json, write_json

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


def _write(t: Target, o: dict) -> list[Path]:
    from ...data.images import tensor_images
    from ...fileio import write_csv
    from ...report.figures import save_figure
    from ...report.figures_attribution import plot_attributions

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
        images, {m: a.maps for m, a in results.items()}, first.targets, t.classes, t.title, first.target_kind, notes, o["layer"]
    )
    written = [save_figure(fig, figure), write_csv(table, COLUMNS, table_rows(results)), _save_maps(maps, results, idx)]
    _record_nonlinearities(t, results)
    return written


TECHNIQUE = register(
    Technique(
        name="attributions",
        summary="attribution maps (gradient, guided backprop, integrated gradients, SmoothGrad, Grad-CAM, ...) for a few images",
        applies_to="cnn",
        compute=attribution_maps,
        prepare=_prepare,
        outputs=_outputs,
        write=_write,
        options=(
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
        ),
        report=None,
    )
)
