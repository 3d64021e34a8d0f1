"""Feature evolution during training: Zeiler & Fergus 2014, Figure 4.

For weight snapshots saved during training (`netsight train --snapshots ...`), find for
each feature map of a layer the strongest activation over a dataset with that snapshot's
weights, and project it to pixel space with the deconvnet. Reading a row left to right
shows one feature forming.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..data import Dataset
from ..errors import NetsightError
from ..train.rundir import RunDir, load_weights
from .deconvnet_graph import make_deconvnet
from .topk import top_activations


@dataclass
class Evolution:
    layer: str
    iterations: list[int]
    projections: torch.Tensor  # [maps, snapshots, C, H, W]
    values: torch.Tensor  # [maps, snapshots] strongest activation


def snapshot_paths(rundir: RunDir) -> list[tuple[int, Path]]:
    paths = sorted(rundir.snapshots.glob("iter_*.safetensors")) if rundir.snapshots.is_dir() else []
    return [(int(p.stem.split("_")[1]), p) for p in paths]


@torch.no_grad()
def feature_evolution(
    snapshots: list[tuple[int, Path]], images: torch.Tensor, layer: str, maps: int = 16, device: str | torch.device = "cpu"
) -> Evolution:
    """`snapshots`: (iteration, weights file) pairs, in training order."""
    if not snapshots:
        raise NetsightError("no weight snapshots; train with --snapshots 100,500,1000,... to see features evolve")
    projections, values = [], []
    for _, path in snapshots:
        model = load_weights(path, device)
        top = top_activations(model, images, layer, k=1)
        n = min(maps, top.values.shape[0])
        deconv = make_deconvnet(model, layer, tuple(images.shape[1:]))
        x = Dataset.normalise(images[top.image_index[:n, 0]].to(device))
        proj = deconv.project(x, torch.arange(n, device=x.device), "max", top.positions[:n, 0])
        projections.append(proj.images.cpu())
        values.append(top.values[:n, 0])
    return Evolution(deconv.target, [i for i, _ in snapshots], torch.stack(projections, 1), torch.stack(values, 1))
