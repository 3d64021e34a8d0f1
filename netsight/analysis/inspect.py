"""Inspections of a run directory: read the run, compute, write figures/ and tables/.

Each function is what one `netsight inspect RUN_DIR --flag` does, and returns the paths
it wrote, so a notebook can call it as well as the CLI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..data import load_dataset
from ..errors import NetsightError
from ..fileio import write_csv, write_text
from ..report.tables import markdown_table
from ..train.rundir import Run, open_run
from .activations import CHANNEL_COLUMNS, STAT_COLUMNS, activation_statistics
from .filters import filter_bank, weight_tensors
from .stages import conv_layers


def _run_title(run: Run) -> str:
    return f"{run.config.model} on {run.config.data} (seed {run.config.seed})"


def open_trained_run(path: str | Path) -> Run:
    run = open_run(path)
    if not run.dir.weights.is_file():
        status = run.summary.get("status", "unknown")
        raise NetsightError(f"{run.path}: no model.safetensors (run status: {status}); finish it with netsight train --resume")
    return run


def inspect_filters(path: str | Path, layer: Optional[str] = None, scale: str = "filter") -> list[Path]:
    from ..report.figures import plot_filters, plot_weight_histograms, save_figure

    run = open_trained_run(path)
    model = run.model()
    layer = layer or conv_layers(model)[0]
    bank = filter_bank(model, layer, scale)
    title = _run_title(run)
    return [
        save_figure(plot_filters(bank, title), run.dir.figures / f"filters_{layer}.png"),
        save_figure(plot_weight_histograms(weight_tensors(model), title), run.dir.figures / "weights_hist.png"),
    ]


def inspect_activations(path: str | Path, split: str = "test", data_root: Optional[str | Path] = None,
                        download: bool = False, device: str = "cpu") -> list[Path]:
    from ..report.figures import plot_activation_histograms, save_figure
    from ..train.loop import resolve_device

    run = open_trained_run(path)
    model = run.model(resolve_device(device))
    conv_layers(model)  # a clear error for non-CNNs before any data is loaded
    if split not in ("test", "train"):
        raise NetsightError(f"--split {split!r}: expected test or train")
    data = load_dataset(run.config.data, data_root, download)
    images = data.test_images if split == "test" else data.train_images
    stats = activation_statistics(model, images)
    tables = run.dir.tables
    caption = (f"Statistics of activations over the whole {split} set ({len(images):,} images) of "
               f"{run.config.data}, {_run_title(run)}. p1/p50/p99 are nearest-rank percentiles from a "
               f"{len(next(iter(stats.histograms.values()))[0])}-bin histogram (error at most half a bin). "
               f"Dead channels: never positive on any image.\n\n")
    md_cols = ["layer", "stage", "shape", "mean", "std", "min", "max", "zero_frac", "p1", "p50", "p99", "dead_channels"]
    return [
        write_csv(tables / "activations.csv", STAT_COLUMNS, stats.rows),
        write_text(tables / "activations.md", caption + markdown_table(md_cols, [[r[c] for c in md_cols] for r in stats.rows])),
        write_csv(tables / "activations_per_channel.csv", CHANNEL_COLUMNS, stats.per_channel),
        save_figure(plot_activation_histograms(stats, _run_title(run)), run.dir.figures / "activations.png"),
    ]


# ------------------------------------------------------------------ Zeiler & Fergus tools

def _prepare(path, data_root, download, device, split: str = "test"):
    from ..train.loop import resolve_device

    run = open_trained_run(path)
    dev = resolve_device(device)
    model = run.model(dev)
    conv_layers(model)
    data = load_dataset(run.config.data, data_root, download)
    if split not in ("test", "train"):
        raise NetsightError(f"--split {split!r}: expected test or train")
    images, labels = (data.test_images, data.test_labels) if split == "test" else (data.train_images, data.train_labels)
    return run, model, dev, data, images, labels


def _spread(n_total: int, n: int):
    """n indices spread evenly over a set (the course's test set is ordered by class)."""
    import torch

    if n < 1:
        raise NetsightError(f"--images {n}: expected an integer >= 1")
    return torch.linspace(0, n_total - 1, min(n, n_total)).round().long()


def inspect_deconv(path, layer: Optional[str] = None, images: int = 6, maps_per_image: int = 4, mode: str = "max",
                   data_root=None, download: bool = False, device: str = "cpu") -> list[Path]:
    """Project the strongest feature maps of `layer` for a few test images back to pixels."""
    from .. import zf
    from ..data import Dataset
    from ..report.figures import save_figure

    run, model, dev, data, pool, _ = _prepare(path, data_root, download, device)
    layer = layer or conv_layers(model)[-1]
    x = Dataset.normalise(pool[_spread(len(pool), images)].to(dev))
    result = zf.deconv(model, x, layer, maps_per_image, mode)
    return [save_figure(zf.plot(result, _run_title(run)), run.dir.figures / f"deconv_{layer}_{mode}.png")]


def inspect_top9(path, layer: Optional[str] = None, maps: Optional[int] = None, k: int = 9, split: str = "test",
                 data_root=None, download: bool = False, device: str = "cpu") -> list[Path]:
    from ..fileio import write_csv, write_json
    from ..report.figures import save_figure
    from ..report.figures_zf import plot_top9
    from .topk import top_patches

    import torch

    from .deconvnet_graph import make_deconvnet

    run, model, dev, data, pool, labels = _prepare(path, data_root, download, device, split)
    layer = layer or conv_layers(model)[-1]
    tp = top_patches(model, pool, layer, k=k, maps=maps)
    field, (h, w) = tp.top.field, data.image_shape[1:]
    rows = [{"map": m, "rank": j + 1, "activation": float(tp.top.values[m, j]), "image": int(tp.top.image_index[m, j]),
             "label": data.classes[int(labels[tp.top.image_index[m, j]])], "y": int(tp.top.positions[m, j, 0]),
             "x": int(tp.top.positions[m, j, 1]),
             "rf_clipped": int(field.clipped(int(tp.top.positions[m, j, 0]), int(tp.top.positions[m, j, 1]), h, w))}
            for m in range(tp.projections.shape[0]) for j in range(tp.projections.shape[1])]
    # how often would a unit's field be clipped if the top units sat anywhere on the map?
    top = make_deconvnet(model, layer, data.image_shape).activations(torch.zeros(1, *data.image_shape, device=dev))
    hf, wf = (top.shape[2], top.shape[3]) if top.dim() == 4 else (1, 1)
    positions_clipped = sum(field.clipped(y, x, h, w) for y in range(hf) for x in range(wf)) / (hf * wf)
    border = {"layer": tp.top.layer, "units": len(rows), "clipped": sum(r["rf_clipped"] for r in rows),
              "positions_clipped_share": positions_clipped, "receptive_field": list(field.size), "feature_map": [hf, wf]}
    return [
        save_figure(plot_top9(tp, _run_title(run)), run.dir.figures / f"top9_{layer}.png"),
        write_csv(run.dir.tables / f"top9_{layer}.csv", ["map", "rank", "activation", "image", "label", "y", "x", "rf_clipped"], rows),
        write_json(run.dir.tables / f"top9_{layer}_border.json", border),
    ]


def inspect_occlusion(path, layer: Optional[str] = None, images: int = 3, size: int = 6, stride: int = 2,
                      fill: float = 0.5, feature_map: Optional[int] = None, data_root=None, download: bool = False,
                      device: str = "cpu") -> list[Path]:
    from ..data import Dataset
    from ..report.figures import save_figure
    from ..report.figures_zf import plot_occlusion
    from .occlusion import occlusion_maps

    run, model, dev, data, pool, labels = _prepare(path, data_root, download, device)
    stages = conv_layers(model)
    layer = layer or stages[-1]
    idx = _spread(len(pool), images)
    x = Dataset.normalise(pool[idx].to(dev))
    y = [int(v) for v in labels[idx]]
    results = [occlusion_maps(model, x[i], y[i], layer, size, stride, fill, feature_map) for i in range(len(x))]
    fig = plot_occlusion(x.cpu(), y, results, data.classes, _run_title(run))
    return [save_figure(fig, run.dir.figures / f"occlusion_{layer}.png")]


def inspect_evolution(path, layer: Optional[str] = None, maps: int = 16, data_root=None, download: bool = False,
                      device: str = "cpu") -> list[Path]:
    from ..report.figures import save_figure
    from ..report.figures_zf import plot_evolution
    from .evolution import feature_evolution, snapshot_paths

    run, model, dev, data, pool, _ = _prepare(path, data_root, download, device)
    layer = layer or conv_layers(model)[-1]
    snaps = snapshot_paths(run.dir)
    done = int(run.summary.get("iterations_done") or 0)
    if done and all(i != done for i, _ in snaps):
        snaps.append((done, run.dir.weights))
    if len(snaps) < 2:
        raise NetsightError(f"{run.path}: no weight snapshots; train with --snapshots 100,500,1000,... to see features evolve")
    evo = feature_evolution(snaps, pool, layer, maps, dev)
    return [save_figure(plot_evolution(evo, _run_title(run)), run.dir.figures / f"evolution_{layer}.png")]


def inspect_invariance(path, images: int = 100, data_root=None, download: bool = False, device: str = "cpu") -> list[Path]:
    from ..data import Dataset
    from ..fileio import write_csv
    from ..report.figures import save_figure
    from ..report.figures_zf import plot_invariance
    from .invariance import INVARIANCE_COLUMNS, invariance_curves, invariance_rows

    run, model, dev, data, pool, labels = _prepare(path, data_root, download, device)
    idx = _spread(len(pool), images)
    curves = invariance_curves(model, Dataset.normalise(pool[idx].to(dev)), labels[idx].to(dev))
    return [
        save_figure(plot_invariance(curves, _run_title(run)), run.dir.figures / "invariance.png"),
        write_csv(run.dir.tables / "invariance.csv", INVARIANCE_COLUMNS, invariance_rows(curves)),
    ]


def inspect_sequence(path, images: int = 512, data_root=None, download: bool = False, device: str = "cpu") -> list[Path]:
    """Recurrent runs: accuracy after reading k rows, and gradient norm per input row at
    initialisation (the same seed rebuilds the very initial weights) and after training."""
    import torch

    from ..fileio import write_csv
    from ..models import ModelConfig, build_model
    from ..train.loop import resolve_device
    from .sequence import accuracy_by_rows_read, gradient_by_step

    run = open_trained_run(path)
    dev = resolve_device(device)
    final = run.model(dev)
    config = ModelConfig.from_dict(run.info["model"])
    torch.manual_seed(run.config.seed)  # what the trainer did before building the model
    initial = build_model(config).to(dev)
    data = load_dataset(run.config.data, data_root, download)
    by_rows = accuracy_by_rows_read(final, data.test_images, data.test_labels)
    idx = _spread(len(data.test_images), images)
    grads = {name: gradient_by_step(m, data.test_images[idx], data.test_labels[idx]) for name, m in
             (("init", initial), ("final", final))}
    rows = []
    for t in range(by_rows.shape[0]):
        row = {"step": t + 1}
        for name, g in grads.items():
            q = torch.quantile(g[:, t].double(), torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
            row.update({f"{name}_q25": q[0].item(), f"{name}_median": q[1].item(), f"{name}_q75": q[2].item(),
                        f"{name}_mean": g[:, t].double().mean().item()})
        rows.append(row)
    return [
        write_csv(run.dir.tables / "rows_read.csv", ["rows_read", "test_acc"],
                  [{"rows_read": k + 1, "test_acc": float(a)} for k, a in enumerate(by_rows)]),
        write_csv(run.dir.tables / "gradient_by_step.csv", list(rows[0]), rows),
    ]


def explore_run(path, out: Optional[str | Path] = None, layers: Optional[list[str]] = None, data_root=None,
                download: bool = False, device: str = "cpu") -> list[Path]:
    """`netsight explore`: every unit of every conv layer (or of `layers`) in one offline HTML page,
    RUN_DIR/explore.html unless `out` names another file."""
    from ..data.images import tensor_images
    from ..report.explore_page import layer_data, render_page
    from .evolution import feature_evolution, snapshot_paths
    from .explore import explore_layer

    run, model, dev, data, pool, labels = _prepare(path, data_root, download, device)
    convs = conv_layers(model)
    chosen = layers or convs
    unknown = [layer for layer in chosen if layer not in convs]
    if unknown:
        raise NetsightError(f"--layers {','.join(unknown)}: not a conv layer of this model (conv layers: {', '.join(convs)})")
    snaps = snapshot_paths(run.dir)
    done = int(run.summary.get("iterations_done") or 0)
    if snaps and done and all(i != done for i, _ in snaps):
        snaps.append((done, run.dir.weights))
    names = [f"test image {i}" for i in range(len(pool))]
    label_names = [data.classes[int(v)] for v in labels]
    source = tensor_images(pool)
    built = []
    for layer in chosen:
        units = explore_layer(model, source, layer)
        if len(snaps) >= 2:
            evo = feature_evolution(snaps, pool, layer, units.top.values.shape[0], dev)
            units.evolution = {"iterations": evo.iterations, "projections": evo.projections, "values": evo.values}
        built.append(layer_data(units, names, label_names, layer == convs[0]))
    subtitle = (f"{sum(len(b['units']) for b in built)} units over the {len(pool):,} test images of {run.config.data}; "
                f"run {run.path.name}, {run.summary.get('iterations_done', '?')} iterations, final test accuracy "
                f"{100 * float(run.summary.get('final_test_acc') or 0):.2f}%")
    target = Path(out) if out is not None else run.path / "explore.html"
    return [write_text(target, render_page(f"netsight explore: {_run_title(run)}", subtitle, built))]
