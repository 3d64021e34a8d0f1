"""`netsight explore` on recurrent models: the page's data (top-9 (image, step) pairs, traces, mean
trace per class, selectivity, gate saturation) against a brute-force recomputation from the
model's own nn.LSTM/nn.GRU/nn.RNN output, for a tiny LSTM run (through the technique) and tiny
GRU and RNN models; the pass streams in batches; bad input is refused in one line."""

import json
import re

import pytest
import torch

from netsight.techniques import registry
from netsight.techniques.explore_recurrent_units import explore_recurrent
from netsight.ops.recurrent import unit_stats
from netsight.techniques.target import open_run_target
from netsight.techniques.base import Ran
from netsight.cli import main
from netsight.errors import NetsightError
from netsight.models import ModelConfig, build_model
from netsight.report.explore_recurrent_page import recurrent_layer_data
from tests.conftest import tiny_dataset

HIDDEN = 8  # the session's tiny LSTM run (conftest.TINY_RUNS)
GATES = {"lstm": ["input", "forget", "output"], "gru": ["reset", "update"], "rnn": []}


@pytest.fixture(scope="module")
def data():
    return tiny_dataset("mnist", n_train=32, n_test=30)


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory, tiny_runs):
    """This module's copy of the session's tiny LSTM run; the pages here read the module's own 30 test digits."""
    return tiny_runs.copy("lstm", tmp_path_factory.mktemp("explore-lstm") / "lstm")


def _page_data(page) -> dict:
    found = re.search(r"<script type='application/json' id='explore-data'>(.*?)</script>", page.read_text(), re.S)
    assert found, "the page carries its data as JSON"
    return json.loads(found.group(1).replace("<\\/", "</"))


def _check(layer: dict, model, x: torch.Tensor, labels: torch.Tensor) -> None:
    """`layer` (the page's JSON of the rnn layer) against a brute-force search over every (image, step)."""
    with torch.no_grad():
        hidden = model.rnn(model.rows(x))[0].double()  # [N, T, H], the module's own output
    n, steps, size = hidden.shape
    passed = unit_stats(model, x, labels)
    assert (layer["name"], layer["kind"], layer["cell"]) == ("rnn", "recurrent", model.cell)
    assert len(layer["units"]) == size == HIDDEN and layer["steps"] == steps == 28 and layer["images_seen"] == n
    assert layer["gates"] == GATES[model.cell] and layer["class_counts"] == torch.bincount(labels, minlength=10).tolist()
    for u in layer["units"]:
        h = u["unit"]
        flat = hidden[:, :, h].reshape(-1)
        order = torch.sort(flat, descending=True, stable=True).indices[:9]
        assert [(t["image"], t["step"]) for t in u["top"]] == [(int(i) // steps, int(i) % steps) for i in order], h
        for t, i in zip(u["top"], order, strict=True):
            assert t["value"] == pytest.approx(float(flat[i]), abs=1e-6)
            assert t["trace"] == pytest.approx(hidden[t["image"], :, h].tolist(), abs=2e-4)  # 4 significant digits
            assert t["label"] == str(int(labels[t["image"]]))
        assert u["stats"]["peak"] == pytest.approx(float(flat.max()), abs=1e-6)
        means = torch.stack([hidden[labels == c, :, h].mean(0) for c in range(10)])
        assert u["class_mean"] == [pytest.approx(m.tolist(), abs=2e-4) for m in means]
        a = means.mean(1).abs()
        others = (a.sum() - a.max()) / 9
        assert u["stats"]["preferred"] == int(a.argmax())
        assert u["stats"]["selectivity"] == pytest.approx(float((a.max() - others) / (a.max() + others)), abs=1e-5)
        for g in layer["gates"]:  # the pass's fractions (recurrent.py checks the gates against the cell's equations)
            left, right = u["gates"][g]["left"], u["gates"][g]["right"]
            assert 0 <= left <= 1 and 0 <= right <= 1 and left + right <= 1 + 1e-6
            assert left == pytest.approx(float(passed.left[g][h]), rel=1e-3, abs=1e-9)
            assert right == pytest.approx(float(passed.right[g][h]), rel=1e-3, abs=1e-9)
            assert (layer["saturation"][g]["left"][h], layer["saturation"][g]["right"][h]) == (left, right)
    assert {int(i) for i in layer["images"]} == {t["image"] for u in layer["units"] for t in u["top"]}
    assert len({u["preview"] for u in layer["units"]}) >= 1


def test_an_lstm_run_page_equals_a_brute_force_search(lstm_run, data):
    target = open_run_target(lstm_run, dataset=data)
    assert registry.run("explore", target, layers=["rnn"]) == [lstm_run / "explore.html"]
    (page,) = _page_data(lstm_run / "explore.html")["layers"]
    model, x, labels = target.model.eval(), data.test_images.float() / 255, data.test_labels
    units = explore_recurrent(model, x, labels, data.classes)
    layer = recurrent_layer_data(units, list(target.images.names), [str(int(v)) for v in labels])
    _check(layer, model, x, labels)
    for u, p in zip(layer["units"], page["units"], strict=True):
        (cards,) = [q for q in p["panels"] if q["kind"] == "images"]
        shown = [(int(i["data"]["image"]), int(i["data"]["step"])) for i in cards["items"]]
        assert shown == [(t["image"], t["step"]) for t in u["top"]]
        assert p["title"] == f"LSTM layer · unit {u['unit']} (hidden state, {HIDDEN} units)"
        (stats,) = [t for q in p["panels"] for t in q.get("panels", []) if t["kind"] == "table" and "selectivity" in t["head"]]
        best, mean = u["stats"]["preferred"], sum(u["class_mean"][u["stats"]["preferred"]]) / len(u["class_mean"][0])
        sign = "−" if mean < 0 else "+"  # the class that moves the unit most, with the sign it moves it by
        assert stats["rows"][0][1] == f"{data.classes[best]} ({sign}{abs(mean):.2f})"
    assert page["label"] == "LSTM layer (rnn)" and page["name"] == "rnn"  # named by its cell; the module, the address
    for g in layer["gates"]:  # every unit's point of Karpathy's scatter, stored once for the layer
        assert page["data"][f"saturation {g}"] == {"x": layer["saturation"][g]["left"], "y": layer["saturation"][g]["right"]}
    assert set(page["images"]) == {i for p in page["units"] for i in _sources(p["panels"])} | {
        p["preview"] for p in page["units"]
    }
    ran = Ran({"layers": ["rnn"], "page": None}, (lstm_run / "explore.html",))  # as the run records it
    (item,) = registry.get("explore").report(target.run, f"lstm-{HIDDEN}", ran)  # the study report's link to the page
    assert item.kind == "link" and item.path == lstm_run / "explore.html" and f"hidden unit of lstm-{HIDDEN}" in item.text


def _sources(panels: list) -> set:
    """The image keys the panels show."""
    out = set()
    for p in panels:
        for item in p.get("items", []):
            out |= set(item.get("src", []))
        out |= _sources(p.get("panels", []))
    return out


@pytest.mark.parametrize("cell", ["gru", "rnn"])
def test_gru_and_rnn_data_equal_a_brute_force_search(cell, data):
    torch.manual_seed(1)
    model = build_model(ModelConfig(cell, hidden=HIDDEN)).eval()
    x, labels = data.test_images.float() / 255, data.test_labels
    units = explore_recurrent(model, x, labels, data.classes)
    names = [f"image {i}" for i in range(len(x))]
    _check(recurrent_layer_data(units, names, [str(int(v)) for v in labels]), model, x, labels)


def test_the_pass_streams_in_batches(data):
    """Batches of 7 images give the numbers of one batch of all 30 (the top-9 kept across batches)."""
    torch.manual_seed(2)
    model = build_model(ModelConfig("lstm", hidden=HIDDEN)).eval()
    x, labels = data.test_images.float() / 255, data.test_labels
    whole = explore_recurrent(model, x, labels, batch_size=100).stats
    parts = explore_recurrent(model, x, labels, batch_size=7).stats
    assert torch.equal(whole.top_images, parts.top_images) and torch.equal(whole.top_steps, parts.top_steps)
    torch.testing.assert_close(whole.top_traces, parts.top_traces)
    torch.testing.assert_close(whole.class_mean, parts.class_mean)
    for g in whole.left:
        torch.testing.assert_close(whole.left[g], parts.left[g])
        torch.testing.assert_close(whole.right[g], parts.right[g])


def test_a_layer_other_than_rnn_is_refused_in_one_line(lstm_run, data, capsys):
    before = sorted(p.name for p in lstm_run.iterdir())
    assert main(["explore", str(lstm_run), "--layers", "conv1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "netsight: error: --layers conv1: not a layer of this model; a recurrent run has one layer to explore, "
        f"rnn (its {HIDDEN} hidden units)"
    )
    target = open_run_target(lstm_run, dataset=data)
    with pytest.raises(
        NetsightError, match=rf"^--layers fc: a recurrent run has one layer to explore, rnn \(its {HIDDEN} hidden units\)$"
    ):
        registry.prepare(registry.get("explore"), target, {"layers": ["rnn", "fc"]})
    assert sorted(p.name for p in lstm_run.iterdir()) == before
