"""netsight.style's palettes: each means one thing, and no two palettes the report uses share a colour, or
one too close to tell apart, for different meanings (gate colours beside the trajectory figure's classes;
red for the RNN, for guided backprop and for "after batch norm" was one such clash)."""

import itertools

import pytest

from netsight import style


def test_no_two_palettes_share_a_colour_for_different_meanings():
    found = style.palettes()
    assert {"class", "model", "hidden", "method", "gate", "stage", "split"} <= set(found)
    clashes = []
    for (a, pa), (b, pb) in itertools.combinations(found.items(), 2):
        for (ta, ca), (tb, cb) in itertools.product(pa.items(), pb.items()):
            distance = style.colour_distance(ca, cb)
            if distance < style.MIN_PALETTE_DISTANCE:
                clashes.append(f"{a} {ta} {ca} ~ {b} {tb} {cb} ({distance:.1f})")
    assert clashes == []


def test_within_a_palette_every_thing_has_its_own_colour():
    for name, palette in style.palettes().items():
        for (ta, ca), (tb, cb) in itertools.combinations(palette.items(), 2):
            assert style.colour_distance(ca, cb) >= style.MIN_PALETTE_DISTANCE, (name, ta, tb)


def test_the_figures_take_their_colours_from_the_palettes():
    assert style.model_colour("rnn") == style.MODEL_COLOURS["rnn"] != style.method_colour("guided_backprop")
    assert style.gate_colour("input") not in {style.class_colour(c) for c in range(10)}


@pytest.mark.parametrize(("a", "b", "expected"), [("#000000", "#ffffff", 100.0), ("#ff0000", "#ff0000", 0.0)])
def test_colour_distance_is_cie76(a, b, expected):
    assert style.colour_distance(a, b) == pytest.approx(expected, abs=0.1)
