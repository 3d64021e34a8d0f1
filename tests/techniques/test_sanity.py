"""The sanity checks of Adebayo et al. (2018) on a really trained LeNet5: with every layer randomised,
the gradient's maps decorrelate from the trained model's far more than guided backprop's, in every random
draw (the paper's finding, section 3 and Fig. 2), and the user's model is left as it was; the draws, the
values table, the chance levels, the foreground region and the depth schedule on small models; the
technique's files and its refusal of --draws 0."""

from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import pytest
import torch

from netsight.ops.randomise import randomisable_layers
from netsight.techniques.attribution_methods import GuidedBackprop, InputXGradient, Saliency
from netsight.techniques import sanity
from netsight.techniques.sanity import (
    CHANCE_EDGES,
    CHANCE_INPUT,
    CHANCE_RANDOM,
    CHANCES,
    COLUMNS,
    DRAWS,
    MODES,
    VALUE_COLUMNS,
    compare_models,
    sanity_checks,
)
from netsight.data import load_dataset
from netsight.train import open_run, resolve, train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """LeNet5 trained for 150 iterations on 2,000 bundled MNIST digits (about 90% test accuracy)."""
    torch.set_num_threads(1)
    full = load_dataset("mnist")
    data = replace(full, train_images=full.train_images[:2000], train_labels=full.train_labels[:2000],
                   test_images=full.test_images[:64], test_labels=full.test_labels[:64])  # fmt: skip
    path = tmp_path_factory.mktemp("sanity") / "lenet5"
    config = resolve("lenet5", "mnist", iterations=150, eval_every=150, batch_size=32, seed=0)
    summary = train(config, path, dataset=data, progress=False, device="cpu")
    assert summary["final_test_acc"] > 0.6  # it learned: the check is about a trained model
    return open_run(path).model(), data


@pytest.mark.slow  # a real (short) training run and three draws: ~20 s on 2 cores
def test_randomised_gradients_decorrelate_far_more_than_guided_backprop(trained):
    model, data = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = data.test_images[:10].float() / 255
    y = [int(v) for v in data.test_labels[:10]]
    r = sanity_checks(
        [Saliency(model), GuidedBackprop(model)],
        x,
        y,
        modes=("cascading",),
        metrics=("spearman", "spearman_abs"),
        draws=3,
    )
    depth = len(randomisable_layers(model))  # every layer randomised
    for metric in ("spearman", "spearman_abs"):
        g, gb = r.row("gradient", "cascading", metric, depth), r.row("guided_backprop", "cascading", metric, depth)
        assert g is not None and gb is not None and g.n == gb.n == 10 and g.draws == gb.draws == 3
        assert gb.mean - g.mean > 0.2 and g.hi < gb.lo, (metric, g, gb)  # far apart, intervals (images and draws) apart
        for draw in range(3):  # and so in every draw on its own
            mean = {
                method: float(torch.tensor(found).mean())
                for method in ("gradient", "guided_backprop")
                for found in [
                    [
                        v.value
                        for v in r.values
                        if (v.method, v.depth, v.draw, v.region, v.metric) == (method, depth, draw, "all", metric)
                    ]
                ]
            }
            assert mean["guided_backprop"] - mean["gradient"] > 0.2, (metric, draw, mean)
    gb_abs, g_abs = (r.row(m, "cascading", "spearman_abs", depth) for m in ("guided_backprop", "gradient"))
    assert gb_abs is not None and g_abs is not None
    assert gb_abs.lo > 0.3 > g_abs.hi, (gb_abs, g_abs)  # with no trained layer left, only guided backprop's map stays
    g1 = r.row("gradient", "cascading", "spearman", 1)
    assert g1 is not None and abs(r.row("gradient", "cascading", "spearman", depth).mean) < 0.2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and not model.training
    assert len(r.cascade["gradient"]) == depth and r.originals["gradient"].shape == (10, 28, 28)
    assert all(len(row.values()) == len(COLUMNS) for row in r.rows)


def _tiny() -> tuple[torch.nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)
    ).eval()
    x = torch.rand(3, 1, 8, 8)
    x[2, :, :2], x[2, :, -2:], x[2, :, :, :2], x[2, :, :, -2:] = 0, 0, 0, 0  # image 2: a digit on a 0 background
    return model, x


def test_rows_cover_every_depth_mode_and_metric_and_a_model_compared_with_itself_is_identical():
    model, x = _tiny()
    methods = [Saliency(model), InputXGradient(model)]
    r = sanity_checks(methods, x, [0, 1, 2])
    randomised = {(m, d) for m in ("cascading", "independent") for d in (1, 2)}
    chance = {(CHANCE_INPUT, 0), (CHANCE_EDGES, 0), (CHANCE_RANDOM, 2)}
    assert {(row.mode, row.depth) for row in r.rows} == randomised | chance
    assert len([row for row in r.rows if row.mode in MODES]) == 2 * 2 * 2 * 4  # modes x depths x methods x metrics
    assert {row.draws for row in r.rows if row.mode in MODES} == {DRAWS} and r.draws == DRAWS
    assert all(-1 <= row.lo <= row.mean <= row.hi <= 1 for row in r.rows if row.n > 1)
    top = sanity_checks(methods[:1], x, [0, 1, 2], max_layers=1, draws=1, chance=False)
    assert {(row.mode, row.layer) for row in top.rows} == {("cascading", "3"), ("independent", "3")}
    same = compare_models(methods[:1], model, x, [0, 1, 2], mode="itself")
    assert {row.metric: round(row.mean, 6) for row in same} == {"spearman": 1.0, "spearman_abs": 1.0, "ssim": 1.0, "hog": 1.0}
    with pytest.raises(ValueError, match="unknown randomisation mode"):
        sanity_checks(methods[:1], x, [0, 1, 2], modes=("sideways",))
    with pytest.raises(ValueError, match="draws=0"):
        sanity_checks(methods[:1], x, [0, 1, 2], draws=0)


def test_the_estimate_is_printed_for_a_long_run_only(monkeypatch):
    """A long run says its cost after the first randomised model; a quick one says nothing (the study's recurrent
    nets printed "about 0 s for ...")."""
    model, x = _tiny()
    said: list[str] = []
    sanity_checks([Saliency(model)], x, [0, 1, 2], draws=2, chance=False, progress=said.append)
    assert not [line for line in said if line.startswith("about")]
    ticks = iter(range(0, 10**6, 20))  # every clock reading 20 s after the last: each randomised model takes 20 s
    monkeypatch.setattr(sanity, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    sanity_checks([Saliency(model)], x, [0, 1, 2], draws=2, chance=False, progress=said.append)
    copies = 2 * 2 * 2  # draws x depths x modes
    assert [line for line in said if line.startswith("about")] == [
        f"about {copies * 20 / 60:.0f} min for 2 of 2 layers x 2 draws x 2 modes x 1 methods on 3 images "
        "(--randomise-depths, --randomise-layers, --draws to change)"
    ]


def test_every_value_is_kept_per_draw_image_and_region_and_draw_d_is_seed_plus_d():
    model, x = _tiny()
    methods = [Saliency(model)]
    r = sanity_checks(methods, x, [0, 1, 2], draws=2, seed=5, images=[10, 11, 12])
    keys = [v[:-1] for v in r.values]
    assert len(keys) == len(set(keys))  # one value per (method, mode, layer, depth, draw, image, region, metric)
    assert {v.image for v in r.values} == {10, 11, 12} and {v.draw for v in r.values} == {0, 1}
    assert {v.mode for v in r.values} == {*MODES, *CHANCES}
    fg = {v.image for v in r.values if v.region == "foreground"}
    assert fg == {12} and {v.metric for v in r.values if v.region == "foreground"} == {"spearman", "spearman_abs", "ssim"}
    assert {v.draw for v in r.values if v.mode in (CHANCE_INPUT, CHANCE_EDGES)} == {0}
    assert {(v.draw, v.depth, v.layer) for v in r.values if v.mode == CHANCE_RANDOM} == {(0, 2, "0")}

    def of(result, draw):
        return {
            (v.mode, v.depth, v.image, v.region, v.metric): v.value for v in result.values if v.draw == draw and v.mode in MODES
        }

    assert of(r, 0) != of(r, 1)  # two draws: two sets of random weights
    alone = sanity_checks(methods, x, [0, 1, 2], draws=1, seed=6, images=[10, 11, 12])
    assert of(alone, 0) == pytest.approx(of(r, 1), nan_ok=True)  # draw 1 of seed 5 is draw 0 of seed 6
    assert VALUE_COLUMNS == ("method", "mode", "layer", "depth", "draw", "image", "region", "metric", "value")
    flat = model.eval()
    constant = sanity_checks([Saliency(flat)], torch.zeros(1, 1, 8, 8), [0], draws=1, modes=("cascading",))
    inputs = [v for v in constant.values if v.mode == CHANCE_INPUT and v.metric != "ssim"]  # SSIM: defined on flat maps
    assert inputs and all(math.isnan(v.value) and v.cells()[-1] == "" for v in inputs)  # a constant image: no ranks


def test_a_deep_model_is_measured_on_the_schedule_and_the_estimate_is_said(monkeypatch):
    monkeypatch.setattr(sanity, "ESTIMATE_FROM_S", 0)  # said however quick this tiny model is
    torch.manual_seed(1)
    convs = [torch.nn.Conv2d(2 if i else 1, 2, 3, padding=1) for i in range(8)]
    body = [m for conv in convs for m in (conv, torch.nn.ReLU())]
    model = torch.nn.Sequential(*body, torch.nn.Flatten(), torch.nn.Linear(2 * 6 * 6, 2)).eval()
    said: list[str] = []
    r = sanity_checks([Saliency(model)], torch.rand(2, 1, 6, 6), [0, 1], draws=1, most_depths=4, progress=said.append)
    assert r.depths == [1, 2, 3, 9] and r.n_layers == 9 and len(r.cascade["gradient"]) == 4
    assert {row.depth for row in r.rows if row.mode in MODES} == {1, 2, 3, 9}
    assert any(s.startswith("about ") and "4 of 9 layers x 1 draws" in s for s in said), said


def test_the_technique_writes_the_values_table_and_refuses_zero_draws(tiny_runs, tmp_path, capsys):
    import csv

    from netsight.cli import main

    run = tiny_runs.copy("cnn-bn", tmp_path / "run")
    few = ["--count", "2", "--methods", "gradient,gradcam", "--draws", "2", "--randomise-depths", "3", "--quiet"]
    assert main(["inspect", str(run), "--sanity", "--draws", "0", *few[:-3], "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--draws" in err and len(err.strip().splitlines()) == 1
    assert not (run / "tables" / "sanity_values.csv").exists() and not (run / "figures" / "sanity_grid.png").exists()
    assert main(["inspect", str(run), "--sanity", *few, "--seed", "4"]) == 0
    with open(run / "tables" / "sanity_values.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == VALUE_COLUMNS
    assert {r["mode"] for r in rows} == {*MODES, *CHANCES} and {r["draw"] for r in rows} == {"0", "1"}
    assert {int(r["depth"]) for r in rows if r["mode"] == "cascading"} == {1, 2, 9}
    with open(run / "tables" / "sanity.csv", newline="") as f:
        summary = list(csv.DictReader(f))
    assert tuple(summary[0]) == COLUMNS and {r["draws"] for r in summary if r["mode"] == "cascading"} == {"2"}
    assert main(["inspect", str(run), "--filters", "--seed", "4", "--quiet"]) == 2  # --seed: for --sanity's draws


def test_the_cli_lists_the_trust_flags(capsys):
    from netsight.cli import main

    assert main(["inspect", "--help"]) == 0
    text = capsys.readouterr().out
    assert all(f in text for f in ("--sanity", "--faithfulness", "--agreement", "--randomise-layers", "--faith-steps", "--draws"))


def test_a_randomised_batch_norm_moves_the_maps_as_much_as_the_layers_around_it(tiny_runs):
    model = open_run(tiny_runs.path("cnn-bn")).model().eval()
    data = tiny_runs.data("cnn-bn")
    x = data.test_images[:6].float() / 255
    r = sanity_checks([Saliency(model)], x, [int(v) for v in data.test_labels[:6]], modes=("independent",),
                      metrics=("spearman_abs",), draws=2, chance=False)  # fmt: skip
    found = {row.layer: row for row in r.rows}
    for bn in ("bn1", "bn2", "bn3", "bn4"):  # reset to the identity they stayed at 0.97-0.99 (bn3, bn4 of a trained cnn-bn)
        assert found[bn].hi < 0.8, found[bn]
