"""Datasets as uint8 tensors: the registry of names, where the pixels come from, and the
`Dataset` the trainer and the analyses consume.

Images stay uint8 ([N,C,H,W], 4x smaller than float) and move to the device once;
`Dataset.normalise` turns a batch into floats in [0,1] on the fly (the course's /255).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional

import torch

from ..errors import NetsightError
from .sources import default_cache_dir, download, load_bundled, load_from_root
from .specs import DATASETS, DatasetSpec, get_spec

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "load_dataset", "get_spec"]


@dataclass(frozen=True)
class Dataset:
    name: str
    train_images: torch.Tensor  # uint8 [N,C,H,W]
    train_labels: torch.Tensor  # int64 [N]
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: tuple[str, ...]
    source: str  # "bundled", "path:<folder>" or "download:<folder>"

    @property
    def image_shape(self) -> tuple[int, int, int]:
        channels, height, width = self.train_images.shape[1:]
        return channels, height, width

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def device(self) -> torch.device:
        return self.train_images.device

    def to(self, device: torch.device | str) -> "Dataset":
        move = lambda t: t.to(device, non_blocking=True)  # noqa: E731
        return replace(
            self,
            train_images=move(self.train_images),
            train_labels=move(self.train_labels),
            test_images=move(self.test_images),
            test_labels=move(self.test_labels),
        )

    @staticmethod
    def normalise(images: torch.Tensor) -> torch.Tensor:
        """uint8 pixels -> float32 in [0, 1]."""
        return images.float().div_(255.0)


def load_dataset(
    name: str,
    data_root: Optional[str | Path] = None,
    download_: bool = False,
    cache_dir: Optional[str | Path] = None,
) -> Dataset:
    """Load a named dataset: from `data_root` if given, else the official download if
    `download_`, else the bundled copy."""
    spec = get_spec(name)
    if data_root is not None:
        arrays, source = load_from_root(Path(data_root), spec)
    elif download_:
        arrays, source = download(spec, Path(cache_dir) if cache_dir else default_cache_dir())
    else:
        arrays, source = load_bundled(spec)
    train_x, train_y, test_x, test_y = (torch.from_numpy(a.copy()) for a in arrays)
    for split, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if tuple(x.shape[1:]) != (spec.channels, spec.size, spec.size):
            raise NetsightError(
                f"{source}: {split} images are {tuple(x.shape[1:])}, expected {(spec.channels, spec.size, spec.size)}"
            )
        # degenerate splits are refused here, whatever the source (the readers name the file first when they can)
        if len(x) == 0:
            raise NetsightError(f"{source}: the {split} split holds no images")
        missing = [spec.classes[c] for c in range(len(spec.classes)) if not bool((y == c).any())]
        if missing:
            raise NetsightError(f"{source}: the {split} split has no images of class(es) {', '.join(missing)}")
    return Dataset(spec.name, train_x, train_y, test_x, test_y, spec.classes, source)
