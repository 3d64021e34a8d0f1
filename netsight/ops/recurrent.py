"""Inside a recurrent row reader: every hidden unit and every gate at every step, in one pass.

Karpathy, Johnson & Fei-Fei, "Visualizing and Understanding Recurrent Networks" (2015): the
hidden state and the gate activations of an LSTM/GRU after each step, the fraction of steps each
gate is left-saturated (< 0.1) or right-saturated (> 0.9) (their Fig. 3), and interpretable cells
found from the inputs that drive them most.

This module owns the numbers; the techniques `rows`, `units`, `gates` and `trajectories` draw them.

- `run_steps(model, images)`: `Steps` for one batch: the hidden state [N, T, H] that the model's own
  `nn.RNN`/`nn.LSTM`/`nn.GRU` returns, the LSTM cell state, and the gates recomputed from the
  module's weights with PyTorch's equations (gate order i, f, g, o for the LSTM; r, z, n for the
  GRU). The recomputed hidden state is checked against the module's output (|difference| <= 1e-5,
  else an error): the gates shown are the ones the network used.
- `UnitStats`: a streaming accumulator; `update` once per batch, `result` at the end. In one pass
  over a set it keeps, for every unit at once: its top-k (image, step) pairs by hidden value with the
  unit's whole trace for each, the mean trace per class, the saturation fractions per gate, and the
  correlation of the unit's value with three simple features of the current input row (ink, the
  stroke's horizontal position, the row index).
- `unit_stats(model, images, labels)`: that pass over a whole set, in batches.

Class selectivity of unit u (defined here): a_c = |mean over the images of class c and the T steps
of h_u| (from the mean traces); selectivity = (a_max - mean of the other a_c) / (a_max + mean of the
other a_c), in [0, 1]: 0 when every class drives the unit equally, 1 when only one class moves it
away from 0 (the class-selectivity index of Morcos et al. 2018 on |mean activation|, since tanh
units are signed). Its class is `best_class` = argmax a_c.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
from torch import nn

from ..errors import NetsightError
from ..models.rnn import RowSequenceClassifier

LEFT, RIGHT = 0.1, 0.9  # Karpathy et al.: a gate below 0.1 is left-saturated, above 0.9 right-saturated
TOLERANCE = 1e-5  # recomputed hidden state vs the module's own output (absolute)
FEATURES = ("ink", "position", "row")  # what `UnitStats` correlates each unit with


@dataclass
class Steps:
    """One batch, every step, every unit."""

    hidden: torch.Tensor  # [N, T, H] hidden state after each row (nn.RNN/LSTM/GRU's output)
    cell: Optional[torch.Tensor]  # LSTM cell state [N, T, H]; None otherwise
    gates: dict[str, torch.Tensor]  # lstm: input, forget, output (sigmoid values); gru: reset, update; rnn: {}


def gate_names(cell: str) -> tuple[str, ...]:
    """The sigmoid gates of a cell type, in the order they are reported."""
    names = {"lstm": ("input", "forget", "output"), "gru": ("reset", "update"), "rnn": ()}
    if cell not in names:
        raise NetsightError(f"cell {cell!r}: expected rnn, lstm or gru")
    return names[cell]


def check_recurrent(model: nn.Module) -> RowSequenceClassifier:
    if not isinstance(model, RowSequenceClassifier):
        name = getattr(getattr(model, "netsight_config", None), "name", type(model).__name__)
        raise NetsightError(f"model {name} is not a recurrent row reader; this analysis needs rnn, lstm or gru")
    if model.rnn.num_layers != 1 or model.rnn.bidirectional:
        raise NetsightError("recurrent analyses read one-layer, one-direction cells")
    return model


def as_pixels(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N,H,W] / [N,C,H,W] or float in [0, 1] -> float [N,C,H,W] in [0, 1]."""
    x = images.float().div(255.0) if images.dtype == torch.uint8 else images.float()
    return x[:, None] if x.dim() == 3 else x


@torch.no_grad()
def run_steps(model: RowSequenceClassifier, images: torch.Tensor) -> Steps:
    """Hidden state, cell state and gates of `model` on `images` ([N,C,H,W] in [0, 1]) after every row."""
    model = check_recurrent(model)
    rnn = model.rnn
    device = rnn.weight_ih_l0.device
    x = model.rows(as_pixels(images).to(device))  # [N, T, I]
    with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
        reference, _ = rnn(x)
    # in the weights' own precision (float32): the same arithmetic as the module, half the cost of float64
    w_ih, w_hh = rnn.weight_ih_l0, rnn.weight_hh_l0
    b_ih = rnn.bias_ih_l0 if rnn.bias else torch.zeros(w_ih.shape[0], dtype=w_ih.dtype, device=device)
    b_hh = rnn.bias_hh_l0 if rnn.bias else torch.zeros(w_hh.shape[0], dtype=w_hh.dtype, device=device)
    xin = x.to(w_ih.dtype) @ w_ih.T + b_ih  # [N, T, gates*H]: the input's part of every gate, all steps at once
    n, steps, _ = x.shape
    size = rnn.hidden_size
    h = torch.zeros(n, size, dtype=w_hh.dtype, device=device)
    c = torch.zeros_like(h)
    hs, cs = [], []
    gates: dict[str, list[torch.Tensor]] = {g: [] for g in gate_names(model.cell)}
    for t in range(steps):
        rec = h @ w_hh.T + b_hh
        if model.cell == "lstm":
            a = xin[:, t] + rec
            i, f, g, o = (
                a[:, :size].sigmoid(),
                a[:, size : 2 * size].sigmoid(),
                a[:, 2 * size : 3 * size].tanh(),
                a[:, 3 * size :].sigmoid(),
            )
            c = f * c + i * g
            h = o * c.tanh()
            cs.append(c)
            for name, v in zip(("input", "forget", "output"), (i, f, o), strict=True):
                gates[name].append(v)
        elif model.cell == "gru":
            xr, xz, xn = xin[:, t, :size], xin[:, t, size : 2 * size], xin[:, t, 2 * size :]
            hr, hz, hn = rec[:, :size], rec[:, size : 2 * size], rec[:, 2 * size :]
            r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
            h = (1 - z) * (xn + r * hn).tanh() + z * h
            gates["reset"].append(r)
            gates["update"].append(z)
        else:
            a = xin[:, t] + rec
            h = a.tanh() if rnn.nonlinearity == "tanh" else a.relu()
        hs.append(h)
    hidden = torch.stack(hs, 1)
    gap = (hidden.double() - reference.double()).abs().max().item() if n else 0.0
    if gap > TOLERANCE:
        raise NetsightError(f"recomputed {model.cell} hidden state differs from the module's output by {gap:.2e} (> {TOLERANCE})")
    return Steps(
        reference.float(),
        torch.stack(cs, 1).float() if cs else None,
        {name: torch.stack(v, 1).float() for name, v in gates.items()},
    )


def row_features(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """[N,C,H,W] in [0, 1] -> per (image, row) [N, T]: ink (mean pixel of the row), position (the
    row's centre of mass across the width, 0 = left edge, 1 = right edge; NaN for an empty row) and
    the row index (0-based)."""
    x = as_pixels(images).mean(1)  # [N, T, W] over channels
    n, steps, width = x.shape
    ink = x.mean(2)
    mass = x.sum(2)
    cols = torch.linspace(0, 1, width, device=x.device)
    position = torch.where(mass > 0, (x * cols).sum(2) / mass.clamp_min(1e-12), torch.full_like(mass, float("nan")))
    row = torch.arange(steps, device=x.device, dtype=x.dtype).expand(n, steps)
    return {"ink": ink, "position": position, "row": row}


@dataclass
class UnitStatsResult:
    cell: str
    images: int  # N, images seen
    steps: int  # T
    hidden: int  # H
    top_values: torch.Tensor  # [H, k] the unit's k largest hidden values over (image, step), descending
    top_images: torch.Tensor  # [H, k] image index of each (first_index + position in the batch)
    top_steps: torch.Tensor  # [H, k] step (row, 0-based) of each
    top_traces: torch.Tensor  # [H, k, T] the unit's value at every step of that image
    class_mean: torch.Tensor  # [classes, T, H] mean hidden state per class and step
    class_count: torch.Tensor  # [classes] images per class
    left: dict[str, torch.Tensor]  # gate -> [H] fraction of (image, step) pairs with the gate < 0.1
    right: dict[str, torch.Tensor]  # gate -> [H] fraction of (image, step) pairs with the gate > 0.9
    gate_mean: dict[str, torch.Tensor]  # gate -> [H] mean gate value
    correlation: dict[str, torch.Tensor]  # feature (FEATURES) -> [H] Pearson correlation of h_u with it over (image, step)
    selectivity: torch.Tensor = field(init=False)  # [H] (module docstring)
    best_class: torch.Tensor = field(init=False)  # [H]

    def __post_init__(self) -> None:
        a = self.class_mean.mean(1).abs()  # [classes, H]
        seen = self.class_count > 0
        a = a[seen]
        classes = torch.nonzero(seen).flatten()
        best = a.argmax(0)
        top = a.max(0).values
        others = (a.sum(0) - top) / max(a.shape[0] - 1, 1)
        self.selectivity = torch.where(top + others > 0, (top - others) / (top + others).clamp_min(1e-12), torch.zeros_like(top))
        self.best_class = classes[best]


def _top_order(values: torch.Tensor, k: int) -> torch.Tensor:
    """[k, H] positions of each column's k largest values, equal values in position order (a stable
    descending sort, cut at k). topk picks them; a tie across the cut (rare) falls back to the full sort."""
    k = min(k, values.shape[0])
    top, pos = values.topk(k, dim=0)
    kth = top[-1]
    if bool(((values == kth).sum(0) > (top == kth).sum(0)).any()):
        return torch.sort(values, dim=0, descending=True, stable=True).indices[:k]
    pos = pos.sort(dim=0).values
    return pos.gather(0, torch.sort(values.gather(0, pos), dim=0, descending=True, stable=True).indices)


class UnitStats:
    """One pass, every unit: feed `update` the batches of a set in order, then read `result()`."""

    def __init__(self, cell: str, hidden: int, num_classes: int, top: int = 9):
        self.cell, self.size, self.num_classes, self.k = cell, hidden, num_classes, top
        self.gates = gate_names(cell)
        self.n = 0
        self.steps = 0
        self._top_v: Optional[torch.Tensor] = None  # [k', H]
        self._top_i: Optional[torch.Tensor] = None  # [k', H] flat index image * T + step
        self._top_tr: Optional[torch.Tensor] = None  # [k', H, T]
        self._class_sum: Optional[torch.Tensor] = None
        self._class_count = torch.zeros(num_classes, dtype=torch.float64)
        self._left = {g: torch.zeros(hidden, dtype=torch.float64) for g in self.gates}
        self._right = {g: torch.zeros(hidden, dtype=torch.float64) for g in self.gates}
        self._gsum = {g: torch.zeros(hidden, dtype=torch.float64) for g in self.gates}
        # per feature: sums over the (image, step) pairs where the feature is defined
        self._m = {f: torch.zeros(6, hidden, dtype=torch.float64) for f in FEATURES}  # count, Σh, Σh², Σf, Σf², Σhf

    def update(self, steps: Steps, labels: torch.Tensor, first_index: int, inputs: Optional[torch.Tensor] = None) -> None:
        """One batch: `steps` of images first_index .. first_index + N - 1, their `labels`, and (for the
        feature correlations) the `inputs` themselves ([N,C,H,W] in [0, 1] or uint8)."""
        h = steps.hidden.detach().cpu().double()
        n, t, size = h.shape
        if size != self.size:
            raise NetsightError(f"unit stats: {size} hidden units given, {self.size} expected")
        if self.steps and t != self.steps:
            raise NetsightError(f"unit stats: {t} steps given, {self.steps} before")
        if first_index != self.n:
            raise NetsightError(f"unit stats: batch starts at image {first_index}, expected {self.n} (batches in order)")
        self.steps = t
        labels = labels.detach().cpu().long()
        # top-k: earlier entries first so a stable sort breaks ties by (image, step) order
        flat = h.reshape(n * t, size)
        idx = (torch.arange(n * t, dtype=torch.long) + first_index * t)[:, None].expand(n * t, size)
        kept = 0 if self._top_v is None else self._top_v.shape[0]
        if self._top_v is not None and self._top_i is not None:
            flat, idx = torch.cat([self._top_v, flat]), torch.cat([self._top_i, idx])
        order = _top_order(flat, self.k)  # [k, H] positions in the candidates
        self._top_v = flat.gather(0, order)
        self._top_i = idx.gather(0, order)
        # the whole trace of each chosen (image, step): from this batch, or kept from an earlier one
        units = torch.arange(size)[None].expand_as(order)
        traces = h.permute(0, 2, 1)[(order - kept).clamp_min(0) // t, units]  # [k, H, T]
        if self._top_tr is not None and kept:
            earlier = self._top_tr[order.clamp_max(kept - 1), units]
            traces = torch.where((order < kept)[:, :, None], earlier, traces)
        self._top_tr = traces
        # mean trace per class
        if self._class_sum is None:
            self._class_sum = torch.zeros(self.num_classes, t, size, dtype=torch.float64)
        self._class_sum.index_add_(0, labels, h)
        self._class_count += torch.bincount(labels, minlength=self.num_classes).double()
        for g in self.gates:
            v = steps.gates[g].detach().cpu().double()
            self._left[g] += (v < LEFT).sum((0, 1))
            self._right[g] += (v > RIGHT).sum((0, 1))
            self._gsum[g] += v.sum((0, 1))
        if inputs is not None:
            flat_h = h.reshape(n * t, size)
            squares = flat_h * flat_h
            for name, f in row_features(inputs.cpu()).items():
                f = f.double().reshape(n * t)
                ok = (~torch.isnan(f)).double()  # pairs where the feature is defined
                f0 = torch.nan_to_num(f, nan=0.0)
                m = self._m[name]
                m[0] += ok.sum()
                m[1] += ok @ flat_h
                m[2] += ok @ squares
                m[3] += f0.sum()
                m[4] += (f0 * f0).sum()
                m[5] += f0 @ flat_h
        self.n += n

    def result(self) -> UnitStatsResult:
        if self._top_v is None or self._top_i is None or self._top_tr is None or self._class_sum is None:
            raise NetsightError("unit stats: no images")
        pairs = self.n * self.steps
        corr = {}
        for name, m in self._m.items():
            cnt = m[0].clamp_min(1)
            cov = m[5] / cnt - (m[1] / cnt) * (m[3] / cnt)
            vh = m[2] / cnt - (m[1] / cnt) ** 2
            vf = m[4] / cnt - (m[3] / cnt) ** 2
            den = (vh * vf).clamp_min(0).sqrt()
            corr[name] = torch.where(
                (den > 1e-12) & (m[0] > 1), cov / den.clamp_min(1e-12), torch.full_like(den, float("nan"))
            ).float()
        return UnitStatsResult(
            self.cell,
            self.n,
            self.steps,
            self.size,
            self._top_v.T.float().contiguous(),
            (self._top_i // self.steps).T.contiguous(),
            (self._top_i % self.steps).T.contiguous(),
            self._top_tr.permute(1, 0, 2).float().contiguous(),
            (self._class_sum / self._class_count.clamp_min(1)[:, None, None]).float(),
            self._class_count.long(),
            {g: (v / pairs).float() for g, v in self._left.items()},
            {g: (v / pairs).float() for g, v in self._right.items()},
            {g: (v / pairs).float() for g, v in self._gsum.items()},
            corr,
        )


def unit_stats(
    model: RowSequenceClassifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    batch_size: int = 500,
    top: int = 9,
    num_classes: Optional[int] = None,
    progress: bool = False,
) -> UnitStatsResult:
    """`UnitStats` over a whole set ([N,H,W] / [N,C,H,W], uint8 or float in [0, 1]) in batches: one pass
    (with `progress`, a bar with its time left: netsight.progress)."""
    from ..progress import bar

    model = check_recurrent(model)
    was_training = model.training
    model.eval()
    classes = num_classes or model.fc.out_features
    acc = UnitStats(model.cell, model.rnn.hidden_size, classes, top)
    try:
        with bar(len(images), f"{model.cell} hidden units", progress, "img") as shown:
            for s in range(0, len(images), batch_size):
                x = as_pixels(images[s : s + batch_size])
                acc.update(run_steps(model, x), labels[s : s + batch_size], s, x)
                shown.update(len(x))
    finally:
        model.train(was_training)
    return acc.result()
