"""What a technique is: the base class each technique module subclasses and registers with `@register`
(`Technique`: its declaration as class attributes, the plumbing shared by all, what each overrides), its
`Option`s, the `ReportItem`s it adds to the study report, `Ran` (what it ran with on a target, as
recorded there) and the store they register into.
Lookups go through `registry`, which loads every technique module first.

Also what several technique modules share: the layer option, the count option, and checking a layer
on the target's first image before anything is written."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from inspect import signature
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional, TypeVar

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


class Technique(ABC):
    """The plumbing every technique shares (pytorch-grad-cam's `BaseCAM` is the habit copied): a technique
    module subclasses it, declares itself in class attributes, overrides `prepare`, `outputs` and `write`
    (and `report` or `caption` where its report items are its own), and registers with `@register`.

    Declaration (class attributes): `name`; `summary` (one line: the `netsight inspect --NAME` help);
    `applies_to` (cnn | recurrent | any); `compute` (the notebook function, model and images in, result
    out: `compute = staticmethod(top9)`); `options` (its `Option`s); `needs_run` (needs a netsight run
    directory: its snapshots or config); `section` (the study report section its items go to: cnn | zf |
    trust; empty: it adds none); `flag` (a `netsight inspect --NAME` flag; explore has its own command);
    `first_seed` (a recurrent technique a suite runs on the first seed only, as the CNN ones always are);
    `models` (the model names a suite runs it on; empty: every model it applies to); `min_seeds` (the
    seeds a suite needs for it to run: seed agreement compares two or more).

    Its panels on the `netsight explore` page (`explore_panels`, `explore_shared`) are its own too: the
    page asks every technique that applies to a layer, in `registry.ORDER`, and names none."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    applies_to: ClassVar[str] = ""
    compute: Callable[..., Any]
    options: ClassVar[tuple[Option, ...]] = ()
    needs_run: ClassVar[bool] = False
    section: ClassVar[str] = ""
    flag: ClassVar[bool] = True
    first_seed: ClassVar[bool] = False
    models: ClassVar[tuple[str, ...]] = ()
    min_seeds: ClassVar[int] = 1

    # ------------------------------------------------------------------ what each technique overrides
    @abstractmethod
    def prepare(self, t: Target, *args: Any, **options: Any) -> dict:
        """(target, one keyword per option) -> every option resolved; checks all it can on the target's
        first image and raises `NetsightError` on bad input, writing nothing."""

    @abstractmethod
    def outputs(self, t: Target, o: dict) -> list[str]:
        """The files it writes for the resolved options `o`, relative to the target's folder, in order."""

    @abstractmethod
    def write(self, t: Target, o: dict) -> list[Path]:
        """Computes and writes exactly the files of `outputs(t, o)`: their paths."""

    def caption(self, ran: Ran) -> str:
        """The caption of its figure in the study report (after the model's label), for what it ran with."""
        return f"{self.summary}."

    def report(self, run: Any, label: str, ran: Ran) -> list[ReportItem]:
        """What it adds to the study report's `section` for one run: by default one figure per `.png` it
        wrote, captioned by `caption(ran)`; nothing where it has no section."""
        if not self.section:
            return []
        return [ReportItem("figure", f"{label}: {self.caption(ran)}", path) for path in ran.files if path.suffix == ".png"]

    # ------------------------------------------------------------------ its part of the explore page
    def explore_panels(self, layer: Any, unit: int) -> list[dict]:
        """The panels it shows about `unit` of a `netsight explore` page's `layer` (a `report.panels.PageLayer`
        of the kind it applies to), in the order shown: generic panels of `report/panels.py`. None by default."""
        return []

    def explore_shared(self, layer: Any) -> dict[str, dict]:
        """What its panels share across the units of `layer`, stored once: any of `notes` (key -> text),
        `styles` (chart style name -> settings) and `data` (key -> series). Nothing by default."""
        return {}

    # ------------------------------------------------------------------ the plumbing
    def applies(self, target: Target) -> bool:
        return self.applies_to == "any" or target.kind == self.applies_to

    def check_applies(self, target: Target) -> None:
        if self.needs_run and target.run is None:
            raise NetsightError(
                f"--{self.name.replace('_', '-')} needs the weight snapshots and config of a netsight run directory; it does not go with --model"
            )
        if not self.applies(target):
            what = {"cnn": "convolutional networks", "recurrent": "recurrent networks"}[self.applies_to]
            raise NetsightError(f"--{self.name.replace('_', '-')} is for {what}; {target.title} is not one")

    def resolve(self, target: Target, options: dict) -> dict:
        """Every option resolved for `target` (the values given in `options`, else its defaults), checked by
        `prepare`; options it does not take are ignored (one `netsight inspect` serves every technique)."""
        self.check_applies(target)
        accepted = list(signature(self.prepare).parameters)[1:]  # after the target
        given = {k: v for k, v in options.items() if k in accepted and v is not None}
        defaults = {o.name: o.default for o in self.options}
        return self.prepare(target, **{**defaults, **given})

    def run(self, target: Target, **options: Any) -> list[Path]:
        """Prepare and write it for `target`: the files it wrote."""
        return self.write(target, self.resolve(target, options))

    def __repr__(self) -> str:
        return f"<technique {self.name}>"


_REGISTRY: dict[str, Technique] = {}

T = TypeVar("T", bound=type[Technique])


def register(cls: T) -> T:
    """Class decorator: checks the declaration, makes the one instance and stores it under its name."""
    if not cls.name or not cls.summary:
        raise ValueError(f"technique class {cls.__name__}: name and summary must be set")
    if cls.name in _REGISTRY:
        raise ValueError(f"technique {cls.name!r} registered twice")
    if cls.applies_to not in APPLIES:
        raise ValueError(f"technique {cls.name!r}: applies_to {cls.applies_to!r} not in {APPLIES}")
    if not callable(getattr(cls, "compute", None)):
        raise ValueError(f"technique {cls.name!r}: no compute function (compute = staticmethod(function))")
    _REGISTRY[cls.name] = cls()
    return cls


def unregister(name: str) -> None:
    """Remove a registered technique (a test's or a notebook's own, registered for a while)."""
    _REGISTRY.pop(name, None)


# ------------------------------------------------------------------ shared by several techniques
LAYER = Option("layer", "str", None, "layer name, e.g. conv2 or layer2.1 (filters: the first conv; the others: the last conv)")


def count_option(default: int) -> Option:
    return Option("count", "int", default, "images used", lo=1, hi=1_000_000)


MAPS_HELP = "top9: maps in the figure (the table has every map); evolution: maps followed; featureviz: units optimised"


def checked_layer(t: Target, layer: Optional[str]) -> tuple[str, str]:
    """(the layer asked for, or the last convolution; the module whose output is ranked), checked
    on the first image: an unknown layer or one without feature maps fails here, before any write."""
    asked = layer or conv_layers(t.model)[-1]
    with normalised_input(t.model, **t.norm):
        ranked = resolve_graph_target(t.model, asked, t.images.load([0]).to(t.device))
    return asked, ranked
