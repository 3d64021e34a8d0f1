"""`netsight inspect` runs every Zeiler & Fergus tool on a trained run and names its outputs."""

import pytest

from netsight.cli import main
from netsight.fileio import read_csv
from netsight.train import resolve, train
from tests.conftest import tiny_dataset


@pytest.fixture(scope="module")
def run_with_snapshots(tmp_path_factory, tiny_runs):
    """This module's copy of the session's tiny LeNet5 run: 12 iterations, snapshots at 3 and 6."""
    return tiny_runs.copy("lenet5", tmp_path_factory.mktemp("zf") / "lenet")


def test_every_tool_from_the_cli(run_with_snapshots, capsys):
    run = str(run_with_snapshots)
    assert main(["inspect", run, "--deconv", "--count", "2", "--layer", "conv2"]) == 0
    assert main(["inspect", run, "--top9", "--layer", "conv1", "--maps", "4"]) == 0
    assert main(["inspect", run, "--occlusion", "--count", "1", "--occlusion-size", "8", "--occlusion-stride", "4"]) == 0
    assert main(["inspect", run, "--evolution", "--maps", "3"]) == 0
    assert main(["inspect", run, "--invariance", "--count", "5"]) == 0
    figures = {p.name for p in (run_with_snapshots / "figures").iterdir()}
    assert {"deconv_conv2_max.png", "top9_conv1.png", "occlusion_conv2.png", "evolution_conv2.png", "invariance.png"} <= figures
    top9 = read_csv(run_with_snapshots / "tables" / "top9_conv1.csv")
    assert len(top9) == 32 * 9 and [r["rank"] for r in top9[:9]] == [str(i) for i in range(1, 10)]
    values = [float(r["activation"]) for r in top9[:9]]
    assert values == sorted(values, reverse=True)
    inv = read_csv(run_with_snapshots / "tables" / "invariance.csv")
    assert {r["transform"] for r in inv} == {"vertical translation (pixels)", "rotation (degrees)", "scale (factor)"}


def test_inspect_errors_are_clear(run_with_snapshots, tiny_runs, tmp_path, capsys):
    assert main(["inspect", str(run_with_snapshots)]) == 2
    assert "choose at least one of --filters" in capsys.readouterr().err
    assert main(["inspect", str(run_with_snapshots), "--deconv", "--layer", "conv7"]) == 2
    assert "--layer conv7: not a layer of this model" in capsys.readouterr().err
    plain = tiny_runs.copy("cnn-bn", tmp_path / "plain")  # a CNN run trained without --snapshots
    assert main(["inspect", str(plain), "--evolution"]) == 2
    assert "no weight snapshots; train with --snapshots" in capsys.readouterr().err


def test_top9_border_share_is_counted_from_the_receptive_fields(run_with_snapshots):
    """The border finding: each top unit's field is checked by hand against the image edges."""
    from netsight.fileio import read_json

    assert main(["inspect", str(run_with_snapshots), "--top9", "--layer", "conv2", "--maps", "6"]) == 0
    rows = read_csv(run_with_snapshots / "tables" / "top9_conv2.csv")
    border = read_json(run_with_snapshots / "tables" / "top9_conv2_field.json")
    # LeNet5's relu2: 5x5 'same' conv, 2x2 pool, 5x5 'same' conv -> field 14x14, jump 2, first field starts at -6
    assert border["receptive_field"] == [14, 14] and border["feature_map"] == [14, 14]
    by_hand = [
        int(r["y"]) * 2 - 6 < 0 or int(r["x"]) * 2 - 6 < 0 or int(r["y"]) * 2 - 6 + 14 > 28 or int(r["x"]) * 2 - 6 + 14 > 28
        for r in rows
    ]
    assert [int(r["rf_clipped"]) for r in rows] == [int(v) for v in by_hand]
    assert border["clipped"] == sum(by_hand) and border["units"] == 64 * 9  # the table holds every map; --maps 6 is the figure's
    clipped_positions = sum(
        y * 2 - 6 < 0 or x * 2 - 6 < 0 or y * 2 + 8 > 28 or x * 2 + 8 > 28 for y in range(14) for x in range(14)
    )
    assert border["positions_clipped_share"] == clipped_positions / 196


def test_invariance_is_measured_at_layers_that_compute(tmp_path):
    from netsight.techniques.invariance import feature_layers
    from netsight.models import ModelConfig, build_model

    assert feature_layers(build_model(ModelConfig("cnn-bn")).eval(), (1, 28, 28))[1] == "bn4"  # not drop4
    assert feature_layers(build_model(ModelConfig("lenet5")).eval(), (1, 28, 28)) == ("pool1", "relu3")


def test_initial_weights_are_rebuilt_exactly(tmp_path):
    """drift_from_init rebuilds the untrained model from the run's seed: with a vanishing learning rate
    one step leaves the weights where they started, so the drift is ~0 (and clearly not for a real lr)."""
    from netsight.techniques.filters import drift_from_init
    from netsight.train import open_run

    for lr, expect_small in ((1e-12, True), (1e-2, False)):
        out = tmp_path / f"lr{lr}"
        train(
            resolve("cnn-bn", "cifar10-assignment", iterations=1, eval_every=1, batch_size=16, lr=lr, seed=5),
            out,
            dataset=tiny_dataset("cifar10-assignment"),
            progress=False,
        )
        drift = drift_from_init(open_run(out), "conv1")
        assert (drift < 1e-8) == expect_small, drift
