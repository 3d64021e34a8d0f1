"""The order in which a suite's units of work start: the longest first.

With several workers (`--jobs N`, a Ray cluster) a long run started last leaves the other workers
idle while it finishes; starting the units in decreasing order of estimated work (the classic
longest-processing-time rule) leaves only short runs for the end. The estimate is the FLOPs of
training and evaluation, counted once per model shape on the meta device (no compute):
3 x forward per training image, 1 x forward per evaluated test image.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional, Sequence

import torch

from ..data.specs import DATASETS
from ..models import ModelConfig, build_model
from ..train.config import TrainConfig

DEFAULT_SHAPE, DEFAULT_TEST_SIZE = (1, 28, 28), 10_000  # a dataset the registry does not describe


@lru_cache(maxsize=None)
def forward_flops(model: str, shape: tuple[int, int, int], classes: int, hidden: Optional[int]) -> int:
    """FLOPs of one image's forward pass (matmuls and convolutions, as torch's FlopCounterMode counts)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the caller's stream alone
        net = build_model(ModelConfig(model, shape, classes, hidden)).eval().to("meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, *shape, device="meta"))
    return counter.get_total_flops()


def estimated_flops(config: TrainConfig) -> float:
    spec = DATASETS.get(config.data)
    shape = (spec.channels, spec.size, spec.size) if spec else DEFAULT_SHAPE
    test_size = spec.test_size if spec else DEFAULT_TEST_SIZE
    classes = len(spec.classes) if spec else 10
    evaluations = math.ceil(config.iterations / config.eval_every)
    images = 3 * config.iterations * config.batch_size + evaluations * test_size
    return forward_flops(config.model, shape, classes, config.hidden) * images


def unit_flops(unit: list) -> float:
    """The estimated FLOPs of a unit of work ([(RunSpec, path), ...]): all its runs together."""
    return sum(estimated_flops(spec.config) for spec, _ in unit)


def longest_first(units: Sequence[list]) -> list[list]:
    """Units of work sorted by estimated FLOPs, largest first; ties keep the suite's order."""
    return sorted(units, key=lambda unit: -unit_flops(unit))
