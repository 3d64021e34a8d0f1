"""A tiny real suite with the sanity checks, faithfulness and seed agreement, and a permuted-label group:
the files each run gets, and the report's "Which pictures to trust" built from them."""

from __future__ import annotations

import pytest

from netsight.fileio import read_csv
from netsight.suites.runner import SuiteOptions, run_suite
from netsight.suites import work_units
from netsight.suites.spec import parse_suite
from tests.conftest import tiny_dataset

SUITE = """
title = "trust"
seeds = 2

# 4 iterations: the checks' files and the report's section are what is tested, not what the runs learn (quick mode
# judges nothing), and a LeNet5 step on 50 images costs ~0.08 s of CPU
[[group]]
name = "cnn"
models = ["lenet5"]
data = "cifar10-assignment"
iterations = 4
eval_every = 2
analyses = ["sanity", "faithfulness", "agreement", "card"]
[group.options]  # the assignment study's --quick settings of the checks
sanity = { count = 4, methods = "gradient,guided_backprop,gradcam", ig_steps = 8, samples = 4 }
faithfulness = { count = 4, methods = "gradient,guided_backprop,gradcam" }
agreement = { count = 4, methods = "gradient,guided_backprop,gradcam", ig_steps = 8, samples = 4 }

[[group]]
name = "rand"
models = ["lenet5"]
data = "cifar10-assignment"
iterations = 4
eval_every = 2
labels = "permuted"
"""


@pytest.mark.slow  # four tiny LeNet5 runs and the analyses
def test_a_suite_reports_which_pictures_to_trust(tmp_path, monkeypatch):
    # the suite's dataset, as the runner caches it: 256 train / 40 test images in the course data's shape
    monkeypatch.setitem(
        work_units._DATA_CACHE, ("cifar10-assignment", None, False), tiny_dataset("cifar10-assignment", n_test=40)
    )
    out = tmp_path / "s"
    run_suite(parse_suite(SUITE, "trust.toml"), out, SuiteOptions(progress=False, quick=True))
    first = next((out / "runs" / "cnn").glob("*seed0*"))
    for f in (
        "figures/sanity_grid.png",
        "figures/sanity_curves.png",
        "figures/faithfulness.png",
        "tables/seed_agreement.csv",
        "tables/faithfulness_values.csv",
        "tables/seed_agreement_values.csv",
        "figures/trust_card.png",
        "tables/verdicts.csv",
    ):
        assert (first / f).is_file(), f
    assert len(list((out / "runs" / "rand").glob("lenet5-cifar10-assignment-permuted-seed*"))) == 2
    sanity = read_csv(first / "tables" / "sanity.csv")
    modes = {r["mode"] for r in sanity}
    assert modes == {"cascading", "independent", "permuted labels", "chance: input", "chance: edges", "chance: random models"}
    assert {r["method"] for r in sanity} == {"gradient", "guided_backprop", "gradcam"}  # the suite's methods
    agreement = read_csv(first / "tables" / "seed_agreement.csv")
    assert {(r["seeds"], r["pairs"]) for r in agreement} == {("2", "1")}
    html = (out / "report.html").read_text()
    # the permuted-label runs are controls: named once, left out of the study's tables and headline findings
    assert "2 control runs for the trust checks (permuted labels), which the sections below leave out" in html
    assert "lenet5 (permuted labels)" not in html[: html.index("Which pictures to trust")]
    section = html[html.index("Which pictures to trust") :]
    assert "Quick mode: nothing here is judged" in section
    assert "guided backprop: not judged (quick mode)" in section and "is faithful: not judged" in section
    card = read_csv(first / "tables" / "verdicts.csv")  # the card technique's own table: quick, so nothing settled
    assert card and all(r["verdict"] == "unsettled" and r["note"].startswith("quick mode") for r in card)
    pooled = read_csv(out / "tables" / "verdicts.csv")
    assert {r["model"] for r in pooled} == {"lenet5 / cifar10-assignment"} and {r["verdict"] for r in pooled} == {"unsettled"}
    assert "Settings these checks ran with: sanity checks on 4 test images, methods gradient" in section
    assert "faithfulness on 4 images" in section and "seed agreement on 4 images" in section
    assert "Data randomisation: maps of the model trained on the true labels" in section
    assert section.count("data:image/png;base64,") >= 4  # the grid, the curves, faithfulness and the trust card
