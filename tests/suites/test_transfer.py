"""Run directories packed as bytes and installed whole: round trip, refusals, crash recovery."""

import os

import pytest

from netsight.errors import NetsightError
from netsight.fileio import is_ours, write_bytes, write_json
from netsight.suites import transfer
from netsight.suites.transfer import install_folder, pack_folder, recover_installs


def _run_dir(path, marker=b"weights"):
    write_json(path / "config.json", {"train": {"seed": 0}})
    write_bytes(path / "model.safetensors", marker)
    write_bytes(path / "snapshots" / "iter_000004.safetensors", marker + b"4")
    return path


def test_pack_and_install_round_trip_keeps_ownership(tmp_path):
    files = pack_folder(_run_dir(tmp_path / "a"))
    assert set(files) == {
        ".netsight-files.json",
        "config.json",
        "model.safetensors",
        "snapshots/.netsight-files.json",
        "snapshots/iter_000004.safetensors",
    }
    (tmp_path / "a" / ".model.safetensors.abcd1234.tmp").write_bytes(b"half")  # a killed write is not shipped
    assert set(pack_folder(tmp_path / "a")) == set(files)
    target = install_folder(tmp_path / "runs" / "g" / "b", files)
    assert pack_folder(target) == files
    assert is_ours(target / "model.safetensors") and is_ours(target / "snapshots" / "iter_000004.safetensors")
    assert pack_folder(tmp_path / "missing") == {}


def test_install_replaces_an_old_run_directory_whole(tmp_path):
    target = _run_dir(tmp_path / "runs" / "r", b"old")
    write_bytes(target / "checkpoint.pt", b"state")
    new = pack_folder(_run_dir(tmp_path / "elsewhere", b"new"))
    install_folder(target, new)
    assert pack_folder(target) == new and not (target / "checkpoint.pt").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["r"]  # no staging or old folder left


@pytest.mark.parametrize("name", ["../escape", "/abs/path", "a/../../b", "", "."])
def test_install_refuses_names_outside_the_run_directory(tmp_path, name):
    with pytest.raises(NetsightError, match="refusing to install a file named"):
        install_folder(tmp_path / "r", {name: b"x"})
    assert not (tmp_path / "r").exists() and not (tmp_path.parent / "escape").exists()


def test_install_refuses_to_replace_what_netsight_did_not_write(tmp_path):
    mine = tmp_path / "r"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    with pytest.raises(NetsightError, match="not a run directory netsight wrote"):
        install_folder(mine, {"config.json": b"{}"})
    assert (mine / "notes.txt").read_text() == "my notes"
    (tmp_path / "f").write_text("a file")
    with pytest.raises(NetsightError, match="not a run directory"):
        install_folder(tmp_path / "f", {"config.json": b"{}"})


def test_a_crash_between_the_renames_is_undone(tmp_path, monkeypatch):
    target = _run_dir(tmp_path / "g" / "r", b"old")
    before = pack_folder(target)
    real_replace, calls = os.replace, {"n": 0}

    def crash_on_second(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:  # the old folder is aside, the new one not yet in place
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(transfer.os, "replace", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        install_folder(target, {"config.json": b"{}"})
    monkeypatch.undo()
    assert not target.exists() and any(p.name.endswith(".replaced") for p in target.parent.iterdir())
    assert len(recover_installs(target.parent)) == 1
    assert pack_folder(target) == before and sorted(p.name for p in target.parent.iterdir()) == ["r"]


def test_recovery_removes_staging_and_superseded_folders_only(tmp_path):
    g = tmp_path / "g"
    _run_dir(g / "r")
    (g / ".r.abcd1234.incoming").mkdir()
    (g / ".r.abcd1234.incoming" / "config.json").write_text("{}")
    (g / ".r.efgh5678.replaced").mkdir()  # superseded: r exists
    (g / ".s.ijkl9012.replaced").mkdir()  # empty and s missing: an aside folder never filled
    (g / ".keep.me").mkdir()
    (g / "other").mkdir()
    assert len(recover_installs(g)) == 3
    assert sorted(p.name for p in g.iterdir()) == [".keep.me", "other", "r"]
    assert recover_installs(tmp_path / "missing") == []


def test_pack_changes_sends_only_what_changed_and_names_every_file(tmp_path):
    run = _run_dir(tmp_path / "a")
    files, names, stamps = transfer.pack_changes(run, {})
    assert files == pack_folder(run) and names == sorted(files)  # the first call sends everything
    write_bytes(run / "model.safetensors", b"weights")  # rewritten with the same bytes: a new file all the same
    write_bytes(run / "snapshots" / "iter_000008.safetensors", b"8")
    (run / ".checkpoint.pt.abcd1234.tmp").write_bytes(b"half")  # a killed write is never sent
    files, names, stamps = transfer.pack_changes(run, stamps)
    assert set(files) == {
        "model.safetensors",
        "snapshots/iter_000008.safetensors",  # and the manifests recording them
        ".netsight-files.json",
        "snapshots/.netsight-files.json",
    }
    assert set(names) == set(pack_folder(run))
    (run / "snapshots" / "iter_000004.safetensors").unlink()
    files, names, _ = transfer.pack_changes(run, stamps)
    assert files == {} and "snapshots/iter_000004.safetensors" not in names
