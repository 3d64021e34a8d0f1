"""The study report's look inside the recurrent nets, read from the tables the techniques wrote in
tiny LSTM, GRU and RNN runs: every block is there, the gate grid holds only the gated cells, and the
table's most selective unit is the one units.csv ranks first."""

from __future__ import annotations

import csv

import pytest
import torch

from netsight.techniques.inspection import inspect
from netsight.techniques.target import open_run_target
from netsight import plotting
from netsight.report import figures
from netsight.report.html import Doc
from netsight.report.study import ConfigGroup
from netsight.report.study_recurrent import inside_recurrent
from netsight.train import resolve, train
from netsight.train.rundir import open_run
from tests.conftest import tiny_dataset


def _no_drawing(fig, path):
    """Figures are not what this test reads: they are built but not rendered (the figure rules test renders them)."""
    from netsight.fileio import write_bytes
    from netsight.plotting import plt

    plt.close(fig)
    return write_bytes(path, b"not drawn")


@pytest.mark.slow  # trains three tiny runs
def test_the_section_reads_every_runs_tables(tmp_path, monkeypatch):
    torch.set_num_threads(1)
    monkeypatch.setattr(plotting, "save_figure", _no_drawing)
    monkeypatch.setattr(plotting, "tight_with_title", lambda *a, **k: None)  # the techniques' figures
    monkeypatch.setattr(figures, "tight_with_title", lambda *a, **k: None)  # the study's own
    data = tiny_dataset("mnist", n_train=32, n_test=20)
    groups = []
    for model, hidden in (("rnn", 4), ("lstm", 6), ("gru", 5)):
        out = tmp_path / model
        train(
            resolve(model, "mnist", iterations=4, eval_every=2, batch_size=16, hidden=hidden), out, dataset=data, progress=False
        )
        techniques = ["rows", "units", "trajectories"] + (["gates"] if model != "rnn" else [])
        inspect(open_run_target(out, dataset=data), techniques, {"count": 10})
        groups.append(ConfigGroup("rnn", model, "mnist", hidden, [open_run(out)]))
    doc = Doc()
    inside_recurrent(doc, groups, tmp_path / "figures")
    kinds = [b.kind for b in doc.blocks]
    assert kinds[0] == "h3" and doc.blocks[0].fold and kinds.count("figure") == 3 and kinds.count("table") == 3
    assert all(b.path.is_file() for b in doc.blocks if b.kind == "figure")
    climb, gates, table = [b for b in doc.blocks if b.kind == "table"]
    # which rows matter: each run's costliest row, read from its rows.csv; no sequence analysis ran, so no climb
    assert [r[0] for r in climb.rows] == ["rnn-4", "lstm-6", "gru-5"] and all(r[2] == "" for r in climb.rows)
    assert "No run has the accuracy after k rows" in climb.caption
    for row, model in zip(climb.rows, ("rnn", "lstm", "gru"), strict=True):
        with (tmp_path / model / "tables" / "rows.csv").open() as f:
            occ = [float(r["occlusion"]) for r in csv.DictReader(f) if r["class"] == "all"]
        assert row[1] == occ.index(max(occ)) + 1
    assert [r[0] for r in table.rows] == ["rnn-4", "lstm-6", "gru-5"]
    with (tmp_path / "lstm" / "tables" / "units.csv").open() as f:
        best = max(csv.DictReader(f), key=lambda r: float(r["selectivity"]))
    assert table.rows[1][1].startswith(f"{best['unit']} (")
    # the gates' mean fractions: a table of the gated cells only
    assert {(r[0], r[1]) for r in gates.rows} >= {("lstm-6", "input"), ("gru-5", "reset")}
    assert all(r[0] != "rnn-4" for r in gates.rows) and all(r[2].endswith("%") for r in gates.rows)
    assert "10 test images" in next(b.caption for b in doc.blocks if b.kind == "figure" and "gate" in b.caption)


def test_no_tables_no_section(tmp_path):
    data = tiny_dataset("mnist", n_train=16, n_test=8)
    train(
        resolve("lstm", "mnist", iterations=2, eval_every=1, batch_size=8, hidden=3), tmp_path / "r", dataset=data, progress=False
    )
    doc = Doc()
    inside_recurrent(doc, [ConfigGroup("rnn", "lstm", "mnist", 3, [open_run(tmp_path / "r")])], tmp_path / "figures")
    assert doc.blocks == []
