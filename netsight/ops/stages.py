"""Which modules of a CNN are 'stages' of which convolution layer.

For every Conv2d, in execution order, its stages are the conv output and the first ReLU,
max-pool and batch norm that follow it before the next convolution or the classifier
(Flatten/Linear). Works for any CNN made of standard modules, nested Sequentials included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..errors import NetsightError
from .hooks import leaf_execution_order

STAGE_TYPES = {"relu": (nn.ReLU,), "pool": (nn.MaxPool2d,), "bn": (nn.BatchNorm2d,)}


@dataclass(frozen=True)
class Stage:
    layer: str  # the convolution's name
    stage: str  # conv | relu | pool | bn
    module: str  # the module whose output this stage is

    @property
    def label(self) -> str:
        return self.layer if self.stage == "conv" else f"{self.layer}/{self.stage}"


def conv_stages(model: nn.Module, input_shape: tuple[int, ...]) -> list[Stage]:
    order = leaf_execution_order(model, torch.zeros(1, *input_shape, device=_device(model)))
    stages: list[Stage] = []
    current: Optional[str] = None
    seen: set[str] = set()
    for name, module in order:
        if isinstance(module, nn.Conv2d):
            current, seen = name, set()
            stages.append(Stage(name, "conv", name))
        elif isinstance(module, (nn.Flatten, nn.Linear)):
            current = None
        elif current is not None:
            for kind, types in STAGE_TYPES.items():
                if isinstance(module, types) and kind not in seen:
                    seen.add(kind)
                    stages.append(Stage(current, kind, name))
    if not stages:
        cfg = getattr(model, "netsight_config", None)
        raise NetsightError(f"model {getattr(cfg, 'name', type(model).__name__)} has no Conv2d layer; this analysis needs a CNN")
    return stages


def conv_layers(model: nn.Module) -> list[str]:
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not names:
        cfg = getattr(model, "netsight_config", None)
        raise NetsightError(f"model {getattr(cfg, 'name', type(model).__name__)} has no Conv2d layer; this analysis needs a CNN")
    return names


def _device(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
