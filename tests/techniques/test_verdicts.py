"""The verdict rules (netsight/techniques/_verdicts.py) on synthetic value tables in the CONTRACTS §1 format:
a verdict settles only when its interval clears the threshold, flips to unsettled when the interval
straddles it, never leaves the measure's range, judges the whole depth curve, prefers the foreground,
needs enough draws and seeds, and says nothing in quick mode."""

from __future__ import annotations

import math
import re

import pytest

from netsight.techniques import _verdicts as V
from tests.helpers import agreement_values, faith_values, sanity_values


def test_clear_intervals_settle_and_say_their_chance_levels():
    yes = V.model_verdict(sanity_values(level=0.1), "gradient")
    assert yes is not None and yes.verdict == "yes" and yes.hi < V.MODEL_BELOW
    assert (yes.n_images, yes.n_draws, yes.n_seeds) == (12, 4, 1)
    assert re.search(r"chance levels: input image 0\.(19|2\d), edge map 0\.(29|3\d), two random models 0\.(59|6\d)", yes.note)
    assert yes.chance == yes.chances["two random models"] and math.isclose(yes.chance, 0.6, abs_tol=0.02)
    no = V.model_verdict(sanity_values(level=0.8), "gradient")
    assert no is not None and no.verdict == "no" and no.lo > V.MODEL_ABOVE


def test_a_verdict_flips_to_unsettled_when_the_interval_straddles_the_threshold():
    tight = V.model_verdict(sanity_values(level=0.25, spread=0.02), "gradient")
    assert tight is not None and tight.verdict == "yes" and tight.hi < V.MODEL_BELOW
    wide = V.model_verdict(sanity_values(level=0.25, spread=0.6), "gradient")
    assert wide is not None and wide.lo < V.MODEL_BELOW < wide.hi
    assert wide.verdict == "unsettled" and "would settle it" in wide.note


def test_the_whole_depth_curve_is_judged_not_its_last_point():
    v = V.model_verdict(sanity_values(level=0.9, last=0.05, depths=4), "gradient")  # high curve, low last point
    assert v is not None and v.verdict == "no" and v.estimate > 0.6 and "mean over depths" in v.measure


def test_intervals_stay_in_range_near_the_bounds():
    v = V.model_verdict(sanity_values(level=0.99, spread=0.05), "gradient")
    assert v is not None and -1 <= v.lo <= v.estimate <= v.hi <= 1


def test_foreground_is_used_when_present_and_the_whole_image_reported():
    v = V.model_verdict(sanity_values(level=0.85, fg_level=0.1), "gradient")  # zero background inflates "all"
    assert v is not None and v.verdict == "yes" and "foreground" in v.measure
    assert "whole image: 0.8" in v.note


def test_dropped_images_are_counted_and_why():
    v = V.model_verdict(sanity_values(level=0.1, constant=(0, 3)), "gradient")
    assert v is not None and v.n_images == 10 and "2 images dropped (a constant map" in v.note


def test_one_draw_or_few_images_cannot_settle():
    one = V.model_verdict(sanity_values(level=0.05, draws=1), "gradient")
    assert one is not None and one.verdict == "unsettled" and "1 random draws (3 at least)" in one.note
    few = V.model_verdict(sanity_values(level=0.05, images=4), "gradient")
    assert few is not None and few.verdict == "unsettled" and "4 images (8 at least)" in few.note


def test_quick_mode_judges_nothing():
    v = V.model_verdict(sanity_values(level=0.05), "gradient", quick=True)
    assert v is not None and v.verdict == "unsettled" and v.word == "not judged" and v.note.startswith(V.QUICK_NOTE)
    assert V.from_row({**v.row(), "note": V.QUICK_NOTE}).judged is False


def test_data_verdict_pools_seeds():
    rows = sanity_values(level=0.1, permuted=0.1, seeds=(0,)) + sanity_values(level=0.1, permuted=0.12, seeds=(1,), rng_seed=1)
    v = V.data_verdict(rows, "gradient")
    assert v is not None and v.n_seeds == 2 and v.verdict == "yes"
    one = V.data_verdict(sanity_values(level=0.1, permuted=0.1), "gradient")
    assert one is not None and one.verdict == "unsettled" and "training seeds (2 at least)" in one.note


def test_faithful_is_the_paired_difference_against_both_baselines():
    yes = V.faithful_verdict(faith_values(0.0), "gradient")
    assert yes is not None and yes.verdict == "yes" and yes.hi < 0 and "Sobel" in yes.measure  # the harder baseline
    no = V.faithful_verdict(faith_values(0.4), "gradient")
    assert no is not None and no.verdict == "no"
    mid = V.faithful_verdict(faith_values(0.15, spread=0.2), "gradient")
    assert mid is not None and mid.verdict == "unsettled" and mid.lo < 0 < mid.hi
    for v in (yes, no, mid):
        assert -1 <= v.lo <= v.hi <= 1


def test_agreement_is_judged_against_two_random_models():
    chance = sanity_values(level=0.1, chance_rm=0.3)
    yes = V.agreement_verdict(agreement_values(0.6), chance, "gradient")
    assert yes is not None and yes.verdict == "yes" and yes.lo > yes.threshold and math.isclose(yes.threshold, 0.3, abs_tol=0.02)
    no = V.agreement_verdict(agreement_values(0.1), chance, "gradient")
    assert no is not None and no.verdict == "no"
    two = V.agreement_verdict(agreement_values(0.6, seeds=(0, 1)), chance, "gradient")
    assert two is not None and two.verdict == "unsettled" and "training seeds (3 at least)" in two.note


def test_tables_round_trip(tmp_path):
    v = V.model_verdict(sanity_values(level=0.1), "gradient")
    assert v is not None
    path = V.write_table(tmp_path / "verdicts.csv", [v])
    from netsight.fileio import read_csv

    (row,) = read_csv(path)
    assert list(row) == list(V.COLUMNS) and row["verdict"] == "yes" and row["test"] == V.MODEL
    back = V.from_row(row)
    assert back.verdict == "yes" and math.isclose(back.hi, v.hi, abs_tol=1e-4)


def _real_values(t, methods, count: int = 12, draws: int = 3) -> list[dict]:
    """sanity_values.csv rows (CONTRACTS §1) measured on a real model: the cascading curve of `draws` random draws
    (weights of draw d from seed d), the map against the input and its Sobel edges, and the fully randomised models
    of draws d and d + 1 against each other (written here until the sanity technique writes them itself)."""
    from netsight.ops.similarity import spearman
    from netsight.techniques import _trust
    from netsight.techniques.faithfulness import sobel_maps
    from netsight.techniques.sanity import sanity_checks

    o = {"count": count, "target": None, "methods": methods, "layer": None, "ig_steps": 8, "samples": 4}
    idx, x, targets, _ = _trust.images_and_targets(t, o)
    objects = _trust.method_objects(t, o)
    rows, finals = [], {}

    def add(m, mode, layer, depth, draw, values):
        for i, v in zip(idx, values.tolist(), strict=True):
            rows.append(dict(method=m, mode=mode, layer=layer, depth=depth, draw=draw, image=int(i), region="all",
                             metric="spearman_abs", value=v))  # fmt: skip

    for draw in range(draws):
        r = sanity_checks(objects, x, targets, modes=("cascading",), metrics=("spearman_abs",), seed=draw)
        for m in r.originals:
            for depth, maps in enumerate(r.cascade[m], 1):
                add(m, "cascading", r.layers[depth - 1], depth, draw, spearman(r.originals[m], maps, absolute=True))
            finals.setdefault(m, []).append((r.layers[-1], len(r.layers), r.cascade[m][-1]))
            if draw == 0:
                add(m, "chance: input", "", 0, 0, spearman(r.originals[m], x.mean(1), absolute=True))
                add(m, "chance: edges", "", 0, 0, spearman(r.originals[m], sobel_maps(x), absolute=True))
    for m, f in finals.items():
        for d in range(len(f) - 1):
            add(m, "chance: random models", f[d][0], f[d][1], d, spearman(f[d][2], f[d + 1][2], absolute=True))
    return rows


@pytest.mark.slow  # three cascading randomisations of a tiny LeNet5, ~11 s of CPU
def test_adebayo_gradient_depends_on_the_model_guided_backprop_does_not(tiny_runs, tmp_path):
    """Adebayo et al. 2018's qualitative result on netsight's own model: the gradient's maps change when the weights
    are randomised, guided backprop's mostly stay; and the card technique judges it from the run's values table."""
    from netsight.fileio import read_csv, write_csv
    from netsight.techniques import registry
    from netsight.techniques.target import open_run_target

    run = tiny_runs.copy("lenet5", tmp_path / "run")
    t = open_run_target(run, dataset=tiny_runs.data("lenet5"))
    rows = _real_values(t, ["gradient", "guided_backprop"])
    grad, gbp = (V.model_verdict(rows, m) for m in ("gradient", "guided_backprop"))
    assert grad is not None and gbp is not None
    assert grad.verdict == "yes" and gbp.verdict == "no" and gbp.lo > grad.hi
    assert gbp.chances["two random models"] > grad.chances["two random models"]  # guided backprop redraws the image
    columns = ("method", "mode", "layer", "depth", "draw", "image", "region", "metric", "value")
    write_csv(run / V.SANITY_VALUES, columns, rows)
    written = registry.run("card", t)
    assert [p.name for p in written] == ["trust_card.png", "verdicts.csv"]
    table = {(r["method"], r["test"]): r for r in read_csv(run / "tables" / "verdicts.csv")}
    assert table[("gradient", V.MODEL)]["verdict"] == "yes" and table[("guided_backprop", V.MODEL)]["verdict"] == "no"


def test_seed_pair_values_have_a_foreground_where_the_background_is_constant():
    """Two seeds' maps that agree only because both are zero off the digit: the whole image correlates, the
    foreground does not (the MNIST case of gradient x input); an image without a constant border has no foreground."""
    import torch

    from netsight.techniques.agreement import foreground, pair_values

    g = torch.Generator().manual_seed(0)
    x = torch.zeros(2, 1, 12, 12)
    x[:, :, 3:9, 3:9] = torch.rand(2, 1, 6, 6, generator=g) + 0.1  # a "digit" on black
    x[1] = torch.rand(1, 12, 12, generator=g)  # image 1: noise, no constant background
    masks = foreground(x)
    assert masks[0] is not None and int(masks[0].sum()) == 36 and masks[1] is None
    a = x[:, 0] * torch.randn(2, 12, 12, generator=g)  # input-times-something maps: zero where the input is
    b = x[:, 0] * torch.randn(2, 12, 12, generator=g)
    rows = pair_values([{"m": a}, {"m": b}], [0, 1], [10, 11], ["m"], x)
    by = {(r[4], r[5]): r[6] for r in rows}
    assert set(by) == {(10, "all"), (10, "foreground"), (11, "all")}
    assert by[(10, "all")] > 0.6 and abs(by[(10, "foreground")]) < by[(10, "all")] - 0.4
    assert all(r[1] == "spearman_abs" and (r[2], r[3]) == (0, 1) for r in rows)


@pytest.mark.slow  # two sanity checks of a tiny LeNet5 from the command line, ~15 s of CPU
def test_other_random_draws_never_turn_a_settled_verdict_around(tiny_runs, tmp_path, capsys):
    """The sentence must not change with the random draw: `inspect --sanity --card` with draws from --seed 0 and from
    --seed 50 (other random weights) on the same run may differ in settled versus unsettled, never yes versus no;
    and the model test settles both times for the gradient and guided backprop (so the check is not empty)."""
    from netsight.cli import main
    from netsight.fileio import read_csv

    verdicts = []
    for seed in ("0", "50"):
        run = tiny_runs.copy("lenet5", tmp_path / f"seed{seed}")
        argv = ["inspect", str(run), "--sanity", "--card", "--methods", "gradient,guided_backprop", "--count", "8"]
        assert main([*argv, "--draws", "3", "--randomise-depths", "3", "--seed", seed, "--quiet"]) == 0, capsys.readouterr().err
        verdicts.append({(r["method"], r["test"]): r["verdict"] for r in read_csv(run / "tables" / "verdicts.csv")})
    first, second = verdicts
    assert set(first) == set(second)
    assert all({first[k], second[k]} != {"yes", "no"} for k in first), (first, second)
    for method in ("gradient", "guided_backprop"):
        assert first[method, V.MODEL] in ("yes", "no") and second[method, V.MODEL] in ("yes", "no"), (first, second)
