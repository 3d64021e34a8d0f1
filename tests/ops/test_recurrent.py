"""netsight.ops.recurrent: hidden states and gates against a hand-written recomputation of
PyTorch's cell equations (written here, independently of run_steps), top-k against a brute-force
search, and the streaming accumulator over batches against one batch."""

from __future__ import annotations

import math

import pytest
import torch

from netsight.ops.recurrent import Steps, UnitStats, gate_names, run_steps, unit_stats
from netsight.errors import NetsightError
from netsight.models.rnn import RowSequenceClassifier


def _sig(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def _reference(model: RowSequenceClassifier, image: torch.Tensor) -> tuple[list, dict]:
    """The cell's equations (PyTorch's documentation) for ONE image, unit by unit in plain Python floats."""
    rnn = model.rnn
    W, U = rnn.weight_ih_l0.tolist(), rnn.weight_hh_l0.tolist()
    b, c_ = rnn.bias_ih_l0.tolist(), rnn.bias_hh_l0.tolist()
    H = rnn.hidden_size
    rows = image[0].tolist()  # [T, W] (one channel)
    h, c = [0.0] * H, [0.0] * H
    hs: list = []
    gates: dict[str, list] = {g: [] for g in gate_names(model.cell)}

    def pre(k: int, x: list, hh: list) -> tuple[float, float]:  # (input part, recurrent part) of gate row k
        return sum(W[k][j] * x[j] for j in range(len(x))) + b[k], sum(U[k][j] * hh[j] for j in range(H)) + c_[k]

    for x in rows:
        if model.cell == "lstm":
            i = [_sig(sum(pre(u, x, h))) for u in range(H)]
            f = [_sig(sum(pre(H + u, x, h))) for u in range(H)]
            g = [math.tanh(sum(pre(2 * H + u, x, h))) for u in range(H)]
            o = [_sig(sum(pre(3 * H + u, x, h))) for u in range(H)]
            c = [f[u] * c[u] + i[u] * g[u] for u in range(H)]
            h = [o[u] * math.tanh(c[u]) for u in range(H)]
            for name, v in (("input", i), ("forget", f), ("output", o)):
                gates[name].append(v)
        elif model.cell == "gru":
            r = [_sig(sum(pre(u, x, h))) for u in range(H)]
            z = [_sig(sum(pre(H + u, x, h))) for u in range(H)]
            nx = [pre(2 * H + u, x, h) for u in range(H)]
            n = [math.tanh(nx[u][0] + r[u] * nx[u][1]) for u in range(H)]
            h = [(1 - z[u]) * n[u] + z[u] * h[u] for u in range(H)]
            gates["reset"].append(r)
            gates["update"].append(z)
        else:
            h = [math.tanh(sum(pre(u, x, h))) for u in range(H)]
        hs.append(h)
    return hs, gates


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_hidden_and_gates_equal_the_cell_equations(cell):
    torch.manual_seed(1)
    model = RowSequenceClassifier(cell, (1, 8, 6), hidden=5).eval()
    images = torch.rand(3, 1, 8, 6)
    steps = run_steps(model, images)
    assert steps.hidden.shape == (3, 8, 5)
    assert (steps.cell is not None) == (cell == "lstm")
    assert tuple(steps.gates) == gate_names(cell)
    for n in range(3):
        hs, gates = _reference(model, images[n])
        assert torch.allclose(steps.hidden[n], torch.tensor(hs), atol=1e-5)
        for name, v in gates.items():
            assert torch.allclose(steps.gates[name][n], torch.tensor(v), atol=1e-5), name


def test_a_model_that_is_not_the_cell_is_refused():
    model = RowSequenceClassifier("lstm", (1, 4, 4), hidden=3).eval()
    original = model.rnn.forward
    model.rnn.forward = lambda x: (original(x)[0] + 1e-3, None)  # a module that lies
    with pytest.raises(NetsightError, match="differs from the module's output"):
        run_steps(model, torch.rand(2, 1, 4, 4))


def _random_steps(n: int, t: int, h: int, seed: int) -> Steps:
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, t, h, generator=g)
    return Steps(hidden, None, {"reset": torch.rand(n, t, h, generator=g), "update": torch.rand(n, t, h, generator=g)})


@pytest.mark.parametrize("ties", [False, True])
def test_top_k_equals_a_brute_force_search(ties):
    s = _random_steps(40, 7, 6, 0)
    if ties:  # many equal values (saturated units): the earlier (image, step) comes first
        s.hidden = s.hidden.round().clamp(-1, 1)
    labels = torch.arange(40) % 3
    acc = UnitStats("gru", 6, 3, top=9)
    for a in range(0, 40, 11):
        acc.update(Steps(s.hidden[a : a + 11], None, {k: v[a : a + 11] for k, v in s.gates.items()}), labels[a : a + 11], a)
    r = acc.result()
    for u in range(6):
        found = []  # every (value, image, step) of unit u, the largest 9
        for i in range(40):
            for t in range(7):
                found.append((s.hidden[i, t, u].item(), i, t))
        found.sort(key=lambda e: -e[0])
        assert [(i, t) for _, i, t in found[:9]] == list(zip(r.top_images[u].tolist(), r.top_steps[u].tolist(), strict=True))
        assert torch.allclose(r.top_values[u], torch.tensor([v for v, _, _ in found[:9]]))
        for j, (_, i, _) in enumerate(found[:9]):
            assert torch.equal(r.top_traces[u, j], s.hidden[i, :, u])


def test_batches_equal_one_batch_and_the_fractions_are_counts():
    s = _random_steps(30, 5, 4, 1)
    labels = torch.arange(30) % 4
    images = torch.rand(30, 1, 5, 6)
    one, many = UnitStats("gru", 4, 4), UnitStats("gru", 4, 4)
    one.update(s, labels, 0, images)
    for a in range(0, 30, 7):
        many.update(
            Steps(s.hidden[a : a + 7], None, {k: v[a : a + 7] for k, v in s.gates.items()}),
            labels[a : a + 7],
            a,
            images[a : a + 7],
        )
    r1, r2 = one.result(), many.result()
    for f in ("top_values", "top_images", "top_steps", "top_traces", "class_mean", "selectivity", "best_class"):
        assert torch.allclose(getattr(r1, f).double(), getattr(r2, f).double(), atol=1e-6), f
    for g in ("reset", "update"):
        assert torch.allclose(r1.left[g], (s.gates[g] < 0.1).double().mean((0, 1)).float())
        assert torch.allclose(r2.right[g], (s.gates[g] > 0.9).double().mean((0, 1)).float())
    for name in ("ink", "position", "row"):
        assert torch.allclose(r1.correlation[name], r2.correlation[name], atol=1e-5, equal_nan=True)
    # the row index's correlation, by hand
    h = s.hidden[:, :, 0].flatten().double()
    rows = torch.arange(5).repeat(30).double()
    assert r1.correlation["row"][0].item() == pytest.approx(torch.corrcoef(torch.stack([h, rows]))[0, 1].item(), abs=1e-5)
    m = torch.stack([s.hidden[labels == c].mean(0) for c in range(4)])
    assert torch.allclose(r1.class_mean, m, atol=1e-6)


def test_selectivity_of_a_unit_driven_by_one_class():
    hidden = torch.zeros(20, 3, 2)
    labels = torch.arange(20) % 4
    hidden[labels == 2, :, 0] = 0.8  # unit 0: only class 2 moves it
    hidden[:, :, 1] = 0.5  # unit 1: every class the same
    acc = UnitStats("rnn", 2, 4)
    acc.update(Steps(hidden, None, {}), labels, 0)
    r = acc.result()
    assert r.selectivity[0].item() == pytest.approx(1.0)
    assert r.best_class[0].item() == 2
    assert r.selectivity[1].item() == pytest.approx(0.0)


def test_unit_stats_reads_uint8_images_in_batches():
    torch.manual_seed(0)
    model = RowSequenceClassifier("lstm", (1, 6, 5), hidden=4).eval()
    x = torch.randint(0, 256, (23, 6, 5), dtype=torch.uint8)
    y = torch.arange(23) % 10
    a, b = unit_stats(model, x, y, batch_size=5), unit_stats(model, x, y, batch_size=100)
    assert a.images == 23 and a.steps == 6 and a.hidden == 4
    assert torch.equal(a.top_images, b.top_images) and torch.equal(a.top_steps, b.top_steps)
    assert torch.allclose(a.left["forget"], b.left["forget"])
    with pytest.raises(NetsightError, match="batches in order"):
        UnitStats("rnn", 4, 10).update(run_steps(model, x[:2]), y[:2], 5)
