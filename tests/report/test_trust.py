"""The study report's "Which pictures to trust" (netsight/report/trust.py): one line per method with each test's
verdict, pooled over the configuration's seeds, the trust card, OUT/tables/verdicts.csv (with the ROAR rows), and
no verdict at all in quick mode, which the report knows from OUT/suite.json."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from netsight.fileio import read_csv, write_csv, write_json
from netsight.report.html import Doc
from netsight.report.trust import agreement_table, faith_table, is_quick, line, trust_section
from netsight.techniques import _verdicts as V
from tests.helpers import agreement_values, faith_values, sanity_values

SANITY_COLUMNS = ("method", "mode", "layer", "depth", "draw", "image", "region", "metric", "value")


def _run(out: Path, seed: int, methods: dict[str, float], with_agreement: bool) -> SimpleNamespace:
    """A run folder holding the raw values of the checks (no weights: the section reads tables only)."""
    path = out / "runs" / "cnn" / f"lenet5-seed{seed}"
    rows = []
    for k, (m, level) in enumerate(methods.items()):
        rows += [{**r, "method": m} for r in sanity_values(level=level, rng_seed=10 * seed + k, permuted=level)]
    write_csv(path / V.SANITY_VALUES, SANITY_COLUMNS, rows)
    write_csv(path / V.FAITH_VALUES, ("method", "curve", "image", "auc"), faith_values(-0.1, rng_seed=seed))
    if with_agreement:
        write_csv(
            path / V.AGREEMENT_VALUES,
            ("method", "metric", "seed_a", "seed_b", "image", "region", "value"),
            [{**r, "method": m} for m in methods for r in agreement_values(0.7)],
        )
    write_json(path / "inspections.json", {"ran": {"card": {"options": {}, "files": []}}})
    return SimpleNamespace(
        path=path,
        dir=SimpleNamespace(tables=path / "tables"),
        config=SimpleNamespace(seed=seed),
        summary={"status": "completed"},
    )


def _suite(tmp_path: Path, quick: bool, roar: bool = False):
    out = tmp_path / "out"
    write_json(out / "suite.json", {"title": "t", "quick": quick})
    methods = {"gradient": 0.1, "guided_backprop": 0.85}
    runs = [_run(out, s, methods, with_agreement=s == 0) for s in range(2)]
    if roar:
        write_csv(
            out / "tables" / "verdicts_roar.csv",
            ("model", *V.COLUMNS),
            [dict(model="lenet5 / cifar10-assignment", method="gradient", test="ROAR: beats random", verdict="yes",
                  measure="accuracy drop", estimate=0.1, lo=0.05, hi=0.15, chance="", threshold=0, n_images="",
                  n_draws="", n_seeds=3, note="")],
        )  # fmt: skip
    g = SimpleNamespace(model="lenet5", data="cifar10-assignment", hidden=None, runs=runs)
    return out, g


def _texts(doc: Doc, kind: str = "p") -> list[str]:
    return [b.text for b in doc.blocks if b.kind == kind]


def test_one_line_per_method_pooled_over_seeds_and_the_card(tmp_path):
    out, g = _suite(tmp_path, quick=False, roar=True)
    doc = Doc()
    trust_section(doc, [g], out)  # quick read from suite.json
    lines = [t for t in _texts(doc) if t.startswith(("gradient:", "guided backprop:"))]
    assert len(lines) == 2
    grad, gbp = lines
    assert grad.startswith("gradient: depends on the model: yes; depends on the data: yes; is faithful: yes;")
    assert "agrees across seeds: yes" in grad  # three seeds, agreement 0.7 [0.68, 0.72] above the chance level 0.6
    assert "ROAR: beats random: yes" in grad
    assert gbp.startswith("guided backprop: depends on the model: no; depends on the data: no")
    figures = [b for b in doc.blocks if b.kind == "figure"]
    assert [f.path.name for f in figures] == ["trust_card_lenet5_cifar10-assignment.png"] and figures[0].path.is_file()
    assert "pooled over the values of 2 seeds" in figures[0].caption
    table = read_csv(out / "tables" / "verdicts.csv")
    assert list(table[0]) == ["model", *V.COLUMNS]
    assert {r["test"] for r in table} >= {V.MODEL, V.DATA, V.FAITHFUL, V.AGREES, "ROAR: beats random"}
    model = next(r for r in table if r["method"] == "gradient" and r["test"] == V.MODEL)
    assert model["n_seeds"] == "2" and model["n_draws"] == "4" and model["model"] == "lenet5 / cifar10-assignment"
    assert all(-1 <= float(r["lo"]) <= float(r["hi"]) <= 1 for r in table if r["lo"])


def test_quick_mode_judges_nothing_and_says_why(tmp_path):
    out, g = _suite(tmp_path, quick=True)
    assert is_quick(out)
    doc = Doc()
    trust_section(doc, [g], out)
    text = " ".join(_texts(doc))
    assert "Quick mode: nothing here is judged" in text and "too few for any interval to settle" in text
    lines = [t for t in _texts(doc) if t.startswith(("gradient:", "guided backprop:"))]
    assert len(lines) == 2 and all("not judged (quick mode)" in t for t in lines)
    assert not any(f": {w}" in t for t in lines for w in ("yes", "no;", "no.", "unsettled"))
    table = read_csv(out / "tables" / "verdicts.csv")
    assert table and all(r["verdict"] == "unsettled" and r["note"].startswith(V.QUICK_NOTE) for r in table)


def test_line_and_tables():
    vs = [
        V.Verdict("gradcam", V.MODEL, "unsettled", "m", 0.4, 0.2, 0.6, 0.5, 0.3, 8, 3, 1, ""),
        V.Verdict("gradcam", V.FAITHFUL, "yes", "m", -0.1, -0.2, -0.05, 0.0, 0.0, 8, 1, 1, ""),
    ]
    assert line("gradcam", vs) == "Grad-CAM: depends on the model: unsettled; is faithful: yes."
    header, rows = faith_table([dict(method="gradient", curve="deletion", auc_mean="0.10", auc_lo="0.08", auc_hi="0.12", n="8")])
    assert rows == [["gradient", "0.10 [0.08, 0.12]", ""]]
    header, rows = agreement_table(
        [
            dict(method="gradcam", metric=k, seeds="3", pairs="3", mean=m, lo="0.4", hi="0.6", n="4")
            for k, m in (("spearman", "0.1"), ("spearman_abs", "0.5"))
        ]
    )
    assert header[-1] == "Spearman of |map|" and rows == [["Grad-CAM", "3", "0.50 [0.40, 0.60]"]]  # one measure


@pytest.mark.parametrize("quick", [False, True])
def test_the_card_renders(tmp_path, quick):
    from netsight.plotting import save_figure
    from netsight.techniques.card import plot_trust_card

    rows = sanity_values(level=0.1, permuted=0.1)
    vs = V.verdicts(V.Values(rows, faith_values(-0.1), agreement_values(0.7)), quick=quick)
    path = save_figure(plot_trust_card(vs, "lenet5 on mnist"), tmp_path / "card.png")
    assert path.stat().st_size > 10_000
