"""Forward hooks and evaluation mode, always scoped: every hook registered here is removed
when the `with` block ends, also when the forward pass raises (captum's and fastai's habit),
and a model put in eval mode gets its own mode back. Nothing else in netsight registers hooks.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from ..errors import NetsightError


@contextmanager
def forward_hooks(model: nn.Module, hooks: dict[str, Callable]) -> Iterator[None]:
    """Register `hooks[name]` as a forward hook on each named submodule, for the block only."""
    modules = dict(model.named_modules())
    missing = [n for n in hooks if n not in modules]
    if missing:
        raise NetsightError(
            f"layer(s) {', '.join(missing)} not in the model; its layers are: {', '.join(n for n in modules if n)}"
        )
    handles = []
    try:
        for name, hook in hooks.items():
            handles.append(modules[name].register_forward_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


@contextmanager
def capture_outputs(
    model: nn.Module, names: Sequence[str], detach: bool = True, clone: bool = False
) -> Iterator[dict[str, torch.Tensor]]:
    """Record the output of each named module on every forward pass inside the block
    (the latest pass overwrites). `clone` keeps a copy, safe from later in-place operations."""
    store: dict[str, torch.Tensor] = {}

    def make(name: str):
        def hook(module, inputs, output):
            out = output.detach() if detach else output
            store[name] = out.clone() if clone else out

        return hook

    with forward_hooks(model, {n: make(n) for n in names}):
        yield store


def leaf_execution_order(model: nn.Module, example: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """The leaf modules in the order one forward pass calls them (each once, first call)."""
    order: list[str] = []
    leaves = {n: m for n, m in model.named_modules() if n and not list(m.children())}

    def make(name: str):
        def hook(module, inputs, output):
            if name not in order:
                order.append(name)

        return hook

    was_training = model.training
    model.eval()
    try:
        with forward_hooks(model, {n: make(n) for n in leaves}), torch.no_grad():
            model(example)
    finally:
        model.train(was_training)
    return [(n, leaves[n]) for n in order]


def count_hooks(model: nn.Module) -> int:
    """How many forward hooks the model's modules hold (the tests use it to prove none leak)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@contextmanager
def normalised_input(model: nn.Module, mean, std) -> Iterator[None]:
    """For the block only, the model normalises its input ((x - mean) / std per channel) itself:
    the analyses then hand it [0, 1] pixels (occlusion's grey, invariance's zero fill, deconv
    projections all live in pixel space) while the model sees what it was trained on. No-op
    when `mean` is None."""
    if mean is None:
        yield
        return

    def hook(module, args):
        x = args[0]
        m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        s = torch.as_tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return ((x - m) / s, *args[1:])

    handle = model.register_forward_pre_hook(hook)
    try:
        yield
    finally:
        handle.remove()


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """The model in eval mode for the block; its own train/eval mode is restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
