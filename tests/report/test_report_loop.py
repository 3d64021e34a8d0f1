"""The report as a loop over what ran: a tiny suite whose Zeiler & Fergus techniques look at conv1 (set in
the suite file) records that in each run and in suite.json, and its report shows the conv1 figures; a figure
the report expects and cannot find is a visible note naming the command that makes it again, and fails
the report under NETSIGHT_STRICT_REPORT (as in every test)."""

from __future__ import annotations

import re

import pytest

from netsight.techniques.inspection import ran
from netsight.errors import NetsightError
from netsight.fileio import read_json
from netsight.report.html import build_report
from netsight.suites import work_units as units
from netsight.suites.runner import SuiteOptions, run_suite
from netsight.suites.spec import parse_suite
from tests.conftest import tiny_dataset

SUITE = """
title = "conv1"
seeds = 1

[[group]]
name = "cnn"
models = ["lenet5"]
data = "cifar10-assignment"
iterations = 8
eval_every = 4
snapshots = [4, 8]
analyses = ["deconv", "top9", "occlusion", "evolution", "invariance"]
[group.options.deconv]
layer = "conv1"
count = 2
[group.options.top9]
layer = "conv1"
maps = 4
[group.options.occlusion]
layer = "conv1"
count = 1
[group.options.evolution]
layer = "conv1"
maps = 4
[group.options.invariance]
count = 4
[group.quick_options.top9]
maps = 2
"""

ZF_FILES = [
    "figures/deconv_conv1_max.png",
    "figures/top9_conv1.png",
    "tables/top9_conv1.csv",
    "tables/top9_conv1_field.json",
    "figures/occlusion_conv1.png",
    "figures/evolution_conv1.png",
    "figures/invariance.png",
]


def _text(html: str) -> str:
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)  # the figures' bytes say nothing


@pytest.fixture(scope="module")
def conv1_suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("conv1")
    with pytest.MonkeyPatch.context() as mp:  # the suite's dataset, as the runner caches it: 256 train / 24 test images
        mp.setitem(units._DATA_CACHE, ("cifar10-assignment", None, False), tiny_dataset("cifar10-assignment", n_test=24))
        run_suite(parse_suite(SUITE, "conv1.toml"), out, SuiteOptions(progress=False))
    return out


def test_a_suite_at_conv1_reports_the_conv1_figures(conv1_suite):
    out = conv1_suite
    run = next((out / "runs" / "cnn").glob("*seed0*"))
    for f in ZF_FILES:
        assert (run / f).is_file(), f
    assert not list(run.glob("**/*conv2*"))  # nothing looked at conv2
    record = ran(run)
    assert sorted(record) == ["deconv", "evolution", "invariance", "occlusion", "top9"]
    assert record["top9"].options == {"layer": "conv1", "maps": 4}  # not the quick_options: this is no --quick run
    assert record["top9"].files == tuple(run / f for f in ZF_FILES[1:4])
    assert record["invariance"].options == {"count": 4}
    meta = read_json(out / "suite.json")["runs"][0]
    assert meta["options"]["top9"] == {"layer": "conv1", "maps": 4}  # what the suite file asked
    assert meta["ran"]["occlusion"]["layer"] == "conv1" and meta["ran"]["occlusion"]["count"] == 1  # what it resolved to
    html = (out / "report.html").read_text()
    body = html.index("</nav>")  # after the contents, which name the sections too
    zf = _text(html[html.index("2 Zeiler &amp; Fergus", body) : html.index("Which pictures to trust", body)])
    assert "top-9 activations per feature map of conv1" in zf
    assert "deconvnet projections of the strongest units of conv1 for 2 test images" in zf
    assert "occlusion sensitivity on 1 test images, with the strongest map of conv1" in zf
    assert "feature evolution of conv1" in zf
    assert "conv2" not in zf and "missing" not in zf
    assert zf.count("<figure>") == 5
    assert '<td>top9</td><td class="text">layer=conv1; maps=4</td>' in html or "layer=conv1; maps=4" in html  # provenance


def test_a_removed_figure_is_noted_in_the_report_and_fails_strict_builds(conv1_suite, tmp_path, monkeypatch):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(conv1_suite, out)
    run = next((out / "runs" / "cnn").glob("*seed0*"))
    (run / "figures" / "top9_conv1.png").unlink()
    with pytest.raises(NetsightError, match=r"1 expected file missing.*top9_conv1\.png"):
        build_report(out)  # the tests run with NETSIGHT_STRICT_REPORT=1
    monkeypatch.delenv("NETSIGHT_STRICT_REPORT")
    build_report(out)
    html = (out / "report.html").read_text()
    note = f"figure missing: runs/cnn/{run.name}/figures/top9_conv1.png; rerun `netsight inspect {run} --top9 --layer conv1 --maps 4`"
    assert note in html
    assert "<p class='missing' role='note'>" in html
    assert "figure missing: runs/cnn/" in (out / "report.md").read_text()
    assert _text(html).count("<figure>") == _text((conv1_suite / "report.html").read_text()).count("<figure>") - 1


def test_a_run_without_a_record_is_said_so(conv1_suite, tmp_path):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(conv1_suite, out)
    run = next((out / "runs" / "cnn").glob("*seed0*"))
    (run / "inspections.json").unlink()  # a folder written before netsight kept the record
    build_report(out)
    html = (out / "report.html").read_text()
    assert f"No record of the analyses that 1 run of this suite ran (inspections.json; e.g. {run.name})" in html
    assert "No run of this suite asked for the Zeiler &amp; Fergus analyses." in html


def test_a_rerun_keeps_what_ran_with_the_same_options_and_redoes_what_changed(conv1_suite, tmp_path, capsys):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(conv1_suite, out)
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(units._DATA_CACHE, ("cifar10-assignment", None, False), tiny_dataset("cifar10-assignment", n_test=24))
        run_suite(parse_suite(SUITE.replace("count = 4", "count = 3"), "conv1.toml"), out, SuiteOptions(progress=False))
    err = capsys.readouterr().err
    kept = [line for line in err.splitlines() if "kept (its files exist)" in line]
    assert len(kept) == 4 and not any("invariance" in line for line in kept)  # invariance's count changed: run again
    run = next((out / "runs" / "cnn").glob("*seed0*"))
    assert ran(run)["invariance"].options == {"count": 3}


def test_netsight_inspect_records_what_ran_in_a_run_and_in_a_model_folder(conv1_suite, tmp_path, capsys):
    import shutil

    from netsight.cli import main

    run = tmp_path / "run"
    shutil.copytree(next((conv1_suite / "runs" / "cnn").glob("*seed0*")), run)
    assert main(["inspect", str(run), "--top9", "--layer", "conv2", "--maps", "2", "--quiet"]) == 0
    record = ran(run)
    assert record["top9"].options == {"layer": "conv2", "maps": 2}  # the latest run of a technique replaces its entry
    assert record["top9"].files[0] == run / "figures" / "top9_conv2.png"
    assert record["deconv"].options["layer"] == "conv1"  # the others stay as they ran
    factory = tmp_path / "lenet_factory.py"
    factory.write_text(
        "from netsight.models import ModelConfig, build_model\ndef lenet5():\n    return build_model(ModelConfig('lenet5'))\n"
    )
    out = tmp_path / "by-spec"
    model = ["inspect", "--model", f"{factory}:lenet5", "--weights", str(run / "model.safetensors"), "--data", "mnist"]
    assert main([*model, "--top9", "--maps", "2", "--out", str(out), "--quiet"]) == 0
    assert main([*model, "--deconv", "--layer", "conv1", "--count", "2", "--out", str(out), "--quiet"]) == 0
    capsys.readouterr()
    record = read_json(out / "inspection.json")
    assert record["techniques"] == ["deconv"]  # this command's
    assert record["ran"] == {  # every inspection of this model and these images in the folder, each as it ran
        "top9": {
            "options": {"layer": "conv2", "maps": 2},
            "files": ["figures/top9_conv2.png", "tables/top9_conv2.csv", "tables/top9_conv2_field.json"],
        },
        "deconv": {"options": {"layer": "conv1", "count": 2, "mode": "max"}, "files": ["figures/deconv_conv1_max.png"]},
    }
    assert not (out / "inspections.json").exists()
