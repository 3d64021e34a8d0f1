"""Damaged run files and failing disks: a clear error naming the file, and nothing the run
already wrote is lost or claims more than it holds."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

from netsight import fileio
from netsight.cli import main
from netsight.errors import NetsightError
from netsight.fileio import atomic_write, read_json
from netsight.train import loop, resolve, train
from tests.conftest import tiny_dataset
from tests.train.test_loop import interrupted_run


def _config(**kw):
    return resolve("lenet5", "mnist", **{**dict(iterations=12, batch_size=16, eval_every=4, seed=1), **kw})


def _digest(folder, skip=()):
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.iterdir()
        if p.is_file() and p.name not in skip and not p.name.startswith(".")
    }


# The tests damage the run they get, so each gets a copy of a run trained once for the module (as in
# test_damaged_run_dir.py, which says why the copy is what training would have written).


@pytest.fixture(scope="module")
def _interrupted_once(tmp_path_factory):
    return interrupted_run(_config(), tmp_path_factory.mktemp("pristine") / "run", tiny_dataset(), 6)


@pytest.fixture(scope="module")
def _completed_once(tmp_path_factory):
    run = tmp_path_factory.mktemp("pristine") / "done"
    assert train(_config(), run, dataset=tiny_dataset(), progress=False)["status"] == "completed"
    return run


@pytest.fixture
def interrupted(_interrupted_once, tmp_path):
    return Path(shutil.copytree(_interrupted_once, tmp_path / "run"))


@pytest.fixture
def completed(_completed_once, tmp_path):
    return Path(shutil.copytree(_completed_once, tmp_path / "done"))


def _damage(path, how):
    blob = path.read_bytes()
    if how == "empty":
        path.write_bytes(b"")
    elif how == "truncated":
        path.write_bytes(blob[: len(blob) // 3])
    elif how == "garbage":
        path.write_bytes(os.urandom(len(blob)))
    elif how == "one_flipped_byte":  # loads fine, different numbers: caught by the recorded checksum
        b = bytearray(blob)
        b[len(b) - 100] ^= 0x01
        path.write_bytes(bytes(b))


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage", "one_flipped_byte"])
def test_a_damaged_checkpoint_is_named_on_resume_and_nothing_is_lost(interrupted, how):
    before = _digest(interrupted, skip={"checkpoint.pt"})
    _damage(interrupted / "checkpoint.pt", how)
    with pytest.raises(
        NetsightError, match=r"checkpoint.pt: damaged checkpoint .*delete .*checkpoint.pt to train this run from the start"
    ):
        train(_config(), interrupted, dataset=tiny_dataset(), progress=False, resume=True)
    assert _digest(interrupted, skip={"checkpoint.pt"}) == before


def test_a_checkpoint_that_does_not_fit_the_run(interrupted):
    atomic_write(interrupted / "checkpoint.pt", lambda p: torch.save({"model": {}, "iteration": 3}, p))
    with pytest.raises(NetsightError, match=r"checkpoint.pt: checkpoint does not fit this run"):
        train(_config(), interrupted, dataset=tiny_dataset(), progress=False, resume=True)


def test_deleting_a_damaged_checkpoint_trains_the_run_from_the_start(interrupted, completed):
    _damage(interrupted / "checkpoint.pt", "garbage")
    os.remove(interrupted / "checkpoint.pt")
    s = train(_config(), interrupted, dataset=tiny_dataset(), progress=False, resume=True)
    assert s["status"] == "completed"
    assert (interrupted / "metrics.csv").read_text().splitlines()[:-1] != []
    strip = lambda p: [line.rsplit(",", 1)[0] for line in (p / "metrics.csv").read_text().splitlines()]  # noqa: E731
    assert strip(interrupted) == strip(completed)


@pytest.mark.parametrize("how", ["empty", "truncated", "garbage", "one_flipped_byte"])
def test_resuming_a_completed_run_with_damaged_weights_does_not_report_completed(completed, how):
    _damage(completed / "model.safetensors", how)
    with pytest.raises(NetsightError, match=r"marked completed, but .*model.safetensors: damaged weights file.*train it again"):
        train(_config(), completed, dataset=tiny_dataset(), progress=False, resume=True)


@pytest.mark.parametrize("argv", [["inspect", "{run}", "--filters"], ["compare", "{run}", "--out", "{tmp}/cmp"]])
@pytest.mark.parametrize("how", ["empty", "truncated", "garbage"])
def test_damaged_weights_in_inspect_and_compare(completed, tmp_path, capsys, argv, how):
    _damage(completed / "model.safetensors", how)
    argv = [a.format(run=completed, tmp=tmp_path) for a in argv]
    code = main(argv)
    err = capsys.readouterr().err
    if argv[0] == "compare":  # compare reads metrics and summaries only: it needs no weights
        assert code == 0, err
        return
    assert code == 2 and "model.safetensors: damaged weights file" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["compare", "report"])
def test_a_damaged_metrics_file_is_named(completed, tmp_path, capsys, command):
    (completed / "metrics.csv").write_text("iteration,train_loss\n1,banana\n")
    suite = tmp_path / "suite"
    if command == "report":
        os.makedirs(suite / "runs" / "g")
        os.rename(completed, suite / "runs" / "g" / "done")
        argv = ["report", str(suite)]
    else:
        argv = ["compare", str(completed), "--out", str(tmp_path / "cmp")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "metrics.csv: damaged metrics file" in err and len(err.strip().splitlines()) == 1


def test_leftover_temporary_files_of_a_killed_write_are_cleaned_on_the_next_run(interrupted):
    leftovers = [interrupted / f".checkpoint.pt.{c * 8}.tmp" for c in "abc"] + [interrupted / ".metrics.csv.q1w2e3r4.tmp"]
    mine = [interrupted / "my-notes.tmp", interrupted / ".checkpoint.pt.mine.tmp"]
    for p in leftovers + mine:
        p.write_bytes(b"half a checkpoint")
    s = train(_config(), interrupted, dataset=tiny_dataset(), progress=False, resume=True)
    assert s["status"] == "completed"
    assert not any(p.exists() for p in leftovers) and all(p.exists() for p in mine)


def test_a_full_disk_mid_run_is_one_line_and_the_run_does_not_claim_success(tmp_path, monkeypatch, capsys):
    # the fixture data, not the bundled set: what is checked happens in the writes, which are the same for any data
    # (config.json and metrics.csv at the start, metrics.csv at iteration 4 take three renames each: the 10th, in the
    # write of iteration 8's metrics.csv, fails mid-run); loading and evaluating all of MNIST cost ~5 s of CPU
    monkeypatch.setattr(loop, "load_dataset", lambda *a, **k: tiny_dataset())
    real_replace = os.replace
    calls = {"n": 0}

    def replace_until_the_disk_fills(src, dst):
        calls["n"] += 1
        if calls["n"] > 9:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace_until_the_disk_fills)
    code = main(
        [
            "train",
            "lenet5",
            "--iterations",
            "12",
            "--eval-every",
            "4",
            "--batch-size",
            "16",
            "--out",
            str(tmp_path / "r"),
            "--quiet",
        ]
    )
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert code == 2 and "No space left on device (the disk is full)" in err and len(err.strip().splitlines()) == 1
    summary = tmp_path / "r" / "summary.json"
    assert not summary.exists() or read_json(summary)["status"] != "completed"  # never claims success
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]


def test_train_refuses_an_out_folder_holding_other_files(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "summary.json").write_text('{"my": "data"}')
    assert main(["train", "lenet5", "--iterations", "2", "--out", str(tmp_path / "mine"), "--quiet"]) == 2
    assert "holds files netsight did not write (summary.json)" in capsys.readouterr().err
    assert (tmp_path / "mine" / "summary.json").read_text() == '{"my": "data"}'
    (tmp_path / "afile").write_text("x")
    assert main(["train", "lenet5", "--iterations", "2", "--out", str(tmp_path / "afile"), "--quiet"]) == 2
    assert "afile: is a file, expected a folder" in capsys.readouterr().err
