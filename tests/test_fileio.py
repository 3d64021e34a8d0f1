"""Ownership of written files: netsight never overwrites or deletes a file it did not write."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil

import pytest

from netsight import fileio
from netsight.errors import NetsightError
from netsight.fileio import MANIFEST, atomic_write, claim_output_folder, clean_leftovers, is_ours, remove, write_json, write_text


def test_netsight_rewrites_its_own_files(tmp_path):
    write_text(tmp_path / "report.html", "one")
    write_text(tmp_path / "report.html", "two")
    assert (tmp_path / "report.html").read_text() == "two"
    assert json.loads((tmp_path / MANIFEST).read_text())["written_by"] == "netsight"


@pytest.mark.parametrize("name", ["report.html", "summary.json", "metrics.csv"])
def test_a_users_file_of_the_same_name_is_never_overwritten(tmp_path, name):
    write_text(tmp_path / "other.txt", "netsight wrote this, so the folder has a record")
    (tmp_path / name).write_text("the user's own file")
    with pytest.raises(NetsightError, match=rf"{name}: exists and is a file netsight did not write .* refusing to overwrite"):
        write_text(tmp_path / name, "netsight's")
    assert (tmp_path / name).read_text() == "the user's own file"
    with pytest.raises(NetsightError, match="refusing to delete"):
        remove(tmp_path / name)
    assert (tmp_path / name).exists()


def test_a_file_changed_after_netsight_wrote_it_is_protected(tmp_path):
    write_text(tmp_path / "notes.md", "netsight")
    (tmp_path / "notes.md").write_text("edited by hand")
    assert not is_ours(tmp_path / "notes.md")
    with pytest.raises(NetsightError, match="or one changed since"):
        write_text(tmp_path / "notes.md", "again")


def test_a_copied_folder_stays_ours(tmp_path):
    write_json(tmp_path / "a" / "summary.json", {"x": 1})
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # new mtimes, same content
    write_json(tmp_path / "b" / "summary.json", {"x": 2})
    remove(tmp_path / "b" / "summary.json")
    assert not (tmp_path / "b" / "summary.json").exists()


def test_a_legacy_run_folder_is_adopted(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"train": {}}))
    (tmp_path / "metrics.csv").write_text("iteration\n")
    write_text(tmp_path / "metrics.csv", "iteration\n1\n")  # written by an older netsight: no record yet
    assert set(json.loads((tmp_path / MANIFEST).read_text())["files"]) >= {"config.json", "metrics.csv"}


def test_leftover_temporary_files_are_removed_and_nothing_else(tmp_path):
    keep = [".checkpoint.pt.backup", "checkpoint.pt.abcdefgh.tmp", ".mine.abcdefgh.tmp", ".checkpoint.pt.ab.tmp", "notes.txt"]
    gone = [".checkpoint.pt.k2_9ab7x.tmp", ".metrics.csv.zz11aa00.tmp"]
    for n in keep + gone:
        (tmp_path / n).write_text("x")
    removed = clean_leftovers(tmp_path, ["checkpoint.pt", "metrics.csv"])
    assert sorted(p.name for p in removed) == sorted(gone)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep)


def test_claim_output_folder(tmp_path):
    assert claim_output_folder(tmp_path / "new" / "deeper", "--out").is_dir()  # missing parents are made
    (tmp_path / "empty").mkdir()
    claim_output_folder(tmp_path / "empty", "--out")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("precious")
    with pytest.raises(
        NetsightError, match=r"--out .*docs: the folder exists and holds files netsight did not write \(thesis.tex\)"
    ):
        claim_output_folder(tmp_path / "docs", "--out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NetsightError, match=r"--out .*file: is a file, expected a folder"):
        claim_output_folder(tmp_path / "file", "--out")
    with pytest.raises(NetsightError, match=r"file/sub: cannot create folder: Not a directory \(a file stands where a folder"):
        claim_output_folder(tmp_path / "file" / "sub", "--out")


@pytest.mark.parametrize(
    "code, words",
    [
        (errno.ENOSPC, "No space left on device (the disk is full)"),
        (errno.EROFS, "Read-only file system (mounted read-only)"),
        (errno.EACCES, "Permission denied (check the folder's permissions)"),
    ],
)
def test_operating_system_failures_on_write_are_one_clear_line(tmp_path, monkeypatch, code, words):
    def failing_replace(src, dst):
        raise OSError(code, os.strerror(code))

    write_text(tmp_path / "a.txt", "before")
    monkeypatch.setattr(fileio.os, "replace", failing_replace)
    with pytest.raises(NetsightError, match=re.escape(f"a.txt: cannot write: {words}")):
        write_text(tmp_path / "a.txt", "after")
    monkeypatch.undo()
    assert (tmp_path / "a.txt").read_text() == "before"  # the old file is whole
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no temporary file left


def test_a_failing_writer_leaves_the_old_file_whole(tmp_path):
    write_text(tmp_path / "a.txt", "before")

    def half_then_crash(p):
        p.write_text("half")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "a.txt", half_then_crash)
    assert (tmp_path / "a.txt").read_text() == "before"
    assert sorted(p.name for p in tmp_path.iterdir()) == [MANIFEST, "a.txt"]
