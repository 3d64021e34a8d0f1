"""A run's curves.png is laid out by fixed margins (netsight/train/curves.py): every text stays inside the
figure and no two texts overlap, for ordinary values and for a diverging run's huge losses."""

from __future__ import annotations

import math

import pytest

from netsight.train.curves import plot_curves, write_curves


def _rows(loss_scale: float, n: int = 30) -> list[dict]:
    rows = []
    for i in range(n):
        acc, loss = 0.1 + 0.02 * i, loss_scale * math.exp(i / 3)
        rows.append(dict(iteration=100 * i, train_acc=acc, train_acc_mean=acc, test_acc=acc - 0.001 * i, train_eval_acc=acc))
        rows[-1].update(train_loss=loss, train_loss_mean=loss, test_loss=1.1 * loss, train_eval_loss=loss)
    return rows


TITLES = {
    "short": "lenet5 on cifar10-assignment (seed 0)",
    "two lines": "lenet5 on /home/student/datasets/course/cifar10-grey-28 (seed 0)",
    "cut": "resnet18 on /home/student/" + "very-long-folder-name/" * 8 + "images (seed 12)",
}


@pytest.mark.parametrize("title", TITLES)
@pytest.mark.parametrize("loss_scale", [1.0, 1e-4, 1e4])
def test_every_text_is_inside_the_figure_and_the_panels_do_not_touch(loss_scale, title):
    """Each panel with its tick labels, axis labels and title (matplotlib places an axis label beside its tick
    labels) lies inside the figure, apart from the other panel and from the figure's title, for huge and tiny
    losses and for long run names (a data folder's path)."""
    fig = plot_curves(_rows(loss_scale), TITLES[title])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.bbox.width, fig.bbox.height
    title = fig._suptitle.get_window_extent(renderer)
    panels = [ax.get_tightbbox(renderer) for ax in fig.axes]
    for box in [title, *panels]:
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, (loss_scale, box)
    left, right = panels
    assert left.x1 < right.x0, (loss_scale, left, right)
    assert all(box.y1 < title.y0 for box in panels), (loss_scale, title, panels)


def test_write_curves_writes_a_png_of_the_figure_size(tmp_path):
    from PIL import Image

    write_curves(tmp_path / "curves.png", "x", _rows(1.0))
    with Image.open(tmp_path / "curves.png") as im:
        assert im.size == (11 * 120, round(4.2 * 120))
