import pytest

from netsight.cli import main
from netsight.fileio import read_csv
from netsight.train import resolve, train
from tests.conftest import tiny_dataset


def test_compare_two_runs(tmp_path, capsys):
    data = tiny_dataset("cifar10-assignment")
    for model in ("lenet5", "cnn-bn"):
        train(
            resolve(model, "cifar10-assignment", iterations=10, eval_every=5, batch_size=16),
            tmp_path / model,
            dataset=data,
            progress=False,
        )
    assert main(["compare", str(tmp_path / "lenet5"), str(tmp_path / "cnn-bn"), "--out", str(tmp_path / "cmp")]) == 0
    rows = read_csv(tmp_path / "cmp" / "compare.csv")
    assert [r["model"] for r in rows] == ["lenet5", "cnn-bn"]
    for r in rows:
        assert float(r["train_test_gap"]) == pytest.approx(float(r["final_train_acc"]) - float(r["final_test_acc"]))
        assert int(r["parameters"]) > 0
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 0
    assert "| lenet5 | lenet5 |" in (tmp_path / "cmp" / "compare.md").read_text()


def test_compare_missing_run_is_an_error(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope")]) == 2
    assert "no such run directory" in capsys.readouterr().err
