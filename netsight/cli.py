"""The `netsight` command: parse flags, validate, call the library. No logic of its own.

A `NetsightError` (bad input, impossible request), a flag out of range or an operating-system
failure (permission, full or read-only disk) prints one line and exits with status 2; an
interrupted run exits 130, a diverged one 1. Anything else is a bug: the user sees one line
and the path of a crash log holding the traceback (exit 70); with NETSIGHT_DEBUG=1 (the tests
set it) the exception propagates, so a test can never pass over a bug.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from .errors import NetsightError


MAX_SEED = 2**63 - 1  # torch.manual_seed and numpy take 64-bit seeds; we keep to the signed range
MAX_COUNT = 10**9  # iterations, evaluation intervals: far beyond any sensible run, well inside int64


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (no usage block), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}{self._did_you_mean(message)} (see {self.prog} --help)\n")

    def _did_you_mean(self, message: str) -> str:
        """'; did you mean --layer?' for a mistyped flag or command (the closest names this parser knows)."""
        import difflib

        typed = re.search(r"invalid choice: '([^']*)'", message)
        if typed:  # a command (or another choice)
            choices = [c for a in self._actions if a.choices for c in a.choices if isinstance(c, str)]
            close = difflib.get_close_matches(typed.group(1), choices, n=3, cutoff=0.6)
        elif message.startswith("unrecognized arguments:"):
            flags = [f for f in self._option_string_actions if f.startswith("--") and f != "--help"]  # --help: said after
            words = [w.split("=", 1)[0] for w in message.split(":", 1)[1].split() if w.startswith("--")]
            close = list(dict.fromkeys(c for w in words for c in difflib.get_close_matches(w, flags, n=2, cutoff=0.75)))
        else:
            return ""
        return f"; did you mean {' or '.join(close)}?" if close else ""


def _jobs(text: str) -> int | str:
    if text.strip() == "auto":
        return "auto"
    try:
        return _int("--jobs", 1, 256)(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc}, or auto") from None


def _int(flag: str, lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected an integer from {lo} to {hi:,}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{value}: expected an integer from {lo} to {hi:,}")
        return value

    parse.__name__ = flag  # argparse names the flag itself; this names the type in its messages
    return parse


def _float(flag: str, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Callable[[str], float]:
    span = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r}: expected a number in {span}") from None
        inside = math.isfinite(value) and (lo < value if lo_open else lo <= value) and (value < hi if hi_open else value <= hi)
        if not inside:
            raise argparse.ArgumentTypeError(f"{text}: expected a number in {span}")
        return value

    parse.__name__ = flag
    return parse


def _csv_ints(flag: str, lo: int = 1, hi: int = MAX_COUNT) -> Callable[[str], list[int]]:
    one = _int(flag, lo, hi)

    def parse(text: str) -> list[int]:
        try:
            values = [one(v) for v in text.split(",") if v.strip()]
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}; expected comma-separated integers, e.g. 100,500,1000") from None
        if not values:
            raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 100,500,1000")
        return values

    parse.__name__ = flag
    return parse


def _csv_floats(flag: str) -> Callable[[str], list[float]]:
    def parse(text: str) -> list[float]:
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            values = []
        if not values or not all(math.isfinite(v) for v in values):
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected comma-separated numbers, one per input channel, e.g. 0.485,0.456,0.406"
            )
        return values

    parse.__name__ = flag
    return parse


def _add_model_flags(g) -> None:
    """The flags naming a model from outside netsight and its images (inspect and explore)."""
    g.add_argument("--model", metavar="SPEC", help="torchvision:NAME, package.module:factory or path/to/file.py:ClassOrFactory")
    g.add_argument(
        "--weights", type=Path, help="the model's weights: .safetensors, or a .pt/.pth state dict (read with weights_only=True)"
    )
    g.add_argument("--images", metavar="DIR", help="a folder of images (class subfolders optional), streamed in batches")
    g.add_argument("--data", metavar="NAME", help="or a netsight dataset's test set (netsight data list)")
    g.add_argument(
        "--input-size", type=_int("--input-size", 1, 8192), help="crop images to N x N (torchvision models: their own crop, 224)"
    )
    g.add_argument("--mean", type=_csv_floats("--mean"), help="normalisation mean per channel (torchvision models: their own)")
    g.add_argument("--std", type=_csv_floats("--std"), help="normalisation std per channel (torchvision models: their own)")
    g.add_argument(
        "--seed",
        type=_int("--seed", 0, MAX_SEED),
        help="without --weights: the seed of the model's random initialisation (0), recorded in inspection.json; "
        "--sanity: the seed of its first randomisation draw",
    )


def _add_option(g, name: str, takers: list) -> None:
    """One `netsight inspect` flag for a technique option; its help names each technique's default."""
    option = takers[0][1]
    flag = option.flag
    if option.kind == "choice":
        kind: dict = {"choices": list(option.choices)}
    elif option.kind == "int":
        kind = {"type": _int(flag, int(option.lo), int(option.hi))}
    elif option.kind == "float":
        kind = {"type": _float(flag, option.lo, option.hi)}
    else:
        kind = {}
    defaults = [f"{t.name} {o.default}" for t, o in takers if o.default is not None and len(takers) > 1]
    same = {o.default for _, o in takers}
    if len(same) > 1:
        text = option.help + f" ({', '.join(defaults)})"
    else:
        text = option.help + (
            f" ({option.default})" if option.default is not None and f"({option.default})" not in option.help else ""
        )
    g.add_argument(flag, help=text, **kind)


def _add_data_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", type=Path, help="read the dataset from this folder or archive (see docs/training.md: Datasets)")
    p.add_argument("--download", action="store_true", help="download the official files with torchvision into the cache")


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("training (defaults: the assignment's protocol for the model's family)")
    g.add_argument("--data", help="dataset name (netsight data list); CNNs: cifar10-assignment, RNNs: mnist")
    g.add_argument("--iterations", type=_int("--iterations", 1, MAX_COUNT), help="optimiser steps (5500)")
    g.add_argument("--batch-size", type=_int("--batch-size", 1, 1_000_000), help="images per step (CNN 50, RNN 128)")
    g.add_argument("--lr", type=_float("--lr", 0, 1e6, lo_open=True), help="learning rate (CNN 1e-4, RNN 1e-3)")
    g.add_argument("--optimizer", choices=["adam", "sgd"], help="adam (default) or sgd with momentum 0.9")
    g.add_argument(
        "--eval-every", type=_int("--eval-every", 1, MAX_COUNT), help="iterations between test-set evaluations (CNN 100, RNN 50)"
    )
    g.add_argument("--seed", type=_int("--seed", 0, MAX_SEED), help="seeds weights, dropout and batch order (0)")
    g.add_argument("--hidden", type=_int("--hidden", 1, 65536), help="recurrent nets: hidden units (128)")
    g.add_argument("--dropout", type=_float("--dropout", 0, 1, hi_open=True), help="cnn-bn: dropout probability (0.5)")
    g.add_argument("--init", choices=["torch", "starter"], help="weight initialisation (torch)")
    g.add_argument("--snapshots", type=_csv_ints("--snapshots"), help="iterations at which to keep weights, e.g. 100,500,1000")
    g.add_argument(
        "--labels",
        choices=["true", "permuted"],
        help="true (default) or permuted: the training labels shuffled once with the seed (the sanity checks' data randomisation)",
    )
    g.add_argument("--device", default="auto", help="auto (default), cpu or cuda")


def _train_overrides(args: argparse.Namespace) -> dict:
    keys = (
        "iterations",
        "batch_size",
        "lr",
        "optimizer",
        "eval_every",
        "seed",
        "hidden",
        "dropout",
        "init",
        "snapshots",
        "labels",
    )
    return {k: getattr(args, k) for k in keys}


def cmd_train(args: argparse.Namespace) -> int:
    from datetime import datetime

    from .train import resolve, train

    config = resolve(args.model, args.data, **_train_overrides(args))
    out = args.out or Path("runs") / f"{config.model}-{config.data}-seed{config.seed}-{datetime.now():%Y%m%d-%H%M%S}"
    summary = train(
        config,
        out,
        device=args.device,
        data_root=args.data_root,
        download=args.download,
        resume=args.resume,
        tensorboard=args.tensorboard,
        progress=not args.quiet,
    )
    status = summary["status"]
    if status == "completed":
        print(
            f"{out}: completed {summary['iterations_done']} iterations in {summary['seconds']:.1f}s; "
            f"final test accuracy {summary['final_test_acc']:.4f} (best {summary['best_test_acc']:.4f} "
            f"at iteration {summary['best_iteration']:.0f})"
        )
        return 0
    print(f"{out}: {status}: {summary['message']}", file=sys.stderr)
    if status == "interrupted":
        print(f"continue with: netsight train {args.model} --out {out} --resume (and the same flags)", file=sys.stderr)
        return 130
    return 1


def _suite_options(args: argparse.Namespace):
    from .suites.runner import SuiteOptions

    return SuiteOptions(
        seeds=args.seeds,
        quick=args.quick,
        device=args.device,
        data_root=str(args.data_root) if args.data_root else None,
        download=args.download,
        jobs=args.jobs,
        progress=not args.quiet,
        fleet=args.fleet,
        backend=args.backend,
        address=args.address,
        cpus_per_task=args.cpus_per_task,
        gpus_per_task=args.gpus_per_task,
        shared_out=args.shared_out,
    )


def cmd_run(args: argparse.Namespace) -> int:
    from .suites.runner import run_suite
    from .suites.spec import load_suite

    suite = load_suite(args.suite)
    out = args.out or Path("netsight-out") / (
        (Path(args.suite).stem if args.suite else "assignment") + ("-quick" if args.quick else "")
    )
    run_suite(suite, out, _suite_options(args))
    print(out / "report.html")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .suites.sweep import run_sweep

    overrides = {k: getattr(args, k) for k in ("iterations", "batch_size", "lr", "optimizer", "eval_every", "init")}
    paths = run_sweep(
        args.out,
        args.models.split(","),
        args.hidden,
        [m for m in args.cnn.split(",") if m],
        args.data,
        args.seeds or 1,
        _suite_options(args),
        overrides,
    )
    for p in paths:
        print(p)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report.html import build_report

    for p in build_report(args.out_dir):
        print(p)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import MODELS, ModelConfig, build_model, count_parameters
    from .train.config import FAMILY_DEFAULTS

    print(f"{'model':8} {'family':6} {'params (28x28x1)':>16}  description")
    for name, entry in MODELS.items():
        params = count_parameters(build_model(ModelConfig(name)))
        print(f"{name:8} {entry.family:6} {params:>16,}  {entry.description}")
    print("\ndefaults per family (the assignment's protocol):")
    for family, d in FAMILY_DEFAULTS.items():
        print(f"  {family}: " + ", ".join(f"{k}={v}" for k, v in d.items()))
    return 0


def cmd_data_list(args: argparse.Namespace) -> int:
    from .data import DATASETS

    for name, spec in DATASETS.items():
        where = "bundled" if spec.bundled else "--data-root / --download"
        print(
            f"{name:19} {spec.train_size:>6,} train {spec.test_size:>6,} test  "
            f"{spec.size}x{spec.size}x{spec.channels}  [{where}]  {spec.description}"
        )
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    import torch

    from .data import load_dataset

    ds = load_dataset(args.name, args.data_root, args.download)
    print(f"{ds.name}: source {ds.source}")
    for split, x, y in (("train", ds.train_images, ds.train_labels), ("test", ds.test_images, ds.test_labels)):
        counts = torch.bincount(y, minlength=ds.num_classes).tolist()
        print(
            f"  {split}: {tuple(x.shape)} uint8, pixel mean {x.float().mean() / 255:.4f}, "
            f"std {x.float().std() / 255:.4f}; per class {counts}"
        )
    return 0


def _inspect_flags() -> list[str]:
    from .techniques import registry

    return [name for name, t in registry.techniques().items() if t.flag]


def _model_target(args: argparse.Namespace, out: Optional[Path], labelled: bool = True):
    from .techniques.target import open_model_target

    return open_model_target(
        args.model,
        args.weights,
        out,
        args.images,
        args.data,
        args.input_size,
        args.mean,
        args.std,
        args.device,
        args.data_root,
        args.download,
        progress=not args.quiet,
        seed=args.seed if args.seed is not None else 0,
        labelled=labelled,
    )


def _run_target(args: argparse.Namespace, command: str, model_flags: Sequence[str], split: str = "test"):
    from .techniques.target import open_run_target

    if args.run_dir is None:
        example = {
            "inspect": "netsight inspect --model SPEC --weights FILE --images DIR ...",
            "microscope": "netsight microscope --model SPEC --weights FILE --images DIR --out DIR",
        }.get(command, "netsight explore --model SPEC --weights FILE --images DIR --layers NAME --out FILE.html")
        raise NetsightError(f"{command}: give a run directory (netsight {command} RUN_DIR ...) or a model ({example})")
    if args.images is not None:
        hint = f"; the number of images is --count {args.images} now" if args.images.isdigit() else ""
        raise NetsightError(f"--images {args.images}: a folder of images goes with --model SPEC{hint}")
    for flag in model_flags:
        if getattr(args, flag) is not None:
            raise NetsightError(f"--{flag.replace('_', '-')} goes with --model SPEC, not with a run directory")
    return open_run_target(args.run_dir, split, args.data_root, args.download, args.device, progress=not args.quiet)


def cmd_inspect(args: argparse.Namespace) -> int:
    from .techniques import registry
    from .techniques.inspection import inspect

    flags = _inspect_flags()
    chosen = [name for name in flags if getattr(args, name)]
    if not chosen:
        raise NetsightError("inspect: choose at least one of " + ", ".join(f"--{n}" for n in flags))
    if args.model:
        if args.run_dir is not None:
            raise NetsightError(f"inspect: give either a run directory ({args.run_dir}) or --model SPEC, not both")
        if args.split != "test":
            raise NetsightError(
                "--split goes with a run directory; with --model the images are --images DIR or --data NAME's test set"
            )
        if args.out is None:
            raise NetsightError("inspect --model: give --out DIR, the folder for figures/, tables/ and inspection.json")
        target = _model_target(args, args.out)
    else:
        if args.seed is not None and not args.sanity:
            raise NetsightError("--seed goes with --model SPEC (its random initialisation) or --sanity (its random draws)")
        target = _run_target(args, "inspect", ("weights", "data", "input_size", "mean", "std", "out"), args.split)
    options = {name: getattr(args, name) for name in registry.all_options(flagged=True)}
    for path in inspect(target, chosen, options):
        print(path)
    return 0


def cmd_explore(args: argparse.Namespace) -> int:
    from .techniques import registry

    layers = [v.strip() for v in args.layers.split(",") if v.strip()] if args.layers else None
    if args.model:
        if args.run_dir is not None:
            raise NetsightError(f"explore: give either a run directory ({args.run_dir}) or --model SPEC, not both")
        if args.out is None or not layers:
            raise NetsightError("explore --model: give --layers NAME[,NAME] (the conv layers to browse) and --out FILE.html")
        target = _model_target(args, None)
    else:
        target = _run_target(args, "explore", ("weights", "data", "input_size", "mean", "std", "seed"))
    explore = registry.get("explore")
    options = {"layers": layers, "page": args.out, "featureviz_steps": args.steps if args.featureviz else 0}
    prepared = registry.prepare(explore, target, options)
    for path in explore.write(target, prepared):
        print(path)
    if target.run is not None and args.out is None:  # the run's own page: recorded, so the study report links it
        from .techniques.inspection import record_ran

        record_ran(target, {"explore": prepared})
    return 0


def cmd_microscope(args: argparse.Namespace) -> int:
    from .techniques import registry

    layers = [v.strip() for v in args.layers.split(",") if v.strip()] if args.layers else None
    if args.model:
        if args.run_dir is not None:
            raise NetsightError(f"microscope: give either a run directory ({args.run_dir}) or --model SPEC, not both")
        if args.out is None:
            raise NetsightError("microscope --model: give --out DIR, the folder the site is written to")
        target = _model_target(args, None, labelled=False)
    else:
        target = _run_target(args, "microscope", ("weights", "data", "input_size", "mean", "std", "seed"))
    if target.kind != "cnn":
        raise NetsightError(f"microscope: {target.title} is not a CNN; a recurrent run's units are in netsight explore RUN_DIR")
    technique = registry.get("microscope")
    options = {
        "layers": layers,
        "site": args.out,
        "top_k": args.top_k,
        "batch_size": args.batch_size,
        "featureviz_steps": args.steps if args.featureviz else 0,
        "projections": args.projections,
    }
    options.update(backend=args.backend, address=args.address)
    if args.address is not None and args.backend != "ray":
        raise NetsightError("--address goes with --backend ray")
    prepared = registry.prepare(technique, target, options)
    for path in technique.write(target, prepared):
        print(path)
    if target.run is not None and args.out is None:  # the run's own site: recorded, so the study report links it
        from .techniques.inspection import record_ran

        record_ran(target, {"microscope": prepared})
    return 0


def _add_featureviz_flags(p: argparse.ArgumentParser, what: str) -> None:
    """explore's and microscope's --featureviz [--steps N] (the option featureviz_steps of both techniques)."""
    p.add_argument(
        "--featureviz",
        action="store_true",
        help=f"{what} (Olah et al. 2017; about 41 s a unit for a ResNet-18 at 224 px on a 2-core CPU: for small models, "
        "or with --layers)",
    )
    p.add_argument("--steps", type=_int("--steps", 1, 100_000), default=256, help="--featureviz: optimisation steps (256)")


def cmd_compare(args: argparse.Namespace) -> int:
    from .report.compare import compare_runs

    for path in compare_runs(args.run_dirs, args.out):
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="netsight", description="Train small CNNs/RNNs, look inside them, report the study.")
    parser.add_argument("--version", action="version", version=f"netsight {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train one model into a run directory")
    p.add_argument("model", help="model name (netsight models)")
    _add_train_flags(p)
    _add_data_flags(p)
    p.add_argument("--out", type=Path, help="run directory (default runs/<model>-<data>-seed<seed>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--tensorboard", action="store_true", help="also write TensorBoard event files (extra: netsight[tensorboard])")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "inspect",
        help="look inside a trained CNN (a run directory, or any model): filters, activation statistics, Zeiler & Fergus tools",
    )
    p.add_argument("run_dir", type=Path, nargs="?", help="a netsight run directory (or give --model SPEC instead)")
    g = p.add_argument_group("what to make (figures/ and tables/ inside the run directory, or under --out)")
    from .techniques import registry

    for name, technique in registry.techniques().items():
        if technique.flag:
            g.add_argument("--" + name.replace("_", "-"), dest=name, action="store_true", help=technique.summary)
    g = p.add_argument_group("any PyTorch model (instead of a run directory)")
    _add_model_flags(g)
    g.add_argument("--out", type=Path, help="the folder for figures/, tables/ and inspection.json (required with --model)")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("options")
    g.add_argument("--split", choices=["test", "train"], default="test", help="run directories: which split to look at (test)")
    for name, takers in registry.all_options(flagged=True).items():
        if name != "seed":  # the model flags' --seed, one flag for both (sanity: its first randomisation draw)
            _add_option(g, name, takers)
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    _add_data_flags(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser(
        "explore", help="one offline HTML page to browse every unit of a CNN's conv layers or of a recurrent run's hidden state"
    )
    p.add_argument("run_dir", type=Path, nargs="?", help="a netsight run directory (or give --model SPEC instead)")
    p.add_argument("--out", type=Path, help="the HTML file to write (default RUN_DIR/explore.html; required with --model)")
    p.add_argument(
        "--layers",
        help="conv layers to include, e.g. conv1,conv2 (default: all; a recurrent run: rnn, its only one; required with --model)",
    )
    _add_featureviz_flags(p, "a panel with an image optimised to drive each conv unit")
    g = p.add_argument_group("any PyTorch model (as netsight inspect --model)")
    _add_model_flags(g)
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    _add_data_flags(p)
    p.set_defaults(func=cmd_explore)

    p = sub.add_parser(
        "microscope",
        help="an offline site (a folder; open its index.html) with every unit of every conv layer of a CNN, a whole "
        "ResNet-50 included: each unit's strongest images, from one resumable pass over the images",
    )
    p.add_argument("run_dir", type=Path, nargs="?", help="a netsight run directory (its test images), or give --model SPEC")
    p.add_argument("--out", type=Path, help="the site's folder (default RUN_DIR/microscope; required with --model)")
    p.add_argument("--layers", help="conv layers to include, e.g. conv1,layer4.2.conv3 (default: every Conv2d)")
    p.add_argument("--top-k", type=_int("--top-k", 1, 100), default=9, help="images per unit (9)")
    p.add_argument("--batch-size", type=_int("--batch-size", 1, 4096), default=64, help="images per forward pass (64)")
    _add_featureviz_flags(p, "also an image optimised to drive each unit")
    p.add_argument(
        "--projections",
        type=_int("--projections", 0, 100),
        default=0,
        metavar="N",
        help="also the deconvnet projections of each unit's first N images (Zeiler & Fergus 2014; 0: none; one backward pass "
        "per unit and image: for small models, or with --layers)",
    )
    p.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="where the dataset pass runs: this process (default) or split over a Ray cluster (the folder at the same path on every node)",
    )
    p.add_argument("--address", help="ray: a running cluster's head, auto or HOST:PORT (default: start Ray on this machine)")
    g = p.add_argument_group("any PyTorch model (as netsight inspect --model)")
    _add_model_flags(g)
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    _add_data_flags(p)
    p.set_defaults(func=cmd_microscope)

    p = sub.add_parser("compare", help="one table and overlaid curves for several runs")
    p.add_argument("run_dirs", nargs="+", type=Path)
    p.add_argument(
        "--out", type=Path, default=Path("netsight-compare"), help="folder for compare.md/.csv/.png (netsight-compare)"
    )
    p.set_defaults(func=cmd_compare)

    def suite_flags(q: argparse.ArgumentParser, seeds_help: str) -> None:
        q.add_argument("--seeds", type=_int("--seeds", 1, 1000), help=seeds_help)
        q.add_argument("--device", default="auto", help="auto (default), cpu or cuda")
        q.add_argument(
            "--jobs",
            type=_jobs,
            default="auto",
            help="runs trained in parallel local processes, the cores split between them (default auto: "
            "one per core on the CPU, 1 on a GPU)",
        )
        q.add_argument("--quick", action="store_true", help="the same runs cut to a few minutes on 2 CPU cores (smoke test)")
        q.add_argument("--quiet", action="store_true", help="no progress bars (a line per finished run stays)")
        q.add_argument(
            "--fleet",
            choices=["auto", "on", "off"],
            default="auto",
            help="train runs that differ only in seed/init together as one batched program (auto: on CUDA)",
        )
        q.add_argument(
            "--backend",
            choices=["local", "ray"],
            default="local",
            help="where runs train: local processes (default) or a Ray cluster (pip install 'netsight[ray]')",
        )
        q.add_argument("--address", help="ray: a running cluster's head, auto or HOST:PORT (default: start Ray on this machine)")
        q.add_argument(
            "--cpus-per-task",
            type=_float("--cpus-per-task", 0, 1024, lo_open=True),
            default=1.0,
            help="ray: CPU cores per run or fleet (torch uses that many threads; default 1)",
        )
        q.add_argument(
            "--gpus-per-task",
            type=_float("--gpus-per-task", 0, 64),
            default=0.0,
            help="ray: GPUs per run or fleet, fractions share one (e.g. 0.25; default 0: CPU)",
        )
        q.add_argument(
            "--shared-out",
            action="store_true",
            help="ray: --out is on storage every node mounts at the same path (NFS, Lustre): the tasks write "
            "their runs there instead of sending them to the driver (checked on every node first)",
        )
        _add_data_flags(q)

    p = sub.add_parser("run", help="run a whole suite (default: the assignment) and write the HTML report")
    p.add_argument("suite", nargs="?", help="a suite TOML file, or a built-in suite name (default: assignment)")
    p.add_argument("--out", type=Path, help="output folder (default netsight-out/<suite name>[-quick])")
    suite_flags(p, "seeds per configuration (the suite's own: 3 for the assignment; 2 with --quick)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="recurrent cells x hidden sizes x seeds, plus the CNNs on the same data")
    p.add_argument("--models", default="rnn,lstm,gru", help="models (rnn,lstm,gru); any registered model, CNNs included")
    p.add_argument("--hidden", type=_csv_ints("--hidden", 1, 65536), default=[32, 64, 128], help="hidden sizes (32,64,128)")
    p.add_argument("--cnn", default="lenet5,cnn-bn", help="CNNs trained on the same data and budget ('' for none)")
    p.add_argument("--data", default="mnist", help="dataset (mnist)")
    p.add_argument("--out", type=Path, required=True, help="folder for the runs, comparison.csv/.md and figures")
    for flag, kind, text in (
        ("--iterations", _int("--iterations", 1, MAX_COUNT), "iterations (5500)"),
        ("--batch-size", _int("--batch-size", 1, 1_000_000), "batch size (128)"),
        ("--lr", _float("--lr", 0, 1e6, lo_open=True), "learning rate (1e-3)"),
        ("--eval-every", _int("--eval-every", 1, MAX_COUNT), "evaluation interval (50)"),
    ):
        p.add_argument(flag, type=kind, help=text)
    p.add_argument("--optimizer", choices=["adam", "sgd"])
    p.add_argument("--init", choices=["torch", "starter"])
    suite_flags(p, "seeds per configuration (1)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", help="rebuild OUT/report.html and report.md from the run directories under OUT")
    p.add_argument("out_dir", type=Path)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("models", help="list the registered models")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("data", help="list datasets or check that one loads")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    q = dsub.add_parser("list", help="the named datasets")
    q.set_defaults(func=cmd_data_list)
    q = dsub.add_parser("check", help="load a dataset and print its shape, source and class counts")
    q.add_argument("name")
    _add_data_flags(q)
    q.set_defaults(func=cmd_data_check)
    return parser


def _write_crash_log(argv: Sequence[str]) -> Optional[str]:
    """The traceback of an unexpected exception, in a file whose path the user can send us."""
    import tempfile
    import traceback
    from datetime import datetime

    from . import __version__

    text = (
        f"netsight {__version__} crashed at {datetime.now().isoformat(timespec='seconds')}\n"
        f"command: netsight {' '.join(argv)}\npython {sys.version.split()[0]}\n\n{traceback.format_exc()}"
    )
    try:
        fd, path = tempfile.mkstemp(prefix="netsight-crash-", suffix=".log")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return path
    except OSError:
        return None


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The innermost (sub)command parser that `args` were parsed with (`netsight data check`: check's)."""
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is None or getattr(args, sub.dest, None) not in sub.choices:
            return parser
        parser = sub.choices[getattr(args, sub.dest)]


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, unknown = parser.parse_known_args(argv)
        if unknown:  # reported by the command they were given to, which names its own --help
            _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:  # --help, --version, or a bad flag (already reported in one line)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return args.func(args)
    except NetsightError as exc:
        print(f"netsight: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:  # its message, where it has one, says what was kept and how to resume
        said = str(exc)  # what the interrupted command kept and how to resume, when it says so
        print(
            f"netsight: {said}" if said.startswith("interrupted") else f"netsight: interrupted{': ' + said if said else ''}",
            file=sys.stderr,
        )
        return 130
    except OSError as exc:  # one the library did not name itself: still the path and the reason
        where = f"{exc.filename}: " if exc.filename is not None else ""
        print(f"netsight: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("NETSIGHT_DEBUG"):
            raise
        log = _write_crash_log(argv)
        print(
            f"netsight: internal error ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); this is a bug in "
            f"netsight" + (f", the traceback is in {log}" if log else ""),
            file=sys.stderr,
        )
        return 70
