"""Run directories as bytes: packed on one machine, installed whole on another.

A cluster worker trains in a private temporary folder and returns the run directory's files
(a recurrent run is ~130 KB, a LeNet5 run 13 MB of weights plus 13 MB per snapshot); the driver
installs them under `--out`, so no shared filesystem is needed. Installing is all-or-nothing: the files are written and fsynced
into a staging folder beside the target (`.<name>.<random>.incoming`), the old run directory
(an interrupted run, say) is renamed aside (`.<name>.<random>.replaced`), the staging folder is
renamed into place and the old one deleted. A crash at any point leaves either the old or the
new directory under the run's name; `recover_installs` (run before a suite starts) puts an old
directory back where a crash fell between the two renames and removes leftover staging folders.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from ..errors import NetsightError
from ..fileio import MANIFEST, is_legacy_netsight_folder, make_folder, os_error

_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.(?P<kind>incoming|replaced)$")
_TMP_FILE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # a killed atomic write's temporary file


def pack_folder(folder: str | Path) -> dict[str, bytes]:
    """Every file under `folder` by its relative POSIX path (temporary files of killed writes left out)."""
    folder = Path(folder)
    files: dict[str, bytes] = {}
    if not folder.is_dir():
        return files
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not _TMP_FILE.match(path.name):
            files[path.relative_to(folder).as_posix()] = path.read_bytes()
    return files


Stamps = dict[str, tuple[int, int, int]]  # relative path -> (inode, size, mtime in ns)


def pack_changes(folder: str | Path, sent: Stamps) -> tuple[dict[str, bytes], list[str], Stamps]:
    """What changed under `folder` since the files stamped in `sent` (an earlier call's stamps; {}
    the first time): the new or changed files, the names of every file now there, and the stamps to
    pass next time. netsight replaces a file by renaming a new one over it, so a rewritten file
    always has a new inode; the snapshots of a CNN run (13 MB each), written once, go only once.
    The other side keeps the whole folder: each name's latest bytes, for the names now there."""
    files, names, stamps = {}, [], {}
    folder = Path(folder)
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if not path.is_file() or _TMP_FILE.match(path.name):
            continue
        name, st = path.relative_to(folder).as_posix(), path.stat()
        names.append(name)
        stamps[name] = (st.st_ino, st.st_size, st.st_mtime_ns)
        if sent.get(name) != stamps[name]:
            files[name] = path.read_bytes()
    return files, names, stamps


def _safe_relative(name: str) -> PurePosixPath:
    rel = PurePosixPath(name)
    if rel.is_absolute() or not rel.parts or any(part in ("", ".", "..") for part in rel.parts):
        raise NetsightError(f"refusing to install a file named {name!r}: expected a path inside the run directory")
    return rel


def _is_run_folder(folder: Path) -> bool:
    return (folder / MANIFEST).is_file() or is_legacy_netsight_folder(folder)


def install_folder(target: str | Path, files: dict[str, bytes]) -> Path:
    """Make `target` hold exactly `files`, atomically; an existing `target` must be a folder netsight wrote."""
    target = Path(target)
    rels = {name: _safe_relative(name) for name in files}
    if target.exists() and not (target.is_dir() and _is_run_folder(target)):
        raise NetsightError(
            f"{target}: exists and is not a run directory netsight wrote; refusing to replace it — "
            f"move it away or choose another output folder"
        )
    make_folder(target.parent)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".incoming", dir=target.parent))
    except OSError as exc:
        raise os_error(target.parent, exc, "cannot create a staging folder") from None
    try:
        for name, rel in rels.items():
            path = staging.joinpath(*rel.parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                f.write(files[name])
                f.flush()
                os.fsync(f.fileno())
        if target.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".replaced", dir=target.parent))
            os.replace(target, aside)  # aside is an empty folder: rename() replaces it
            os.replace(staging, target)
            shutil.rmtree(aside)
        else:
            os.replace(staging, target)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise os_error(target, exc, "cannot install the run directory") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def recover_installs(folder: str | Path) -> list[Path]:
    """Undo what a crash during `install_folder` left in `folder` (a suite's runs/<group>/): an old
    run directory renamed aside goes back under its name if nothing took its place; staging
    folders and superseded old directories are removed. Returns the paths acted on."""
    folder = Path(folder)
    acted: list[Path] = []
    if not folder.is_dir():
        return acted
    for path in sorted(folder.iterdir()):
        match = _LEFTOVER.match(path.name)
        if not match or not path.is_dir():
            continue
        original = folder / match.group("name")
        try:
            if match.group("kind") == "replaced" and not original.exists() and any(path.iterdir()):
                os.replace(path, original)
            else:
                shutil.rmtree(path)
        except OSError as exc:
            raise os_error(path, exc, "cannot clean up after an interrupted install") from None
        acted.append(path)
    return acted
