"""Which unit of another network matches each unit of this one: Li, Yosinski, Clune, Lipson & Hopcroft,
"Convergent Learning: Do different neural networks learn the same representations?" (ICLR 2016).

The paper's measure: the Pearson correlation of two units' activations over every image and every position
of their feature maps, and for each unit of one network the unit of the other that correlates with it most
(its "one-to-one" best match; several units may share one). Both networks see the same images in one
streamed pass: per layer only the sums the correlations need are kept (float64: each unit's sum and sum of
squares, and the cross products of every pair, [units, units]), so memory does not grow with the images.
Each layer is read where the dataset pass reads it (a conv's ReLU where it feeds one: `resolve_graph_targets`).

The paper found that some units are learned by every network and others by one only. A best match is biased
upwards (it is a maximum over many units), so it needs a chance level beside it: the same best match against a
network of the same architecture with untrained weights (`techniques.explore.fully_randomised`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

from ..data.images import ImageSource
from ..errors import NetsightError
from .deconvnet_graph import resolve_graph_targets
from .hooks import evaluating, forward_hooks, normalised_input


@dataclass
class BestMatch:
    """Per unit of a layer of network A, the unit of network B that correlates with it most, and that correlation."""

    unit: torch.Tensor  # [units of A] int64: index into B's units
    correlation: torch.Tensor  # [units of A] float64 in [-1, 1]


def unit_correlations(
    model_a: nn.Module,
    model_b: nn.Module,
    source: ImageSource,
    layers: Sequence[str],
    mean: Optional[Sequence[float]] = None,
    std: Optional[Sequence[float]] = None,
    batch_size: int = 64,
) -> dict[str, torch.Tensor]:
    """Per layer, the Pearson correlation [units of A, units of B] of every pair of units over all images of
    `source` and all positions (a unit that never changes correlates 0 with everything)."""
    device = next(model_a.parameters()).device
    first = source.load([0]).to(device)
    with normalised_input(model_a, mean, std), normalised_input(model_b, mean, std), evaluating(model_a), evaluating(model_b):
        targets_a = resolve_graph_targets(model_a, list(layers), first, flag="--layers")
        targets_b = resolve_graph_targets(model_b, list(layers), first, flag="--layers")
        sums: dict[str, list[torch.Tensor]] = {}
        seen: dict[str, dict[str, torch.Tensor]] = {"a": {}, "b": {}}

        def hook(side: str, target: str):
            def record(module, inputs, output):
                seen[side][target] = output.detach()

            return record

        hooks_a = {t: hook("a", t) for t in set(targets_a.values())}
        hooks_b = {t: hook("b", t) for t in set(targets_b.values())}
        with torch.no_grad(), forward_hooks(model_a, hooks_a), forward_hooks(model_b, hooks_b):
            for start in range(0, len(source), batch_size):
                x = source.load(range(start, min(start + batch_size, len(source)))).to(device)
                model_a(x)
                model_b(x)
                for layer in layers:
                    a, b = _rows(seen["a"][targets_a[layer]]), _rows(seen["b"][targets_b[layer]])
                    if a.shape[0] != b.shape[0]:
                        raise NetsightError(
                            f"--layers {layer}: the two networks' maps differ in size ({a.shape[0]} vs {b.shape[0]} values)"
                        )
                    part = [
                        torch.tensor(float(a.shape[0]), dtype=torch.float64),
                        a.sum(0),
                        b.sum(0),
                        (a * a).sum(0),
                        (b * b).sum(0),
                        a.T @ b,
                    ]
                    sums[layer] = part if layer not in sums else [s + p for s, p in zip(sums[layer], part, strict=True)]
    out = {}
    for layer, (n, sa, sb, saa, sbb, sab) in sums.items():
        cov = sab / n - torch.outer(sa / n, sb / n)
        va, vb = (saa / n - (sa / n) ** 2).clamp_min(0), (sbb / n - (sb / n) ** 2).clamp_min(0)
        scale = torch.outer(va.sqrt(), vb.sqrt())
        out[layer] = torch.where(scale > 0, cov / scale.clamp_min(1e-300), torch.zeros_like(cov)).clamp(-1, 1)
    return out


def best_matches(correlations: torch.Tensor) -> BestMatch:
    """Each unit of A's best match among B's units (the highest correlation; the lowest index on a tie)."""
    value, unit = correlations.max(1)
    return BestMatch(unit, value)


def _rows(activations: torch.Tensor) -> torch.Tensor:
    """[B, units, H, W] (or [B, units]) -> [B * H * W, units] in float64: one row per image and position."""
    if activations.dim() == 2:
        return activations.double()
    return activations.double().permute(0, 2, 3, 1).reshape(-1, activations.shape[1])
