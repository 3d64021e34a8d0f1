"""`netsight inspect --model SPEC ...`: the Zeiler & Fergus tools on any PyTorch CNN and any
folder of images (or a netsight dataset), written as figures/ and tables/ under --out.

The computing is `netsight.zf` (the notebook API); this module resolves the model, the images
and their labels, writes the files, and records what it did in `inspection.json`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..errors import NetsightError, warn
from ..fileio import claim_output_folder, write_csv, write_json, write_text
from ..models.external import ExternalModel, load_external_model
from ..report.tables import markdown_table
from .activations import CHANNEL_COLUMNS, STAT_COLUMNS
from .inspect import _spread

TECHNIQUES = ("filters", "activations", "deconv", "top9", "occlusion", "invariance")


@dataclass
class Target:
    model: ExternalModel
    images: object  # data.images.ImageSource
    labels: Optional[torch.Tensor]  # the images' classes as indices of the model's outputs, or None
    out: Optional[Path]
    device: torch.device
    progress: bool

    @property
    def title(self) -> str:
        weights = Path(self.model.weights).name if self.model.weights else "its own random initialisation"
        return f"{self.model.name} ({weights})"

    @property
    def norm(self) -> dict:
        return {"mean": self.model.preprocessing.mean, "std": self.model.preprocessing.std}

    @property
    def figures(self) -> Path:
        return self.out / "figures"

    @property
    def tables(self) -> Path:
        return self.out / "tables"

    @property
    def output_names(self) -> tuple[str, ...]:
        n = _outputs(self)
        cats = self.model.categories
        return tuple(cats) if cats and len(cats) == n else tuple(str(i) for i in range(n))


def _outputs(t: Target) -> int:
    from .hooks import normalised_input

    with torch.no_grad(), normalised_input(t.model.module, **t.norm):
        out = t.model.module(t.images.load([0]).to(t.device))
    if out.dim() != 2:
        raise NetsightError(f"--model {t.model.name}: the model's output has shape {tuple(out.shape)}; "
                            f"expected class scores [N, classes]")
    return out.shape[1]


def open_target(spec: str, weights: Optional[str | Path], out: Optional[str | Path], images: Optional[str | Path] = None,
                data: Optional[str] = None, input_size: Optional[int] = None, mean: Optional[Sequence[float]] = None,
                std: Optional[Sequence[float]] = None, device: str = "cpu", data_root=None, download: bool = False,
                progress: bool = True) -> Target:
    """The model, the images (as the model takes them) and the output folder (claimed: new, empty or
    netsight's; None when the caller writes a single file)."""
    from ..data import load_dataset
    from ..data.images import folder_images, tensor_images
    from ..train.loop import resolve_device

    if (images is None) == (data is None):
        raise NetsightError("inspect --model: give the images to look at with --images DIR or --data NAME (one of them)")
    model = load_external_model(spec, weights, input_size, tuple(mean) if mean else None, tuple(std) if std else None)
    dev = resolve_device(device)
    model.module.to(dev)
    prep = model.preprocessing
    if images is not None:
        source = folder_images(images, model.input_channels, prep.resize, prep.crop)
    else:
        ds = load_dataset(data, data_root, download)
        x = ds.test_images
        if prep.crop:
            from torchvision.transforms.v2 import functional as TF

            x = TF.center_crop(TF.resize(x, [prep.resize or prep.crop], antialias=True), [prep.crop, prep.crop])
        source = tensor_images(x, ds.test_labels, ds.classes, f"the {ds.name} test set ({len(x):,} images)")
        source.names = [f"{ds.name} test {i}" for i in range(len(x))]
    if source.shape[0] != model.input_channels:
        raise NetsightError(f"{images or data}: images have {source.shape[0]} channel(s), the model {spec} takes "
                            f"{model.input_channels}")
    out = claim_output_folder(out, "--out") if out is not None else None
    target = Target(model, source, None, out, dev, progress)
    target.labels = _model_labels(target, data is not None)
    return target


def _model_labels(t: Target, from_dataset: bool) -> Optional[torch.Tensor]:
    """The images' classes as the model's output indices: class folders named like the model's
    categories (case and '_' vs ' ' ignored) or as integers in range; a netsight dataset whose class
    count equals the model's outputs. Otherwise None (the analyses use the model's predictions)."""
    src = t.images
    if src.labels is None or src.classes is None:
        return None
    names = t.output_names
    n = len(names)
    key = lambda s: s.lower().replace("_", " ").strip()  # noqa: E731
    by_name = {key(c): i for i, c in enumerate(names)}
    if all(key(c) in by_name for c in src.classes):
        mapping = [by_name[key(c)] for c in src.classes]
    elif all(c.isdigit() and int(c) < n for c in src.classes):
        mapping = [int(c) for c in src.classes]
    elif from_dataset and len(src.classes) == n:
        mapping = list(range(n))
    else:
        warn(f"{src.description}: the class names ({', '.join(src.classes[:4])}{' ...' if len(src.classes) > 4 else ''}) "
             f"do not name the model's {n} outputs; occlusion and invariance follow the model's own prediction per image")
        return None
    return torch.tensor(mapping)[src.labels]


# ------------------------------------------------------------------ techniques


def model_filters(t: Target, layer: Optional[str] = None, scale: str = "filter") -> list[Path]:
    from .. import zf
    from ..report.figures import plot_filters, plot_weight_histograms, save_figure
    from .filters import weight_tensors

    bank = zf.filters(t.model.module, layer, scale)
    return [save_figure(plot_filters(bank, t.title), t.figures / f"filters_{bank.layer}.png"),
            save_figure(plot_weight_histograms(weight_tensors(t.model.module), t.title), t.figures / "weights_hist.png")]


def model_activations(t: Target, batch_size: int = 32) -> list[Path]:
    from .. import zf
    from ..report.figures import plot_activation_histograms, save_figure

    stats = zf.activations(t.model.module, t.images, **t.norm, batch_size=batch_size, progress=t.progress)
    md_cols = ["layer", "stage", "shape", "mean", "std", "min", "max", "zero_frac", "p1", "p50", "p99", "dead_channels"]
    caption = (f"Statistics of activations over {t.images.description}, {t.title}. p1/p50/p99 are nearest-rank "
               f"percentiles from a histogram (error at most half a bin). Dead channels: never positive on any image.\n\n")
    return [
        write_csv(t.tables / "activations.csv", STAT_COLUMNS, stats.rows),
        write_text(t.tables / "activations.md", caption + markdown_table(md_cols, [[r[c] for c in md_cols] for r in stats.rows])),
        write_csv(t.tables / "activations_per_channel.csv", CHANNEL_COLUMNS, stats.per_channel),
        save_figure(plot_activation_histograms(stats, t.title), t.figures / "activations.png"),
    ]


def _layer_file(layer: str) -> str:
    return layer.replace("/", "_")


def model_deconv(t: Target, layer: Optional[str] = None, count: int = 6, maps: int = 4, mode: str = "max") -> list[Path]:
    from .. import zf
    from ..data.images import tensor_images
    from ..report.figures import save_figure

    idx = _spread(len(t.images), count)
    result = zf.deconv(t.model.module, tensor_images(t.images.load(idx)), layer, maps, mode, **t.norm)
    return [save_figure(zf.plot(result, t.title), t.figures / f"deconv_{_layer_file(result.layer)}_{mode}.png")]


def model_top9(t: Target, layer: Optional[str] = None, maps: Optional[int] = None, batch_size: int = 32) -> list[Path]:
    """Top-9 of every map of `layer` over all the images (tables/top9_<layer>.csv); projections and
    patches of the first `maps` maps (default 16) in the figure."""
    from .. import zf
    from ..report.figures import save_figure
    from ..report.figures_zf import plot_top9
    from .deconvnet_graph import make_deconvnet
    from .hooks import normalised_input
    from .topk import project_top

    module = t.model.module
    top = zf.top_activations(module, t.images, layer, 9, **t.norm, batch_size=batch_size, progress=t.progress)
    with normalised_input(module, **t.norm):
        net = make_deconvnet(module, top.layer, t.images.shape)
        tp = project_top(net, top, lambda index: t.images.load(index), maps or 16, batch_size)
    h, w = t.images.shape[1:]
    field = top.field
    classes = t.images.classes
    labels = t.images.labels
    rows = []
    for m in range(top.values.shape[0]):
        for j in range(top.values.shape[1]):
            i, y, x = int(top.image_index[m, j]), int(top.positions[m, j, 0]), int(top.positions[m, j, 1])
            rows.append({"map": m, "rank": j + 1, "activation": float(top.values[m, j]), "image": i,
                         "file": t.images.names[i], "label": classes[int(labels[i])] if labels is not None and classes else "",
                         "y": y, "x": x, "rf_clipped": int(field.clipped(y, x, h, w))})
    name = _layer_file(top.layer)
    return [
        save_figure(plot_top9(tp, t.title), t.figures / f"top9_{name}.png"),
        write_csv(t.tables / f"top9_{name}.csv", ["map", "rank", "activation", "image", "file", "label", "y", "x", "rf_clipped"], rows),
        write_json(t.tables / f"top9_{name}_field.json", {"layer": top.layer, "receptive_field": list(field.size),
                                                          "jump": list(field.jump), "start": list(field.start),
                                                          "image": [h, w], "units": len(rows),
                                                          "clipped": sum(r["rf_clipped"] for r in rows)}),
    ]


def model_occlusion(t: Target, layer: Optional[str] = None, count: int = 3, size: Optional[int] = None,
                    stride: Optional[int] = None, fill: float = 0.5, feature_map: Optional[int] = None) -> list[Path]:
    from .. import zf
    from ..data.images import tensor_images
    from ..report.figures import save_figure
    from ..report.figures_zf import plot_occlusion

    idx = _spread(len(t.images), count)
    labels = t.labels[idx] if t.labels is not None else None
    result = zf.occlusion(t.model.module, tensor_images(t.images.load(idx)), layer, labels, size, stride, fill,
                          feature_map, **t.norm)
    fig = plot_occlusion(result.inputs, result.labels, result.maps, t.output_names, t.title, result.label_kind)
    return [save_figure(fig, t.figures / f"occlusion_{_layer_file(result.maps[0].layer)}.png")]


def model_invariance(t: Target, count: int = 100) -> list[Path]:
    from .. import zf
    from ..data.images import tensor_images
    from ..report.figures import save_figure
    from ..report.figures_zf import plot_invariance
    from .invariance import INVARIANCE_COLUMNS, invariance_rows

    idx = _spread(len(t.images), count)
    labels = t.labels[idx] if t.labels is not None else None
    result = zf.invariance(t.model.module, tensor_images(t.images.load(idx)), labels, **t.norm)
    curves = result.curves
    return [
        save_figure(plot_invariance(curves, t.title, "images", result.label_kind), t.figures / "invariance.png"),
        write_csv(t.tables / "invariance.csv", INVARIANCE_COLUMNS, invariance_rows(curves)),
    ]


def record(t: Target, techniques: Sequence[str], layer: Optional[str]) -> Path:
    """inspection.json: what was inspected, with what, so the folder explains itself."""
    prep = t.model.preprocessing
    return write_json(t.out / "inspection.json", {
        "model": t.model.name, "weights": t.model.weights, "input_channels": t.model.input_channels,
        "preprocessing": {"resize": prep.resize, "crop": prep.crop, "mean": prep.mean, "std": prep.std},
        "images": t.images.description, "image_shape": list(t.images.shape), "count": len(t.images),
        "labels": "the images' classes" if t.labels is not None else "the model's predictions",
        "techniques": list(techniques), "layer": layer,
    })


def model_explore(t: Target, layers: Sequence[str], out: str | Path) -> list[Path]:
    """`netsight explore --model ...`: the unit browser for `layers` of any CNN, into the file `out`."""
    from ..report.explore_page import layer_data, render_page
    from .deconvnet_graph import resolve_graph_target
    from .explore import explore_layer
    from .hooks import normalised_input
    from .stages import conv_layers

    module = t.model.module
    convs = conv_layers(module)
    unknown = [layer for layer in layers if layer not in convs]
    if unknown:
        from .deconvnet_graph import unknown_layer

        raise unknown_layer(unknown[0], module) if unknown[0] not in dict(module.named_modules()) else NetsightError(
            f"--layers {unknown[0]}: not a convolution (explore shows the units of conv layers)")
    names = t.images.names
    classes, labels = t.images.classes, t.images.labels
    label_names = [classes[int(v)] for v in labels] if classes is not None and labels is not None else None
    built = []
    with normalised_input(module, **t.norm):
        for layer in layers:
            resolve_graph_target(module, layer, t.images.load([0]).to(t.device))  # a clear error before the long pass
            units = explore_layer(module, t.images, layer, batch_size=32, progress=t.progress)
            built.append(layer_data(units, names, label_names, layer == convs[0]))
    subtitle = (f"{sum(len(b['units']) for b in built)} units over {t.images.description}, "
                f"{t.images.shape[1]}x{t.images.shape[2]} px as the model takes them")
    return [write_text(Path(out), render_page(f"netsight explore: {t.title}", subtitle, built))]
