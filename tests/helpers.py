"""Helpers several test modules share (test modules never import each other): small models with a
known behaviour, and the autograd pieces the reference computations are built from."""

from __future__ import annotations

import copy

import torch
from torch import nn


class Exploding(nn.Module):
    """A conv layer and a ReLU, then forward raises: hooks must be removed all the same."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)
        self.relu1 = nn.ReLU()

    def forward(self, x):
        self.relu1(self.conv1(x))
        raise RuntimeError("boom")


class RectifiedBackward(torch.autograd.Function):
    """ReLU whose backward rectifies the incoming signal instead of gating by the input (the deconvnet's
    rule, written independently of netsight for the references)."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp_min(0)

    @staticmethod
    def backward(ctx, grad):
        return grad.clamp_min(0)


class RectifiedReLU(nn.Module):
    def forward(self, x):
        return RectifiedBackward.apply(x)


def swap_relus(model: nn.Module) -> nn.Module:
    """A copy of the model with every nn.ReLU replaced by RectifiedReLU: autograd through it is the
    deconvnet's projection (the oracle the deconvnet tests compare with)."""
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.ReLU):
                setattr(module, name, RectifiedReLU())
    return model
