"""Model parameter randomisation: the weights of a trained model replaced by fresh random ones,
from the logits down (cascading) or one layer at a time (independent), as in Adebayo et al.,
"Sanity Checks for Saliency Maps", NeurIPS 2018, section 3.1.

A layer is re-initialised the way its own initialisation does it: the module's `reset_parameters()`
(nn.Conv2d, nn.Linear, nn.BatchNorm*, nn.LSTM/GRU/RNN, nn.LayerNorm, nn.Embedding all have one),
under a generator seeded from (`seed`, layer name) inside `torch.random.fork_rng`, so the caller's
random state is untouched and a layer gets the same random weights whether it is randomised alone
or in the cascade. The user's model is never modified: every function works on a deep copy.

A "layer" is a module that holds parameters of its own (not only through its children); they are
ordered from the logits down to the first layer by the order in which the model registers them
(`named_modules`), which is the order of the forward pass for sequential models such as LeNet5,
cnn-bn and torchvision's ResNets.
"""

from __future__ import annotations

import copy
import zlib
from typing import Callable, Iterator, Optional, cast

import torch
from torch import nn

from ..errors import NetsightError

__all__ = ["randomisable_layers", "check_layers", "cascading", "independent", "reinitialise_"]


def randomisable_layers(model: nn.Module) -> list[str]:
    """The names of the modules with parameters of their own (convolutions, linear layers, batch
    norms, recurrent cells, ...), from the logits down to the first layer."""
    names = [name for name, m in model.named_modules() if name and any(True for _ in m.parameters(recurse=False))]
    return names[::-1]


def _layer_seed(seed: int, layer: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(layer.encode())) % (2**63)


def _modules(model: nn.Module, layers: list[str]) -> list[nn.Module]:
    """The modules named `layers`, each checked: it exists, has parameters and a reset_parameters()."""
    found = dict(model.named_modules())
    known = randomisable_layers(model)
    out = []
    for layer in layers:
        if layer not in found:
            raise NetsightError(f"layer {layer!r}: not a module of the model; its layers with parameters: {', '.join(known)}")
        m = found[layer]
        if layer not in known:
            raise NetsightError(f"layer {layer!r} ({type(m).__name__}) has no parameters of its own to randomise")
        if not callable(getattr(m, "reset_parameters", None)):
            raise NetsightError(
                f"layer {layer!r} ({type(m).__name__}) has parameters but no reset_parameters(): "
                "netsight cannot re-initialise it the way its own init does"
            )
        out.append(m)
    return out


def check_layers(model: nn.Module, layers: Optional[list[str]] = None) -> list[str]:
    """`layers` (default: every randomisable layer), each checked as randomisation will need it; a model
    with no layer to randomise is refused. Returns them."""
    layers = randomisable_layers(model) if layers is None else list(layers)
    if not layers:
        raise NetsightError(f"{type(model).__name__}: no module with parameters of its own to randomise")
    _modules(model, layers)
    return layers


def reinitialise_(model: nn.Module, layer: str, seed: int = 0) -> None:
    """Re-initialise `layer` of `model` in place with its own reset_parameters(), seeded from
    (`seed`, `layer`); the global random state is left as it was."""
    (module,) = _modules(model, [layer])
    devices = sorted({p.device.index or 0 for p in module.parameters(recurse=False) if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(_layer_seed(seed, layer))
        cast(Callable[[], None], module.reset_parameters)()  # checked callable by _modules


def _copy(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model)
    twin.train(model.training)
    return twin


def cascading(model: nn.Module, seed: int = 0) -> Iterator[tuple[str, nn.Module]]:
    """Cascading randomisation: for each layer from the logits down, (that layer, a deep copy of the
    model with it and every layer above it re-initialised). Each yielded model is a copy of its own."""
    layers = randomisable_layers(model)
    _modules(model, layers)  # every layer checked before the first copy is yielded
    work = _copy(model)
    for layer in layers:
        reinitialise_(work, layer, seed)
        yield layer, _copy(work)


def independent(model: nn.Module, layer: str, seed: int = 0) -> nn.Module:
    """Independent randomisation: a deep copy of the model with only `layer` re-initialised."""
    _modules(model, [layer])
    twin = _copy(model)
    reinitialise_(twin, layer, seed)
    return twin
