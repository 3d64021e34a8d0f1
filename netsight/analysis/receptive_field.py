"""Receptive fields from the layers' kernel sizes, strides, paddings and dilations.

Walking from the input to a layer we keep, in input-pixel units: the jump between
neighbouring units, the receptive-field size, and where the field of unit 0 starts
(negative when padding reaches outside the image). Unit (y, x) then sees rows
[start + y*jump, start + y*jump + size - 1], likewise for columns.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


@dataclass(frozen=True)
class ReceptiveField:
    size: tuple[int, int]
    jump: tuple[int, int]
    start: tuple[int, int]

    def box(self, y: int, x: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), bottom/right exclusive, clipped to the image."""
        top = self.start[0] + y * self.jump[0]
        left = self.start[1] + x * self.jump[1]
        return max(top, 0), max(left, 0), min(top + self.size[0], height), min(left + self.size[1], width)


    def clipped(self, y: int, x: int, height: int, width: int) -> bool:
        """Whether unit (y, x)'s field reaches beyond the image (into the zero padding)."""
        top, left = self.start[0] + y * self.jump[0], self.start[1] + x * self.jump[1]
        return top < 0 or left < 0 or top + self.size[0] > height or left + self.size[1] > width


def receptive_field(chain: list[tuple[str, nn.Module]]) -> ReceptiveField:
    size, jump, start = [1, 1], [1, 1], [0, 0]
    for _, m in chain:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k = _pair(m.kernel_size)
            s = _pair(m.stride if m.stride is not None else m.kernel_size)
            d = _pair(getattr(m, "dilation", 1))
            if isinstance(m.padding, str):
                p = (0, 0) if m.padding == "valid" else tuple(d[i] * (k[i] - 1) // 2 for i in range(2))
            else:
                p = _pair(m.padding)
            for i in range(2):
                k_eff = d[i] * (k[i] - 1) + 1
                start[i] -= p[i] * jump[i]
                size[i] += (k_eff - 1) * jump[i]
                jump[i] *= s[i]
        elif isinstance(m, (nn.Linear, nn.Flatten, nn.AdaptiveAvgPool2d)):
            break  # past this point every unit sees the whole image
    return ReceptiveField(tuple(size), tuple(jump), tuple(start))  # type: ignore[arg-type]
