"""Fleets: K models of one architecture as one module, trained as one batched program.

The runs of a study are tiny (LeNet5 at batch 50, RNNs of 32-128 units), so one run leaves an
accelerator mostly idle, waiting on kernel launches. A fleet stacks K members' parameters and
runs them together (the idea of HFTA, Wang et al., MLSys 2021), without mixing them:

- convolutions become one grouped convolution (member k owns channel block k), so batch norm
  over the K*C channels keeps per-member statistics, and ReLU, pooling and dropout act on each
  channel as before;
- fully connected layers and the recurrent cells are batched matrix products (`bmm`), one
  matrix per member; the cells' maths is PyTorch's `nn.RNN`/`nn.LSTM`/`nn.GRU` (gate order,
  both biases), checked against those modules in the tests.

Every fleet tensor is the K members' tensors stacked along the first dimension, so
`tensor.view(K, *member_shape)[k]` is member k's: `member_state` / `load_member_states` move
weights, buffers and optimiser moments between a fleet and its members with nothing else to
know. Inputs are [K, B, C, H, W], outputs [K, B, classes].
"""

from __future__ import annotations

from typing import Sequence, TypeVar

import torch
from torch import nn

from ..errors import NetsightError
from .rnn import RowSequenceClassifier

_ELEMENTWISE = (nn.ReLU, nn.MaxPool2d, nn.Dropout, nn.Dropout2d, nn.Identity)
_M = TypeVar("_M", bound=nn.Module)


def _all_of(kind: type[_M], members: Sequence[nn.Module]) -> list[_M] | None:
    """`members` as a list of `kind`, or None when one of them is something else."""
    typed = [m for m in members if isinstance(m, kind)]
    return typed if len(typed) == len(members) else None


def _pair(value: tuple[int, ...]) -> tuple[int, int]:
    """A Conv2d's kernel_size/stride/padding/dilation: always two ints (torch types them tuple[int, ...])."""
    first, second = value
    return first, second


class FleetLinear(nn.Module):
    """K independent Linear layers on [B, K, F] -> [B, K, out]."""

    def __init__(self, members: Sequence[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in members]).clone())  # [K, out, in]
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in members]).clone()) if members[0].bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [B, K, F]
        y = torch.bmm(x.transpose(0, 1), self.weight.transpose(1, 2))  # [K, B, out]
        if self.bias is not None:
            y = y + self.bias[:, None]
        return y.transpose(0, 1)


class _KFlatten(nn.Module):
    """[B, K*C, H, W] -> [B, K, C*H*W]: each member's flatten, in its own (c, h, w) order."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.k, -1)


class _KBatchNorm1d(nn.BatchNorm1d):
    """Batch norm of [B, K, F] with per-member statistics (as BatchNorm1d over K*F features)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, k, f = x.shape
        return super().forward(x.reshape(b, k * f)).reshape(b, k, f)


def _cat_params(new: nn.Module, members: Sequence[nn.Module]) -> nn.Module:
    with torch.no_grad():
        for name, p in new.named_parameters(recurse=False):
            p.copy_(torch.cat([getattr(m, name).detach() for m in members]))
        for name, b in new.named_buffers(recurse=False):
            if b.dim() == 0:  # num_batches_tracked: one count, the same for every member
                b.copy_(getattr(members[0], name))
            else:
                b.copy_(torch.cat([getattr(m, name) for m in members]))
    return new


def _fleet_layer(layer: nn.Module, members: Sequence[nn.Module], k: int) -> nn.Module:
    if isinstance(layer, nn.Conv2d):
        if layer.padding_mode != "zeros":
            raise NetsightError(f"fleet: padding_mode {layer.padding_mode!r} is not supported")
        padding = layer.padding if isinstance(layer.padding, str) else _pair(layer.padding)
        new: nn.Module = nn.Conv2d(
            k * layer.in_channels,
            k * layer.out_channels,
            _pair(layer.kernel_size),
            _pair(layer.stride),
            padding,
            _pair(layer.dilation),
            groups=k * layer.groups,
            bias=layer.bias is not None,
        )
        return _cat_params(new, members)
    if isinstance(layer, nn.BatchNorm2d):
        new = nn.BatchNorm2d(k * layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
        return _cat_params(new, members)
    if isinstance(layer, nn.BatchNorm1d):
        new = _KBatchNorm1d(k * layer.num_features, layer.eps, layer.momentum, layer.affine, layer.track_running_stats)
        return _cat_params(new, members)
    if isinstance(layer, nn.Linear):
        linears = _all_of(nn.Linear, members)
        if linears is None:
            raise NetsightError("fleet: members differ in architecture")
        return FleetLinear(linears)
    if isinstance(layer, nn.Flatten):
        return _KFlatten(k)
    if isinstance(layer, _ELEMENTWISE):
        if isinstance(layer, nn.Dropout) and any(m.p != layer.p for m in members):
            raise NetsightError("fleet: members must share their dropout probability")
        return layer
    raise NetsightError(f"fleet: cannot stack layer {type(layer).__name__}")


class FleetSequential(nn.Sequential):
    """K copies of a flat Sequential CNN (netsight's lenet5, cnn-bn), with the same layer names."""

    def __init__(self, members: Sequence[nn.Sequential]):
        self.k = len(members)
        names = [n for n, _ in members[0].named_children()]
        layers = [(n, _fleet_layer(getattr(members[0], n), [getattr(m, n) for m in members], self.k)) for n in names]
        super().__init__()
        for n, layer in layers:
            self.add_module(n, layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [K, B, C, H, W] -> [K, B, classes]
        k, b = x.shape[:2]
        h = x.transpose(0, 1).reshape(b, k * x.shape[2], *x.shape[3:])
        for layer in self:
            h = layer(h)
        return h.transpose(0, 1)


class _FleetCell(nn.Module):
    """K single-layer recurrent cells with PyTorch's parameter names and gate order."""

    GATES = {"rnn": 1, "lstm": 4, "gru": 3}

    def __init__(self, cell: str, members: Sequence[nn.RNNBase]):
        super().__init__()
        self.cell = cell
        first = members[0]
        if first.num_layers != 1 or first.bidirectional or not first.bias or (cell == "rnn" and first.nonlinearity != "tanh"):
            raise NetsightError("fleet: only single-layer, unidirectional recurrent cells with biases (tanh RNN)")

        def stacked(name: str) -> nn.Parameter:
            return nn.Parameter(torch.stack([m.get_parameter(name).detach() for m in members]).clone())

        self.weight_ih_l0 = stacked("weight_ih_l0")
        self.weight_hh_l0 = stacked("weight_hh_l0")
        self.bias_ih_l0 = stacked("bias_ih_l0")
        self.bias_hh_l0 = stacked("bias_hh_l0")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [K, B, T, D] -> the last hidden state [K, B, H]."""
        k, b, t, d = x.shape
        hidden = self.weight_hh_l0.shape[2]
        # the input projections of all steps at once; only the recurrent product stays in the loop
        xi = torch.baddbmm(self.bias_ih_l0[:, None], x.reshape(k, b * t, d), self.weight_ih_l0.transpose(1, 2))
        xi = xi.view(k, b, t, -1)
        w_hh, b_hh = self.weight_hh_l0.transpose(1, 2), self.bias_hh_l0[:, None]
        h = x.new_zeros(k, b, hidden)
        c = x.new_zeros(k, b, hidden) if self.cell == "lstm" else x.new_empty(0)  # the LSTM's cell state (unused by rnn, gru)
        for step in range(t):
            gh = torch.baddbmm(b_hh, h, w_hh)
            gx = xi[:, :, step]
            if self.cell == "rnn":
                h = torch.tanh(gx + gh)
            elif self.cell == "lstm":
                i, f, g, o = (gx + gh).chunk(4, dim=2)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
            else:  # gru: r, z, n; the reset gate scales the recurrent part of n, bias included
                xr, xz, xn = gx.chunk(3, dim=2)
                hr, hz, hn = gh.chunk(3, dim=2)
                r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
                n = torch.tanh(xn + r * hn)
                h = (1 - z) * n + z * h
        return h


class FleetRowSequence(nn.Module):
    """K row-reading recurrent classifiers (netsight's rnn, lstm, gru), with the same names."""

    def __init__(self, members: Sequence[RowSequenceClassifier]):
        super().__init__()
        self.k = len(members)
        self.rnn = _FleetCell(members[0].cell, [m.rnn for m in members])
        self.fc = FleetLinear([m.fc for m in members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [K, B, C, H, W] -> [K, B, classes]
        k, b, c, h, w = x.shape
        rows = x.permute(0, 1, 3, 4, 2).reshape(k, b, h, w * c)  # RowSequenceClassifier.rows, per member
        last = self.rnn(rows)
        return self.fc(last.transpose(0, 1)).transpose(0, 1)


def stack_models(members: Sequence[nn.Module]) -> nn.Module:
    """One fleet module holding `members` (same architecture), initialised with their weights."""
    if not members:
        raise NetsightError("fleet: no members")
    if (recurrent := _all_of(RowSequenceClassifier, members)) is not None:
        if len({(m.cell, tuple(m.rnn.get_parameter("weight_ih_l0").shape), tuple(m.fc.weight.shape)) for m in recurrent}) != 1:
            raise NetsightError("fleet: members differ in cell or size")
        return FleetRowSequence(recurrent)
    if (sequential := _all_of(nn.Sequential, members)) is not None:
        shapes = {tuple((n, tuple(t.shape)) for n, t in m.state_dict().items()) for m in sequential}
        if len(shapes) != 1:
            raise NetsightError("fleet: members differ in architecture")
        return FleetSequential(sequential)
    raise NetsightError(f"fleet: cannot stack {type(members[0]).__name__}")


def member_tensor(fleet_tensor: torch.Tensor, member_like: torch.Tensor, k: int, index: int) -> torch.Tensor:
    """Member `index`'s part of a stacked fleet tensor (scalars are shared by all members)."""
    if fleet_tensor.numel() == member_like.numel():
        return fleet_tensor.detach().clone().view_as(member_like)
    return fleet_tensor.detach().view(k, *member_like.shape)[index].clone()


def member_state(fleet: nn.Module, template: dict[str, torch.Tensor], k: int, index: int) -> dict[str, torch.Tensor]:
    """Member `index`'s state dict (same keys as an ordinary model's, given by `template`)."""
    state = fleet.state_dict()
    return {name: member_tensor(state[name], t, k, index) for name, t in template.items()}


def stack_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The fleet state dict holding these member state dicts (the inverse of member_state)."""
    out = {}
    for name, first in states[0].items():
        if first.dim() == 0:
            out[name] = first.clone()
        else:
            out[name] = torch.cat([s[name].reshape(1, *first.shape) for s in states]).reshape(-1, *first.shape[1:])
    return out


def load_member_states(fleet: nn.Module, states: Sequence[dict[str, torch.Tensor]]) -> None:
    fleet_state = fleet.state_dict()
    stacked = stack_states(states)
    with torch.no_grad():
        for name, t in fleet_state.items():
            t.copy_(stacked[name].reshape(t.shape))


__all__ = [
    "FleetSequential",
    "FleetRowSequence",
    "FleetLinear",
    "stack_models",
    "member_state",
    "member_tensor",
    "stack_states",
    "load_member_states",
]
