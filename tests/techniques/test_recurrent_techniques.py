"""The recurrent techniques (rows, units, gates, trajectories) on tiny runs: the files they
declare, tables that agree with the one unit_stats pass they share (made once for units and gates
together), and bad input refused in one line with exit 2 before anything is written."""

from __future__ import annotations

import csv

import pytest
import torch
from safetensors.torch import load_file

import netsight.data as data_module
from netsight.techniques import registry
from netsight.techniques.inspection import inspect
from netsight.ops.recurrent import unit_stats
from netsight.techniques.target import open_run_target
from netsight.techniques import _recurrent
from netsight.cli import main
from netsight.train import resolve, train
from tests.conftest import tiny_dataset, tree_snapshot


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_runs):
    """Copies of the session's tiny LSTM (8 units, 6 iterations, snapshots at 2 and 4, on 64/30 tiny digits) and
    LeNet5, and an RNN of 4 units trained here; each with the tiny dataset its analyses read."""
    root = tmp_path_factory.mktemp("recurrent-runs")
    mnist, cifar = tiny_runs.data("lstm"), tiny_dataset("cifar10-assignment", n_train=64, n_test=10)
    made = {"lstm": (tiny_runs.copy("lstm", root / "lstm"), mnist), "lenet5": (tiny_runs.copy("lenet5", root / "lenet5"), cifar)}
    torch.set_num_threads(1)
    train(
        resolve("rnn", "mnist", iterations=6, eval_every=3, batch_size=16, hidden=4), root / "rnn", dataset=mnist, progress=False
    )
    made["rnn"] = (root / "rnn", mnist)
    return made


@pytest.fixture
def tiny_data(monkeypatch, runs):
    """The CLI loads the run's dataset by name: hand it the tiny one."""
    by_name = {data.name: data for _, data in runs.values()}
    monkeypatch.setattr(data_module, "load_dataset", lambda name, *a, **k: by_name[name])


def test_units_and_gates_share_one_pass_and_agree_with_it(runs, monkeypatch):
    out, data = runs["lstm"]
    target = open_run_target(out, dataset=data)
    calls = []
    original = _recurrent.unit_stats
    monkeypatch.setattr(_recurrent, "unit_stats", lambda *a, **k: calls.append(1) or original(*a, **k))
    _recurrent._CACHE.clear()
    written = inspect(target, ["rows", "units", "gates", "trajectories"], {"count": 20})
    assert len(calls) == 1
    names = {p.relative_to(out).as_posix() for p in written}
    assert {"figures/units.png", "tables/units.csv", "tables/unit_traces.safetensors", "figures/gates.png"} <= names
    assert {"tables/gates.csv", "tables/gates_training.csv", "figures/rows.png", "tables/rows.csv"} <= names
    assert {"figures/trajectories.png", "tables/trajectories.safetensors", "tables/rows_images.safetensors"} <= names
    index = torch.linspace(0, 29, 20).round().long()
    r = unit_stats(target.model, data.test_images[index], data.test_labels[index])
    with (out / "tables" / "units.csv").open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == 8
    for u, row in enumerate(table):
        assert [int(row[f"top{j}_image"]) for j in range(1, 10)] == index[r.top_images[u]].tolist()
        assert [int(row[f"top{j}_step"]) for j in range(1, 10)] == r.top_steps[u].tolist()
        assert float(row["selectivity"]) == pytest.approx(float(r.selectivity[u]), abs=1e-6)
    saved = load_file(str(out / "tables" / "unit_traces.safetensors"))
    assert torch.allclose(saved["left_forget"], r.left["forget"]) and saved["top_traces"].shape == (8, 9, 28)
    with (out / "tables" / "gates.csv").open() as f:
        gates = list(csv.DictReader(f))
    assert len(gates) == 3 * 8 and {g["gate"] for g in gates} == {"input", "forget", "output"}
    with (out / "tables" / "gates_training.csv").open() as f:
        assert [int(r["iteration"]) for r in csv.DictReader(f)] == [2, 2, 2, 4, 4, 4, 6, 6, 6]
    tr = load_file(str(out / "tables" / "trajectories.safetensors"))
    assert tr["path"].shape == (20, 28, 2) and float(tr["explained"].sum()) <= 1 + 1e-6


@pytest.mark.parametrize(
    ("run", "flags", "message"),
    [
        ("lenet5", ["--gates"], "--gates is for recurrent networks"),
        ("rnn", ["--gates"], "--gates: rnn has no gates (LSTM, GRU have)"),
        ("lstm", ["--units", "--unit", "200"], "--unit 200: lstm has 8 hidden units (0..7)"),
        ("lenet5", ["--units"], "--units is for recurrent networks"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(runs, tiny_data, run, flags, message, capsys):
    out, _ = runs[run]
    before = tree_snapshot(out)
    assert main(["inspect", str(out), *flags, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("netsight: error: ") and message in err and "\n" not in err, err
    assert tree_snapshot(out) == before


def test_one_unit_asked_for_draws_its_own_figure(runs, tiny_data, capsys):
    out, _ = runs["lstm"]
    assert main(["inspect", str(out), "--units", "--unit", "3", "--count", "10", "--quiet"]) == 0
    assert (out / "figures" / "units_3.png").is_file()
    assert registry.get("units").first_seed and registry.get("sequence").first_seed is False


def test_rows_on_a_cnn_scores_the_same_digits_rows_with_the_attribution_methods(runs):
    """A CNN gets the row scores too (the report sets them beside the recurrent nets'): each is the
    attribution method's map summed over the row's pixels, and no prefix accuracy is claimed."""
    from netsight.ops.attribution import attribute
    from netsight.techniques.rows import row_occlusion

    out, data = runs["lenet5"]
    target = open_run_target(out, dataset=data)
    inspect(target, ["rows"], {"count": 10})
    saved = load_file(str(out / "tables" / "rows_images.safetensors"))
    index, labels = saved["image"], saved["label"]
    x = data.test_images[index].float().div(255)
    x = x[:, None] if x.dim() == 3 else x
    gxi = attribute(target.model, x, "gradient_x_input", targets=labels.tolist()).maps.sum(2)
    assert torch.allclose(saved["gradient_x_input"], gxi, atol=1e-6)
    assert torch.allclose(saved["occlusion"], row_occlusion(target.model, x, labels), atol=1e-6)
    assert saved["integrated_gradients"].shape == (10, x.shape[2])
