"""What every compute function does with its arguments before it computes: images from a folder,
a tensor or an `ImageSource`; the model's device; the default layer; the normalisation's shape;
the labels to follow (given, or the model's own predictions)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from ..data.images import ImageSource, folder_images, tensor_images
from ..errors import NetsightError
from ..models.external import first_conv_channels
from .stages import conv_layers

Norm = Optional[Sequence[float]]


def images(
    source,
    model: Optional[nn.Module] = None,
    size: Optional[int] = None,
    resize: Optional[int] = None,
    labels: Optional[torch.Tensor] = None,
) -> ImageSource:
    """An `ImageSource` from a folder path or a tensor ([N,C,H,W], uint8 or float in [0, 1]).

    A folder's files are converted to the model's input channels; `size` crops the centre
    `size` x `size` after resizing the shorter side to `resize` (default: `size`)."""
    if isinstance(source, ImageSource):
        return source
    if isinstance(source, (str, Path)):
        channels = first_conv_channels(model) if model is not None else 3
        return folder_images(source, channels, resize or size, size)
    return tensor_images(source, labels)


def input_channels(model: nn.Module, width: int) -> tuple[int, str]:
    """(the input channels `model` takes, where that is read): a CNN's first convolution, or for a
    netsight row reader its recurrent cell's input size over the image width."""
    from ..models.rnn import RowSequenceClassifier

    if isinstance(model, RowSequenceClassifier):
        return model.rnn.input_size // max(1, width), f"its {model.rnn.input_size} inputs per row"
    return first_conv_channels(model), "its first convolution's input channels"


def source_for(model: nn.Module, x) -> ImageSource:
    """`x` as images for `model`, refused when their channels are not the model's."""
    source = images(x, model)
    channels, where = input_channels(model, source.shape[2])
    if source.shape[0] != channels:
        raise NetsightError(f"images have {source.shape[0]} channel(s), the model takes {channels} ({where})")
    return source


def device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def default_layer(model: nn.Module, layer: Optional[str]) -> str:
    """`layer`, or the model's last convolution."""
    return layer or conv_layers(model)[-1]


def check_norm(model: nn.Module, mean: Norm, std: Norm) -> None:
    if (mean is None) != (std is None):
        raise NetsightError("mean and std go together: give both or neither")
    if mean is not None and std is not None:
        channels = first_conv_channels(model)
        if len(mean) != channels or len(std) != channels:
            raise NetsightError(f"mean/std: {len(mean)}/{len(std)} values, the model takes {channels} input channel(s)")


def labels_to_follow(model: nn.Module, batch: torch.Tensor, labels) -> tuple[list[int], str]:
    """The given labels ("true class"), or the model's own prediction per image ("predicted class")."""
    if labels is not None:
        return [int(v) for v in labels], "true class"
    with torch.no_grad():
        was_training = model.training
        model.eval()
        try:
            predicted = model(batch).argmax(1)
        finally:
            model.train(was_training)
    return [int(v) for v in predicted], "predicted class"
