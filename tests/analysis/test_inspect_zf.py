"""`netsight inspect` runs every Zeiler & Fergus tool on a trained run and names its outputs."""

import pytest

from netsight.cli import main
from netsight.fileio import read_csv
from netsight.train import resolve, train
from tests.conftest import tiny_dataset


@pytest.fixture(scope="module")
def run_with_snapshots(tmp_path_factory):
    out = tmp_path_factory.mktemp("zf") / "lenet"
    train(resolve("lenet5", "cifar10-assignment", iterations=12, eval_every=6, batch_size=16, snapshots=[3, 6]), out,
          dataset=tiny_dataset("cifar10-assignment"), progress=False)
    return out


def test_every_tool_from_the_cli(run_with_snapshots, capsys):
    run = str(run_with_snapshots)
    assert main(["inspect", run, "--deconv", "--images", "2", "--layer", "conv2"]) == 0
    assert main(["inspect", run, "--top9", "--layer", "conv1", "--maps", "4"]) == 0
    assert main(["inspect", run, "--occlusion", "--images", "1", "--occlusion-size", "8", "--occlusion-stride", "4"]) == 0
    assert main(["inspect", run, "--evolution", "--maps", "3"]) == 0
    assert main(["inspect", run, "--invariance", "--images", "5"]) == 0
    figures = {p.name for p in (run_with_snapshots / "figures").iterdir()}
    assert {"deconv_conv2_max.png", "top9_conv1.png", "occlusion_conv2.png", "evolution_conv2.png", "invariance.png"} <= figures
    top9 = read_csv(run_with_snapshots / "tables" / "top9_conv1.csv")
    assert len(top9) == 4 * 9 and [r["rank"] for r in top9[:9]] == [str(i) for i in range(1, 10)]
    values = [float(r["activation"]) for r in top9[:9]]
    assert values == sorted(values, reverse=True)
    inv = read_csv(run_with_snapshots / "tables" / "invariance.csv")
    assert {r["transform"] for r in inv} == {"vertical translation (pixels)", "rotation (degrees)", "scale (factor)"}


def test_inspect_errors_are_clear(run_with_snapshots, tmp_path, capsys):
    assert main(["inspect", str(run_with_snapshots)]) == 2
    assert "choose at least one of --filters" in capsys.readouterr().err
    assert main(["inspect", str(run_with_snapshots), "--deconv", "--layer", "conv7"]) == 2
    assert "--layer conv7: not a layer of this model" in capsys.readouterr().err
    plain = tmp_path / "plain"
    train(resolve("lenet5", "cifar10-assignment", iterations=4, eval_every=4, batch_size=16), plain,
          dataset=tiny_dataset("cifar10-assignment"), progress=False)
    assert main(["inspect", str(plain), "--evolution"]) == 2
    assert "no weight snapshots; train with --snapshots" in capsys.readouterr().err
