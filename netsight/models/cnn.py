"""The assignment's convolutional networks, built from named modules.

Every layer is its own `nn.Module` (`conv1`, `relu1`, `pool1`, ...) in one flat
`nn.Sequential`, so analyses can hook any stage by name, and the deconvnet can walk the
layers in order. Convolutions use "SAME" padding (k // 2) as the course's TensorFlow code
did, so 28x28 inputs give the report's 7x7x64 after two poolings; fully connected sizes are
inferred from the input shape, so 32x32 (or colour) inputs work too.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn


def _flat_size(features: nn.Module, input_shape: tuple[int, int, int]) -> int:
    with torch.no_grad():
        return int(features(torch.zeros(1, *input_shape)).numel())


class LeNet5(nn.Sequential):
    """conv 5x5x32 + ReLU, max-pool 2, conv 5x5x64 + ReLU, max-pool 2, FC -> 1024 + ReLU, FC -> classes."""

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int = 10):
        features = [
            ("conv1", nn.Conv2d(input_shape[0], 32, 5, padding=2)),
            ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2)),
            ("conv2", nn.Conv2d(32, 64, 5, padding=2)),
            ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2)),
            ("flatten", nn.Flatten()),
        ]
        flat = _flat_size(nn.Sequential(OrderedDict(features)), input_shape)
        super().__init__(
            OrderedDict(
                features
                + [
                    ("fc1", nn.Linear(flat, 1024)),
                    ("relu3", nn.ReLU()),
                    ("fc2", nn.Linear(1024, num_classes)),
                ]
            )
        )


class CNNBatchNorm(nn.Sequential):
    """The report's improved CNN, exactly as it lists it:

    conv 5x5x32 + ReLU, pool, BN; conv 3x3x64 + ReLU, pool, BN, dropout;
    conv 3x3x64 + ReLU, pool, BN; FC -> 256, BN, dropout; FC 256 -> classes.
    Pooling rounds up ("SAME" pooling: 28 -> 14 -> 7 -> 4). The report puts no ReLU after
    the 256-unit layer; neither do we, so results stay comparable.
    """

    def __init__(self, input_shape: tuple[int, int, int], num_classes: int = 10, dropout: float = 0.5):
        features = [
            ("conv1", nn.Conv2d(input_shape[0], 32, 5, padding=2)),
            ("relu1", nn.ReLU()),
            ("pool1", nn.MaxPool2d(2, ceil_mode=True)),
            ("bn1", nn.BatchNorm2d(32)),
            ("conv2", nn.Conv2d(32, 64, 3, padding=1)),
            ("relu2", nn.ReLU()),
            ("pool2", nn.MaxPool2d(2, ceil_mode=True)),
            ("bn2", nn.BatchNorm2d(64)),
            ("drop2", nn.Dropout(dropout)),
            ("conv3", nn.Conv2d(64, 64, 3, padding=1)),
            ("relu3", nn.ReLU()),
            ("pool3", nn.MaxPool2d(2, ceil_mode=True)),
            ("bn3", nn.BatchNorm2d(64)),
            ("flatten", nn.Flatten()),
        ]
        flat = _flat_size(nn.Sequential(OrderedDict(features)).eval(), input_shape)
        super().__init__(
            OrderedDict(
                features
                + [
                    ("fc1", nn.Linear(flat, 256)),
                    ("bn4", nn.BatchNorm1d(256)),
                    ("drop4", nn.Dropout(dropout)),
                    ("fc2", nn.Linear(256, num_classes)),
                ]
            )
        )
