"""Figures show every point they plot: no curve leaves its axes."""

import numpy as np

from netsight.report.study import ConfigGroup, natural_key, plot_curves_panels


class _FakeRun:
    def __init__(self, accs):
        self._rows = [{"iteration": float(i + 1) * 10, "test_acc": a} for i, a in enumerate(accs)]

    def metrics(self):
        return self._rows


def test_every_curve_point_lies_inside_its_axes():
    # early points far below the late ones: a range taken from the second half would cut them off
    groups = [
        ConfigGroup("g", "gru", "mnist", h, [_FakeRun([0.05, 0.3, 0.9, 0.95]), _FakeRun([0.12, 0.35, 0.92, 0.96])])
        for h in (128, 32, 64)
    ]
    fig = plot_curves_panels(groups, "hidden", "model", "t")
    for ax in fig.axes:
        lo, hi = ax.get_ylim()
        for line in ax.get_lines():
            y = np.asarray(line.get_ydata(), dtype=float)
            assert lo <= y.min() and y.max() <= hi, (lo, hi, y)
        for band in ax.collections:
            ys = np.concatenate([p.vertices[:, 1] for p in band.get_paths()])
            assert lo <= ys.min() + 1e-9 and ys.max() - 1e-9 <= hi
    assert [ax.get_title() for ax in fig.axes] == ["hidden = 32", "hidden = 64", "hidden = 128"]


def test_numbers_sort_by_value():
    assert sorted([128, 32, 64], key=natural_key) == [32, 64, 128]
    assert sorted(["lstm", 8, "gru"], key=natural_key) == [8, "gru", "lstm"]
