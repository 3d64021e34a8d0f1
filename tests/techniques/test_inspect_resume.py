"""Ctrl-C keeps finished work: `netsight inspect` interrupted inside a technique (a real KeyboardInterrupt,
raised by a monkeypatched plot halfway through the technique's files) keeps every technique it finished,
files and record, removes only the unfinished technique's files, says so, exits 130, and the same command
resumes: the finished techniques are kept (not rerun), the rest run. Both doors: a run directory and --model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from netsight.cli import main
from netsight.techniques import sanity

# two attribution methods, not all eleven: what is kept and resumed is decided by the record, whatever the methods
FEW = ["--count", "2", "--methods", "gradient,gradcam", "--randomise-layers", "1", "--draws", "2", "--quiet"]
ASKED = ["--attributions", "--sanity", "--faithfulness"]


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(root / f"{i}.png")
    return root


def _interrupt_sanity_halfway(monkeypatch) -> list[int]:
    """sanity writes its grid, then the interrupt comes while it plots its curves."""
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(sanity, "plot_sanity_curves", interrupted)
    return calls


def _ran(folder, record):
    return json.loads((folder / record).read_text())["ran"]


def _check_interrupt_and_resume(argv, folder, record, monkeypatch, capsys, other_options=True):
    calls = _interrupt_sanity_halfway(monkeypatch)
    assert main(argv) == 130 and calls == [1]
    err = capsys.readouterr().err
    ran = _ran(folder, record)
    assert set(ran) == {"attributions"}  # only the finished technique is recorded
    files = [folder / f for f in ran["attributions"]["files"]]
    assert files and all(f.is_file() for f in files)
    assert f"interrupted: kept attributions ({len(files)} files); removed the unfinished sanity; rerun the same command" in err
    assert not any((folder / "figures").glob("sanity*")) and not any((folder / "tables").glob("sanity*"))  # its grid went
    assert not any((folder / "figures").glob("faithfulness*"))
    stamps = {f: f.stat().st_mtime_ns for f in files}

    monkeypatch.undo()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "kept attributions: it ran with the same options" in err
    assert {f: f.stat().st_mtime_ns for f in files} == stamps  # kept, not written again
    ran = _ran(folder, record)
    assert set(ran) == {"attributions", "sanity", "faithfulness"}
    assert all((folder / f).is_file() for e in ran.values() for f in e["files"])

    if not other_options:  # one door checks this: what is kept is decided by the record, not by the door
        return
    attributions_only = [a for a in argv[:-1] if a not in ("--sanity", "--faithfulness")]  # the others need not run again
    assert main([*attributions_only, "--count", "3", "--quiet"]) == 0  # other options: run again, not kept
    err = capsys.readouterr().err
    assert "kept attributions" not in err and _ran(folder, record)["attributions"]["options"]["count"] == 3


@pytest.mark.slow
def test_an_interrupted_inspect_of_a_run_keeps_what_finished_and_resumes(tiny_runs, tmp_path, monkeypatch, capsys):
    run = tiny_runs.copy("lenet5", tmp_path / "run")
    before = set(run.rglob("*"))
    _check_interrupt_and_resume(["inspect", str(run), *ASKED, *FEW], run, "inspections.json", monkeypatch, capsys)
    assert before <= set(run.rglob("*"))  # what the run held stays


# a small CNN of the user's own, by file: the --model door (what is kept and resumed does not depend on the network)
SMALL_NET = """from torch import nn


def Net():
    return nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
"""


@pytest.mark.slow
def test_an_interrupted_inspect_of_a_model_keeps_what_finished_and_resumes(photos, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    (tmp_path / "small_net.py").write_text(SMALL_NET)
    spec = f"{tmp_path / 'small_net.py'}:Net"
    argv = ["inspect", "--model", spec, "--images", str(photos), "--input-size", "32", "--out", str(out)]
    _check_interrupt_and_resume([*argv, *ASKED, *FEW], out, "inspection.json", monkeypatch, capsys, other_options=False)
    assert json.loads((out / "inspection.json").read_text())["model"]


def test_an_interrupt_in_the_first_technique_leaves_no_folder(photos, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sanity, "sanity_checks", interrupted)  # at once: no sanity file is written
    argv = ["inspect", "--model", "torchvision:resnet18", "--images", str(photos), "--input-size", "32", "--out", str(out)]
    assert main([*argv, "--sanity", *FEW]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "netsight: interrupted" and not out.exists()
