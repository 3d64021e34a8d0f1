"""`netsight inspect`: several techniques on one target, as one command that either writes all
its files or leaves the folder as it found it.

Every technique is prepared first (its defaults filled in, its layer and options checked on the
target's first image), so bad input stops the command before anything is written; then the
output folder is claimed (for `--model`: new, empty or netsight's), `inspection.json` records
what was inspected with what, and each technique writes. If one fails or is interrupted, the
files this command created are removed again (files that were there before stay).

What each technique ran with is recorded in the folder (`record_ran`): a run directory's
`inspections.json`, or `--model`'s `inspection.json`, holds under "ran" one entry per technique,
its options resolved and the files it wrote, `{"top9": {"options": {"layer": "conv1", "maps": 16},
"files": ["figures/top9_conv1.png", ...]}}`; the suite runner records the same, and the study
report reads it (`ran`) instead of guessing file names."""

from __future__ import annotations

import json

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
    technique's default) and return the files written, `inspection.json` first for a model."""
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
    try:
        if target.run is None:
            paths.append(record(target, names, options or {}))
        for t, opts in prepared:
            paths += t.write(target, opts)
        record_ran(target, {t.name: opts for t, opts in prepared})
    except BaseException:
        _remove_new(out, before, existed)
        raise
    return paths


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
