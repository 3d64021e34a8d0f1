"""The sanity checks of Adebayo et al. (2018) on a really trained LeNet5: with every layer randomised,
the gradient's maps decorrelate from the trained model's far more than guided backprop's (the paper's
finding, section 3), and the user's model is left as it was."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from netsight.ops.randomise import randomisable_layers
from netsight.techniques.attribution_methods import GuidedBackprop, InputXGradient, Saliency
from netsight.techniques.sanity import COLUMNS, compare_models, sanity_checks
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


@pytest.mark.slow  # a real (short) training run: ~10 s on 2 cores
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
    )
    depth = len(randomisable_layers(model))  # every layer randomised
    for metric in ("spearman", "spearman_abs"):
        g, gb = r.row("gradient", "cascading", metric, depth), r.row("guided_backprop", "cascading", metric, depth)
        assert g is not None and gb is not None and g.n == gb.n == 10
        assert gb.mean - g.mean > 0.2 and g.hi < gb.lo, (metric, g, gb)  # far apart, intervals apart
    g1 = r.row("gradient", "cascading", "spearman", 1)
    assert g1 is not None and abs(r.row("gradient", "cascading", "spearman", depth).mean) < 0.2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()) and not model.training
    assert len(r.cascade["gradient"]) == depth and r.originals["gradient"].shape == (10, 28, 28)
    assert all(len(row.values()) == len(COLUMNS) for row in r.rows)


def test_rows_cover_every_depth_mode_and_metric_and_a_model_compared_with_itself_is_identical():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)
    ).eval()
    x = torch.rand(3, 1, 8, 8)

    methods = [Saliency(model), InputXGradient(model)]
    r = sanity_checks(methods, x, [0, 1, 2])
    assert {(row.mode, row.depth) for row in r.rows} == {(m, d) for m in ("cascading", "independent") for d in (1, 2)}
    assert len(r.rows) == 2 * 2 * 2 * 4  # modes x depths x methods x metrics
    top = sanity_checks(methods[:1], x, [0, 1, 2], max_layers=1)
    assert {(row.mode, row.layer) for row in top.rows} == {("cascading", "3"), ("independent", "3")}
    same = compare_models(methods[:1], model, x, [0, 1, 2], mode="itself")
    assert {row.metric: round(row.mean, 6) for row in same} == {"spearman": 1.0, "spearman_abs": 1.0, "ssim": 1.0, "hog": 1.0}
    with pytest.raises(ValueError, match="unknown randomisation mode"):
        sanity_checks(methods[:1], x, [0, 1, 2], modes=("sideways",))


def test_the_cli_lists_the_trust_flags(capsys):
    from netsight.cli import main

    assert main(["inspect", "--help"]) == 0
    text = capsys.readouterr().out
    assert all(f in text for f in ("--sanity", "--faithfulness", "--agreement", "--randomise-layers", "--faith-steps"))
