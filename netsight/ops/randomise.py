"""Model parameter randomisation: the weights of a trained model replaced by fresh random ones,
from the logits down (cascading) or one layer at a time (independent), as in Adebayo et al.,
"Sanity Checks for Saliency Maps", NeurIPS 2018, section 3.1.

A layer is re-initialised the way its own initialisation does it: the module's `reset_parameters()`
(nn.Conv2d, nn.Linear, nn.LSTM/GRU/RNN, nn.Embedding all have one), under a generator seeded from
(`seed`, layer name) inside `torch.random.fork_rng`, so the caller's random state is untouched and a
layer gets the same random weights whether it is randomised alone or in the cascade. A randomisation
draw is one `seed`: draw d of the sanity checks uses seed `--seed + d`.

Normalisation layers (BatchNorm, InstanceNorm, LayerNorm, GroupNorm) are the exception: their own
`reset_parameters()` restores the identity affine (weight 1, bias 0) and, for batch norm, running
statistics 0 and 1, so a "randomised" normalisation layer becomes a fixed per-channel rescaling and the
maps barely change (cnn-bn trained 300 iterations on MNIST, each batch norm randomised alone, 16 test
images, 3 draws: Spearman of |map| of the gradient 0.97-0.99 for bn3 and bn4). Here (`randomise_norm_`)
its weight and bias are drawn like a convolution's or linear layer's: from a normal distribution with
mean 0 and the root mean square of the layer's own trained values (random signs at the trained scale; a
bias that is all 0 stays 0), and its running mean and variance are permuted across channels (each with
its own permutation). Measured the same way, the gradient's maps then correlate 0.17-0.20 with the
trained model's after any one batch norm is randomised, as after any one convolution or linear layer
(0.17-0.21): a batch norm counts as much as the layers around it.

The user's model is never modified: `cascading` and `independent` work on deep copies; `reinitialise_`
and `randomised` change the model they are given (a working copy the caller owns).

A "layer" is a module that holds parameters of its own (not only through its children); they are
ordered from the logits down to the first layer by the order in which the model registers them
(`named_modules`), which is the order of the forward pass for sequential models such as LeNet5,
cnn-bn and torchvision's ResNets. Deep models are measured at a schedule of depths (`depth_schedule`):
every depth up to `most`, else the top few and evenly spaced depths down to the first layer.
"""

from __future__ import annotations

import copy
import zlib
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, cast

import torch
from torch import nn

from ..errors import NetsightError

__all__ = [
    "randomisable_layers",
    "check_layers",
    "cascading",
    "independent",
    "randomised",
    "reinitialise_",
    "randomise_norm_",
    "depth_schedule",
]

NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)
_NORM_AFFINE, _NORM_STATS = ("weight", "bias"), ("running_mean", "running_var")


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


def randomise_norm_(module: nn.Module) -> None:
    """A normalisation layer randomised in place from the global generator: weight and bias drawn from a
    normal with mean 0 and the root mean square of their trained values; running mean and variance (those
    it has) each permuted across channels."""
    with torch.no_grad():
        for name in _NORM_AFFINE:
            t = getattr(module, name, None)
            if isinstance(t, torch.Tensor):
                t.copy_(torch.randn(t.shape).to(t) * t.pow(2).mean().sqrt())
        for name in _NORM_STATS:
            t = getattr(module, name, None)
            if isinstance(t, torch.Tensor) and t.numel() > 1:
                order = torch.randperm(t.numel()).to(t.device)
                t.copy_(t.reshape(-1)[order].reshape(t.shape))


def reinitialise_(model: nn.Module, layer: str, seed: int = 0) -> None:
    """Re-initialise `layer` of `model` in place, seeded from (`seed`, `layer`): its own
    reset_parameters(), or for a normalisation layer `randomise_norm_`; the global random state is left
    as it was."""
    (module,) = _modules(model, [layer])
    devices = sorted({p.device.index or 0 for p in module.parameters(recurse=False) if p.device.type == "cuda"})
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        torch.manual_seed(_layer_seed(seed, layer))
        if isinstance(module, NORMS):
            randomise_norm_(module)
        else:
            cast(Callable[[], None], module.reset_parameters)()  # checked callable by _modules


def _copy(model: nn.Module) -> nn.Module:
    twin = copy.deepcopy(model)
    twin.train(model.training)
    return twin


def cascading(model: nn.Module, seed: int = 0, copies: bool = True) -> Iterator[tuple[str, nn.Module]]:
    """Cascading randomisation: for each layer from the logits down, (that layer, a deep copy of the
    model with it and every layer above it re-initialised). Each yielded model is a copy of its own;
    with `copies=False` it is one working copy, re-initialised further at each step (read it before the
    next step, do not change it): no copy per depth."""
    layers = randomisable_layers(model)
    _modules(model, layers)  # every layer checked before the first copy is yielded
    work = _copy(model)
    for layer in layers:
        reinitialise_(work, layer, seed)
        yield layer, (_copy(work) if copies else work)


def independent(model: nn.Module, layer: str, seed: int = 0) -> nn.Module:
    """Independent randomisation: a deep copy of the model with only `layer` re-initialised."""
    _modules(model, [layer])
    twin = _copy(model)
    reinitialise_(twin, layer, seed)
    return twin


@contextmanager
def randomised(work: nn.Module, layer: str, seed: int = 0) -> Iterator[nn.Module]:
    """Independent randomisation without a copy of the model: `work` (a copy the caller owns) with only
    `layer` re-initialised inside the block, its trained values put back after it."""
    (module,) = _modules(work, [layer])
    saved = {k: v.detach().clone() for k, v in module.state_dict().items()}
    try:
        reinitialise_(work, layer, seed)
        yield work
    finally:
        module.load_state_dict(saved)


def depth_schedule(n_layers: int, most: Optional[int] = None, top: int = 3) -> list[int]:
    """The depths (1: the logits' layer .. `n_layers`: the first layer) at which randomisation is
    measured: all of them when there are at most `most` (None: no limit); else the `top` highest, then
    `most - top` depths evenly spaced down to the first layer, which is always included (the fully
    randomised model)."""
    if n_layers < 1:
        return []
    if most is None or n_layers <= most:
        return list(range(1, n_layers + 1))
    if most < 1:
        raise ValueError(f"most={most}: at least one depth")
    top = max(0, min(top, most - 1))
    rest = most - top
    spaced = torch.linspace(top + 1, n_layers, rest).round().long().tolist() if rest > 1 else [n_layers]
    return sorted(set(range(1, top + 1)) | {int(d) for d in spaced})
