"""The trust checks for the recurrent row readers (RNN, LSTM, GRU reading an image row by row, one row per
time step): `netsight inspect RUN --recurrent-trust`. The attribution methods that apply to any
differentiable model (gradient, gradient x input, integrated gradients, SmoothGrad; occlusion if asked)
give a map per pixel; a row's attribution is the sum of its pixels' values (the evidence the time step
carries), its *mass* the share of the map's |values| that lies in the row. On those maps and rows:

- the sanity checks of Adebayo et al., "Sanity Checks for Saliency Maps" (NeurIPS 2018), by
  `techniques.sanity.sanity_checks` (cascading and independent re-initialisation of the fc layer and of
  the recurrent cell with its own `reset_parameters`, `ops/randomise.py`, over `--draws` random draws), its
  every per-image value in tables/sanity_values.csv, and the verdict "depends on the model" by the same rule
  as the CNNs' (`techniques/_verdicts.py`: Spearman of |map| averaged over the depth curve);
- faithfulness by rows, after Petsiuk, Das & Saenko, "RISE" (BMVC 2018): the rows ranked by their
  attribution (most evidence for the class first) are deleted (set to 0, the background) or inserted
  (put back, one by one, on a blurred copy of the image), one row per step; beside them a random row
  order (seeded) and the rows by ink (brightest first: a baseline that knows nothing of the model);
- seed agreement (`techniques.agreement.seed_agreement`) between the other seeds of the run's
  configuration in a suite (`_trust.siblings`), on the pixel maps and on the row attributions;
- the fading-saliency diagnostic of Ismail, Gunady, Pessoa, Corrada Bravo & Feizi, "Input-Cell Attention
  Reduces Vanishing Saliency of Recurrent Neural Networks" (NeurIPS 2019): the attribution mass per time
  step. On their synthetic task the informative time steps are known; `informative_row_images` makes one
  (the class is written only in row k of noise images) and `mass_per_row` measures it. The test
  tests/techniques/test_recurrent_trust.py trains RNN, LSTM and GRU on an early and a late informative
  row and checks the paper's qualitative result (the mass on an informative row is smaller when it is
  read early than late) where it holds on netsight's nets.

Guided backprop and the deconvnet are not offered: their rules rewrite the backward pass of ReLUs, and an
RNN/LSTM/GRU cell has none (tanh and sigmoid inside one fused module), so both would return the plain
gradient under another name; no paper defines a guided rule for tanh or sigmoid. Grad-CAM needs a
convolution's feature maps.

Writes figures/recurrent_trust_maps.png (a few images, each method's pixel map), figures/recurrent_trust_rows.png
(mass per row, trained vs randomised), figures/recurrent_trust_sanity.png, figures/recurrent_trust_rows_faith.png,
tables/recurrent_trust_rows.csv, tables/sanity.csv, tables/sanity_values.csv, tables/faithfulness_rows.csv,
tables/verdicts_sanity.csv, tables/verdicts_faithfulness.csv and, with other seeds beside the run,
tables/seed_agreement.csv, tables/seed_agreement_rows.csv and tables/verdicts_agreement.csv (CONTRACTS section 2)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional, Sequence

import torch
from torch import nn

from ..errors import NetsightError
from ..ops.attribution import parse_methods
from ..ops.hooks import evaluating, normalised_input
from ..ops.recurrent import check_recurrent
from ..ops.similarity import summarise
from .agreement import COLUMNS as AGREEMENT_COLUMNS
from .agreement import seed_agreement
from .base import Option, Ran, ReportItem, Technique, register
from .faithfulness import CURVES, COLUMNS as FAITH_COLUMNS, FaithfulnessResult, blurred
from .sanity import COLUMNS as SANITY_COLUMNS, sanity_checks
from .target import Target
from . import _trust
from . import _verdicts as V

if TYPE_CHECKING:
    from matplotlib.figure import Figure

METHODS = ("gradient", "gradient_x_input", "integrated_gradients", "smoothgrad")  # the default
ALLOWED = (*METHODS, "occlusion")
REFUSED = {
    "guided_backprop": "its rule rewrites ReLUs' backward and an RNN/LSTM/GRU cell has none (tanh, sigmoid): it would be the gradient",
    "deconvnet": "its rule rewrites ReLUs' backward and an RNN/LSTM/GRU cell has none (tanh, sigmoid): it would be the gradient",
    "gradcam": "it needs a convolution's feature maps",
    "guided_gradcam": "it needs a convolution's feature maps",
}
BASELINES = ("random", "ink")  # row orders that know nothing of the model
METRICS = ("spearman", "spearman_abs", "ssim", "hog")
VALUE_COLUMNS = ("method", "mode", "layer", "depth", "draw", "image", "region", "metric", "value")  # CONTRACTS section 1
VERDICT_COLUMNS = (
    "method", "test", "verdict", "measure", "estimate", "lo", "hi", "chance", "threshold", "n_images", "n_draws", "n_seeds", "note",
)  # fmt: skip


# ------------------------------------------------------------------ rows of a pixel map
def row_scores(maps: torch.Tensor) -> torch.Tensor:
    """[N, H]: each row's attribution, the sum of its pixels' signed values ([N, H, W] maps)."""
    return maps.detach().float().sum(-1)


def mass_per_row(maps: torch.Tensor) -> torch.Tensor:
    """[N, H]: the share of each map's |values| in each row (rows sum to 1; NaN for an all-zero map)."""
    a = maps.detach().double().abs().sum(-1)
    total = a.sum(-1, keepdim=True)
    return torch.where(total > 0, a / total.clamp_min(1e-300), torch.full_like(a, math.nan)).float()


def ink_scores(x: torch.Tensor) -> torch.Tensor:
    """[N, H]: the ink of each row (its pixels summed, channels averaged): the model-free row order."""
    return x.detach().float().cpu().mean(1).sum(-1)


# ------------------------------------------------------------------ faithfulness by rows
def _row_ranks(scores: torch.Tensor, seed: int) -> torch.Tensor:
    """[N, H]: each row's place in the order of removal (0: first; the highest score first; ties in a seeded order)."""
    n, h = scores.shape
    perm = torch.randperm(h, generator=torch.Generator().manual_seed(seed))
    order = perm[torch.sort(scores.float().cpu()[:, perm], dim=1, descending=True, stable=True).indices]
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(h).expand(n, h).contiguous())
    return ranks


def row_curves(
    model: nn.Module, x: torch.Tensor, scores: torch.Tensor, targets: Sequence[int], seed: int = 0, mean=None, std=None
) -> dict[str, torch.Tensor]:
    """{"deletion", "insertion"}: [N, H + 1] p(target) after k = 0..H rows, taken in the order of `scores`
    ([N, H]), are set to 0 (deletion) or put back on the blurred image (insertion); `x` [N, C, H, W] in [0, 1]."""
    n, c, h, w = x.shape
    if scores.shape != (n, h):
        raise ValueError(f"row scores {tuple(scores.shape)} do not match images {tuple(x.shape)}: expected [{n}, {h}]")
    ranks = _row_ranks(scores, seed).to(x.device)
    steps = torch.arange(h + 1, device=x.device)
    taken = (ranks[:, None, :] < steps[None, :, None]).to(x.dtype).view(n, h + 1, 1, h, 1)  # 1: row gone (come)
    canvas = blurred(x)
    classes = torch.tensor(list(targets), device=x.device)
    out = {}
    with torch.no_grad(), evaluating(model), normalised_input(model, mean, std):
        for curve in CURVES:
            img = x[:, None] * (1 - taken) if curve == "deletion" else canvas[:, None] * (1 - taken) + x[:, None] * taken
            p = model(img.reshape(-1, c, h, w)).softmax(1).view(n, h + 1, -1)
            out[curve] = p.gather(2, classes.view(n, 1, 1).expand(n, h + 1, 1))[..., 0].float().cpu()
    return out


def row_faithfulness(
    model: nn.Module,
    x: torch.Tensor,
    scores: Mapping[str, torch.Tensor],
    targets: Sequence[int],
    seed: int = 0,
    baselines: bool = True,
    mean=None,
    std=None,
) -> FaithfulnessResult:
    """Row deletion and insertion curves and their areas (trapezoid over the fraction of rows, 0..1) for each
    method's row scores (name -> [N, H]) and (`baselines`) a random row order and the rows by ink."""
    all_scores = dict(scores)
    h = x.shape[2]
    if baselines:
        all_scores["random"] = torch.rand((x.shape[0], h), generator=torch.Generator().manual_seed(seed))
        all_scores["ink"] = ink_scores(x)
    result = FaithfulnessResult(torch.linspace(0, 1, h + 1), list(targets))
    for name, s in all_scores.items():
        cs = row_curves(model, x, s, targets, seed, mean, std)
        result.curves[name] = cs
        result.auc[name] = {k: torch.trapezoid(v, result.fractions, dim=1) for k, v in cs.items()}
    return result


# ------------------------------------------------------------------ Ismail et al.'s synthetic task
def informative_row_images(
    n: int, row: int, seed: int = 0, side: int = 28, noise: float = 0.3
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images [n, 1, side, side] in [0, 1], labels [n] in 0..9): uniform noise in [0, `noise`] everywhere, and the
    class written only in row `row` (0-based): the pixels of a band of side // 10 columns at the class's place set
    to 1. A classifier can only learn from that row; Ismail et al. 2019's synthetic box task, on netsight's rows."""
    if not 0 <= row < side:
        raise NetsightError(f"informative row {row}: expected 0..{side - 1}")
    g = torch.Generator().manual_seed(seed)
    x = torch.rand((n, 1, side, side), generator=g) * noise
    y = torch.randint(0, 10, (n,), generator=g)
    band = max(1, side // 10)
    for c in range(10):
        x[y == c, 0, row, c * band : (c + 1) * band] = 1.0
    return x, y


# ------------------------------------------------------------------ verdicts (CONTRACTS section 2)
def _interval(values: Sequence[float], lo_bound: float, hi_bound: float) -> tuple[float, float, float, int]:
    s = summarise(torch.tensor([float(v) for v in values], dtype=torch.float64))
    if s.n < 2:
        return s.mean, math.nan, math.nan, s.n
    return s.mean, max(lo_bound, s.lo), min(hi_bound, s.hi), s.n


def _verdict(lo: float, hi: float, threshold: float, below: bool) -> str:
    """yes where the interval clears `threshold` on the wanted side (`below`: under it), no where it clears the other side."""
    if math.isnan(lo) or math.isnan(hi):
        return "unsettled"
    if (hi < threshold) if below else (lo > threshold):
        return "yes"
    if (lo > threshold) if below else (hi < threshold):
        return "no"
    return "unsettled"


def _mean_by(values: list[tuple], keys: tuple[int, ...], value_at: int) -> dict:
    out: dict = {}
    for r in values:
        if r[value_at] != "":
            out.setdefault(tuple(r[k] for k in keys), []).append(float(r[value_at]))
    return {k: sum(v) / len(v) for k, v in out.items()}


def faithful_verdicts(r: FaithfulnessResult, methods: Sequence[str]) -> list[dict]:
    """Per method, curve and baseline: the per-image difference of areas (method minus baseline), against 0."""
    out = []
    for m in methods:
        for curve, below in (("deletion", True), ("insertion", False)):
            for base in BASELINES:
                diff = (r.auc[m][curve] - r.auc[base][curve]).tolist()
                est, lo, hi, n = _interval(diff, -1.0, 1.0)
                verdict = _verdict(lo, hi, 0.0, below)
                out.append(
                    dict(method=m, test="is faithful", verdict=verdict,
                         measure=f"row {curve} area minus the {base} row order's, per image ({'lower' if below else 'higher'}: more faithful)",
                         estimate=est, lo=lo, hi=hi, chance=0.0, threshold=0.0, n_images=n, n_draws=1, n_seeds=1,
                         note="more images (--count) would narrow the interval" if verdict == "unsettled" else "")
                )  # fmt: skip
    return out


def agree_verdicts(rows, chance: dict[str, float], n_seeds: int) -> list[dict]:
    """Per method: the seeds' Spearman of |map| (per image, averaged over pairs of seeds) against the chance level
    of two randomised models' maps (what the images alone make maps share); above it: yes."""
    out = []
    for a in rows:
        if a.metric != "spearman_abs":
            continue
        c = chance.get(a.method, math.nan)
        lo, hi = max(-1.0, a.lo), min(1.0, a.hi)
        verdict = "unsettled" if a.n < 2 or math.isnan(c) else _verdict(lo, hi, c, below=False)
        out.append(
            dict(method=a.method, test="agrees across seeds", verdict=verdict,
                 measure="Spearman of |map| between seeds, per image (mean over pairs of seeds)",
                 estimate=a.mean, lo=lo, hi=hi, chance="" if math.isnan(c) else c, threshold="" if math.isnan(c) else c,
                 n_images=a.n, n_draws=0, n_seeds=n_seeds,
                 note="the interval is over images; more seeds or images would settle it" if verdict == "unsettled" else "")
        )  # fmt: skip
    return out


# ------------------------------------------------------------------ figures
def plot_row_mass(mass: Mapping[str, torch.Tensor], randomised: Mapping[str, torch.Tensor], title: str) -> Figure:
    """Mean share of |attribution| per input row (time step), one panel per method: the trained model (solid,
    95% band over images) and the fully randomised one (dashed)."""
    import numpy as np
    from matplotlib.lines import Line2D
    from .. import style
    from ..plotting import plt, method_title, tight_with_title

    names = list(mass)
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names) + 0.4, 3.6), squeeze=False, sharey=True)
    for ax, m in zip(axes[0], names, strict=True):
        for data, dash in ((mass[m], "-"), (randomised.get(m), "--")):
            if data is None:
                continue
            rows = np.arange(1, data.shape[1] + 1)
            s = [summarise(data[:, t]) for t in range(data.shape[1])]
            ax.plot(rows, [v.mean for v in s], dash, color=style.method_colour(m), linewidth=1.4)
            if dash == "-":
                ax.fill_between(
                    rows, [max(0.0, v.lo) for v in s], [min(1.0, v.hi) for v in s], color=style.method_colour(m), alpha=0.2, lw=0
                )
        ax.axhline(1 / mass[m].shape[1], color="#999999", linewidth=0.8, linestyle=":")
        ax.set_title(method_title(m))
        ax.set_xlabel("input row (time step)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("share of the map's |values| in the row")
    handles = [
        Line2D([], [], color="#555555", linestyle="-", label="trained model (band: 95% interval over images)"),
        Line2D([], [], color="#555555", linestyle="--", label="every layer re-initialised (cascading, draw 0)"),
        Line2D([], [], color="#999999", linestyle=":", label="uniform: 1 / rows"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False)
    n = next(iter(mass.values())).shape[0]
    fig.suptitle(f"{title}: where the attribution lies, per time step ({n} images; Ismail et al. 2019's fading saliency)")
    tight_with_title(fig, bottom_inches=0.45)
    return fig


def plot_row_faithfulness(r: FaithfulnessResult, title: str, kind: str) -> Figure:
    """Mean row-deletion and row-insertion curves per method and baseline (dashed), areas in the legend."""
    import numpy as np
    from .. import style
    from ..plotting import plt, method_title, tight_with_title

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    f = r.fractions.numpy() * (len(r.fractions) - 1)
    for ax, curve in zip(axes, CURVES, strict=True):
        for name, cs in r.curves.items():
            s = summarise(r.auc[name][curve])
            label = {"random": "random row order (baseline)", "ink": "rows by ink (baseline)"}.get(name, method_title(name))
            ax.plot(f, np.asarray(cs[curve]).mean(0), "--" if name in BASELINES else "-", color=style.method_colour(name),
                    linewidth=1.4, label=f"{label}: area {s.text()}")  # fmt: skip
        ax.set_xlabel(f"rows {'set to 0, most evidence first' if curve == 'deletion' else 'put back on a blurred copy'}")
        ax.set_ylabel(f"p({kind}), mean over images")
        ax.set_ylim(0, 1)
        ax.set_xlim(0, f[-1])
        ax.set_title(f"row {curve} ({'lower area = more faithful' if curve == 'deletion' else 'higher area = more faithful'})")
        ax.legend(loc="upper right" if curve == "deletion" else "lower right", fontsize=style.SMALL)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{title}: deleting and inserting whole rows (time steps) in the order of each method, {len(r.targets)} images")
    tight_with_title(fig)
    return fig


# ------------------------------------------------------------------ the technique
FILES = [
    "figures/recurrent_trust_maps.png",
    "figures/recurrent_trust_rows.png",
    "figures/recurrent_trust_sanity.png",
    "figures/recurrent_trust_rows_faith.png",
    "tables/recurrent_trust_rows.csv",
    "tables/sanity.csv",
    "tables/sanity_values.csv",
    "tables/faithfulness_rows.csv",
    "tables/verdicts_sanity.csv",
    "tables/verdicts_faithfulness.csv",
]
AGREEMENT_FILES = ["tables/seed_agreement.csv", "tables/seed_agreement_rows.csv", "tables/verdicts_agreement.csv"]


def check_methods(methods: Optional[str]) -> list[str]:
    """`--methods` for a recurrent run (default: METHODS), each one that makes sense for tanh/sigmoid cells."""
    chosen = list(METHODS) if methods is None else parse_methods(methods)
    bad = [m for m in chosen if m not in ALLOWED]
    if bad:
        raise NetsightError(
            f"--methods {bad[0]}: not for a recurrent run ({REFUSED.get(bad[0], 'unknown')}); expected a comma list of "
            f"{', '.join(ALLOWED)}"
        )
    return chosen


@register
class RecurrentTrustTechnique(Technique):
    name = "recurrent_trust"
    summary = (
        "trust checks of a recurrent run's attributions per pixel and per row: sanity checks, row deletion/insertion, "
        "seed agreement, mass per time step"
    )
    applies_to = "recurrent"
    options = (
        *(o for o in _trust.options(8) if o.name != "layer"),
        Option("draws", "int", V.MIN_DRAWS, "recurrent_trust: randomisation draws (weights of draw d seeded by d)", lo=1, hi=100),
    )
    section = "trust"
    first_seed = True
    compute = staticmethod(row_faithfulness)

    def prepare(self, t: Target, count, target, methods, ig_steps, samples, draws) -> dict:
        check_recurrent(t.model)
        chosen = check_methods(methods)
        if not 1 <= int(draws) <= 100:
            raise NetsightError(f"--draws {draws}: expected an integer from 1 to 100")
        o = _trust.prepare(t, None, count, target, ",".join(chosen), ig_steps, samples)
        others = [str(p) for p in _trust.siblings(t)]
        return {**o, "draws": int(draws), "others": others}

    def outputs(self, t: Target, o: dict) -> list[str]:
        return FILES + (AGREEMENT_FILES if o["others"] else [])

    def write(self, t: Target, o: dict) -> list[Path]:
        with torch.backends.cudnn.flags(enabled=False):  # cuDNN's RNN refuses a backward pass in eval mode
            return self._write(t, o)

    def _write(self, t: Target, o: dict) -> list[Path]:
        from ..fileio import write_csv
        from ..plotting import save_figure
        from .attribution_methods import plot_maps
        from .sanity import plot_sanity_curves

        index, x, targets, kind = _trust.images_and_targets(t, o)
        idx = [int(i) for i in index]
        methods = _trust.method_objects(t, o)
        names = [m.name for m in methods]

        def maps_of(model: nn.Module) -> dict[str, torch.Tensor]:
            return {m.name: m.on(model).attribute(x, targets).maps.detach().float().cpu() for m in methods}

        def say(text: str) -> None:
            if t.progress:
                print(f"recurrent_trust: {text}", flush=True)

        results = [replace(m.attribute(x, targets), target_kind=kind) for m in methods]  # "true class", as the tables say
        originals = {r.method: r.maps.float().cpu() for r in results}
        sanity = sanity_checks(methods, x, targets, progress=say, draws=o["draws"], images=idx)
        values = [v.cells() for v in sanity.values]  # CONTRACTS section 1, the sanity technique's own rows
        quick = V.quick_suite(t.folder)
        depends = [V.model_verdict([v._asdict() for v in sanity.values], m, quick) for m in names]
        randomised = {m: mass_per_row(sanity.cascade[m][-1]) for m in names if sanity.cascade[m]}
        mass = {m: mass_per_row(originals[m]) for m in names}
        scores = {m: row_scores(originals[m]) for m in names}
        faith = row_faithfulness(t.model, x, {m: scores[m].to(x.device) for m in names}, targets, **t.norm)

        table = []
        for m in names:
            for row in range(x.shape[2]):
                s, r = summarise(mass[m][:, row]), summarise(randomised[m][:, row]) if m in randomised else None
                table.append((m, row + 1, s.mean, s.lo, s.hi, s.n, float(scores[m][:, row].mean()), r.mean if r else ""))
        files = [t.folder / p for p in self.outputs(t, o)]
        written = [
            save_figure(plot_maps(results, t.title, t.classes), files[0]),
            save_figure(plot_row_mass(mass, randomised, t.title), files[1]),
            save_figure(plot_sanity_curves(sanity.rows, sanity.layers, t.title, len(idx)), files[2]),
            save_figure(plot_row_faithfulness(faith, t.title, kind), files[3]),
            write_csv(
                files[4], ["method", "row", "mass_mean", "mass_lo", "mass_hi", "n", "score_mean", "mass_randomised"], table
            ),
            write_csv(files[5], SANITY_COLUMNS, [r.values() for r in sanity.rows]),
            write_csv(files[6], VALUE_COLUMNS, values),
            write_csv(files[7], FAITH_COLUMNS, faith.rows()),
            V.write_table(files[8], [v for v in depends if v is not None]),
            write_csv(files[9], VERDICT_COLUMNS, faithful_verdicts(faith, names)),
        ]
        if o["others"]:
            from ..train.rundir import open_run

            runs = [originals] + [maps_of(open_run(p).model(t.device)) for p in o["others"]]
            pixel_rows = seed_agreement(runs, names)
            row_rows = seed_agreement([{m: row_scores(r[m]) for m in names} for r in runs], names)
            chance = _mean_by([v for v in values if v[1] == "chance: random models" and v[7] == "spearman_abs"], (0,), 8)
            written += [
                write_csv(files[10], AGREEMENT_COLUMNS, [r.values() for r in pixel_rows]),
                write_csv(files[11], AGREEMENT_COLUMNS, [r.values() for r in row_rows]),
                write_csv(
                    files[12], VERDICT_COLUMNS, agree_verdicts(pixel_rows, {k[0]: v for k, v in chance.items()}, len(runs))
                ),
            ]
        return written

    def report(self, run, label: str, ran: Ran) -> list[ReportItem]:
        return []  # the recurrent section (report/study_recurrent.py) sets the cell types side by side from the tables
