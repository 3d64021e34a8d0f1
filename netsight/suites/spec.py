"""Suites: a TOML file listing groups of runs (models x data x hyperparameters x seeds)
and the analyses to make of them. The built-in `assignment` suite is one such file.

    title = "My study"
    seeds = 3                      # default number of seeds (--seeds overrides)

    [[group]]
    name = "cnn"                   # run directories are grouped by this name
    models = ["lenet5", "cnn-bn"]
    data = "cifar10-assignment"
    snapshots = [100, 500, 1000]   # any training field (netsight train --help); a list of
    hidden = [32, 64]              # values for hidden/lr/batch_size/... makes a grid
    labels = "permuted"            # train on permuted labels (Adebayo et al.'s data randomisation)
    seeds = 1                      # at most this many of the suite's seeds for this group
    analyses = ["filters", "activations", "deconv", "top9", "occlusion", "evolution", "invariance", "explore"]

    [group.options.top9]           # a technique's options (its `netsight inspect` flags, in snake_case)
    layer = "conv1"
    maps = 16
    [group.quick_options.top9]     # with --quick, over the options above
    maps = 8

    [[group]]                      # ROAR/KAR (Hooker et al. 2019; suites/roar.py): retrain on masked images
    name = "roar"
    models = ["lenet5"]
    data = "cifar10-assignment"
    mask = { from = "cnn", method = ["gradient", "vargrad", "random"], mode = ["roar", "kar"], fraction = [0.1, 0.5, 0.9] }
    quick_mask = { method = ["gradient", "random"], fraction = [0.5] }  # with --quick, over mask
                                   # mask.samples: the noise methods' copies per image (16)

Analyses: the CNN ones above run on the first seed of each CNN model of the group ("explore"
writes the run's explore.html, every unit browsable offline);
"sequence" (reading the first k rows, gradient flow over time) on each recurrent run; "rows", "units",
"gates" and "trajectories" (inside the recurrent nets) on the first seed of each recurrent model.
A mask group (`mask = {...}`) retrains its models from scratch on images whose pixels are ranked by
`method`'s map on the first seed's model of the same name in group `from` (trained first), a `fraction`
of each image's pixels replaced by the training set's mean: `mode` "roar" the top-ranked ones, "kar" the
bottom-ranked ones; the test set is masked the same way; method, mode and fraction may each be a list
(a grid); "random" is the baseline ranking; `samples`: SmoothGrad's, SmoothGrad-squared's and VarGrad's noisy
copies per image (16). It has no analyses; suites/roar.py writes its tables.
A technique runs with the options its group gives it, the rest at its defaults (`netsight inspect
--help`); suite.json records them, and each run's inspections.json what they resolved to.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..techniques.registry import techniques
from ..errors import NetsightError
from ..models import MODELS, SETTING_DEFAULTS
from ..train.config import MaskSpec, TrainConfig, resolve

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUILTIN_DIR = Path(__file__).parent
GRID_FIELDS = ("hidden", "lr", "batch_size", "optimizer", "init", "dropout", "iterations", "eval_every", "labels")
OPTION_TABLES = ("options", "quick_options")  # [group.options.<technique>], [group.quick_options.<technique>]
MASK_TABLES = ("mask", "quick_mask")  # a ROAR/KAR group's masked data (and with --quick, over it)
_GROUP_KEYS = (
    {"name", "models", "data", "analyses", "snapshots", "seeds"} | set(GRID_FIELDS) | set(OPTION_TABLES) | set(MASK_TABLES)
)
QUICK_ITERATIONS = 100  # --quick: iterations per run
QUICK_SEEDS = 2  # --quick: seeds (two, so the spread is still computed)


@dataclass(frozen=True)
class Group:
    name: str
    models: tuple[str, ...]
    data: str | None = None
    analyses: tuple[str, ...] = ()
    snapshots: tuple[int, ...] = ()
    grid: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)  # technique -> option -> value
    quick_options: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)  # ... with --quick, over options
    seeds: int | None = None  # at most this many of the suite's seeds (None: all of them)
    mask: dict[str, Any] = field(default_factory=dict, hash=False)  # ROAR/KAR: from, method, mode, fraction (lists)
    quick_mask: dict[str, Any] = field(default_factory=dict, hash=False)  # ... with --quick, over mask

    def mask_for(self, quick: bool) -> dict[str, Any]:
        """This group's mask table (with --quick, its quick_mask over it); empty: not a mask group."""
        return {**self.mask, **(self.quick_mask if quick else {})} if self.mask else {}

    def options_for(self, technique: str, quick: bool) -> dict[str, Any]:
        """The options this group gives `technique` (with --quick, its quick_options over them)."""
        return {**self.options.get(technique, {}), **(self.quick_options.get(technique, {}) if quick else {})}


@dataclass(frozen=True)
class Suite:
    title: str
    seeds: int
    groups: tuple[Group, ...]
    source: str  # the TOML text, kept for the report's provenance
    path: str


@dataclass(frozen=True)
class RunSpec:
    group: str
    config: TrainConfig
    analyses: tuple[str, ...]
    options: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)  # the suite's options of each analysis

    @property
    def dirname(self) -> str:
        c = self.config
        hidden = f"-h{c.hidden}" if MODELS[c.model].family == "rnn" else ""
        permuted = "-permuted" if c.labels == "permuted" else ""
        masked = f"-{c.mask.mode}-{c.mask.method}-{c.mask.fraction:g}" if c.mask is not None else ""
        return f"{self.group}/{c.model}{hidden}-{c.data}{permuted}{masked}-seed{c.seed}-{c.key()}"


def _fail(where: str, message: str) -> NetsightError:
    return NetsightError(f"{where}: {message}")


_INT, _NUMBER, _STR = "an integer", "a number", "a string"
# each group key: (element type, whether a list of them makes a grid / is expected)
_GROUP_TYPES: dict[str, tuple[str, str]] = {
    "name": (_STR, "one"),
    "data": (_STR, "one"),
    "models": (_STR, "list"),
    "analyses": (_STR, "list"),
    "snapshots": (_INT, "list"),
    "hidden": (_INT, "grid"),
    "batch_size": (_INT, "grid"),
    "iterations": (_INT, "grid"),
    "eval_every": (_INT, "grid"),
    "lr": (_NUMBER, "grid"),
    "dropout": (_NUMBER, "grid"),
    "optimizer": (_STR, "grid"),
    "init": (_STR, "grid"),
    "labels": (_STR, "grid"),
    "seeds": (_INT, "one"),
}


def _is(kind: str, v: Any) -> bool:
    if isinstance(v, bool):
        return False  # TOML booleans are never a count or a rate
    return {_INT: isinstance(v, int), _NUMBER: isinstance(v, (int, float)), _STR: isinstance(v, str)}[kind]


def _checked(here: str, key: str, value: Any) -> Any:
    """`value` of group key `key`, type-checked: a float where an integer belongs is refused, not truncated."""
    kind, shape = _GROUP_TYPES[key]
    expected = {
        "one": kind,
        "list": f"a non-empty list of {kind.split(' ', 1)[1]}s",
        "grid": f"{kind} or a non-empty list of {kind.split(' ', 1)[1]}s",
    }[shape]
    values = value if isinstance(value, list) else [value]
    ok = (shape != "one" or not isinstance(value, list)) and (shape != "list" or isinstance(value, list))
    if not (ok and values and all(_is(kind, v) for v in values)):
        raise NetsightError(f"{here}: {key} = {value!r}: expected {expected}")
    return value


def _option_value(here: str, option, value: Any) -> Any:
    """`value` of a technique's option, checked against its declaration (kind, range, choices)."""
    wrong = None
    if option.kind == "int" and not _is(_INT, value):
        wrong = "an integer"
    elif option.kind == "float" and not _is(_NUMBER, value):
        wrong = "a number"
    elif option.kind in ("str", "choice") and not isinstance(value, str):
        wrong = "a string"
    elif option.kind == "choice" and value not in option.choices:
        wrong = f"one of {', '.join(map(repr, option.choices))}"
    elif option.kind in ("int", "float") and (option.lo or option.hi) and not option.lo <= value <= option.hi:
        wrong = f"a number from {option.lo:g} to {option.hi:g}"
    if wrong:
        raise NetsightError(f"{here} = {value!r}: expected {wrong}")
    return value


def _technique_options(here: str, key: str, raw: Any, analyses: list[str]) -> dict[str, dict[str, Any]]:
    """A group's [group.options.<technique>] (or quick_options) tables, each option checked against the technique's."""
    if not isinstance(raw, dict):
        raise NetsightError(f"{here}: {key} = {raw!r}: expected tables [group.{key}.<technique>]")
    found: dict[str, dict[str, Any]] = {}
    for name, table in raw.items():
        if name not in analyses:
            known = ", ".join(analyses) or "none"
            raise NetsightError(f"{here}: {key}.{name}: not one of this group's analyses ({known})")
        if not isinstance(table, dict):
            raise NetsightError(f"{here}: {key}.{name} = {table!r}: expected a table of {name}'s options")
        declared = {o.name: o for o in techniques()[name].options}
        for option, value in table.items():
            if option not in declared:
                expected = ", ".join(declared) or "none: it takes no options"
                raise NetsightError(f"{here}: {key}.{name}.{option}: {name} has no such option; its options: {expected}")
            _option_value(f"{here}: {key}.{name}.{option}", declared[option], value)
        found[name] = dict(table)
    return found


def parse_suite(text: str, where: str) -> Suite:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _fail(where, f"not valid TOML ({exc})") from None
    unknown = set(raw) - {"title", "seeds", "group"}
    if unknown:
        raise _fail(where, f"unknown top-level key(s) {', '.join(sorted(unknown))}; expected title, seeds, [[group]]")
    title = raw.get("title", Path(where).stem)
    if not isinstance(title, str):
        raise _fail(where, f"title = {title!r}: expected a string")
    seeds = raw.get("seeds", 1)
    if not _is(_INT, seeds) or not 1 <= seeds <= 1000:
        raise _fail(where, f"seeds = {seeds!r}: expected an integer from 1 to 1000")
    groups_raw = raw.get("group")
    if not isinstance(groups_raw, list) or not groups_raw:
        raise _fail(where, "no [[group]] tables; a suite needs at least one group of runs")
    groups, names = [], set()
    for i, g in enumerate(groups_raw):
        here = f"{where}: group {i + 1}"
        if not isinstance(g, dict):
            raise NetsightError(f"{here}: expected a table")
        unknown = set(g) - _GROUP_KEYS
        if unknown:
            raise NetsightError(f"{here}: unknown key(s) {', '.join(sorted(unknown))}; expected {', '.join(sorted(_GROUP_KEYS))}")
        name = g.get("name")
        if not isinstance(name, str) or not name or not name.replace("-", "").replace("_", "").isalnum():
            raise NetsightError(f"{here}: name = {name!r}: expected letters, digits, '-' or '_'")
        if name in names:
            raise NetsightError(f"{here}: name {name!r} used twice")
        names.add(name)
        here = f"{here} ({name})"
        if "models" not in g:
            raise NetsightError(f"{here}: no models; expected models = [...] with any of {', '.join(MODELS)}")
        g = {k: v if k in OPTION_TABLES + MASK_TABLES else _checked(here, k, v) for k, v in g.items()}
        bad = [m for m in g["models"] if m not in MODELS]
        if bad:
            raise NetsightError(
                f"{here}: models = {g['models']!r}: unknown {', '.join(map(repr, bad))}; expected any of {', '.join(MODELS)}"
            )
        analyses = g.get("analyses", [])
        known = list(techniques())
        bad = [a for a in analyses if a not in known]
        if bad:
            raise NetsightError(f"{here}: unknown analyses {bad}; expected any of {', '.join(known)}")
        if "seeds" in g and not 1 <= g["seeds"] <= 1000:
            raise NetsightError(f"{here}: seeds = {g['seeds']!r}: expected an integer from 1 to 1000")
        grid = {k: tuple(v) if isinstance(v, list) else (v,) for k, v in g.items() if k in GRID_FIELDS}
        options, quick = (_technique_options(here, k, g.get(k, {}), analyses) for k in OPTION_TABLES)
        mask, quick_mask = _mask_tables(here, g, analyses)
        groups.append(
            Group(
                name,
                tuple(g["models"]),
                g.get("data"),
                tuple(analyses),
                tuple(g.get("snapshots", [])),
                grid,
                options,
                quick,
                g.get("seeds"),
                mask,
                quick_mask,
            )
        )
    _check_mask_sources(where, groups)
    return Suite(title, seeds, tuple(groups), text, where)


_MASK_KEYS = ("from", "method", "mode", "fraction", "samples")


def _mask_tables(here: str, g: dict, analyses: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A group's `mask` and `quick_mask` tables, checked: method, mode and fraction as lists."""
    from ..ops.attribution import METHODS
    from ..ops.masking import MODES, RANDOM

    if "quick_mask" in g and "mask" not in g:
        raise NetsightError(f"{here}: quick_mask without mask; expected mask = {{from = ..., method = ..., ...}} first")
    if "mask" not in g:
        return {}, {}
    if analyses:
        raise NetsightError(f"{here}: analyses = {analyses!r}: a mask group retrains on masked images and takes no analyses")
    methods = (*METHODS, RANDOM)
    found = []
    for key in MASK_TABLES:
        raw = g.get(key, {})
        if not isinstance(raw, dict):
            raise NetsightError(
                f"{here}: {key} = {raw!r}: expected a table {{from = ..., method = ..., mode = ..., fraction = ...}}"
            )
        table: dict[str, Any] = {}
        for k, v in raw.items():
            where = f"{here}: {key}.{k}"
            if k not in _MASK_KEYS:
                raise NetsightError(f"{where}: unknown key; expected {', '.join(_MASK_KEYS)}")
            if k == "from":
                if not isinstance(v, str) or not v:
                    raise NetsightError(f"{where} = {v!r}: expected the name of a group of this suite")
                table[k] = v
                continue
            if k == "samples":
                if not _is(_INT, v) or not 1 <= v <= 4096:
                    raise NetsightError(
                        f"{where} = {v!r}: expected an integer from 1 to 4096 (the noise methods' copies per image)"
                    )
                table[k] = v
                continue
            values = v if isinstance(v, list) else [v]
            if not values:
                raise NetsightError(f"{where} = []: expected a value or a non-empty list")
            if k == "method" and not all(isinstance(m, str) and m in methods for m in values):
                raise NetsightError(f"{where} = {v!r}: expected any of {', '.join(methods)}")
            if k == "mode" and not all(isinstance(m, str) and m in MODES for m in values):
                raise NetsightError(f"{where} = {v!r}: expected roar, kar or a list of them")
            if k == "fraction" and not all(_is(_NUMBER, f) and 0 < f < 1 for f in values):
                raise NetsightError(f"{where} = {v!r}: expected a number in (0, 1) or a list of them (0.3: 30% of the pixels)")
            if len(set(values)) != len(values):
                raise NetsightError(f"{where} = {v!r}: a value listed twice")
            table[k] = tuple(float(f) for f in values) if k == "fraction" else tuple(values)
        found.append(table)
    missing = [k for k in _MASK_KEYS if k not in found[0] and k != "samples"]
    if missing:
        raise NetsightError(
            f'{here}: mask: no {", ".join(missing)}; expected mask = {{from = "<group>", method = [...], mode = [...], fraction = [...]}}'
        )
    return found[0], found[1]


def _check_mask_sources(where: str, groups: list[Group]) -> None:
    """Each mask group's `from` names an earlier-or-later unmasked group of this suite that trains its models."""
    by_name = {g.name: g for g in groups}
    for i, g in enumerate(groups):
        if not g.mask:
            continue
        here = f"{where}: group {i + 1} ({g.name}): mask.from"
        for table in (g.mask, g.quick_mask):
            source = table.get("from")
            if source is None:
                continue
            if source not in by_name:
                raise NetsightError(f"{here} = {source!r}: no such group; expected one of {', '.join(by_name)}")
            if by_name[source].mask:
                raise NetsightError(f"{here} = {source!r}: a mask group; expected a group trained on the images as they are")
            missing = [m for m in g.models if m not in by_name[source].models]
            if missing:
                raise NetsightError(
                    f"{here} = {source!r}: it trains no {', '.join(missing)}; its models: {', '.join(by_name[source].models)}"
                )
            if by_name[source].data != g.data:
                raise NetsightError(f"{here} = {source!r}: it trains on data {by_name[source].data!r}, this group on {g.data!r}")


def load_suite(name_or_path: str | Path | None) -> Suite:
    """A built-in suite by name (`assignment`), or a TOML file."""
    name_or_path = name_or_path or "assignment"
    builtin = BUILTIN_DIR / f"{name_or_path}.toml"
    path = builtin if builtin.is_file() and not Path(str(name_or_path)).suffix else Path(name_or_path)
    if not path.is_file():
        raise NetsightError(f"suite {str(name_or_path)!r}: no such file, and not a built-in suite (built-in: assignment)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NetsightError(f"{path}: cannot read ({exc})") from None
    return parse_suite(text, str(path))


def expand(suite: Suite, seeds: int | None = None, quick: bool = False) -> list[RunSpec]:
    """Every run of the suite, resolved: the runs are keyed by these configs."""
    n_seeds = seeds if seeds is not None else (min(suite.seeds, QUICK_SEEDS) if quick else suite.seeds)
    if n_seeds < 1:
        raise NetsightError(f"--seeds {n_seeds}: expected an integer >= 1")
    specs: list[RunSpec] = []
    for g in sorted(suite.groups, key=lambda g: bool(g.mask)):  # the groups a mask group ranks pixels with, first
        group_seeds = min(n_seeds, g.seeds or n_seeds)
        keys = list(g.grid)
        masks = _masks(g, quick, specs)
        for model in g.models:
            for values in itertools.product(*(g.grid[k] for k in keys)):
                overrides = dict(zip(keys, values, strict=True))
                unused = [k for k in overrides if k in SETTING_DEFAULTS and k not in MODELS[model].settings]
                if unused:  # a hidden-size (dropout) grid does not multiply the runs of models without one
                    if any(overrides[k] != g.grid[k][0] for k in unused):
                        continue
                    for k in unused:
                        overrides.pop(k)
                for seed, mask in itertools.product(range(group_seeds), masks.get(model, [None])):
                    try:
                        config = resolve(model, g.data, seed=seed, snapshots=list(g.snapshots) or None, mask=mask, **overrides)
                    except NetsightError as exc:  # name the suite file and group, not only the field
                        raise NetsightError(f"{suite.path}: group {g.name}, model {model}: {exc}") from None
                    if quick:
                        config = shrink(config)
                    recurrent = MODELS[model].family == "rnn"
                    # each technique where it applies (and on the models it names); the recurrent ones on every
                    # seed unless they ask for the first only (first_seed), the others on the first seed
                    analyses = tuple(
                        a
                        for a in g.analyses
                        if techniques()[a].applies_to in ("any", "recurrent" if recurrent else "cnn")
                        and (not techniques()[a].models or model in techniques()[a].models)
                        and techniques()[a].min_seeds <= group_seeds  # one seed: no seed agreement to measure
                    )
                    every_seed = tuple(
                        a for a in analyses if techniques()[a].applies_to == "recurrent" and not techniques()[a].first_seed
                    )
                    chosen = analyses if seed == 0 else every_seed
                    specs.append(RunSpec(g.name, config, chosen, {a: g.options_for(a, quick) for a in chosen}))
    return specs


def _masks(g: Group, quick: bool, earlier: list[RunSpec]) -> dict[str, list[MaskSpec]]:
    """A mask group's masks per model (every method x mode x fraction), each ranked on the first run of that
    model in the `from` group (its seed 0, first grid point); empty for a group without a mask."""
    table = g.mask_for(quick)
    if not table:
        return {}
    out = {}
    for model in g.models:
        source = next(s for s in earlier if s.group == table["from"] and s.config.model == model and s.config.seed == 0)
        out[model] = [
            MaskSpec(method, mode, fraction, source.dirname, table.get("samples", MaskSpec.samples))
            for method, mode, fraction in itertools.product(table["method"], table["mode"], table["fraction"])
        ]
    return out


def shrink(config: TrainConfig) -> TrainConfig:
    """The same run, cut to QUICK_ITERATIONS (evaluations and snapshots scaled to fit)."""
    iterations = min(config.iterations, QUICK_ITERATIONS)
    factor = iterations / config.iterations
    snaps = sorted({max(1, round(s * factor)) for s in config.snapshots})
    return TrainConfig.from_dict(
        {
            **config.to_dict(),
            "iterations": iterations,
            "eval_every": max(1, min(config.eval_every, iterations // 4)),
            "snapshots": snaps,
        }
    )
