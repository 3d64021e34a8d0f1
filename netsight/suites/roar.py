"""ROAR and KAR, retraining benchmarks of attribution methods (Hooker, Erhan, Kindermans & Kim, "A Benchmark
for Interpretability Methods in Deep Neural Networks", NeurIPS 2019), as ordinary suite runs.

A suite group with a `mask` table (suites/spec.py) retrains its models from scratch on masked images:
each training and test image's pixels are ranked by an attribution method's map on the trained model of
the `from` group (its first seed), and a fraction of them replaced by the training set's mean: the
top-ranked fraction (ROAR, "remove and retrain") or the bottom-ranked one (KAR, "keep and retrain"). If a
method ranks the pixels the model uses, ROAR's accuracy falls faster than with a random ranking, and KAR's
stays higher. Hooker et al. found the gradient, guided backprop and integrated gradients no better than a
random ranking under ROAR on ImageNet, and SmoothGrad-squared and VarGrad better.

This module owns, for the runner:
- `prepare_masks`: after the `from` group trained, each (method, image set) is ranked once and cached under
  OUT/masks/<source run>/<method>.safetensors (every image's pixel order, int16); each retraining run gets
  its own bit mask in RUN/mask.safetensors before it trains (so a Ray task carries it with the run);
- `masked_dataset`: the dataset a masked run trains and is tested on (what work_units.py hands the trainer);
- `write_roar`: the suite-level tables (OUT/tables/roar_runs.csv, roar.csv, verdicts_roar.csv; CONTRACTS §3)
  and the figure OUT/figures/roar.png;
- `report_items`: the report's block (figure, sentences, table), read from those tables only.

Intervals are percentile bootstraps over seeds (inside [0, 1] for accuracies, [-1, 1] for differences);
a verdict needs at least two seeds and says "unsettled" when its interval includes zero.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from ..data import Dataset
from ..errors import NetsightError
from ..fileio import read_csv, read_json, write_bytes, write_csv
from ..ops import masking
from ..train.config import MaskSpec

NOISE = ("smoothgrad", "smoothgrad_squared", "vargrad")  # their noisy copies per image: the mask's samples (std 0.15)
IG_STEPS = 16  # integrated gradients: Gauss-Legendre points (the study's sanity checks use 16 too)
MAP_BATCH = 250  # images per batch of maps
# said beside every ROAR block: the measured reason not to read its verdicts as the paper does (docs/roar.md)
MASK_LEAK = (
    "Read these verdicts with care: which pixels were replaced is itself an image, and it can give the class away "
    "(Rong et al. 2022). On netsight's LeNet5 and grayscale CIFAR-10, a LeNet5 trained on the 90% ROAR masks alone, "
    "nothing of the images, reached 53.7% test accuracy for SmoothGrad-squared and VarGrad, 39.9% for guided backprop "
    "and 32.7% for the gradient, against 10.9% for a random mask (chance 10%; the images themselves give 53.0%): there "
    "a retrained model reads the mask's outline, and ROAR measures the ranking's shape, not whether the pixels removed "
    "were the ones the model needed. benchmarks/roar_mask_leak.py measures it on your runs."
)
MASK_FILE = "mask.safetensors"  # in a retraining run's directory: which pixels it replaces, as bits
BOOTSTRAP = 10_000  # resamples of the seeds
TESTS = {"roar": "ROAR: beats random", "kar": "KAR: beats random"}
RUNS_COLUMNS = ["model", "method", "mode", "fraction", "seed", "accuracy"]
SUMMARY_COLUMNS = ["model", "method", "mode", "fraction", "seeds", "mean", "lo", "hi"]
VERDICT_COLUMNS = ["model", "method", "test", "verdict", "measure", "estimate", "lo", "hi", "chance", "threshold",
                   "n_images", "n_draws", "n_seeds", "note"]  # fmt: skip


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ masks, before the retraining runs train


def order_path(out: Path, source: str, method: str, samples: int) -> Path:
    name = f"{method}-{samples}samples" if method in NOISE else method
    return out / "masks" / source.replace("/", "__") / f"{name}.safetensors"


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})


def _write_safetensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> Path:
    from safetensors.torch import save

    return write_bytes(path, save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata))


def pixel_orders(
    out: Path, source: str, method: str, data: Dataset, device: str = "cpu", log=_log, samples: int = 16
) -> dict[str, torch.Tensor]:
    """{"train": order, "test": order} (int64 [N, H*W], most important pixel first) of `method` on run `source`'s
    model (`samples` noisy copies for the noise methods): read from OUT/masks/ when cached, else computed
    (batched) and cached."""
    path = order_path(out, source, method, samples)
    if path.is_file():
        tensors, _ = _read_safetensors(path)
        return {k: v.long() for k, v in tensors.items()}
    from ..train.rundir import open_run

    run_path = out / "runs" / source
    try:
        run = open_run(run_path)
    except NetsightError:
        raise NetsightError(f"{run_path}: the run whose model ranks the pixels (mask.from) is missing") from None
    status = run.summary.get("status")
    if status != "completed":
        raise NetsightError(f"{run_path}: the run whose model ranks the pixels (mask.from) is {status}, not completed")
    model = run.model(device) if method != masking.RANDOM else None
    orders, seconds = {}, {}
    for split, images in (("train", data.train_images), ("test", data.test_images)):
        if model is None:
            n, _, h, w = images.shape
            orders[split], seconds[split] = masking.random_order(n, h * w, seed=1 if split == "test" else 0), 0.0
        else:
            orders[split], seconds[split] = masking.method_order(
                model, images, method, MAP_BATCH, samples=samples, steps=IG_STEPS, seed=0 if split == "train" else 10**7
            )
    n = len(data.train_images) + len(data.test_images)
    log(f"ranked the pixels of {n:,} images by {method} on {source}: {seconds['train'] + seconds['test']:.1f}s")
    meta = {"method": method, "source": source, "samples": str(samples), "ig_steps": str(IG_STEPS),
            "seconds": json.dumps(seconds), "target": "predicted class"}  # fmt: skip
    _write_safetensors(path, {k: v.to(torch.int16) for k, v in orders.items()}, meta)
    return orders


def prepare_masks(out: Path, runs: Sequence[tuple[MaskSpec, Path]], data: Dataset, device: str = "cpu", log=_log) -> None:
    """Write each retraining run's RUN/mask.safetensors (the pixels it replaces, train and test, as bits, and the
    fill value) where it is missing; the pixel orders are computed once per (source, method) and cached."""
    from ..fileio import make_folder

    fill = masking.fill_value(data.train_images)
    todo = [(m, p) for m, p in runs if not (p / MASK_FILE).is_file()]
    cache: dict[tuple[str, str, int], dict[str, torch.Tensor]] = {}
    for mask, path in sorted(todo, key=lambda mp: (mp[0].source, mp[0].method, mp[0].samples)):
        key = (mask.source, mask.method, mask.samples)
        if key not in cache:
            cache.clear()  # one method's orders in memory at a time
            cache[key] = pixel_orders(out, mask.source, mask.method, data, device, log, mask.samples)
        orders = cache[key]
        tensors = {split: masking.pack(masking.replaced(o, mask.mode, mask.fraction)) for split, o in orders.items()}
        make_folder(path)
        meta = {"method": mask.method, "mode": mask.mode, "fraction": repr(mask.fraction), "source": mask.source,
                "pixels": str(orders["train"].shape[1])}  # fmt: skip
        _write_safetensors(path / MASK_FILE, {**tensors, "fill": fill}, meta)


def masked_dataset(data: Dataset, run_path: str | Path) -> Dataset:
    """`data` with the pixels RUN/mask.safetensors marks replaced by its fill value (train and test)."""
    path = Path(run_path) / MASK_FILE
    if not path.is_file():
        raise NetsightError(
            f"{path}: missing; a masked run needs it before training (the suite runner writes it: rerun the suite)"
        )
    tensors, meta = _read_safetensors(path)
    pixels = int(meta["pixels"])
    out = {}
    for split, images in (("train", data.train_images), ("test", data.test_images)):
        mask = masking.unpack(tensors[split], pixels)
        if mask.shape != (len(images), images.shape[2] * images.shape[3]):
            raise NetsightError(
                f"{path}: its {split} mask is {tuple(mask.shape)}, the data's {split} images {tuple(images.shape)}"
            )
        out[split] = masking.apply_mask(images, mask, tensors["fill"])
    return replace(data, train_images=out["train"], test_images=out["test"])


# ------------------------------------------------------------------ tables, after the retraining runs trained


def _model_label(config: dict) -> str:
    return f"{config['model']} / {config['data']}"


def run_rows(out: Path) -> tuple[list[dict], dict[str, list[float]]]:
    """(one row per finished retraining run, as roar_runs.csv; each model's unmasked test accuracies: the source
    group's runs of that model, every seed)."""
    from ..train.rundir import open_run

    meta = read_json(out / "suite.json")
    rows, sources = [], set()
    plain: dict[str, list[float]] = {}
    for r in meta.get("runs", []):
        mask = r["config"].get("mask")
        if not mask:
            continue
        sources.add((mask["source"].split("/")[0], r["config"]["model"]))
        try:
            summary = open_run(out / "runs" / r["dir"]).summary
        except NetsightError:
            continue  # not trained (yet)
        if summary.get("status") != "completed" or summary.get("final_test_acc") is None:
            continue
        rows.append(
            {
                "model": _model_label(r["config"]),
                "method": mask["method"],
                "mode": mask["mode"],
                "fraction": float(mask["fraction"]),
                "seed": int(r["config"]["seed"]),
                "accuracy": float(summary["final_test_acc"]),
            }
        )
    for r in meta.get("runs", []):
        if r["config"].get("mask") or (r["group"], r["config"]["model"]) not in sources:
            continue
        try:
            summary = open_run(out / "runs" / r["dir"]).summary
        except NetsightError:
            continue
        if summary.get("status") == "completed" and summary.get("final_test_acc") is not None:
            plain.setdefault(_model_label(r["config"]), []).append(float(summary["final_test_acc"]))
    return sorted(rows, key=lambda r: (r["model"], r["mode"], r["method"], r["fraction"], r["seed"])), plain


def bootstrap_mean(
    values: Sequence[float], lo: float, hi: float, seed: int = 0
) -> tuple[float, Optional[float], Optional[float]]:
    """(mean, 95% percentile-bootstrap interval of the mean over `values`) clipped to [lo, hi]; no interval for one value."""
    v = np.asarray(values, dtype=float)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, None, None
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(BOOTSTRAP, len(v)))].mean(1)
    a, b = np.percentile(means, [2.5, 97.5])
    return mean, float(np.clip(a, lo, hi)), float(np.clip(b, lo, hi))


def summary_rows(rows: list[dict]) -> list[dict]:
    """roar.csv: the test accuracy per (model, method, mode, fraction), mean and 95% interval over seeds."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["method"], r["mode"], r["fraction"]), []).append(r["accuracy"])
    out = []
    for (model, method, mode, fraction), accs in sorted(groups.items()):
        mean, lo, hi = bootstrap_mean(accs, 0.0, 1.0)
        out.append({"model": model, "method": method, "mode": mode, "fraction": fraction, "seeds": len(accs),
                    "mean": mean, "lo": lo, "hi": hi})  # fmt: skip
    return out


def verdict_rows(rows: list[dict], test_size: dict[str, int | str]) -> list[dict]:
    """verdicts_roar.csv: per model, method and mode, whether the method beats a random ranking. Per seed, the
    accuracy difference to random's run of the same seed (ROAR: random - method, so a method that removes what
    the model uses scores above 0; KAR: method - random), averaged over the fractions both have; then the mean
    over seeds and its percentile-bootstrap interval. yes: the interval is above 0; no: below; else unsettled."""
    acc = {(r["model"], r["method"], r["mode"], r["fraction"], r["seed"]): r["accuracy"] for r in rows}
    out = []
    for model, method, mode in sorted({(r["model"], r["method"], r["mode"]) for r in rows if r["method"] != masking.RANDOM}):
        per_seed, fractions = [], set()
        for seed in sorted({r["seed"] for r in rows if r["model"] == model}):
            diffs = []
            for f in sorted({r["fraction"] for r in rows if (r["model"], r["method"], r["mode"]) == (model, method, mode)}):
                a, b = acc.get((model, method, mode, f, seed)), acc.get((model, masking.RANDOM, mode, f, seed))
                if a is not None and b is not None:
                    diffs.append(b - a if mode == "roar" else a - b)
                    fractions.add(f)
            if diffs:
                per_seed.append(float(np.mean(diffs)))
        sign = "random - method" if mode == "roar" else "method - random"
        measure = (f"test accuracy difference to a random ranking ({sign}), paired by seed, mean over the fractions "
                   f"{', '.join(f'{f:g}' for f in sorted(fractions))}")  # fmt: skip
        row = {"model": model, "method": method, "test": TESTS[mode], "measure": measure, "chance": 0.0, "threshold": 0.0,
               "n_images": test_size.get(model, ""), "n_draws": 1, "n_seeds": len(per_seed)}  # fmt: skip
        if not per_seed:
            out.append({**row, "verdict": "unsettled", "estimate": "", "lo": "", "hi": "",
                        "note": "no seed has both this method's and random's retrained runs: run the suite to the end"})  # fmt: skip
            continue
        mean, lo, hi = bootstrap_mean(per_seed, -1.0, 1.0)
        if lo is None or hi is None:
            verdict, note = "unsettled", "one seed: no interval over seeds; run at least 3 seeds (--seeds 3)"
        elif lo > 0:
            verdict, note = "yes", ""
        elif hi < 0:
            verdict, note = "no", "worse than a random ranking"
        else:
            verdict, note = (
                "unsettled",
                "the interval includes 0 (no better than random within the seeds' spread); more seeds would settle it",
            )
        if lo is not None and len(per_seed) < 5:
            note = (note + "; " if note else "") + f"a bootstrap over {len(per_seed)} seeds: its interval is at most their range"
        out.append({**row, "verdict": verdict, "estimate": mean, "lo": "" if lo is None else lo, "hi": "" if hi is None else hi,
                    "note": note})  # fmt: skip
    return out


def write_roar(out: str | Path) -> list[Path]:
    """The suite-level ROAR/KAR tables and figure from the retrained runs under `out` (nothing when it has none)."""
    from ..data.specs import DATASETS

    out = Path(out)
    rows, plain = run_rows(out)
    if not rows:
        return []
    test_size: dict[str, int | str] = {}
    for r in rows:
        data = r["model"].split(" / ", 1)[1]
        test_size[r["model"]] = DATASETS[data].test_size if data in DATASETS else ""
    tables = out / "tables"
    summary = summary_rows(rows)
    written = [
        write_csv(tables / "roar_runs.csv", RUNS_COLUMNS, rows),
        write_csv(tables / "roar.csv", SUMMARY_COLUMNS, summary),
        write_csv(tables / "verdicts_roar.csv", VERDICT_COLUMNS, verdict_rows(rows, test_size)),
    ]
    from ..plotting import save_figure

    written.append(save_figure(plot_roar(summary, plain), out / "figures" / "roar.png"))
    return written


# ------------------------------------------------------------------ the figure and the report's block


def _label(method: str) -> str:
    return {"random": "random ranking", "smoothgrad_squared": "SmoothGrad-squared", "vargrad": "VarGrad",
            "smoothgrad": "SmoothGrad", "gradcam": "Grad-CAM", "guided_backprop": "guided backprop",
            "integrated_gradients": "integrated gradients"}.get(method, method.replace("_", " "))  # fmt: skip


def plot_roar(summary: list[dict], plain: Optional[dict[str, list[float]]] = None):
    """Test accuracy against the fraction of pixels replaced, a line per method and the random ranking (dashed),
    bands: 95% intervals over seeds; ROAR and KAR side by side, a row per model; the unmasked accuracy dotted."""
    from ..plotting import plt
    from ..style import LARGE, NORMAL, SMALL, method_colour, percent_axis

    plain = plain or {}
    models = sorted({r["model"] for r in summary})
    modes = [m for m in ("roar", "kar") if any(r["mode"] == m for r in summary)]
    fig, axes = plt.subplots(len(models), len(modes), figsize=(5.4 * len(modes), 3.3 * len(models) + 1.3), squeeze=False)
    handles: dict[str, Any] = {}
    for i, model in enumerate(models):
        for j, mode in enumerate(modes):
            ax = axes[i][j]
            here = [r for r in summary if r["model"] == model and r["mode"] == mode]
            methods = sorted({r["method"] for r in here}, key=lambda m: (m == masking.RANDOM, m))
            for method in methods:
                pts = sorted((r for r in here if r["method"] == method), key=lambda r: r["fraction"])
                x = [r["fraction"] for r in pts]
                y = [r["mean"] for r in pts]
                colour = method_colour(method)
                (line,) = ax.plot(x, y, "--" if method == masking.RANDOM else "-", marker="o", ms=3.5, color=colour, lw=1.6)
                handles[_label(method)] = line
                lo = [r["lo"] if r["lo"] not in (None, "") else r["mean"] for r in pts]
                hi = [r["hi"] if r["hi"] not in (None, "") else r["mean"] for r in pts]
                if len(x) > 1:
                    ax.fill_between(x, lo, hi, color=colour, alpha=0.15, lw=0)
                else:  # one fraction: the interval as a bar (a band needs two)
                    ax.vlines(x, lo, hi, color=colour, lw=4, alpha=0.35)
            if plain.get(model):
                base = float(np.mean(plain[model]))
                handles["no pixel replaced (mean over seeds)"] = ax.axhline(base, color="#000000", ls=":", lw=1)
            seeds = max((int(r["seeds"]) for r in here), default=0)
            what = "ROAR: the top-ranked pixels replaced" if mode == "roar" else "KAR: the bottom-ranked replaced, the top kept"
            ax.set_title(f"{what}\n{model}, {seeds} seed{'s' if seeds != 1 else ''} per point", fontsize=NORMAL)
            ax.set_xlabel("fraction of each image's pixels replaced by the mean", fontsize=NORMAL)
            ax.set_ylabel("test accuracy (masked test set)", fontsize=NORMAL)
            percent_axis(ax, "y")
            percent_axis(ax, "x")
            fractions = sorted({r["fraction"] for r in here})
            if len(fractions) == 1:  # one fraction: a narrow axis around it, not matplotlib's +-5% of nothing
                ax.set_xlim(fractions[0] - 0.1, fractions[0] + 0.1)
                ax.set_xticks([fractions[0] - 0.1, fractions[0], fractions[0] + 0.1])
            ax.tick_params(labelsize=SMALL)
            ax.grid(alpha=0.3)
    legend_inches = 0.25 + 0.2 * -(-len(handles) // 4)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=4, fontsize=SMALL, frameon=False,
               title="pixels ranked by (bands or bars: 95% interval over seeds)", title_fontsize=SMALL)  # fmt: skip
    names = {"roar": "Remove and retrain (ROAR)", "kar": "keep and retrain (KAR)"}
    fig.suptitle(f"{' and '.join(names[m] for m in modes)}, Hooker et al. 2019", fontsize=LARGE)
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, (legend_inches + 0.2) / height, 1, 1 - 0.35 / height))
    return fig


def report_items(out: str | Path, quick: bool = False) -> list:
    """The report's ROAR/KAR block, read from OUT/tables/ and OUT/figures/roar.png: a paragraph, the figure, one
    sentence per method and mode, and the verdict table (empty when the suite retrained nothing); `quick`: no
    sentences, a note that quick mode judges nothing."""
    from ..techniques.base import ReportItem

    out = Path(out)
    verdicts_path, figure = out / "tables" / "verdicts_roar.csv", out / "figures" / "roar.png"
    if not verdicts_path.is_file():
        return []
    verdicts = read_csv(verdicts_path)
    items = [
        ReportItem(
            "p",
            "Remove and retrain (Hooker et al. 2019): each training and test image's pixels are ranked by a method's map on "
            "the trained model, a fraction of them is replaced by the training set's mean (ROAR: the top-ranked, KAR: the "
            "bottom-ranked), and the same model is retrained from scratch on the result. A method that finds the pixels the "
            "model uses makes ROAR's accuracy fall faster than a random ranking does, and KAR's stay higher.",
        )
    ]
    if figure.is_file():
        items.append(
            ReportItem("figure", "test accuracy after retraining on masked images, per method and a random ranking.", figure)
        )
    items.append(ReportItem("p", MASK_LEAK))
    if quick:
        items.append(ReportItem("p", "Quick mode: not judged (runs this short and this few say nothing of the methods)."))
        return items
    for v in verdicts:
        mode = "ROAR" if v["test"].startswith("ROAR") else "KAR"
        if v["estimate"] == "":
            items.append(ReportItem("p", f"{_label(v['method'])}, {mode} ({v['model']}): unsettled: {v['note']}."))
            continue
        est, lo, hi = (float(v[k]) * 100 if v[k] != "" else None for k in ("estimate", "lo", "hi"))
        ci = (
            f"95% interval over {v['n_seeds']} seeds [{lo:+.1f}, {hi:+.1f}] points" if lo is not None else "one seed, no interval"
        )
        word = {"yes": "beats a random ranking", "no": "does worse than a random ranking", "unsettled": "is not shown to beat a random ranking"}[v["verdict"]]  # fmt: skip
        how = "lower" if mode == "ROAR" else "higher"
        items.append(
            ReportItem(
                "p",
                f"{_label(v['method'])} {word} under {mode} ({v['model']}): accuracy {est:+.1f} points {how} than random's "
                f"(paired by seed, mean over the fractions; chance level 0; {ci})"
                + (f"; {v['note']}" if v["note"] else "")
                + ".",
            )
        )
    header = ("model", "method", "test", "verdict", "estimate", "95% interval", "seeds")
    rows = tuple(
        (v["model"], _label(v["method"]), v["test"], v["verdict"],
         f"{float(v['estimate']) * 100:+.1f} points" if v["estimate"] != "" else "",
         f"[{float(v['lo']) * 100:+.1f}, {float(v['hi']) * 100:+.1f}]" if v["lo"] != "" else "n/a", v["n_seeds"])
        for v in verdicts
    )  # fmt: skip
    items.append(ReportItem("table", "ROAR/KAR verdicts (accuracy difference to random, points)", verdicts_path, header, rows))
    return items


def mask_runs(specs: Sequence, out: Path) -> list[tuple[MaskSpec, Path]]:
    """(mask, run directory) of every retraining run among the runner's specs."""
    return [(s.config.mask, out / "runs" / s.dirname) for s in specs if s.config.mask is not None]


def prepare_suite_masks(out: Path, specs: Sequence, dataset_of: Callable[[str], Dataset], device: str, log=_log) -> None:
    """Every retraining run's mask (the runner calls this after the unmasked groups trained, before the rest)."""
    runs = mask_runs(specs, out)
    by_data: dict[str, list[tuple[MaskSpec, Path]]] = {}
    for s in specs:
        if s.config.mask is not None:
            by_data.setdefault(s.config.data, []).append((s.config.mask, out / "runs" / s.dirname))
    for data, these in by_data.items():
        prepare_masks(out, these, dataset_of(data), device, log)
    if runs:
        log(f"masks ready for {len(runs)} retraining runs (OUT/masks/, RUN/{MASK_FILE})")
