"""`netsight inspect`: several techniques on one target, one after the other; what a technique
finished is kept, so an interrupted command loses only the technique it was in, and the same
command resumes.

Every technique is prepared first (its defaults filled in, its layer and options checked on the
target's first image), so bad input stops the command before anything is written; then the
output folder is claimed (for `--model`: new, empty or netsight's), `inspection.json` records
what was inspected with what, and each technique writes and is recorded as soon as it ends. A
technique whose record holds the same options and whose files all exist is kept, not run again
(the command says so). If a technique fails or is interrupted (Ctrl-C), the files it created
are removed again, the techniques that finished stay with their record, and the command says
what it kept and what it removed; when none finished, the folder is left as the command found
it (files that were there before stay).

What each technique ran with is recorded in the folder (`record_ran`): a run directory's
`inspections.json`, or `--model`'s `inspection.json`, holds under "ran" one entry per technique,
its options resolved and the files it wrote, `{"top9": {"options": {"layer": "conv1", "maps": 16},
"files": ["figures/top9_conv1.png", ...]}}`; the suite runner records the same, and the study
report reads it (`ran`) instead of guessing file names."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from ..errors import NetsightError
from ..fileio import MANIFEST, claim_output_folder, read_json, remove, write_json
from . import registry
from .target import Target
from .base import Ran

RUN_RECORD = "inspections.json"  # a run directory's record of what ran (a --model folder's is inspection.json)


def inspect(target: Target, names: Sequence[str], options: Optional[dict] = None, flag: str = "--out") -> list[Path]:
    """Run the techniques `names` on `target` with `options` (option name -> value; None: the
    technique's default) and return the files written (and those kept), `inspection.json` first
    for a model. A technique recorded with the same options whose files exist is kept, not rerun.
    On an error or an interrupt the unfinished technique's new files are removed, the finished
    ones stay, and the exception goes on (an interrupt's says what was kept and removed)."""
    chosen = [registry.get(n) for n in names]
    prepared = [(t, registry.prepare(t, target, options or {})) for t in chosen]
    out = target.out
    if out is None:
        raise ValueError("inspect: the target has no output folder")
    existed = out.exists()
    before = _files(out)
    if target.run is None:
        _refuse_another_models_folder(target, out, flag)
        claim_output_folder(out, flag)
    paths: list[Path] = []
    kept: list[tuple[str, int]] = []  # (technique, its file count): finished now or earlier
    current: Optional[str] = None
    started: set[Path] = set()
    try:
        if target.run is None:
            paths.append(record(target, names, options or {}))
        for t, opts in prepared:
            files = [out / f for f in t.outputs(target, opts)]
            earlier = ran(out).get(t.name)
            if earlier is not None and earlier.options == jsonable(opts) and all(f.exists() for f in files):
                _say(f"kept {t.name}: it ran with the same options and its {_n_files(len(files))} exist")
                kept.append((t.name, len(files)))
                paths += files
                continue
            current, started = t.name, _files(out)
            if earlier is not None:  # about to be overwritten: no record says these files hold the earlier options
                _forget_ran(target, t.name)
            paths += t.write(target, opts)
            record_ran(target, {t.name: opts})
            kept.append((t.name, len(files)))
            current = None
    except BaseException as exc:
        if not kept:
            _remove_new(out, before, existed)  # nothing finished: the folder as the command found it
            raise
        if current is not None:
            _remove_new(out, started, True)
        what = "; ".join(
            [f"kept {', '.join(f'{n} ({_n_files(k)})' for n, k in kept)}"]
            + ([f"removed the unfinished {current}"] if current is not None else [])
            + ["rerun the same command to resume"]
        )
        if isinstance(exc, KeyboardInterrupt):
            raise KeyboardInterrupt(f"interrupted: {what}") from None
        _say(f"stopped by the error below: {what}")
        raise
    return paths


def _n_files(n: int) -> str:
    return f"{n} file{'s' if n != 1 else ''}"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _forget_ran(t: Target, name: str) -> None:
    path = _record_path(t.folder)
    if path.is_file():
        record = read_json(path)
        entries = {k: v for k, v in (record.get("ran") or {}).items() if k != name}
        write_json(path, {**record, "ran": entries})


def record(t: Target, names: Sequence[str], options: dict) -> Path:
    """inspection.json: what was inspected, with what, so the folder explains itself (what earlier
    inspections of the same model and images ran there stays recorded under "ran")."""
    path = t.folder / "inspection.json"
    earlier = read_json(path).get("ran") if path.is_file() else None
    return write_json(
        path,
        {
            **_description(t),
            "labels": "the images' classes" if t.labels is not None else "the model's predictions",
            "skipped": dict(t.images.skipped),  # unreadable files of an --images folder, and why
            "techniques": list(names),
            "layer": options.get("layer"),
            **({"ran": earlier} if earlier else {}),
        },
    )


def _record_path(folder: Path) -> Path:
    return folder / ("inspection.json" if (folder / "inspection.json").is_file() else RUN_RECORD)


def jsonable(options: dict) -> dict:
    """`options` as they read back from JSON (paths as strings, tuples as lists)."""
    return json.loads(json.dumps(options, default=str))


def record_ran(t: Target, ran: dict[str, dict]) -> Path:
    """Record in `t`'s folder that each technique of `ran` (name -> its prepared options) ran with those
    options and wrote its declared files; earlier entries of other techniques stay."""
    path = _record_path(t.folder)
    record = read_json(path) if path.is_file() else {}
    entries = dict(record.get("ran") or {})
    for name, options in ran.items():
        files = [str(f) for f in registry.get(name).outputs(t, options)]
        entries[name] = {"options": jsonable(options), "files": files}
    return write_json(path, {**record, "ran": entries})


def ran(folder: str | Path) -> dict[str, Ran]:
    """What each technique ran with in `folder` (a run directory or a --model folder), as recorded:
    name -> Ran (options, files as paths under `folder`); empty for a folder with no record."""
    folder = Path(folder)
    path = _record_path(folder)
    if not path.is_file():
        return {}
    entries = read_json(path).get("ran") or {}
    return {
        name: Ran(dict(e.get("options") or {}), tuple(folder / f for f in e.get("files") or []))
        for name, e in entries.items()
        if isinstance(e, dict)
    }


_SAME = ("model", "weights", "seed", "images", "image_shape", "count", "preprocessing")  # what names the network and images


def _refuse_another_models_folder(t: Target, out: Path, flag: str) -> None:
    """`--out` may hold an earlier inspection of the same model and images (it is brought up to date),
    never a run directory or another model's inspection: one folder, one network."""
    if (out / "config.json").is_file() or (out / "summary.json").is_file():
        raise NetsightError(
            f"{flag} {out}: is a netsight run directory; its model is inspected with netsight inspect "
            f"{out}; give --model's figures a folder of their own"
        )
    if not (out / "inspection.json").is_file():
        return
    try:
        earlier = read_json(out / "inspection.json")
    except NetsightError:
        raise NetsightError(
            f"{flag} {out}: its inspection.json is unreadable, so what the folder holds is unknown; choose another --out"
        ) from None
    mine = _description(t)
    differs = [k for k in _SAME if earlier.get(k) != mine.get(k)]
    if differs:

        def show(d: dict) -> str:
            return f"{d.get('model')} ({d.get('weights') or 'random initialisation, seed ' + str(d.get('seed'))})"

        raise NetsightError(
            f"{flag} {out}: holds the inspection of {show(earlier)} on {earlier.get('images')}; this is "
            f"{show(mine)} on {mine.get('images')} (differs in {', '.join(differs)}); choose another --out"
        )


def _description(t: Target) -> dict:
    return json.loads(
        json.dumps({**t.record, "images": t.images.description, "image_shape": list(t.images.shape), "count": len(t.images)})
    )


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")} if root.is_dir() else set()


def _remove_new(root: Path, before: set[Path], existed: bool) -> None:
    """Remove what was created under `root` since `before`: the new files first (their folders'
    records are updated, so a folder that was there reads as before), then the records and
    folders that are new; `root` too if this command created it."""
    new = _files(root) - before
    for p in sorted((p for p in new if p.is_file() and p.name != MANIFEST), key=lambda p: len(p.parts), reverse=True):
        try:
            remove(p)
        except (OSError, NetsightError):
            pass  # what cannot be removed stays; the error that stopped the command is the one to report
    for p in sorted(new, key=lambda p: len(p.parts), reverse=True):
        try:
            if p.name == MANIFEST and p.is_file():
                p.unlink()
            elif p.is_dir():
                p.rmdir()
        except OSError:
            pass  # a folder someone else filled meanwhile stays
    if not existed:
        try:
            (root / MANIFEST).unlink(missing_ok=True)
            root.rmdir()
        except OSError:
            pass
