"""A run directory that lost (or had changed) a file netsight wrote is never trained over.

"Damaged" is defined by the folder's own record (.netsight-files.json): a training file
(config.json, metrics.csv, summary.json, model.safetensors, curves.png) or a snapshot that the
record lists and that is now missing or holds other bytes. checkpoint.pt is not judged (without
it a run trains from the start; a damaged one is named when read), nor are analysis outputs.
A file netsight replaced or removed itself, even when killed halfway, never counts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from netsight import fileio
from netsight.cli import main
from netsight.fileio import MANIFEST, damaged_files, is_ours, write_text
from netsight.train import loop, open_run, resolve, train
from tests.conftest import tiny_dataset, tree_snapshot
from tests.train.test_loop import interrupted_run

REPO = Path(__file__).resolve().parents[2]
TRAIN = [
    "train",
    "lenet5",
    "--data",
    "mnist",
    "--iterations",
    "12",
    "--eval-every",
    "4",
    "--batch-size",
    "16",
    "--seed",
    "1",
    "--snapshots",
    "4,8",
    "--quiet",
]


def _config():
    return resolve("lenet5", "mnist", iterations=12, eval_every=4, batch_size=16, seed=1, snapshots=[4, 8])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def tiny_data(monkeypatch):
    monkeypatch.setattr(loop, "load_dataset", lambda *a, **k: tiny_dataset())


# The tests damage the run they get, so each gets its own; training LeNet5 (3.27M parameters) for every test
# cost ~2 s of CPU each, so a run is trained once for the module and each test gets a copy of it (shutil.copytree
# copies every byte and the folder's record of netsight's files, which names files relative to the folder: the
# copy is what training into it would have written).


@pytest.fixture(scope="module")
def _completed_once(tmp_path_factory):
    run = tmp_path_factory.mktemp("pristine") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(loop, "load_dataset", lambda *a, **k: tiny_dataset())
        assert main([*TRAIN, "--out", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def _interrupted_once(tmp_path_factory):
    return interrupted_run(_config(), tmp_path_factory.mktemp("pristine") / "stopped", tiny_dataset(), 6)


@pytest.fixture
def completed(_completed_once, tmp_path, tiny_data):
    return Path(shutil.copytree(_completed_once, tmp_path / "run"))


@pytest.fixture
def interrupted(_interrupted_once, tmp_path):
    return Path(shutil.copytree(_interrupted_once, tmp_path / "stopped"))


@pytest.mark.parametrize(
    "lost", ["config.json", "metrics.csv", "summary.json", "model.safetensors", "curves.png", "snapshots/iter_000004.safetensors"]
)
@pytest.mark.parametrize("resume", [True, False])
def test_a_completed_run_that_lost_a_file_is_refused(completed, capsys, lost, resume):
    (completed / lost).unlink()
    before = tree_snapshot(completed)
    code = main([*TRAIN, "--out", str(completed)] + (["--resume"] if resume else []))
    line = _one_line(capsys)
    assert code == 2, line
    if lost == "model.safetensors" and resume:  # the completed run's own check comes first
        assert f"{completed}: marked completed, but {completed / lost}: no weights file" in line
        assert f"delete {completed} and train it again" in line
    elif lost == "config.json" or resume:  # with config.json there, no --resume is refused as before
        assert f"{completed}: damaged run directory: {lost} is missing" in line
        assert "choose another --out, or delete" in line
    else:
        assert "already holds a run" in line
    assert tree_snapshot(completed) == before


@pytest.mark.parametrize("name", ["metrics.csv", "summary.json", "curves.png", "snapshots/iter_000008.safetensors"])
def test_a_completed_run_with_a_changed_file_is_refused(completed, capsys, name):
    blob = bytearray((completed / name).read_bytes())
    blob[len(blob) // 2] ^= 0x01
    (completed / name).write_bytes(bytes(blob))
    before = tree_snapshot(completed)
    assert main([*TRAIN, "--out", str(completed), "--resume"]) == 2
    line = _one_line(capsys)
    assert f"damaged run directory: {name} changed since netsight wrote it" in line or (
        name == "summary.json" and "not valid JSON" in line
    ), line  # a flipped byte may break the JSON itself
    assert tree_snapshot(completed) == before


def test_an_unreadable_record_is_refused(completed, capsys):
    (completed / MANIFEST).write_text("{ half a record")
    before = tree_snapshot(completed)
    assert main([*TRAIN, "--out", str(completed), "--resume"]) == 2
    assert f"its record of netsight's files ({MANIFEST}) cannot be read" in _one_line(capsys)
    assert tree_snapshot(completed) == before


@pytest.mark.parametrize("lost", ["metrics.csv", "summary.json", "config.json"])
def test_an_interrupted_run_that_lost_a_file_is_refused(interrupted, capsys, tiny_data, lost):
    (interrupted / lost).unlink()
    before = tree_snapshot(interrupted)
    assert main([*TRAIN, "--out", str(interrupted), "--resume"]) == 2
    assert f"damaged run directory: {lost} is missing" in _one_line(capsys)
    assert tree_snapshot(interrupted) == before


def test_legit_paths_still_work(completed, interrupted, capsys, tiny_data):
    before = tree_snapshot(completed)
    assert main([*TRAIN, "--out", str(completed), "--resume"]) == 0  # a completed run: skipped, nothing written
    assert "completed 12 iterations" in capsys.readouterr().out
    assert tree_snapshot(completed) == before
    (completed / "figures").mkdir()
    write_text(completed / "figures" / "x.png", "an analysis output")
    (completed / "figures" / "x.png").unlink()  # analysis outputs are made again when missing: not damage
    assert main([*TRAIN, "--out", str(completed), "--resume"]) == 0
    assert main([*TRAIN, "--out", str(interrupted), "--resume"]) == 0  # an interrupted run resumes
    assert open_run(interrupted).summary["status"] == "completed" and not (interrupted / "checkpoint.pt").exists()


# ---------------------------------------------------------------- killed for real (SIGKILL), then resumed


WHEN = ["checkpoint", "metrics-write", "checkpoint-removal"]


def _train_and_kill(root: Path) -> tuple[dict[str, int], str]:
    """Train into root/WHEN in child processes that each SIGKILL themselves at `when`: 'checkpoint' (after the
    second checkpoint), 'metrics-write' (the metrics.csv written at iteration 8 is in place, its record not yet
    settled) or 'checkpoint-removal' (the finished run deleted checkpoint.pt, record not settled). One process
    imports torch and netsight once (~3 s of CPU) and forks the children one after the other (it runs no torch
    operation itself, so each child starts as a fresh process would); returns each child's exit code as
    subprocess gives it (-9: killed by SIGKILL), and the stderr of them all."""
    script = textwrap.dedent(f"""
        import json, os, pathlib, signal, sys, traceback
        sys.path.insert(0, {str(REPO)!r})
        from netsight import fileio
        from netsight.train import resolve, train
        from tests.conftest import tiny_dataset
        # what training imports when first used (the optimiser's first step imports torch._dynamo; the curves
        # figure, matplotlib), imported once here rather than in each child: ~2.6 s of CPU a child
        import torch._dynamo, netsight.train.curves, netsight.progress

        def child(when, out):
            seen = {{"checkpoint": 0, "metrics.csv": 0}}
            die = lambda: os.kill(os.getpid(), signal.SIGKILL)
            def on_checkpoint():
                seen["checkpoint"] += 1
                if when == "checkpoint" and seen["checkpoint"] == 2:
                    die()
            real_replace, real_unlink = os.replace, pathlib.Path.unlink
            def replace(src, dst):
                real_replace(src, dst)
                if pathlib.Path(dst).name == "metrics.csv":
                    seen["metrics.csv"] += 1
                    if when == "metrics-write" and seen["metrics.csv"] == 3:  # the start, iteration 4, iteration 8
                        die()
            def unlink(self, missing_ok=False):
                real_unlink(self, missing_ok=missing_ok)
                if when == "checkpoint-removal" and self.name == "checkpoint.pt":
                    die()
            fileio.os.replace = replace
            pathlib.Path.unlink = unlink
            cfg = resolve("lenet5", "mnist", iterations=12, eval_every=4, batch_size=16, seed=1, snapshots=[4, 8])
            train(cfg, out, dataset=tiny_dataset(), progress=False, checkpoint_seconds=0, on_checkpoint=on_checkpoint)

        codes = {{}}
        for when in {WHEN!r}:
            pid = os.fork()
            if pid == 0:  # the child: trains until it kills itself, never returns to this loop
                try:
                    child(when, os.path.join({str(root)!r}, when))
                except BaseException:
                    traceback.print_exc()
                    sys.stderr.flush()
                    os._exit(1)
                os._exit(0)
            codes[when] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        print(json.dumps(codes))
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.splitlines()[-1]), r.stderr


@pytest.fixture(scope="module")
def _killed(tmp_path_factory):
    root = tmp_path_factory.mktemp("killed")
    codes, stderr = _train_and_kill(root)
    return root, codes, stderr


@pytest.mark.slow  # each case trains in a process of its own (forked by one that imports torch once), killed mid-run
@pytest.mark.parametrize("when", WHEN)
def test_a_run_killed_at_any_point_resumes_to_the_uninterrupted_result(_killed, _completed_once, when):
    # _completed_once is the uninterrupted run: the same config (the CLI's flags resolve to _config(), which
    # test_legit_paths_still_work relies on too: --resume refuses a different config) on the same data
    clean = open_run(_completed_once).summary
    root, codes, stderr = _killed
    killed = root / when
    assert codes[when] == -9, stderr
    assert damaged_files(killed) == [] and open_run(killed).summary["status"] in ("running", "completed")
    if when == "metrics-write":  # the kill struck between the rename and the record's update
        assert "pending" in json.loads((killed / MANIFEST).read_text())
    resumed = train(_config(), killed, dataset=tiny_dataset(), progress=False, resume=True)
    assert resumed["status"] == "completed" and resumed["final_test_acc"] == clean["final_test_acc"]
    strip = lambda p: [line.rsplit(",", 1)[0] for line in (p / "metrics.csv").read_text().splitlines()]  # noqa: E731
    assert strip(killed) == strip(_completed_once)
    assert "pending" not in json.loads((killed / MANIFEST).read_text()) or when == "checkpoint-removal"


# ---------------------------------------------------------------- the record itself (fileio)


class Killed(BaseException):
    pass


def test_a_write_killed_between_rename_and_record_leaves_no_false_damage(tmp_path, monkeypatch):
    write_text(tmp_path / "a.txt", "old")
    real = os.replace

    def replace_then_die(src, dst):
        real(src, dst)
        if Path(dst).name == "a.txt":
            raise Killed

    monkeypatch.setattr(fileio.os, "replace", replace_then_die)
    with pytest.raises(Killed):
        write_text(tmp_path / "a.txt", "new")
    monkeypatch.undo()
    assert (tmp_path / "a.txt").read_text() == "new" and is_ours(tmp_path / "a.txt") and damaged_files(tmp_path) == []
    write_text(tmp_path / "b.txt", "next write settles the record")
    record = json.loads((tmp_path / MANIFEST).read_text())
    assert "pending" not in record and set(record["files"]) == {"a.txt", "b.txt"}
    (tmp_path / "a.txt").write_text("edited by hand")
    assert damaged_files(tmp_path) == ["a.txt changed since netsight wrote it"]


def test_a_removal_killed_before_the_record_leaves_no_false_damage(tmp_path, monkeypatch):
    write_text(tmp_path / "a.txt", "x")
    real = Path.unlink

    def unlink_then_die(self, missing_ok=False):
        real(self, missing_ok=missing_ok)
        if self.name == "a.txt":
            raise Killed

    monkeypatch.setattr(fileio.Path, "unlink", unlink_then_die)
    with pytest.raises(Killed):
        fileio.remove(tmp_path / "a.txt")
    monkeypatch.undo()
    assert damaged_files(tmp_path) == []
    write_text(tmp_path / "a.txt", "written again")
    assert damaged_files(tmp_path) == [] and is_ours(tmp_path / "a.txt")
    (tmp_path / "a.txt").unlink()  # deleted by someone else: damage
    assert damaged_files(tmp_path) == ["a.txt is missing"]


# ---------------------------------------------------------------- run and sweep

SUITE = '[[group]]\nname = "g"\nmodels = ["rnn"]\nhidden = [8]\niterations = 4\neval_every = 2\n'


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_suite_commands_refuse_a_damaged_run_directory_before_writing_anything(tmp_path, capsys, command, small_suite_data):
    out = tmp_path / "out"
    if command == "run":
        (tmp_path / "s.toml").write_text(SUITE)
        argv = ["run", str(tmp_path / "s.toml"), "--out", str(out), "--quiet", "--jobs", "1"]
    else:
        argv = [
            "sweep",
            "--out",
            str(out),
            "--models",
            "rnn",
            "--hidden",
            "8",
            "--cnn",
            "",
            "--iterations",
            "4",
            "--eval-every",
            "2",
            "--seeds",
            "1",
            "--quiet",
            "--jobs",
            "1",
        ]
    with small_suite_data("mnist"):  # 1,000 train / 100 test digits
        assert main(argv) == 0
    capsys.readouterr()
    run = next(p.parent for p in out.glob("runs/*/*/summary.json"))
    (run / "summary.json").unlink()
    before = tree_snapshot(out)
    assert main(argv) == 2
    line = _one_line(capsys)
    assert f"{run}: damaged run directory: summary.json is missing" in line
    assert tree_snapshot(out) == before
