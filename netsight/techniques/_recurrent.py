"""What the recurrent techniques (rows, units, gates, trajectories) share: the recurrent model of a
target, the --unit option and its check, the images they use, and the one `unit_stats` pass that
`units` and `gates` both read (kept for the last target asked, so one `inspect --units --gates`
or one suite run makes a single pass over the test set)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from ..errors import NetsightError
from ..models.rnn import RowSequenceClassifier
from ..ops.recurrent import UnitStatsResult, check_recurrent, unit_stats
from .target import Target, spread
from .base import Option

UNIT = Option(
    "unit",
    "int",
    None,
    "units: the hidden unit to draw, 0-based (default: the most class-selective unit and the units tracking ink, position, row)",
    lo=0,
    hi=1_000_000,
)

_CACHE: list = []  # one entry: (model, key, indices, result)


def recurrent(t: Target) -> RowSequenceClassifier:
    return check_recurrent(t.model)


def checked_unit(t: Target, unit: Optional[int]) -> Optional[int]:
    model = recurrent(t)
    size = model.rnn.hidden_size
    if unit is not None and not 0 <= unit < size:
        raise NetsightError(f"--unit {unit}: {model.cell} has {size} hidden units (0..{size - 1})")
    return unit


def chosen(t: Target, count: int) -> torch.Tensor:
    """The indices of the `count` images used, spread over the set (all of them if count >= the set)."""
    n = len(t.images)
    return torch.arange(n) if count >= n else spread(n, count)


def pixels(t: Target, index: torch.Tensor) -> torch.Tensor:
    """The images at `index`: the run's uint8 pixels where there are any, else float in [0, 1]."""
    return t.pixels[index] if t.pixels is not None else t.images.load(index.tolist())


def labels(t: Target, index: torch.Tensor) -> torch.Tensor:
    if t.labels is None:
        raise NetsightError(f"{t.title}: the recurrent analyses need labelled images")
    return t.labels[index]


def stats(t: Target, count: int) -> tuple[torch.Tensor, UnitStatsResult]:
    """(image indices, the `unit_stats` pass over them), computed once per target and count."""
    key = (id(t.pixels), id(t.images), count, str(t.device))
    for model, k, index, result in _CACHE:
        if model is t.model and k == key:
            return index, result
    index = chosen(t, count)
    result = unit_stats(recurrent(t), pixels(t, index), labels(t, index), num_classes=len(t.classes) or None, progress=t.progress)
    _CACHE[:] = [(t.model, key, index, result)]
    return index, result


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> Path:
    from safetensors.torch import save_file

    from ..fileio import atomic_write

    return atomic_write(path, lambda p: save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(p)))
