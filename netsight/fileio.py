"""Crash-safe writes that never destroy a file netsight did not make.

Every file netsight produces appears whole or not at all: each writer writes to a temporary
file in the same folder (`.<name>.<random>.tmp`), flushes it to disk and renames it over the
target (`os.replace` is atomic on POSIX and Windows), so a crash or Ctrl-C never leaves a
half-written metrics.csv, summary.json or weights file behind.

Ownership: every folder netsight writes into holds `.netsight-files.json`, the SHA-256 of each
file netsight wrote there. A write (or a removal) whose target already exists and is not
recorded with its current content is refused with a clear error, so a user's own
report.html, summary.json or metrics.csv is never overwritten or deleted — not even one that
happens to carry the same name. Copying a folder keeps the record valid (it is by content).
Folders written before this record existed are recognised by their netsight config/suite file.

The record never disagrees with the folder, even when netsight is killed mid-write: before a file
is renamed into place (or deleted) the record notes the change as pending (`"pending": {name:
new SHA-256, or null for a removal}`), and afterwards settles it. A file matching either its
recorded or its pending content is netsight's, unchanged; anything else was changed by someone
else (`damaged_files` lists those, and the recorded files that are gone).

Operating-system failures (permission denied, read-only or full disk, a file where a folder
is expected) become a `NetsightError` naming the path and the reason.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from .errors import NetsightError

MANIFEST = ".netsight-files.json"
_TMP_PATTERN = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")  # what tempfile.mkstemp makes below


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file


def os_error(path: str | Path, exc: OSError, doing: str = "cannot write") -> NetsightError:
    """One line for an operating-system failure: the path and the reason in plain words."""
    reason = exc.strerror or str(exc)
    hint = {
        errno.ENOSPC: " (the disk is full)",
        errno.EROFS: " (mounted read-only)",
        errno.EACCES: " (check the folder's permissions)",
        errno.EPERM: " (check the folder's permissions)",
        errno.ENOTDIR: " (a file stands where a folder is expected)",
        errno.EEXIST: " (a file stands where a folder is expected)",
    }.get(exc.errno or 0, "")
    where = exc.filename if exc.filename is not None else path
    return NetsightError(f"{where}: {doing}: {reason}{hint}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class _Record:
    """A folder's record: `files` (name -> SHA-256 netsight wrote) and `pending` (name -> the SHA-256
    of a write in progress, or None for a removal in progress); `readable` is False when the record
    exists but cannot be read (then nothing counts as ours)."""

    def __init__(self, files: dict[str, str], pending: dict[str, Optional[str]], readable: bool = True):
        self.files, self.pending, self.readable = files, pending, readable

    def accepted(self, name: str) -> Optional[set[Optional[str]]]:
        """The contents `name` may have and still be netsight's (None: absent), or None when it is not recorded."""
        if name not in self.files and name not in self.pending:
            return None
        states = {self.files.get(name)}
        if name in self.pending:
            states.add(self.pending[name])
        return states


def _load_record(folder: Path) -> _Record:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _Record({}, {})
    except (OSError, ValueError, UnicodeDecodeError):
        return _Record({}, {}, readable=False)  # an unreadable record protects everything in the folder
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return _Record({}, {}, readable=False)
    files = {k: v for k, v in data["files"].items() if isinstance(k, str) and isinstance(v, str)}
    raw = data.get("pending")
    pending = {
        k: v
        for k, v in (raw if isinstance(raw, dict) else {}).items()
        if isinstance(k, str) and (v is None or isinstance(v, str))
    }
    return _Record(files, pending)


def _read_manifest(folder: Path) -> dict[str, str]:
    """The settled part of the record: name -> SHA-256 (a write in progress counts as not made)."""
    return _load_record(folder).files


def _write_manifest(folder: Path, files: dict[str, str], pending: Optional[dict[str, Optional[str]]] = None) -> None:
    record: dict[str, Any] = {"written_by": "netsight", "files": dict(sorted(files.items()))}
    if pending:
        record["pending"] = pending
    blob = (json.dumps(record, indent=1) + "\n").encode()
    _replace_atomically(folder / MANIFEST, lambda p: p.write_bytes(blob))


def _ownership(folder: Path) -> dict[str, str]:
    """The folder's record, settled (a change left pending by a killed write counts as made when
    the file shows it); a legacy netsight folder gets one that adopts the files already there."""
    if not (folder / MANIFEST).exists() and is_legacy_netsight_folder(folder):
        return {p.name: _sha256(p) for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
    record = _load_record(folder)
    files = dict(record.files)
    for name, new in record.pending.items():
        path = folder / name
        if new is None:
            if not path.exists():
                files.pop(name, None)
        elif path.is_file() and _sha256(path) == new:
            files[name] = new
    return files


def is_legacy_netsight_folder(folder: Path) -> bool:
    """A folder netsight wrote before ownership records existed: a run (config.json with a
    'train' section), a suite (suite.json listing runs), or a figures/tables/snapshots folder
    of one of those."""
    for candidate in (folder, folder.parent):
        for name, key in (("config.json", "train"), ("suite.json", "runs")):
            try:
                if key in json.loads((candidate / name).read_text(encoding="utf-8")):
                    return candidate == folder or folder.name in ("figures", "tables", "snapshots")
            except (OSError, ValueError, TypeError):
                continue
    return False


def is_ours(path: str | Path) -> bool:
    """True when `path` does not exist, or netsight wrote it with its present content."""
    path = Path(path)
    if not path.exists():
        return True
    if not path.is_file():
        return False
    folder = path.parent
    accepted = _load_record(folder).accepted(path.name)
    if accepted is not None:
        return _sha256(path) in accepted
    return not (folder / MANIFEST).exists() and is_legacy_netsight_folder(folder)


def changed_since_written(path: str | Path) -> bool:
    """True when netsight recorded `path` and its content is no longer what it wrote (bit rot,
    a partial copy, an edit). Files without a record (older netsight versions) are not judged."""
    path = Path(path)
    accepted = _load_record(path.parent).accepted(path.name)
    return accepted is not None and path.is_file() and _sha256(path) not in accepted


def damaged_files(folder: str | Path, judged: Callable[[str], bool] = lambda name: True) -> list[str]:
    """What is wrong with the files netsight recorded in `folder` (those `judged` selects): each
    problem as "NAME is missing" (recorded, and not deleted by netsight) or "NAME changed since
    netsight wrote it"; an unreadable record is a problem of its own. A folder without a record
    (new, or written by an older netsight) has none."""
    folder = Path(folder)
    if not (folder / MANIFEST).exists():
        return []
    record = _load_record(folder)
    if not record.readable:
        return [f"its record of netsight's files ({MANIFEST}) cannot be read"]
    problems = []
    for name in sorted(set(record.files) | set(record.pending)):
        if not judged(name):
            continue
        accepted = record.accepted(name) or set()
        path = folder / name
        if not path.is_file():
            if None not in accepted:
                problems.append(f"{name} is missing")
        elif _sha256(path) not in accepted:
            problems.append(f"{name} changed since netsight wrote it")
    return problems


def _refuse_foreign(path: Path, doing: str) -> None:
    if not is_ours(path):
        what = "a folder" if path.is_dir() else "a file netsight did not write (or one changed since)"
        raise NetsightError(
            f"{path}: exists and is {what}; refusing to {doing} it — move it away or choose another output folder"
        )


def _write_temp(path: Path, write: Callable[[Path], object]) -> Path:
    """`write` a temporary file beside `path`, flushed to disk with a new file's mode; removed on failure."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, _FILE_MODE)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return tmp_path


def _replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    tmp_path = _write_temp(path, write)
    try:
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def make_folder(path: str | Path) -> Path:
    """mkdir -p with a clear error (a file in the way, no permission, read-only disk)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise NetsightError(f"{exc.filename or path}: is a file, expected a folder") from None
    except OSError as exc:
        raise os_error(path, exc, "cannot create folder") from None
    return path


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp_path)`, then move the finished file to `path` and record it as ours
    (noted as pending in the record first, so a kill between the two steps leaves no false damage)."""
    path = Path(path)
    make_folder(path.parent)
    _refuse_foreign(path, "overwrite")
    try:
        recorded = _ownership(path.parent)
        tmp_path = _write_temp(path, write)
        try:
            new = _sha256(tmp_path)
            _write_manifest(path.parent, recorded, {path.name: new})
            os.replace(tmp_path, path)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
        recorded[path.name] = new
        _write_manifest(path.parent, recorded)
    except NetsightError:
        raise
    except OSError as exc:
        raise os_error(path, exc) from None
    return path


def remove(path: str | Path) -> None:
    """Delete a file netsight wrote (missing is fine); anything else is refused."""
    path = Path(path)
    if not path.exists():
        return
    _refuse_foreign(path, "delete")
    try:
        recorded = _ownership(path.parent)
        _write_manifest(path.parent, recorded, {path.name: None})
        path.unlink()
        recorded.pop(path.name, None)
        _write_manifest(path.parent, recorded)
    except OSError as exc:
        raise os_error(path, exc, "cannot delete") from None


def clean_leftovers(folder: str | Path, names: Iterable[str]) -> list[Path]:
    """Remove the temporary files a killed write of one of `names` left in `folder`
    (`.<name>.<8 random chars>.tmp`); nothing else is touched."""
    folder, names = Path(folder), set(names)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = _TMP_PATTERN.match(p.name)
        if m and m.group("name") in names and p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except OSError as exc:
                raise os_error(p, exc, "cannot remove a leftover temporary file") from None
    return removed


def _made_by_netsight(folder: Path, depth: int = 3) -> bool:
    """A folder netsight writes into (it holds a record), or one holding only such folders
    (OUT/runs/<group>/ of a suite)."""
    if (folder / MANIFEST).is_file() or is_legacy_netsight_folder(folder):
        return True
    if depth == 0:
        return False
    children = list(folder.iterdir())
    return all(c.is_dir() and _made_by_netsight(c, depth - 1) for c in children)


def claim_output_folder(path: str | Path, flag: str) -> Path:
    """The folder a command writes into: new, empty, or one netsight already writes into.

    A folder holding other things (a user's documents) is refused, so nothing there is at risk."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NetsightError(f"{flag} {path}: is a file, expected a folder")
    if path.is_dir():
        try:
            entries = sorted(p.name for p in path.iterdir())
        except OSError as exc:
            raise os_error(path, exc, "cannot read folder") from None
        if entries and not _made_by_netsight(path):
            shown = ", ".join(entries[:4]) + (f" and {len(entries) - 4} more" if len(entries) > 4 else "")
            raise NetsightError(
                f"{flag} {path}: the folder exists and holds files netsight did not write ({shown}); choose a new or empty folder"
            )
    return make_folder(path)


def write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda p: p.write_bytes(data))


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=True) + "\n")


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Mapping[str, Any] | Sequence[Any]]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_fmt(row[k]) for k in header] if isinstance(row, Mapping) else [_fmt(v) for v in row])
    return write_text(path, buf.getvalue())


def _fmt(value: Any) -> Any:
    # repr-exact floats keep CSVs bit-comparable across runs (the determinism tests rely on it)
    return repr(value) if isinstance(value, float) else value


def read_bytes(path: str | Path) -> bytes:
    """A file's bytes; a missing file, a folder or an OS failure is one clear error."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NetsightError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise NetsightError(f"{path}: is a folder, expected a file") from None
    except OSError as exc:
        raise os_error(path, exc, "cannot read") from None


def read_json(path: str | Path) -> Any:
    try:
        return json.loads(read_bytes(path).decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NetsightError(f"{path}: not valid JSON ({exc})") from None


def read_csv(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except FileNotFoundError:
        raise NetsightError(f"{path}: file not found") from None
    except OSError as exc:
        raise os_error(path, exc, "cannot read") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise NetsightError(f"{path}: not a readable CSV file ({exc})") from None
