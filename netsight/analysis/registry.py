"""The registry of techniques: each one declared once, found by name everywhere else.

A technique module (`analysis/techniques/<name>.py`) registers a `Technique`: its name, what it
applies to, its options, its plain compute function (what a notebook calls), how it writes its
figures and tables for a `Target`, the files it declares, and what it adds to the study report.
The CLI builds `netsight inspect`'s flags from here, suites validate their analysis names here,
the suite runner and the report call through here, and one test walks the registry over every
applicable model (timm's `register_model` is the habit copied).

`analysis.inspection.inspect` runs several on one target: all are prepared (defaults filled in,
layers and options checked) before the first file is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from inspect import signature
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import NetsightError
from .target import Target

APPLIES = ("cnn", "recurrent", "any")


@dataclass(frozen=True)
class Option:
    """One option of a technique; `flag` is its `netsight inspect` flag (shared by the techniques
    that take the same option), `default` this technique's own default."""

    name: str  # the keyword of the technique's run/compute function
    kind: str  # int | float | choice | str
    default: Any
    help: str
    lo: float = 0
    hi: float = 0
    choices: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class ReportItem:
    """What a technique adds to the study report for one run: a figure, a paragraph or a link."""

    kind: str  # figure | p | link | table
    text: str  # the caption, paragraph or link text
    path: Optional[Path] = None  # the figure, the linked file, or the table's source
    header: tuple = ()  # a table's column titles
    rows: tuple = ()  # a table's rows


@dataclass(frozen=True)
class Technique:
    name: str
    summary: str  # one line: the `netsight inspect --NAME` help
    applies_to: str  # cnn | recurrent | any
    compute: Callable[..., Any]  # the notebook function (model, images, ...) -> result
    prepare: Callable[..., dict]  # (target, **options) -> every option resolved; raises NetsightError on bad input
    outputs: Callable[[Target, dict], list[str]]  # the files it writes, relative to target.out
    write: Callable[[Target, dict], list[Path]]  # computes and writes them
    options: tuple[Option, ...] = ()
    needs_run: bool = False  # needs a netsight run directory (its snapshots or config)
    report: Optional[Callable[[Any, str], list[ReportItem]]] = None  # (run, model label) -> items
    section: str = ""  # the report section its items go to: cnn | zf
    study: dict = field(default_factory=dict)  # options the assignment study runs it with
    study_quick: dict = field(default_factory=dict)  # ... and with --quick
    flag: bool = True  # a `netsight inspect --NAME` flag (explore has its own command)

    def applies(self, target: Target) -> bool:
        return self.applies_to == "any" or target.kind == self.applies_to

    def check_applies(self, target: Target) -> None:
        if self.needs_run and target.run is None:
            raise NetsightError(f"--{self.name} needs the weight snapshots and config of a netsight run directory; "
                                f"it does not go with --model")
        if not self.applies(target):
            what = {"cnn": "convolutional networks", "recurrent": "recurrent networks"}[self.applies_to]
            raise NetsightError(f"--{self.name} is for {what}; {target.title} is not one")


_REGISTRY: dict[str, Technique] = {}


def register(technique: Technique) -> Technique:
    if technique.name in _REGISTRY:
        raise ValueError(f"technique {technique.name!r} registered twice")
    if technique.applies_to not in APPLIES:
        raise ValueError(f"technique {technique.name!r}: applies_to {technique.applies_to!r} not in {APPLIES}")
    _REGISTRY[technique.name] = technique
    return technique


def techniques() -> dict[str, Technique]:
    """Every registered technique, in registration order (the order the CLI and report show them)."""
    from . import techniques as _  # noqa: F401  (importing the package registers them)

    return dict(_REGISTRY)


def get(name: str) -> Technique:
    known = techniques()
    if name not in known:
        raise NetsightError(f"unknown technique {name!r}; known: {', '.join(known)}")
    return known[name]


def all_options() -> dict[str, list[tuple[Technique, Option]]]:
    """Option name -> the techniques that take it (the CLI makes one flag of each)."""
    found: dict[str, list[tuple[Technique, Option]]] = {}
    for t in techniques().values():
        for o in t.options:
            found.setdefault(o.name, []).append((t, o))
    return found


def prepare(technique: Technique, target: Target, options: dict) -> dict:
    """Every option of `technique` resolved for `target` (given values, else its defaults), checked."""
    technique.check_applies(target)
    accepted = list(signature(technique.prepare).parameters)[1:]  # after the target
    given = {k: v for k, v in options.items() if k in accepted and v is not None}
    defaults = {o.name: o.default for o in technique.options}
    return technique.prepare(target, **{**defaults, **given})


def run(name: str, target: Target, **options) -> list[Path]:
    """Prepare and write one technique for `target`: the files it wrote."""
    technique = get(name)
    return technique.write(target, prepare(technique, target, options))
