"""What a technique is: the declaration each technique module registers (`Technique`, its
`Option`s, the `ReportItem`s it adds to the study report, `Ran`: what it ran with on a target, as
recorded there) and the store they register into.
Lookups go through `registry`, which loads every technique module first.

Also what several technique modules share: the layer option, the count option, and checking a layer
on the target's first image before anything is written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import NetsightError
from ..ops.deconvnet_graph import resolve_graph_target
from ..ops.hooks import normalised_input
from ..ops.stages import conv_layers
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
class Ran:
    """What one technique ran with on one target, as recorded in its folder (`inspection.ran`): every
    option resolved, and the files it wrote, in the order of its `outputs`."""

    options: dict
    files: tuple[Path, ...]


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
    report: Optional[Callable[[Any, str, Ran], list[ReportItem]]] = None  # (run, model label, what ran) -> items
    section: str = ""  # the report section its items go to: cnn | zf | trust
    flag: bool = True  # a `netsight inspect --NAME` flag (explore has its own command)
    first_seed: bool = False  # a recurrent technique a suite runs on the first seed only (CNN ones always are)
    models: tuple[str, ...] = ()  # the model names a suite runs it on (empty: every model it applies to)
    min_seeds: int = 1  # the seeds a suite needs for it to run (seed agreement compares two or more)

    def applies(self, target: Target) -> bool:
        return self.applies_to == "any" or target.kind == self.applies_to

    def check_applies(self, target: Target) -> None:
        if self.needs_run and target.run is None:
            raise NetsightError(
                f"--{self.name} needs the weight snapshots and config of a netsight run directory; it does not go with --model"
            )
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


# ------------------------------------------------------------------ shared by several techniques
LAYER = Option("layer", "str", None, "layer name, e.g. conv2 or layer2.1 (filters: the first conv; the others: the last conv)")


def count_option(default: int) -> Option:
    return Option("count", "int", default, "images used", lo=1, hi=1_000_000)


MAPS_HELP = "top9: maps in the figure (the table has every map); evolution: maps followed"


def checked_layer(t: Target, layer: Optional[str]) -> tuple[str, str]:
    """(the layer asked for, or the last convolution; the module whose output is ranked), checked
    on the first image: an unknown layer or one without feature maps fails here, before any write."""
    asked = layer or conv_layers(t.model)[-1]
    with normalised_input(t.model, **t.norm):
        ranked = resolve_graph_target(t.model, asked, t.images.load([0]).to(t.device))
    return asked, ranked
