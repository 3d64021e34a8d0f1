"""The trust checks of the recurrent row readers (techniques/recurrent_trust.py): the re-initialisation of
nn.RNN/LSTM/GRU layers, row deletion/insertion on a model whose answer is known, the technique on the tiny
LSTM run (with a second seed beside it), its one-line refusals, and the fading saliency of Ismail et al.
(NeurIPS 2019) reproduced on short real trainings."""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from netsight.errors import NetsightError
from netsight.fileio import read_csv
from netsight.models.rnn import RowSequenceClassifier
from netsight.ops.randomise import cascading, independent, randomisable_layers, reinitialise_
from netsight.ops.similarity import summarise
from netsight.techniques import registry
from netsight.techniques.recurrent_trust import (
    FILES,
    AGREEMENT_FILES,
    VALUE_COLUMNS,
    VERDICT_COLUMNS,
    informative_row_images,
    mass_per_row,
    row_curves,
    row_faithfulness,
    row_scores,
)
from netsight.techniques.target import open_run_target
from netsight.methods import Saliency


# ------------------------------------------------------------------ re-initialising recurrent layers
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_cells_are_reinitialised_as_their_own_init_does(cell):
    torch.manual_seed(0)
    model = RowSequenceClassifier(cell, (1, 28, 28), 10, hidden=16)
    with torch.no_grad():  # trained-like: every weight far outside the init's range
        for p in model.parameters():
            p.fill_(3.0)
    assert randomisable_layers(model) == ["fc", "rnn"]
    x = torch.rand(5, 1, 28, 28)
    before = model(x).detach()
    twin = independent(model, "rnn", seed=4)
    bound = 1 / math.sqrt(16)  # PyTorch's RNN/LSTM/GRU init: U(-1/sqrt(hidden), 1/sqrt(hidden)) for every parameter
    for name, p in twin.rnn.named_parameters():
        assert p.abs().max() <= bound and p.std() > bound / 4, name  # redrawn, spread over the range
    assert torch.equal(twin.fc.weight, model.fc.weight)  # only that layer
    assert all((p == 3.0).all() for p in model.parameters())  # the user's model untouched
    # the fused kernel reads the new weights: the copy's output is that of a fresh module given its state
    fresh = RowSequenceClassifier(cell, (1, 28, 28), 10, hidden=16)
    fresh.load_state_dict(twin.state_dict())
    assert torch.allclose(twin(x), fresh(x), atol=1e-6) and not torch.allclose(twin(x), before)
    # the same seed, the same weights, alone or in the cascade; another seed, other weights
    again = independent(model, "rnn", seed=4)
    assert all(torch.equal(a, b) for a, b in zip(again.parameters(), twin.parameters(), strict=True))
    (_, top), (_, both) = list(cascading(model, seed=4))
    assert torch.equal(both.rnn.weight_hh_l0, twin.rnn.weight_hh_l0) and torch.equal(top.rnn.weight_hh_l0, model.rnn.weight_hh_l0)
    other = model.__class__(cell, (1, 28, 28), 10, hidden=16)
    other.load_state_dict(model.state_dict())
    reinitialise_(other, "rnn", seed=5)
    assert not torch.equal(other.rnn.weight_hh_l0, twin.rnn.weight_hh_l0)


# ------------------------------------------------------------------ the maths, on a model whose answer is known
class _ReadsOneRow(nn.Module):
    """Class 1's logit is 10 x the mean of row `row`; class 0's is 0: p(class 1) is known for any image."""

    def __init__(self, row: int):
        super().__init__()
        self.row = row
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x):
        v = self.scale * x[:, 0, self.row].mean(1)
        return torch.stack([torch.zeros_like(v), v], 1)


def test_row_deletion_of_the_one_row_that_matters_drops_p_at_the_first_step():
    x = torch.ones(2, 1, 6, 4)
    model = _ReadsOneRow(row=3)
    good = torch.zeros(2, 6)
    good[:, 3] = 1.0  # the row that matters ranked first
    bad = torch.zeros(2, 6)
    bad[:, 3] = -1.0  # ranked last
    p_full = torch.sigmoid(torch.tensor(10.0))
    for scores, step in ((good, 1), (bad, 6)):
        c = row_curves(model, x, scores, [1, 1])
        assert torch.allclose(c["deletion"][:, :step], p_full.expand(2, step))
        assert torch.allclose(c["deletion"][:, step:], torch.tensor(0.5))  # the row deleted: logit 0 on both
    r = row_faithfulness(model, x, {"good": good, "bad": bad}, [1, 1])
    assert r.auc["good"]["deletion"].mean() < r.auc["random"]["deletion"].mean() <= r.auc["bad"]["deletion"].mean()
    assert set(r.auc) == {"good", "bad", "random", "ink"}
    with pytest.raises(ValueError, match="row scores"):
        row_curves(model, x, torch.zeros(2, 5), [1, 1])


def test_mass_per_row_is_a_share_and_scores_sum_the_row():
    maps = torch.tensor([[[1.0, -1.0], [2.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    assert torch.allclose(row_scores(maps), torch.tensor([[0.0, 2.0], [0.0, 0.0]]))
    m = mass_per_row(maps)
    assert torch.allclose(m[0], torch.tensor([0.5, 0.5])) and torch.isnan(m[1]).all()


# ------------------------------------------------------------------ the technique on the tiny LSTM run
SMALL = {"count": 4, "ig_steps": 4, "samples": 2, "draws": 2}


@pytest.fixture(scope="module")
def group(tiny_runs, tmp_path_factory):
    """The tiny LSTM run and a second seed of it in one group folder (as a suite's OUT/runs/<group>/)."""
    root = tmp_path_factory.mktemp("recurrent-trust")
    first = tiny_runs.copy("lstm", root / "lstm-s0")
    tiny_runs.train("lstm", root / "lstm-s1", seed=1)
    return first, tiny_runs.data("lstm")


@pytest.mark.slow  # trains a second tiny seed and draws four figures: ~10 s of CPU
def test_the_technique_writes_its_tables_in_the_contracts_formats(group):
    path, data = group
    files = registry.run("recurrent_trust", open_run_target(path, dataset=data), **SMALL)
    assert [f.relative_to(path).as_posix() for f in files] == FILES + AGREEMENT_FILES
    assert all(f.stat().st_size > 0 for f in files)
    tables = {f.name: read_csv(f) for f in files if f.suffix == ".csv"}
    values = tables["sanity_values.csv"]
    assert list(values[0]) == list(VALUE_COLUMNS)
    modes = {r["mode"] for r in values}
    assert modes == {"cascading", "independent", "chance: input", "chance: edges", "chance: random models"}
    assert {r["draw"] for r in values if r["mode"] == "cascading"} == {"0", "1"}
    assert {r["layer"] for r in values if r["mode"] == "cascading"} == {"fc", "rnn"}
    assert all(r["value"] == "" or -1 - 1e-9 <= float(r["value"]) <= 1 + 1e-9 for r in values)
    for name in ("verdicts_sanity.csv", "verdicts_faithfulness.csv", "verdicts_agreement.csv"):
        rows = tables[name]
        assert rows and list(rows[0]) == list(VERDICT_COLUMNS)
        assert all(r["verdict"] in ("yes", "no", "unsettled") for r in rows)
        assert all(r["lo"] == "" or float(r["lo"]) <= float(r["estimate"]) <= float(r["hi"]) for r in rows)
    assert {r["method"] for r in tables["faithfulness_rows.csv"]} == {
        "gradient", "gradient_x_input", "integrated_gradients", "smoothgrad", "random", "ink"
    }  # fmt: skip
    per_row = tables["recurrent_trust_rows.csv"]
    for m in ("gradient", "smoothgrad"):
        shares = [float(r["mass_mean"]) for r in per_row if r["method"] == m]
        assert len(shares) == 28 and abs(sum(shares) - 1) < 1e-4
    assert {r["seeds"] for r in tables["seed_agreement.csv"]} == {"2"}


def test_bad_input_is_refused_in_one_line_before_anything_is_written(tiny_runs):
    t = open_run_target(tiny_runs.path("lstm"), dataset=tiny_runs.data("lstm"))
    before = sorted(p.as_posix() for p in tiny_runs.path("lstm").rglob("*"))
    for options, words in (
        ({"methods": "guided_backprop"}, "--methods guided_backprop: not for a recurrent run (its rule rewrites ReLUs"),
        ({"methods": "gradcam"}, "--methods gradcam: not for a recurrent run (it needs a convolution"),
        ({"methods": "nonsense"}, "--methods nonsense"),
        ({"draws": 0}, "--draws 0"),
        ({"target": "12"}, "12"),
    ):
        with pytest.raises(NetsightError, match=re.escape(words)) as e:
            registry.get("recurrent_trust").resolve(t, options)
        assert "\n" not in str(e.value)
    assert sorted(p.as_posix() for p in tiny_runs.path("lstm").rglob("*")) == before  # nothing written
    cnn = open_run_target(tiny_runs.path("lenet5"), dataset=tiny_runs.data("lenet5"))
    with pytest.raises(NetsightError, match="--recurrent-trust is for recurrent networks"):
        registry.run("recurrent_trust", cnn, **SMALL)


# ------------------------------------------------------------------ Ismail et al. 2019: fading saliency
def _train(cell: str, row: int, iterations: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Train until the net reads the class from `row` steadily (>= 95% on a validation draw at three checks in a row,
    one every 100 iterations) or `iterations` are spent: a late row takes about 300 iterations, an early one more.
    The gradient's norm is clipped at 1, as recurrent nets are usually trained: without it, on an AMD EPYC CPU the
    LSTM and the GRU reading row 3 reached 66% and then fell back to chance for good (exploding gradients), where
    another CPU's arithmetic had carried them through."""
    torch.manual_seed(0)
    model = RowSequenceClassifier(cell, (1, 28, 28), 10, hidden=32)
    x, y = informative_row_images(4000, row, seed=0)
    xv, yv = informative_row_images(300, row, seed=2)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    g = torch.Generator().manual_seed(0)
    steady = 0  # checks in a row at >= 95% (a margin over the 90% asserted): an early row's training is unsteady
    for step in range(1, iterations + 1):
        b = torch.randint(0, len(x), (64,), generator=g)
        loss = nn.functional.cross_entropy(model(x[b]), y[b])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0:
            with torch.no_grad():
                steady = steady + 1 if (model(xv).argmax(1) == yv).float().mean() >= 0.95 else 0
            if steady == 3:
                break
    model.eval()
    xt, yt = informative_row_images(300, row, seed=1)
    return model, xt, yt


ITERATIONS = {"rnn": 1500, "lstm": 3000, "gru": 3000}  # at most (the early row first reads >= 90% at 900-2,500)


@pytest.mark.slow  # two short real trainings per cell, one thread: 7 s (RNN), 13 s (LSTM), 20 s (GRU), quiet
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_saliency_fades_for_an_informative_row_read_early(cell):
    """Ismail et al. 2019 (their Fig. 1 and section 3): a recurrent net classifies from features it read early, yet
    its gradient saliency on those features is weaker than when the same features come late. Here the class is
    written only in row 3 (early: 25 steps before the end) or row 26 (late); both nets learn it (>= 90%), and the
    share of |gradient| in the informative row, over the correctly classified test images, is smaller for the
    early row, intervals apart; the late row's is above the even share 1/28, the early row's may vanish."""
    torch.set_num_threads(1)
    share = {}
    for row in (2, 25):
        model, x, y = _train(cell, row, ITERATIONS[cell])
        with torch.no_grad():
            ok = model(x).argmax(1) == y
        assert ok.float().mean() >= 0.9, (cell, row, float(ok.float().mean()))  # it learned the task
        mass = mass_per_row(Saliency(model).attribute(x[ok], y[ok].tolist()).maps)
        share[row] = summarise(mass[:, row])
    early, late = share[2], share[25]
    assert late.mean > 1 / 28, (cell, late)  # read last, the informative row gets more than its even share
    assert early.hi < late.lo, (cell, early, late)  # read early, less: it may vanish (the GRU's did: 0.000)


# ------------------------------------------------------------------ section 3's block, from hand-written tables
def test_the_report_block_reads_each_runs_verdicts_and_mass(tmp_path):
    from types import SimpleNamespace

    from netsight.fileio import write_csv
    from netsight.report.html import Doc
    from netsight.report.study_recurrent import inside_recurrent

    groups = []
    for model, hidden, verdict in (("gru", 64, "no"), ("rnn", 64, "yes")):
        tables = tmp_path / f"{model}-{hidden}" / "tables"
        rows = [("gradient", r + 1, 1 / 28, 0.0, 0.1, 4, 0.0, 1 / 28) for r in range(28)]
        write_csv(tables / "recurrent_trust_rows.csv", ["method", "row", "mass_mean", "mass_lo", "mass_hi", "n", "score_mean",
                                                         "mass_randomised"], rows)  # fmt: skip
        row = dict(method="gradient", test="depends on the model", verdict=verdict, measure="m", estimate=0.42, lo=0.3,
                   hi=0.55, chance=0.9, threshold=0.5, n_images=4, n_draws=2, n_seeds=1, note="")  # fmt: skip
        write_csv(tables / "verdicts_sanity.csv", VERDICT_COLUMNS, [row])
        faith = dict(row, test="is faithful", measure="row deletion area minus the random row order's", estimate=-0.004,
                     lo=-0.006, hi=-0.002, chance=0.0, verdict="yes")  # fmt: skip
        write_csv(tables / "verdicts_faithfulness.csv", VERDICT_COLUMNS, [faith])
        groups.append(SimpleNamespace(model=model, hidden=hidden, label=f"{model}-{hidden}",
                                      runs=[SimpleNamespace(dir=SimpleNamespace(tables=tables))]))  # fmt: skip
    doc = Doc()
    inside_recurrent(doc, groups, tmp_path / "figures")  # type: ignore[arg-type]
    figure = next(b for b in doc.blocks if b.kind == "figure")
    assert figure.path.is_file() and "over 4 test images" in figure.caption
    table = next(b for b in doc.blocks if b.kind == "table")
    assert [r[:2] for r in table.rows] == [["rnn-64", "gradient"], ["gru-64", "gradient"]]  # cell order: rnn, lstm, gru
    assert table.rows[0][2] == "yes: 0.42 [0.30, 0.55]; chance 0.90" and table.rows[1][2].startswith("no: ")
    assert table.rows[0][3] == "yes: -4.0e-03 [-6.0e-03, -2.0e-03]; chance 0.00" and table.rows[0][4] == "not run"
