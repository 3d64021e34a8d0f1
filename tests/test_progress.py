"""netsight.progress: the one bar every long phase shows (with its time left), the estimate a long phase prints
first, and the phases that use it: a dataset pass, each stage of explore, the analyses of a suite."""

from __future__ import annotations

import pytest
import torch

from netsight import progress


@pytest.fixture
def shown_at_once(monkeypatch):
    monkeypatch.setattr(progress, "SHOW_AFTER_S", 0.0)


def test_a_long_phase_prints_its_estimate_from_the_first_unit(monkeypatch, capsys):
    clock = iter([0.0, 30.0, 30.0, 31.0])  # the bar starts at 0; the first unit ends at 30 s
    monkeypatch.setattr(progress, "_clock", lambda: next(clock))
    with progress.bar(10, "explore layer4: top-9 projections", True, "units") as b:
        b.update(1)
        b.update(1)  # said once only
    err = capsys.readouterr().err
    assert err.count("about") == 1
    assert "explore layer4: top-9 projections: about 5 min for 10 units (the first 1 took 30 s)" in err


def test_a_short_phase_and_a_quiet_one_print_no_estimate(monkeypatch, capsys):
    clock = iter([0.0, 2.0, 2.0])
    monkeypatch.setattr(progress, "_clock", lambda: next(clock))
    with progress.bar(10, "short", True) as b:
        b.update(1)  # 20 s projected: under the threshold
    clock = iter([0.0, 300.0, 300.0])
    with progress.bar(10, "quiet", False) as b:
        b.update(1)
    assert "about" not in capsys.readouterr().err


def test_durations_read_at_a_glance():
    assert [progress.duration(s) for s in (45, 420, 4800)] == ["45 s", "7 min", "1 h 20 min"]


@pytest.mark.slow
def test_every_stage_of_explore_shows_a_bar(shown_at_once, capsys):
    from netsight.data.images import tensor_images
    from netsight.models import ModelConfig, build_model
    from netsight.techniques.explore_units import explore_layer
    from netsight.techniques.explore import fully_randomised

    torch.manual_seed(0)
    model = build_model(ModelConfig("lenet5"))
    source = tensor_images(torch.rand(12, 1, 28, 28))
    explore_layer(model, source, "conv2", batch_size=4, progress=True, randomised=fully_randomised(model))
    err = capsys.readouterr().err
    for stage in ("explore relu2:", "relu2: top-9 projections", "top-9 through random weights", "occlusion", "invariance"):
        assert stage in err, stage
