"""Run a suite: every run into OUT/runs/<group>/<name>-<config key>, then the analyses.

Runs are keyed by their resolved config (the key is a hash of it), so rerunning a suite
skips completed runs, resumes interrupted ones, and never mixes results of different
configs. The units of work (fleets or single runs) train on a backend: `local` runs them in
this process, or with `jobs > 1` in that many local processes, splitting the cores between
them so they do not oversubscribe the CPU (each worker dies with the driver; `jobs="auto"`:
one process per core on the CPU, where small runs gain more from running side by side than
from more threads each, and one on a GPU); `ray` runs them as tasks on a Ray cluster
(`ray_backend`). With several workers the longest units start first (`schedule`).
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ..data import Dataset, load_dataset
from ..errors import NetsightError
from ..fileio import claim_output_folder, write_json, write_text
from ..train.config import TrainConfig
from ..train.loop import train
from ..train.rundir import RunDir, check_run_dir, open_run
from .schedule import longest_first, unit_flops
from .spec import RunSpec, Suite, expand
from .transfer import recover_installs

_DATA_CACHE: dict[tuple, Dataset] = {}


@dataclass(frozen=True)
class SuiteOptions:
    seeds: Optional[int] = None
    quick: bool = False
    device: str = "auto"
    data_root: Optional[str] = None
    download: bool = False
    jobs: int | str = 1  # local processes, or "auto" (resolve_jobs)
    progress: bool = True
    fleet: str = "auto"  # auto | on | off: train runs that differ only in seed/init as one batched fleet
    backend: str = "local"  # local | ray
    address: Optional[str] = None  # ray: a running cluster (auto or HOST:PORT); None starts a local Ray instance
    cpus_per_task: float = 1.0  # ray: resources of one unit of work
    gpus_per_task: float = 0.0
    shared_out: bool = False  # ray: --out is on storage every node mounts, so tasks write their runs there
    checkpoint_seconds: float = 60.0  # an unfinished run saves its state at most this often (what a rerun resumes)


def _dataset(name: str, options: SuiteOptions) -> Dataset:
    key = (name, options.data_root, options.download)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_dataset(name, options.data_root, options.download)
    return _DATA_CACHE[key]


def _status(path: Path) -> str:
    try:
        return open_run(path).summary.get("status", "unknown")
    except NetsightError:
        return "new"


def _train_one(config: dict, path: str, options: SuiteOptions, threads: Optional[int], progress: bool,
               on_checkpoint: Optional[Callable[[], None]] = None) -> dict[str, Any]:
    if threads:
        torch.set_num_threads(threads)
    cfg = TrainConfig.from_dict(config)
    resume = Path(path, "config.json").exists()
    return train(cfg, path, device=options.device, dataset=_dataset(cfg.data, options), resume=resume, progress=progress,
                 checkpoint_seconds=options.checkpoint_seconds, on_checkpoint=on_checkpoint)


def _train_fleet(configs: list[dict], paths: list[str], options: SuiteOptions, threads: Optional[int], progress: bool,
                 on_checkpoint: Optional[Callable[[], None]] = None) -> list[dict]:
    from ..train.fleet import train_fleet

    if threads:
        torch.set_num_threads(threads)
    cfgs = [TrainConfig.from_dict(c) for c in configs]
    resume = any(Path(p, "config.json").exists() for p in paths)
    return train_fleet(cfgs, paths, device=options.device, dataset=_dataset(cfgs[0].data, options), resume=resume,
                       progress=progress, checkpoint_seconds=options.checkpoint_seconds, on_checkpoint=on_checkpoint)


FLEETS = ("auto", "on", "off")
BACKENDS = ("local", "ray")
MAX_FLEET_MEMBERS = 32  # members per fleet: LeNet5 needs ~52 MB per member (weights, grads, Adam moments)


def use_fleets(options: SuiteOptions) -> bool:
    """`auto`: fleets on CUDA, where they remove launch overhead; on the CPU single runs, which
    measured faster there for every family (0.52x-0.92x on 2 cores, benchmarks/bench_fleet.py)."""
    if options.fleet not in FLEETS:
        raise NetsightError(f"--fleet {options.fleet!r}: expected one of {', '.join(FLEETS)}")
    if options.fleet != "auto":
        return options.fleet == "on"
    if options.backend == "ray":  # the tasks' device, not the driver's
        from .ray_backend import task_device

        return task_device(options).startswith("cuda")
    from ..train.loop import resolve_device

    return resolve_device(options.device).type == "cuda"


def plan_units(todo: list[tuple[RunSpec, Path]], fleets: bool) -> list[list[tuple[RunSpec, Path]]]:
    """The units of work: fleets of runs that can train together (same fleet key, standing at the
    same iteration), at most MAX_FLEET_MEMBERS each, or single runs."""
    if not fleets:
        return [[item] for item in todo]
    from ..train.fleet import fleet_key

    groups: dict[tuple, list] = {}
    for spec, path in todo:
        groups.setdefault((fleet_key(spec.config), _resume_point(path)), []).append((spec, path))
    units = []
    for members in groups.values():
        for i in range(0, len(members), MAX_FLEET_MEMBERS):
            units.append(members[i: i + MAX_FLEET_MEMBERS])
    return units


def _resume_point(path: Path) -> int:
    if not (path / "checkpoint.pt").is_file():
        return 0
    try:
        return int(open_run(path).summary.get("iterations_done") or 0)
    except NetsightError:
        return -1  # unreadable: a unit of its own, where the error will name it


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_suite(suite: Suite, out: str | Path, options: SuiteOptions = SuiteOptions(), report: bool = True) -> list[tuple[RunSpec, Path]]:
    out = Path(out)
    specs = expand(suite, options.seeds, options.quick)
    if options.jobs != "auto" and not (isinstance(options.jobs, int) and options.jobs >= 1):
        raise NetsightError(f"--jobs {options.jobs!r}: expected auto or an integer >= 1")
    if options.backend not in BACKENDS:
        raise NetsightError(f"--backend {options.backend!r}: expected one of {', '.join(BACKENDS)}")
    if options.backend == "ray" and options.jobs not in (1, "auto"):
        raise NetsightError(f"--jobs {options.jobs} is for the local backend; with --backend ray the cluster's "
                            f"resources set how many runs train at once (--cpus-per-task, --gpus-per-task)")
    if options.backend != "ray" and (options.address is not None or options.cpus_per_task != 1 or options.gpus_per_task
                                     or options.shared_out):
        raise NetsightError("--address, --cpus-per-task, --gpus-per-task and --shared-out are for --backend ray")
    if (out / "runs").is_dir():
        for group in (out / "runs").iterdir():
            recover_installs(group)  # what a crash while installing a Ray task's results left behind
    for spec in specs:  # before anything is written: no run directory that lost a file is trained over
        if (out / "runs" / spec.dirname).is_dir():
            check_run_dir(RunDir(out / "runs" / spec.dirname))
    claim_output_folder(out, "--out")
    write_text(out / "suite.toml", suite.source)
    write_json(out / "suite.json", {"title": suite.title, "path": suite.path, "quick": options.quick,
                                    "seeds": max(s.config.seed for s in specs) + 1, "device": options.device,
                                    "runs": [{"dir": s.dirname, "group": s.group, "analyses": list(s.analyses),
                                              "config": s.config.to_dict()} for s in specs]})
    paths = [(s, out / "runs" / s.dirname) for s in specs]
    todo = [(s, p) for s, p in paths if _status(p) not in ("completed", "diverged")]
    _log(f"suite '{suite.title}': {len(specs)} runs, {len(specs) - len(todo)} already done, {len(todo)} to train"
         + (" (quick)" if options.quick else ""))
    started = time.perf_counter()
    units = plan_units(todo, use_fleets(options))
    if len(units) < len(todo):
        _log(f"training as {len(units)} fleet(s) and single runs (--fleet {options.fleet})")
    options = replace(options, jobs=resolve_jobs(options, len(units)))
    if options.jobs > 1 or options.backend == "ray":  # several workers: start the longest units first
        units = longest_first(units)

    def finish(unit, summaries: list[dict]) -> None:
        for (spec, path), summary in zip(unit, summaries):
            _check_summary(spec, path, summary)

    if options.backend == "ray" and units:
        from .ray_backend import train_units_on_ray

        train_units_on_ray(units, out, options, finish, _log)
    else:
        _train_units_locally(units, options, finish)
    _log(f"training done in {time.perf_counter() - started:.0f}s; analyses next")
    for spec, path in paths:
        run_analyses(spec, path, options)
    if report:
        from ..report.html import build_report

        for p in build_report(out):
            _log(f"wrote {p}")
    return paths


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (taskset, cgroups' cpusets)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_jobs(options: SuiteOptions, units: int) -> int:
    """--jobs auto: one local process per core on the CPU (at most one per unit of work); one on
    a GPU, where fleets fill the device; one with Ray, whose cluster sets the parallelism."""
    if options.jobs != "auto":
        return int(options.jobs)
    if options.backend == "ray":
        return 1
    from ..train.loop import resolve_device

    if resolve_device(options.device).type == "cuda":
        return 1
    return max(1, min(available_cores(), units))


def _label(unit) -> str:
    return unit[0][0].dirname if len(unit) == 1 else f"fleet of {len(unit)}: {unit[0][0].dirname} ..."


def train_runs(configs: list[dict], paths: list[str], options: SuiteOptions, threads: Optional[int], progress: bool,
               on_checkpoint: Optional[Callable[[], None]] = None) -> list[dict]:
    """Train one unit of work, a fleet or (one config) a single run; one summary per run. Every
    backend calls this, in this process, a pool worker or a Ray task."""
    if len(configs) == 1:
        return [_train_one(configs[0], paths[0], options, threads, progress, on_checkpoint)]
    return _train_fleet(configs, paths, options, threads, progress, on_checkpoint)


def _unit_args(unit) -> tuple[list[dict], list[str]]:
    return [s.config.to_dict() for s, _ in unit], [str(p) for _, p in unit]


def _train_units_locally(units: list, options: SuiteOptions, finish) -> None:
    if options.jobs == 1 or len(units) <= 1:
        for i, unit in enumerate(units, 1):
            _log(f"[{i}/{len(units)}] {_label(unit)}")
            finish(unit, train_runs(*_unit_args(unit), options, None, options.progress))
        return
    from tqdm.auto import tqdm

    threads = max(1, available_cores() // options.jobs)
    _log(f"training {len(units)} unit(s) in {options.jobs} processes of {threads} thread(s), the longest first")
    work = {id(unit): unit_flops(unit) for unit in units}
    # one bar for the suite, advanced by each unit's estimated work, so its ETA holds although the longest start first
    bar = tqdm(total=sum(work.values()) / 1e12, unit="TFLOP", desc="training", disable=not options.progress,
               dynamic_ncols=True, file=sys.stderr, bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
    say = bar.write if options.progress else _log
    try:
        with ProcessPoolExecutor(options.jobs, mp_context=get_context("spawn"), initializer=_die_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            futures = {}
            for unit in units:
                futures[pool.submit(train_runs, *_unit_args(unit), options, threads, False)] = unit
            for i, future in enumerate(as_completed(futures), 1):
                unit = futures[future]
                summaries = future.result()
                say(f"[{i}/{len(units)}] {_label(unit)}: " + ", ".join(
                    f"{s['status']}{accuracy_text(s)} in {s['seconds']:.0f}s" for s in summaries))
                bar.update(work[id(unit)] / 1e12)
                finish(unit, summaries)
    finally:
        bar.close()


def accuracy_text(summary: dict) -> str:
    """', test acc 0.9812' for a run's line, or nothing when it has no evaluation yet."""
    return "" if summary["final_test_acc"] is None else f", test acc {summary['final_test_acc']:.4f}"


def _die_with_parent(parent: int) -> None:
    """Pool initializer: a worker is killed when the process that started it dies (SIGTERM or
    SIGKILL to the driver alone used to leave the workers training on). Linux only; elsewhere
    the pool's own shutdown is all there is."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _check_summary(spec: RunSpec, path: Path, summary: dict) -> None:
    if summary["status"] == "interrupted":
        raise KeyboardInterrupt(f"{path}: interrupted; rerun the same command to resume")
    if summary["status"] == "diverged":
        _log(f"warning: {spec.dirname} diverged: {summary['message']}")


def run_analyses(spec: RunSpec, path: Path, options: SuiteOptions) -> None:
    """The analyses the suite asks of one run; outputs that exist already are kept."""
    from ..analysis import inspect as ins

    if not spec.analyses or _status(path) != "completed":
        return
    figures, tables = RunDir(path).figures, RunDir(path).tables
    data = dict(data_root=options.data_root, download=options.download, device="cpu" if options.device == "auto" else options.device)
    quick = options.quick
    jobs = {
        "filters": (figures / "filters_conv1.png", lambda: ins.inspect_filters(path)),
        "activations": (tables / "activations.csv", lambda: ins.inspect_activations(path, **data)),
        "deconv": (figures / "deconv_conv2_max.png", lambda: ins.inspect_deconv(path, "conv2", **data)),
        "top9": (tables / "top9_conv2.csv", lambda: ins.inspect_top9(path, "conv2", maps=8 if quick else 16, **data)),
        "occlusion": (figures / "occlusion_conv2.png", lambda: ins.inspect_occlusion(path, "conv2", **data)),
        "evolution": (figures / "evolution_conv2.png", lambda: ins.inspect_evolution(path, "conv2", maps=8 if quick else 16, **data)),
        "invariance": (tables / "invariance.csv", lambda: ins.inspect_invariance(path, images=20 if quick else 100, **data)),
        "sequence": (tables / "gradient_by_step.csv", lambda: ins.inspect_sequence(path, **data)),
        "explore": (path / "explore.html", lambda: ins.explore_run(path, **data)),
    }
    for name in spec.analyses:
        target, make = jobs[name]
        if not target.exists():
            make()
