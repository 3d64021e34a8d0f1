"""plotting.write_tight_png: the same picture as matplotlib's two-draw tight save, from one draw."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from netsight import plotting
from netsight.plotting import plt


def _grid(beyond_the_canvas: bool = False):
    fig, axes = plt.subplots(2, 3, figsize=(9, 5))
    for i, ax in enumerate(axes.ravel()):
        ax.hist(np.random.default_rng(i).normal(size=500), bins=30, color="C0", label="weights")
        ax.set_title(f"layer {i}")
        ax.set_xlabel("value")
    fig.suptitle("weight histograms")
    plotting.tight_with_title(fig)
    if beyond_the_canvas:  # a note past the right edge: only an enlarged canvas shows it
        fig.text(1.02, 0.5, "a note beyond the edge", va="center")
    return fig


@pytest.mark.parametrize("beyond_the_canvas", [False, True])
def test_one_draw_gives_matplotlibs_tight_picture(tmp_path, beyond_the_canvas):
    _grid(beyond_the_canvas).savefig(tmp_path / "matplotlib.png", dpi=120, bbox_inches="tight", format="png")
    plotting.write_tight_png(_grid(beyond_the_canvas), tmp_path / "ours.png", dpi=120)
    theirs = np.asarray(Image.open(tmp_path / "matplotlib.png").convert("L")).astype(float)
    ours = np.asarray(Image.open(tmp_path / "ours.png").convert("L")).astype(float)
    assert ours.shape == theirs.shape
    if beyond_the_canvas:  # matplotlib's own save, the canvas enlarged: the same bytes
        assert (tmp_path / "ours.png").read_bytes() == (tmp_path / "matplotlib.png").read_bytes()
        return
    # the same picture up to a shift of less than a pixel (matplotlib renders at the box's fractional offset):
    # equal once both are averaged over 4 x 4 pixel blocks
    h, w = (d - d % 4 for d in ours.shape)
    blocks = [a[:h, :w].reshape(h // 4, 4, w // 4, 4).mean((1, 3)) for a in (ours, theirs)]
    assert np.abs(blocks[0] - blocks[1]).mean() < 3  # 1.8 measured; cut 2 px off, 10
    assert Image.open(tmp_path / "ours.png").info["dpi"] == pytest.approx((120, 120), abs=0.05)
