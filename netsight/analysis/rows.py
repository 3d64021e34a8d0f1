"""Which input rows a classifier's decision rests on: per-row attribution and row occlusion, for a
recurrent row reader (one row = one step of its sequence) and, on the same digits, for a CNN.

Per image and input row t (one step of the sequence), three scores of how much row t matters for
the true class:

- gradient x input (Simonyan, Vedaldi & Zisserman 2014; Shrikumar et al. 2016): x * d logit / dx,
  summed over the row's pixels;
- integrated gradients (Sundararajan, Taly & Yan, "Axiomatic Attribution for Deep Networks", 2017)
  from the all-zero (black, MNIST's background) image, a `steps`-point midpoint Riemann sum, summed
  over the row's pixels; over all rows it adds up to logit(x) - logit(0) (completeness);
- row occlusion (Zeiler & Fergus 2014's occlusion, one row at a time): p(true class | x) minus
  p(true class | x with row t set to the background 0).

Both attributions are netsight's attribution methods (`analysis/attribution.py`, the same code
as `inspect --attributions`) summed per row, of the true class's logit. Backward passes through cuDNN's RNN kernels refuse to
run in eval mode ("cudnn RNN backward can only be called in training mode"), so every gradient here
is taken under `torch.backends.cudnn.flags(enabled=False)`: the model stays in eval mode and PyTorch
uses its native RNN kernels for that pass (on CPU the flag changes nothing).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch

from .attribution import attribute
from .recurrent import as_pixels

METHODS = ("gradient_x_input", "integrated_gradients", "occlusion")
IG_STEPS = 32  # points of the integrated-gradients path (midpoint rule)


@contextmanager
def cudnn_free_backward() -> Iterator[None]:
    """Gradients through nn.RNN/LSTM/GRU in eval mode: cuDNN off for the pass (its RNN backward needs training mode)."""
    with torch.enable_grad(), torch.backends.cudnn.flags(enabled=False):
        yield


def row_attribution(model, images: torch.Tensor, targets: torch.Tensor, method: str, steps: int = IG_STEPS) -> torch.Tensor:
    """[N, T]: `method` (gradient_x_input | integrated_gradients, midpoint rule) of the `targets` logit, summed per input row."""
    if method not in ("gradient_x_input", "integrated_gradients"):
        raise ValueError(f"row attribution: unknown method {method!r}")
    x = as_pixels(images)
    with cudnn_free_backward():
        maps = attribute(model, x, method, targets=targets.long().tolist(), steps=steps, ig_method="riemann_middle").maps
    return maps.sum(2)  # over the row's pixels (the maps have their channels summed): [N, H]


@torch.no_grad()
def row_occlusion(model, images: torch.Tensor, targets: torch.Tensor, fill: float = 0.0, batch_size: int = 2000) -> torch.Tensor:
    """[N, T]: p(target | x) - p(target | x with row t set to `fill`)."""
    device = next(model.parameters()).device
    x = as_pixels(images).to(device)
    targets = targets.to(device).long()
    n, _, rows, _ = x.shape
    was_training = model.training
    model.eval()
    try:
        base = model(x).softmax(1).gather(1, targets[:, None])[:, 0]
        drops = torch.empty(n, rows, device=device)
        for t in range(rows):
            xt = x.clone()
            xt[:, :, t] = fill
            for s in range(0, n, batch_size):
                p = model(xt[s : s + batch_size]).softmax(1).gather(1, targets[s : s + batch_size, None])[:, 0]
                drops[s : s + batch_size, t] = base[s : s + batch_size] - p
    finally:
        model.train(was_training)
    return drops.cpu()


@dataclass
class RowImportance:
    labels: torch.Tensor  # [N] the true classes the scores are of
    scores: dict[str, torch.Tensor]  # method (METHODS) -> [N, T]

    def per_class(self, method: str, num_classes: int) -> torch.Tensor:
        """[classes, T] the mean score per class (NaN for a class without images)."""
        s = self.scores[method].double()
        out = torch.full((num_classes, s.shape[1]), float("nan"), dtype=torch.float64)
        for c in range(num_classes):
            m = self.labels == c
            if m.any():
                out[c] = s[m].mean(0)
        return out

    def first_row_share(self, method: str, row: int) -> float:
        """The share of images whose highest-scoring row is `row`."""
        return (self.scores[method].argmax(1) == row).double().mean().item()


def row_importance(
    model, images: torch.Tensor, labels: torch.Tensor, steps: int = IG_STEPS, batch_size: int = 250
) -> RowImportance:
    """All three scores for every image (uint8 [N,H,W] / [N,C,H,W] or float in [0, 1]), in batches."""
    scores: dict[str, list[torch.Tensor]] = {m: [] for m in METHODS}
    for s in range(0, len(images), batch_size):
        x, y = as_pixels(images[s : s + batch_size]), labels[s : s + batch_size]
        scores["gradient_x_input"].append(row_attribution(model, x, y, "gradient_x_input"))
        scores["integrated_gradients"].append(row_attribution(model, x, y, "integrated_gradients", steps))
        scores["occlusion"].append(row_occlusion(model, x, y))
    return RowImportance(labels.cpu().long(), {m: torch.cat(v) for m, v in scores.items()})
