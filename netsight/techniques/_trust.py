"""What the sanity checks, faithfulness and seed agreement techniques share: their options (the
attributions technique's, so `--methods`, `--target`, `--count` are one flag each), the classes the
maps explain, the maps a run already saved, and the sibling runs of a suite (other seeds of the same
configuration; the same model trained on permuted labels)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from ..errors import NetsightError
from ..ops.attribution import LAYER_METHODS, attribution_maps
from ..ops.hooks import evaluating, normalised_input
from .target import Target, spread
from .base import Option, count_option
from .attributions import AttributionsTechnique
from .attribution_methods import METHOD_CLASSES, AttributionMethod, Normalize

MAPS_FILE = "tables/attribution_maps.safetensors"


def options(count: int) -> tuple[Option, ...]:
    """The attributions technique's options (one `netsight inspect` flag each), with this technique's --count default."""
    return tuple(count_option(count) if o.name == "count" else o for o in AttributionsTechnique.options)


def prepare(t: Target, layer, count, target, methods, ig_steps, samples) -> dict:
    """The attributions technique's checks (methods, target, Grad-CAM layer) on the first image."""
    return AttributionsTechnique().prepare(t, layer, count, target, methods, ig_steps, samples)


def images_and_targets(t: Target, o: dict) -> tuple[torch.Tensor, torch.Tensor, list[int], str]:
    """(image indices, images [N,C,H,W] on the target's device, the class per image, its kind), the
    classes fixed by the trained model: true labels, its predictions, or one class index."""
    idx = spread(len(t.images), o["count"])
    x = t.images.load(idx).to(t.device)
    wanted = o["target"]
    if wanted is None:
        wanted = "true" if t.labels is not None else "predicted"
    if wanted == "true":
        assert t.labels is not None  # prepare refused --target true without labels
        return idx, x, [int(v) for v in t.labels[idx]], "true class"
    if wanted == "predicted":
        with torch.no_grad(), evaluating(t.model), normalised_input(t.model, **t.norm):
            return idx, x, [int(v) for v in t.model(x).argmax(1)], "predicted class"
    return idx, x, [int(wanted)] * len(idx), f"class {int(wanted)}"


def method_objects(t: Target, o: dict) -> list[AttributionMethod]:
    """The method objects for `o["methods"]` on the target's model (wrapped in its normalisation), with the
    options' settings: Grad-CAM's layer, integrated gradients' steps, SmoothGrad's samples."""
    model = Normalize(t.model, t.mean, t.std) if t.mean is not None and t.std is not None else t.model
    settings = {
        "integrated_gradients": {"steps": o["ig_steps"]},
        "smoothgrad": {"samples": o["samples"]},
        "smoothgrad_squared": {"samples": o["samples"]},
        "vargrad": {"samples": o["samples"]},
        "gradcam": {"layer": o["layer"]},
        "guided_gradcam": {"layer": o["layer"]},
    }
    return [METHOD_CLASSES[m](model, **settings.get(m, {})) for m in o["methods"]]


def saved_maps(folder: Path) -> Optional[tuple[list[int], list[int], dict[str, torch.Tensor], dict[str, str]]]:
    """(image indices, targets, method -> maps, metadata) from a run's tables/attribution_maps.safetensors, or None."""
    path = folder / MAPS_FILE
    if not path.is_file():
        return None
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata() or {})
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    idx = [int(v) for v in tensors.pop("image_indices")]
    targets = [int(v) for v in tensors.pop("targets")]
    return idx, targets, tensors, metadata


# methods whose maps depend on a setting the saved file does not record: always computed afresh
_SETTING_DEPENDENT = ("integrated_gradients", "smoothgrad", "smoothgrad_squared", "vargrad")


def maps_of(
    t: Target, model, x: torch.Tensor, idx: torch.Tensor, targets: list[int], o: dict, folder: Optional[Path] = None
) -> dict[str, torch.Tensor]:
    """Every method's maps of `x` for `targets` on `model`: read from `folder`'s saved maps (the attributions
    technique's file) where they hold the method for these images and classes (Grad-CAM's at the same layer;
    integrated gradients and SmoothGrad, whose steps and samples the file does not record, are always
    computed), else computed."""
    saved = saved_maps(folder) if folder is not None else None
    out: dict[str, torch.Tensor] = {}
    if saved is not None and saved[0] == [int(v) for v in idx] and saved[1] == targets:
        same_layer = saved[3].get("layer", "") == (o["layer"] or "")
        out = {
            m: saved[2][m].float()
            for m in o["methods"]
            if m in saved[2] and m not in _SETTING_DEPENDENT and (m not in LAYER_METHODS or same_layer)
        }
    todo = [m for m in o["methods"] if m not in out]
    if todo:
        found = attribution_maps(
            model,
            x,
            todo,
            "true",
            torch.tensor(targets),
            o["layer"],
            steps=o["ig_steps"],
            samples=o["samples"],
            **t.norm,
        )
        out.update({m: a.maps for m, a in found.items()})
    return {m: out[m] for m in o["methods"]}


_VARIES = ("seed", "snapshots", "eval_every", "labels")  # what may differ between a run and its siblings


def siblings(t: Target, labels: str = "true", same_group: bool = True) -> list[Path]:
    """Completed runs of the suite with this run's configuration except seed (and snapshots and
    evaluation interval), trained on `labels`, other than this run; `same_group`: in the folder holding this
    run, else in every group folder of the suite's OUT/runs/ (a permuted-label group is a group of its own;
    a run outside a suite has none there)."""
    from ..fileio import read_json
    from ..train.config import TrainConfig

    run = t.run
    if run is None:
        return []
    here = run.path.resolve()
    group = here.parent
    if same_group:
        folders = [group]
    elif group.parent.name == "runs" and (group.parent.parent / "suite.json").is_file():  # a suite's OUT/runs/<group>/
        folders = [g for g in sorted(group.parent.iterdir()) if g.is_dir()]
    else:
        return []

    def key(c) -> dict:
        return {k: v for k, v in c.to_dict().items() if k not in _VARIES}

    mine = key(run.config)
    found = []
    for folder in folders:
        for d in sorted(folder.iterdir()):
            try:
                if d.resolve() == here or not (d / "config.json").is_file() or not (d / "summary.json").is_file():
                    continue
                config = TrainConfig.from_dict(read_json(d / "config.json")["train"])
                status = read_json(d / "summary.json").get("status")
            except (NetsightError, KeyError, TypeError, OSError, ValueError):  # unreadable, damaged or foreign: not a sibling
                continue
            if status == "completed" and config.labels == labels and key(config) == mine:
                found.append(d)
    return found
