"""The registry of techniques: each one declared once, found by name everywhere else.

A technique module (`techniques/<name>.py`) holds one `Technique` subclass (`base.py`), registered
with `@register`: its name, what it applies to, its options, its plain compute function (what a
notebook calls), how it writes its figures and tables for a `Target`, the files it declares, and what
it adds to the study report. `ORDER` below names every module; `techniques()` imports them from it.
The CLI builds `netsight inspect`'s flags from here, suites validate their analysis names here,
the suite runner and the report call through here, and one test walks the registry over every
applicable model (timm's `register_model` is the habit copied).

`techniques.inspection.inspect` runs several on one target: all are prepared (defaults filled in,
layers and options checked) before the first file is written.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path

from ..errors import NetsightError
from .target import Target
from .base import _REGISTRY, Option, ReportItem, Technique, register, unregister

__all__ = ["Option", "ReportItem", "Technique", "register", "unregister", "techniques", "get", "all_options", "prepare", "run"]


# the technique modules (netsight/techniques/<name>.py, each registering the technique <name>), in the order the
# CLI's help and the report show them: the one list to edit for a new technique
ORDER = (
    "filters",
    "activations",
    "deconv",
    "top9",
    "featureviz",
    "occlusion",
    "attributions",
    "sanity",
    "faithfulness",
    "agreement",
    "input_invariance",
    "recurrent_trust",
    "card",
    "evolution",
    "invariance",
    "sequence",
    "rows",
    "units",
    "gates",
    "trajectories",
    "explore",
    "microscope",
)


def techniques() -> dict[str, Technique]:
    """Every registered technique, in `ORDER` (then any registered elsewhere, in registration order):
    the order the CLI and report show them, whichever module a notebook imported first."""
    for name in ORDER:
        import_module(f"{__package__}.{name}")  # importing a technique module registers it
    rank = {name: i for i, name in enumerate(ORDER)}
    return dict(sorted(_REGISTRY.items(), key=lambda item: rank.get(item[0], len(ORDER))))


def get(name: str) -> Technique:
    known = techniques()
    if name not in known:
        raise NetsightError(f"unknown technique {name!r}; known: {', '.join(known)}")
    return known[name]


def all_options(flagged: bool = False) -> dict[str, list[tuple[Technique, Option]]]:
    """Option name -> the techniques that take it (the CLI makes one flag of each); `flagged`: of the techniques that
    are `netsight inspect` flags only (a technique with a command of its own has its own flags)."""
    found: dict[str, list[tuple[Technique, Option]]] = {}
    for t in techniques().values():
        if flagged and not t.flag:
            continue
        for o in t.options:
            found.setdefault(o.name, []).append((t, o))
    return found


def prepare(technique: Technique, target: Target, options: dict) -> dict:
    """Every option of `technique` resolved for `target` (given values, else its defaults), checked."""
    return technique.resolve(target, options)


def run(name: str, target: Target, **options) -> list[Path]:
    """Prepare and write one technique for `target`: the files it wrote."""
    return get(name).run(target, **options)
