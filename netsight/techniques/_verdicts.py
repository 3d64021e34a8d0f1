"""The verdict rules of the trust tests: from the raw values the checks measured (RUN/tables/sanity_values.csv,
faithfulness_values.csv, seed_agreement_values.csv; CONTRACTS §1) to one verdict per method and test — yes, no
or unsettled — with the interval it reads, its chance level, its threshold, the counts it pooled and what would
settle it (the verdict tables, CONTRACTS §2). docs/trust.md states every rule; the trust card
(`card.py`) and the report's "Which pictures to trust" (`report/trust.py`) read the rows made here.

One word, one measure: "correlate" is always the Spearman rank correlation of |map| (`spearman_abs`).
Every interval is a percentile bootstrap (`ops/bootstrap.py`) over every source of variation the sentence is
about (training seeds > random draws > images), so it stays inside the measure's range; a test settles only
with enough of its own source (`MIN_IMAGES`, `MIN_DRAWS`, `MIN_SEEDS_*`), and never in quick mode.

- depends on the model (Adebayo et al. 2018, cascading randomisation): the similarity of the randomised
  model's maps to the trained model's, averaged over the whole depth curve (not its last point), per seed,
  draw and image. Yes: the interval lies below `MODEL_BELOW`; no: above `MODEL_ABOVE`.
- depends on the data (Adebayo et al. 2018, permuted labels): the similarity to the maps of the same
  configuration trained on permuted labels, per seed and image, same thresholds.
- is faithful (Petsiuk et al. 2018, deletion): the deletion area minus each baseline's (the random map, the
  Sobel edge map), paired per image. Yes: both differences' intervals lie below 0; no: either lies above 0.
- agrees across seeds: the similarity of two seeds' maps of the same image, over image and seed pairs.
  Yes: the interval lies above the chance level (two randomly initialised models' maps); no: below it.
Where the values have a foreground region (images on a constant background), the similarity verdicts use it
(a background of zeros in both maps inflates every rank correlation) and report the whole image beside it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from ..ops import bootstrap
from ..ops.bootstrap import Estimate

COLUMNS: tuple[str, ...] = ("method", "test", "verdict", "measure", "estimate", "lo", "hi", "chance", "threshold")
COLUMNS += ("n_images", "n_draws", "n_seeds", "note")
VERDICTS = ("yes", "no", "unsettled")

MODEL = "depends on the model"
DATA = "depends on the data"
FAITHFUL = "is faithful"
AGREES = "agrees across seeds"
TESTS = (MODEL, DATA, FAITHFUL, AGREES)

METRIC = "spearman_abs"  # the one measure every sentence calls "correlate"
MODEL_BELOW = 0.3  # yes: the whole interval below: the maps change when the learned weights go
MODEL_ABOVE = 0.5  # no: the whole interval above: the maps mostly survive the loss of the weights
MIN_IMAGES = 8  # fewer images: a percentile interval is too rough to settle anything
MIN_DRAWS = 3  # the randomisation test is about random draws: three at least before its interval covers them
MIN_SEEDS_DATA = 2  # the permuted-label twin is one training run: two seeds' twins at least
MIN_SEEDS_AGREE = 3  # seed agreement is about seeds: three seeds (three pairs) at least
CHANCES = (("chance: input", "input image"), ("chance: edges", "edge map"), ("chance: random models", "two random models"))
QUICK_NOTE = "quick mode: not judged (too few images, draws and seeds for any interval to settle)"


@dataclass
class Verdict:
    """One method's verdict on one test: a row of the verdict table, plus what the card draws beside it."""

    method: str
    test: str
    verdict: str
    measure: str
    estimate: float
    lo: float
    hi: float
    chance: float  # the chance level or baseline judged against (NaN: none)
    threshold: float  # the value the interval must clear to say yes
    n_images: int
    n_draws: int
    n_seeds: int
    note: str
    upper: float = math.nan  # a second threshold: above it the verdict is no (the randomisation tests)
    chances: dict[str, float] = field(default_factory=dict)  # every chance level, by name, for the card and the text
    judged: bool = True  # False in quick mode: the verdict column reads unsettled and no text says yes or no
    other: str = ""  # the same measure on the other region (the whole image beside the foreground)
    model: str = ""  # the configuration, in a suite-level table with a leading model column (ROAR, KAR)

    def row(self) -> dict:
        def num(v: float) -> object:
            return "" if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), 4)

        return {
            "method": self.method,
            "test": self.test,
            "verdict": self.verdict,
            "measure": self.measure,
            "estimate": num(self.estimate),
            "lo": num(self.lo),
            "hi": num(self.hi),
            "chance": num(self.chance),
            "threshold": num(self.threshold),
            "n_images": self.n_images,
            "n_draws": self.n_draws,
            "n_seeds": self.n_seeds,
            "note": self.note,
        }

    @property
    def word(self) -> str:
        """What a sentence says: the verdict, or "not judged" in quick mode."""
        return self.verdict if self.judged else "not judged"


def _f(v: object) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def from_row(r: Mapping[str, str]) -> Verdict:
    """A verdict read back from a verdict table (another technique's, or the ROAR work's)."""
    note = r.get("note", "") or ""

    def count(k: str) -> int:
        v = _f(r.get(k))
        return 0 if math.isnan(v) else int(v)

    return Verdict(
        r["method"],
        r["test"],
        r["verdict"],
        r.get("measure", ""),
        _f(r.get("estimate")),
        _f(r.get("lo")),
        _f(r.get("hi")),
        _f(r.get("chance")),
        _f(r.get("threshold")),
        count("n_images"),
        count("n_draws"),
        count("n_seeds"),
        note,
        judged=not note.startswith("quick mode"),
        model=r.get("model") or "",
    )


# ---------------------------------------------------------------- grids of values


def _grid(cells: Mapping[tuple, float]) -> tuple[np.ndarray, list]:
    """{(seed, draw, image): value} -> [seeds, draws, images] with NaN where absent, and the images' ids."""
    seeds = sorted({k[0] for k in cells})
    draws = sorted({k[1] for k in cells})
    images = sorted({k[2] for k in cells})
    g = np.full((len(seeds), len(draws), len(images)), np.nan)
    si, di, ii = ({v: i for i, v in enumerate(x)} for x in (seeds, draws, images))
    for (s, d, i), v in cells.items():
        g[si[s], di[d], ii[i]] = v
    return g, images


def _depth_averaged(rows: Iterable[Mapping], method: str, mode: str, region: str, metric: str = METRIC) -> dict:
    """{(seed, draw, image): the mean over depths of the value} (NaN depths left out; NaN when all are)."""
    by: dict[tuple, list[float]] = {}
    for r in rows:
        if r["method"] == method and r["mode"] == mode and r["region"] == region and r["metric"] == metric:
            by.setdefault((int(r.get("seed", 0) or 0), int(r["draw"] or 0), int(r["image"])), []).append(_f(r["value"]))
    return {k: (float(np.nanmean(v)) if not all(math.isnan(x) for x in v) else math.nan) for k, v in by.items()}


def _dropped(cells: Mapping[tuple, float]) -> int:
    """Images with no value at all (every map constant)."""
    have: dict = {}
    for (_, _, i), v in cells.items():
        have[i] = have.get(i, False) or not math.isnan(v)
    return sum(1 for ok in have.values() if not ok)


def _region(rows: Sequence[Mapping], method: str) -> str:
    """foreground where the values have it for every image that has values at all, else all."""
    mine = [r for r in rows if r["method"] == method and r["metric"] == METRIC]
    every = {r["image"] for r in mine if r["region"] == "all"}
    fg = {r["image"] for r in mine if r["region"] == "foreground"}
    return "foreground" if fg and fg >= every else "all"


def _chances(rows: Sequence[Mapping], method: str, region: str) -> dict[str, Estimate]:
    out = {}
    for mode, name in CHANCES:
        cells = _depth_averaged(rows, method, mode, region)
        if cells:
            out[name] = bootstrap.hierarchical(_grid(cells)[0])
    return out


def _settle(e: Estimate, distance: float, widths: dict[str, float], what: Mapping[str, str]) -> str:
    got = bootstrap.needed(e, distance, widths)
    if got is None:
        return ""
    lvl, n = got
    now = {"seeds": e.n_seeds, "draws": e.n_draws, "images": e.n_images}[lvl]
    return f"about {n} {what.get(lvl, lvl)} (now {now}) would settle it"


_WHAT = {"images": "images", "draws": "random draws", "seeds": "training seeds"}


def _two_sided(e: Estimate, below: float, above: float) -> tuple[str, float]:
    """yes below `below`, no above `above`; (verdict, distance the half-width must shrink to, 0: none can)."""
    if e.hi < below:
        return "yes", math.nan
    if e.lo > above:
        return "no", math.nan
    if e.mean < below:
        return "unsettled", below - e.mean
    if e.mean > above:
        return "unsettled", e.mean - above
    return "unsettled", 0.0


def _counts_note(e: Estimate, dropped: int, missing_why: str = "a constant map has no ranks to correlate") -> str:
    parts = [f"n = {e.n_images} images x {e.n_draws} draws x {e.n_seeds} seeds"]
    if dropped:
        parts.append(f"{dropped} images dropped ({missing_why})")
    elif e.n_missing:
        parts.append(f"{e.n_missing} values missing ({missing_why})")
    return "; ".join(parts)


def _chance_text(chances: Mapping[str, Estimate]) -> str:
    return ", ".join(f"{name} {c.mean:.2f}" for name, c in chances.items() if not math.isnan(c.mean))


def _gate(e: Estimate, need: Mapping[str, int], quick: bool) -> Optional[str]:
    """Why this interval cannot settle the test whatever it says (None: it can)."""
    if quick:
        return QUICK_NOTE
    counts = {"images": e.n_images, "draws": e.n_draws, "seeds": e.n_seeds}
    short = [f"{counts[k]} {_WHAT[k]} ({v} at least)" for k, v in need.items() if counts[k] < v]
    if short:
        return "cannot settle: only " + " and ".join(short)
    return None


def _similarity_verdict(
    rows: Sequence[Mapping], method: str, test: str, mode: str, need: Mapping[str, int], quick: bool
) -> Optional[Verdict]:
    region = _region(rows, method)
    cells = _depth_averaged(rows, method, mode, region)
    if not cells:
        return None
    g, _ = _grid(cells)
    e = bootstrap.hierarchical(g)
    chances = _chances(rows, method, region)
    what = "the mean over depths of " if mode == "cascading" else ""
    against = "the cascading-randomised model's" if mode == "cascading" else "the permuted-label model's"
    measure = f"{what}Spearman of |map| between the trained model's maps and {against} ({region} pixels)"
    verdict, distance = _two_sided(e, MODEL_BELOW, MODEL_ABOVE)
    notes = [_counts_note(e, _dropped(cells))]
    other = ""
    if region == "foreground":
        whole = bootstrap.hierarchical(_grid(_depth_averaged(rows, method, mode, "all"))[0])
        other = f"whole image: {whole.text()}"
        notes.append(f"judged on the foreground (constant background); {other}")
    gate = _gate(e, need, quick)
    if gate:
        verdict = "unsettled"
        notes.insert(0 if quick else len(notes), gate)  # quick mode's reason first: the note starts with it
    elif verdict == "unsettled":
        settle = _settle(e, distance, bootstrap.level_widths(g), _WHAT) if distance > 0 else ""
        notes.append(
            settle
            or f"the estimate lies between {MODEL_BELOW} and {MODEL_ABOVE}: more data would only narrow it there (part image, part model)"
        )
    if chances:
        notes.append("chance levels: " + _chance_text(chances))
    rc = chances.get("two random models")
    return Verdict(
        method,
        test,
        verdict,
        measure,
        e.mean,
        e.lo,
        e.hi,
        rc.mean if rc else math.nan,
        MODEL_BELOW,
        e.n_images,
        e.n_draws,
        e.n_seeds,
        "; ".join(notes),
        upper=MODEL_ABOVE,
        chances={k: c.mean for k, c in chances.items()},
        judged=not quick,
        other=other,
    )


def model_verdict(sanity_values: Sequence[Mapping], method: str, quick: bool = False) -> Optional[Verdict]:
    """depends on the model: the cascading curve's depth-averaged similarity, over seeds > draws > images."""
    return _similarity_verdict(sanity_values, method, MODEL, "cascading", {"images": MIN_IMAGES, "draws": MIN_DRAWS}, quick)


def data_verdict(sanity_values: Sequence[Mapping], method: str, quick: bool = False) -> Optional[Verdict]:
    """depends on the data: the similarity to the permuted-label twin's maps, over seeds > images."""
    need = {"images": MIN_IMAGES, "seeds": MIN_SEEDS_DATA}
    return _similarity_verdict(sanity_values, method, DATA, "permuted labels", need, quick)


def faithful_verdict(faith_values: Sequence[Mapping], method: str, quick: bool = False) -> Optional[Verdict]:
    """is faithful: the deletion area minus the random and edge baselines', paired per image (seeds > images)."""
    area: dict[str, dict[tuple, float]] = {}
    for r in faith_values:
        if r["curve"] == "deletion":
            area.setdefault(r["method"], {})[(int(r.get("seed", 0) or 0), 0, int(r["image"]))] = _f(r["auc"])
    if method not in area or "random" not in area or "sobel" not in area:
        return None
    own = area[method]
    diffs, ests = {}, {}
    for base in ("random", "sobel"):
        cells = {k: v - area[base].get(k, math.nan) for k, v in own.items()}
        diffs[base] = cells
        ests[base] = bootstrap.hierarchical(_grid(cells)[0], bounds=(-1.0, 1.0))
    title = {"random": "the random map's", "sobel": "the Sobel edge map's"}
    if all(e.hi < 0 for e in ests.values()):
        verdict = "yes"
    elif any(e.lo > 0 for e in ests.values()):
        verdict = "no"
    else:
        verdict = "unsettled"
    # the row reads the harder baseline: the difference whose interval comes closest to (or crosses) zero
    base = max(ests, key=lambda b: ests[b].hi if verdict != "no" else ests[b].lo)
    e = ests[base]
    own_e = bootstrap.hierarchical(_grid(own)[0], bounds=(0.0, 1.0))
    base_e = {b: bootstrap.hierarchical(_grid(area[b])[0], bounds=(0.0, 1.0)) for b in ("random", "sobel")}
    notes = [_counts_note(e, _dropped(diffs[base]), "no area for that image")]
    notes.append(
        f"deletion areas: this method {own_e.text()}, random map {base_e['random'].text()}, "
        f"Sobel edge map {base_e['sobel'].text()}; minus the random map's {ests['random'].text()}, "
        f"minus the Sobel edge map's {ests['sobel'].text()}"
    )
    gate = _gate(e, {"images": MIN_IMAGES}, quick)
    if gate:
        verdict = "unsettled"
        notes.insert(0 if quick else len(notes), gate)  # quick mode's reason first: the note starts with it
    elif verdict == "unsettled":
        settle = _settle(e, abs(e.mean), bootstrap.level_widths(_grid(diffs[base])[0]), _WHAT)
        notes.append(settle or "the difference is about 0: the map is no better than that baseline")
    return Verdict(
        method,
        FAITHFUL,
        verdict,
        f"deletion area minus {title[base]}, paired per image (lower: more faithful)",
        e.mean,
        e.lo,
        e.hi,
        0.0,
        0.0,
        e.n_images,
        e.n_draws,
        e.n_seeds,
        "; ".join(notes),
        chances={"random map": base_e["random"].mean, "Sobel edge map": base_e["sobel"].mean},
        judged=not quick,
    )


def agreement_verdict(
    agreement_values: Sequence[Mapping], sanity_values: Sequence[Mapping], method: str, quick: bool = False
) -> Optional[Verdict]:
    """agrees across seeds: Spearman of |map| between seeds' maps over image and seed pairs, against the
    chance level of two randomly initialised models' maps (from the sanity values, same region)."""
    mine = [r for r in agreement_values if r["method"] == method and r["metric"] == METRIC]
    if not mine:
        return None
    region = _region(mine, method)
    mine = [r for r in mine if r["region"] == region]
    seeds = sorted({int(r["seed_a"]) for r in mine} | {int(r["seed_b"]) for r in mine})
    images = sorted({int(r["image"]) for r in mine})
    si, ii = {s: k for k, s in enumerate(seeds)}, {s: k for k, s in enumerate(images)}
    m = np.full((len(seeds), len(seeds), len(images)), np.nan)
    for r in mine:
        a, b, i = si[int(r["seed_a"])], si[int(r["seed_b"])], ii[int(r["image"])]
        m[a, b, i] = m[b, a, i] = _f(r["value"])
    e = bootstrap.pairs(m)
    dropped = int(np.isnan(m[np.triu_indices(len(seeds), 1)]).all(axis=0).sum())
    chances = _chances(sanity_values, method, region)
    rc = chances.get("two random models")
    threshold = rc.mean if rc is not None and not math.isnan(rc.mean) else 0.0
    notes = [_counts_note(e, dropped).replace("draws", "seed pairs")]
    if rc is None:
        notes.append("no chance level of two random models in the sanity values: judged against 0")
    if e.lo > threshold:
        verdict = "yes"
    elif e.hi < threshold:
        verdict = "no"
    else:
        verdict = "unsettled"
    gate = _gate(e, {"images": MIN_IMAGES, "seeds": MIN_SEEDS_AGREE}, quick)
    if gate:
        verdict = "unsettled"
        notes.insert(0 if quick else len(notes), gate)  # quick mode's reason first: the note starts with it
    elif verdict == "unsettled":
        widths = {}
        for lvl in ("seeds", "images"):
            w = bootstrap.pairs(m, resample=(lvl,), n_boot=500).half_width
            if not math.isnan(w):
                widths[lvl] = w
        notes.append(_settle(e, abs(e.mean - threshold), widths, _WHAT) or "the estimate is at the chance level")
    if chances:
        notes.append("chance levels: " + _chance_text(chances))
    return Verdict(
        method,
        AGREES,
        verdict,
        f"Spearman of |map| between two seeds' maps of the same image ({region} pixels)",
        e.mean,
        e.lo,
        e.hi,
        threshold if rc is not None else math.nan,
        threshold,
        e.n_images,
        e.n_draws,
        e.n_seeds,
        "; ".join(notes),
        chances={k: c.mean for k, c in chances.items()},
        judged=not quick,
    )


# ---------------------------------------------------------------- a run's (or a suite's pooled) tables

SANITY_VALUES = "tables/sanity_values.csv"
FAITH_VALUES = "tables/faithfulness_values.csv"
AGREEMENT_VALUES = "tables/seed_agreement_values.csv"


@dataclass
class Values:
    """The raw values of the trust checks, of one run or pooled over seeds (each row has a `seed`)."""

    sanity: list[dict] = field(default_factory=list)
    faithfulness: list[dict] = field(default_factory=list)
    agreement: list[dict] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)

    @property
    def methods(self) -> list[str]:
        found = [r["method"] for r in self.sanity] + [r["method"] for r in self.faithfulness]
        found += [r["method"] for r in self.agreement]
        return [m for m in dict.fromkeys(found) if m not in ("random", "sobel")]


def read_values(folders: Sequence[tuple[int, Path]]) -> Values:
    """The value tables of runs (seed, folder), pooled: sanity and faithfulness values from every run that has
    them (each row tagged with its seed); seed agreement from the run whose table spans the most seeds (each
    run's table already holds every pair)."""
    from ..fileio import read_csv

    out = Values()
    best: list[dict] = []
    for seed, folder in folders:
        had = False
        for name, attr in ((SANITY_VALUES, "sanity"), (FAITH_VALUES, "faithfulness")):
            path = folder / name
            if path.is_file():
                getattr(out, attr).extend({**r, "seed": seed} for r in read_csv(path))
                had = True
        path = folder / AGREEMENT_VALUES
        if path.is_file():
            rows = read_csv(path)
            if len({r["seed_a"] for r in rows} | {r["seed_b"] for r in rows}) > len(
                {r["seed_a"] for r in best} | {r["seed_b"] for r in best}
            ):
                best = rows
        if had:
            out.seeds.append(seed)
    out.agreement = best
    return out


def verdicts(values: Values, quick: bool = False) -> list[Verdict]:
    """Every test each method has values for, in the order of `TESTS`, per method."""
    out = []
    for m in values.methods:
        for v in (
            model_verdict(values.sanity, m, quick),
            data_verdict(values.sanity, m, quick),
            faithful_verdict(values.faithfulness, m, quick),
            agreement_verdict(values.agreement, values.sanity, m, quick),
        ):
            if v is not None:
                out.append(v)
    return out


def other_tables(folder: Path, exclude: Sequence[str] = ("verdicts.csv",)) -> list[Verdict]:
    """The verdict tables other techniques wrote in `folder`/tables (tables/verdicts_<test>.csv)."""
    from ..fileio import read_csv

    out: list[Verdict] = []
    for path in sorted((folder / "tables").glob("verdicts_*.csv")):
        if path.name not in exclude:
            out.extend(from_row(r) for r in read_csv(path) if r.get("method") and r.get("verdict") in VERDICTS)
    return out


def write_table(path: Path, rows: Sequence[Verdict], model: Optional[Sequence[str]] = None) -> Path:
    """The verdict table (CONTRACTS §2); `model`: a leading column naming each row's configuration."""
    from ..fileio import write_csv

    if model is None:
        return write_csv(path, COLUMNS, [v.row() for v in rows])
    return write_csv(path, ("model", *COLUMNS), [{"model": k, **v.row()} for k, v in zip(model, rows, strict=True)])


def quick_suite(run_folder: Path) -> bool:
    """Whether `run_folder` is a run of a suite built with --quick (OUT/suite.json, OUT/runs/<group>/<run>)."""
    from ..errors import NetsightError
    from ..fileio import read_json

    meta = run_folder.resolve().parent.parent.parent / "suite.json"
    try:
        return bool(meta.is_file() and read_json(meta).get("quick"))
    except NetsightError:
        return False
