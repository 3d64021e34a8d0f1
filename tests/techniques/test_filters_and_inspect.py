import numpy as np
import pytest
import torch

from netsight.techniques.filters import filter_bank
from netsight.techniques import registry
from netsight.techniques.target import open_run_target
from netsight.errors import NetsightError
from netsight.fileio import read_csv
from netsight.models import ModelConfig, build_model
from netsight.train import resolve, train
from tests.conftest import tiny_dataset


def test_first_layer_per_filter_and_shared_scales():
    torch.manual_seed(0)
    model = build_model(ModelConfig("lenet5"))
    own = filter_bank(model, "conv1", "filter")
    assert own.shown.shape == (32, 1, 5, 5) and own.limit == 1.0
    np.testing.assert_allclose(np.abs(own.shown).reshape(32, -1).max(1), 1.0)
    shared = filter_bank(model, "conv1", "shared")
    assert shared.limit == pytest.approx(model.conv1.weight.abs().max().item())
    np.testing.assert_allclose(shared.shown, model.conv1.weight.detach().double().numpy())


def test_deeper_layer_is_capped_and_rgb_first_layer_in_unit_range():
    model = build_model(ModelConfig("lenet5", (3, 32, 32)))
    deep = filter_bank(model, "conv2")
    assert deep.shape == (64, 32, 5, 5) and deep.shown.shape == (16, 16, 5, 5)
    rgb = filter_bank(model, "conv1")
    assert rgb.rgb and rgb.shown.shape == (32, 5, 5, 3)
    assert rgb.shown.min() >= 0 and rgb.shown.max() <= 1


def test_filter_errors():
    with pytest.raises(NetsightError, match="--layer fc1: not a convolution layer of this model \\(conv layers: conv1, conv2\\)"):
        filter_bank(build_model(ModelConfig("lenet5")), "fc1")
    with pytest.raises(NetsightError, match="model gru has no Conv2d layer"):
        filter_bank(build_model(ModelConfig("gru")), "conv1")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_runs):
    """This module's copy of the session's tiny cnn-bn run (10 iterations on tiny course-shaped data)."""
    return tiny_runs.copy("cnn-bn", tmp_path_factory.mktemp("runs") / "lenet")


def test_inspect_writes_figures_and_tables(trained_run, tiny_runs):
    target = open_run_target(trained_run, dataset=tiny_runs.data("cnn-bn"))  # its 100 tiny test images
    paths = registry.run("filters", target, scale="shared") + registry.run("filters", target, layer="conv2")
    assert {p.name for p in paths} == {"filters_conv1.png", "filters_conv2.png", "weights_hist.png"}
    paths = registry.run("activations", target)
    assert {p.name for p in paths} == {"activations.csv", "activations.md", "activations_per_channel.csv", "activations.png"}
    rows = read_csv(trained_run / "tables" / "activations.csv")
    assert [r["layer"] + "/" + r["stage"] for r in rows][:4] == ["conv1/conv", "conv1/relu", "conv1/pool", "conv1/bn"]
    assert all(int(r["count"]) > 0 for r in rows)
    assert int(rows[0]["count"]) == 100 * 32 * 28 * 28
    assert "| conv1 | relu |" in (trained_run / "tables" / "activations.md").read_text()
    for p in paths + [trained_run / "figures" / "filters_conv1.png"]:
        assert p.stat().st_size > 0


@pytest.mark.slow  # statistics of every cnn-bn stage over 1,000 images
def test_activations_of_a_run_default_to_the_bundled_test_set(tiny_runs, tmp_path):
    run = tiny_runs.copy("cnn-bn", tmp_path / "run")  # a fresh copy of the same session run as trained_run
    paths = registry.run("activations", open_run_target(run))  # the bundled course test set, 1,000 images
    assert {p.name for p in paths} == {"activations.csv", "activations.md", "activations_per_channel.csv", "activations.png"}
    assert int(read_csv(run / "tables" / "activations.csv")[0]["count"]) == 1000 * 32 * 28 * 28


def test_inspect_errors(tmp_path, trained_run):
    with pytest.raises(NetsightError, match="no such run directory"):
        open_run_target(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NetsightError, match="not a netsight run directory \\(no config.json\\)"):
        open_run_target(tmp_path / "empty")
    rnn = tmp_path / "rnn"
    train(
        resolve("rnn", "mnist", iterations=5, eval_every=5, hidden=8, batch_size=16), rnn, dataset=tiny_dataset(), progress=False
    )
    with pytest.raises(NetsightError, match="--activations is for convolutional networks; rnn on mnist"):
        registry.run("activations", open_run_target(rnn))
    (rnn / "model.safetensors").unlink()
    with pytest.raises(NetsightError, match="no model.safetensors"):
        open_run_target(rnn)
