"""The model registry: every network netsight trains is created by name from a
`ModelConfig`, and a saved model rebuilds from that config alone (it travels inside the
weights file as metadata)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from ..errors import NetsightError
from .cnn import CNNBatchNorm, LeNet5
from .rnn import RowSequenceClassifier

INITS = ("torch", "starter")


@dataclass(frozen=True)
class ModelConfig:
    name: str
    input_shape: tuple[int, int, int] = (1, 28, 28)  # channels, height, width of the images
    num_classes: int = 10
    hidden: Optional[int] = None  # recurrent nets: hidden units (default 128); None for models without
    dropout: Optional[float] = None  # cnn-bn: drop probability (default 0.5, the starter's keep_prob); None elsewhere
    init: str = "torch"  # "torch": PyTorch's default; "starter": course code's trunc. normal std 0.1, bias 0.1

    def __post_init__(self) -> None:
        # a setting the model does not have is None (a CNN records no hidden size); one it has gets its default
        entry = MODELS.get(self.name)
        if entry is None:
            return  # build_model names the unknown model
        for name, default in SETTING_DEFAULTS.items():
            if name not in entry.settings:
                object.__setattr__(self, name, None)
            elif getattr(self, name) is None:
                object.__setattr__(self, name, default)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise NetsightError(f"model config: unknown field(s) {', '.join(sorted(unknown))}")
        d = dict(d)
        if "input_shape" in d:
            d["input_shape"] = tuple(d["input_shape"])
        return cls(**d)


@dataclass(frozen=True)
class ModelEntry:
    family: str  # "cnn" or "rnn": picks the training protocol's defaults
    description: str
    build: Callable[[ModelConfig], nn.Module] = field(repr=False)
    settings: tuple[str, ...] = ()  # which of SETTING_DEFAULTS this model has


# model-specific settings and their defaults; a model without one records None for it
SETTING_DEFAULTS = {"hidden": 128, "dropout": 0.5}


def _hidden(c: ModelConfig) -> int:
    if c.hidden is None:  # impossible for a model with the setting: ModelConfig.__post_init__ fills in the default
        raise NetsightError(f"model {c.name}: no hidden size in its config")
    return c.hidden


def _dropout(c: ModelConfig) -> float:
    if c.dropout is None:  # as for _hidden
        raise NetsightError(f"model {c.name}: no dropout probability in its config")
    return c.dropout


MODELS: dict[str, ModelEntry] = {
    "lenet5": ModelEntry(
        "cnn",
        "LeNet5 as the assignment lists it (conv32-pool-conv64-pool-fc1024-fc)",
        lambda c: LeNet5(c.input_shape, c.num_classes),
    ),
    "cnn-bn": ModelEntry(
        "cnn",
        "the report's improved CNN: 3 conv blocks with batch norm, dropout, fc256",
        lambda c: CNNBatchNorm(c.input_shape, c.num_classes, _dropout(c)),
        ("dropout",),
    ),
    "rnn": ModelEntry(
        "rnn",
        "vanilla (tanh) RNN over image rows, last state -> linear",
        lambda c: RowSequenceClassifier("rnn", c.input_shape, c.num_classes, _hidden(c)),
        ("hidden",),
    ),
    "lstm": ModelEntry(
        "rnn",
        "LSTM over image rows, last state -> linear",
        lambda c: RowSequenceClassifier("lstm", c.input_shape, c.num_classes, _hidden(c)),
        ("hidden",),
    ),
    "gru": ModelEntry(
        "rnn",
        "GRU over image rows, last state -> linear",
        lambda c: RowSequenceClassifier("gru", c.input_shape, c.num_classes, _hidden(c)),
        ("hidden",),
    ),
}


def models_with(setting: str) -> list[str]:
    return [n for n, e in MODELS.items() if setting in e.settings]


def get_entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise NetsightError(f"model {name!r}: unknown; expected one of {', '.join(MODELS)}") from None


def build_model(config: ModelConfig) -> nn.Module:
    """A freshly initialised model (seed the global RNG first for reproducible weights)."""
    entry = get_entry(config.name)
    if config.init not in INITS:
        raise NetsightError(f"--init {config.init!r}: expected one of {', '.join(INITS)}")
    if (config.hidden is not None and config.hidden < 1) or (config.dropout is not None and not 0 <= config.dropout < 1):
        raise NetsightError(f"model {config.name}: hidden must be >= 1 and dropout in [0, 1)")
    model = entry.build(config)
    if config.init == "starter":
        starter_init_(model)
    model.netsight_config = config  # type: ignore[assignment]  # Module.__setattr__ is typed for tensors and modules only
    return model


@torch.no_grad()
def starter_init_(model: nn.Module) -> None:
    """The course starter code's initialisation: weights ~ normal(0, 0.1) truncated at 2 std
    (TensorFlow's truncated_normal), biases 0.1. Batch-norm scales/shifts keep their defaults."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear, nn.RNNBase)):
            for name, param in module.named_parameters(recurse=False):
                if name.startswith("weight"):
                    nn.init.trunc_normal_(param, std=0.1, a=-0.2, b=0.2)
                elif name.startswith("bias"):
                    nn.init.constant_(param, 0.1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def model_config_json(config: ModelConfig) -> str:
    return json.dumps(config.to_dict(), sort_keys=True)
