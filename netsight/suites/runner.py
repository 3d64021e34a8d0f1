"""Run a suite: every run into OUT/runs/<group>/<name>-<config key>, then the analyses.

Runs are keyed by their resolved config (the key is a hash of it), so rerunning a suite
skips completed runs, resumes interrupted ones, and never mixes results of different
configs. The units of work (fleets or single runs) train on a backend (`backends`): `local`
runs them in this process, or with `jobs > 1` in that many local processes, splitting the
cores between them so they do not oversubscribe the CPU (each worker dies with the driver;
`jobs="auto"`: one process per core on the CPU, where small runs gain more from running side
by side than from more threads each, and one on a GPU); `ray` runs them as tasks on a Ray
cluster. With several workers the longest units start first (`schedule`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Callable, Optional

from ..errors import NetsightError
from ..fileio import MANIFEST, claim_output_folder, read_json, remove, write_json, write_text
from ..train.rundir import RunDir, check_run_dir, open_run
from .backends import BACKENDS, get_backend
from .schedule import longest_first
from .spec import RunSpec, Suite, expand
from .transfer import recover_installs
from .work_units import SuiteOptions, _dataset

__all__ = ["SuiteOptions", "run_suite", "run_analyses", "use_fleets", "plan_units", "FLEETS", "BACKENDS", "MAX_FLEET_MEMBERS"]


def _status(path: Path) -> str:
    try:
        return open_run(path).summary.get("status", "unknown")
    except NetsightError:
        return "new"


FLEETS = ("auto", "on", "off")
MAX_FLEET_MEMBERS = 32  # members per fleet: LeNet5 needs ~52 MB per member (weights, grads, Adam moments)


def use_fleets(options: SuiteOptions) -> bool:
    """`auto`: fleets on CUDA, where they remove launch overhead; on the CPU single runs, which
    measured faster there for every family (0.52x-0.92x on 2 cores, benchmarks/bench_fleet.py)."""
    if options.fleet not in FLEETS:
        raise NetsightError(f"--fleet {options.fleet!r}: expected one of {', '.join(FLEETS)}")
    if options.fleet != "auto":
        return options.fleet == "on"
    return get_backend(options.backend).unit_device(options).startswith("cuda")  # with Ray the tasks' device, not the driver's


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
            units.append(members[i : i + MAX_FLEET_MEMBERS])
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


def run_suite(
    suite: Suite, out: str | Path, options: Optional[SuiteOptions] = None, report: bool = True
) -> list[tuple[RunSpec, Path]]:
    out = Path(out)
    options = options if options is not None else SuiteOptions()
    specs = expand(suite, options.seeds, options.quick)
    if options.jobs != "auto" and not (isinstance(options.jobs, int) and options.jobs >= 1):
        raise NetsightError(f"--jobs {options.jobs!r}: expected auto or an integer >= 1")
    if options.backend not in BACKENDS:
        raise NetsightError(f"--backend {options.backend!r}: expected one of {', '.join(BACKENDS)}")
    if options.backend == "ray" and options.jobs not in (1, "auto"):
        raise NetsightError(
            f"--jobs {options.jobs} is for the local backend; with --backend ray the cluster's "
            f"resources set how many runs train at once (--cpus-per-task, --gpus-per-task)"
        )
    if options.backend != "ray" and (
        options.address is not None or options.cpus_per_task != 1 or options.gpus_per_task or options.shared_out
    ):
        raise NetsightError("--address, --cpus-per-task, --gpus-per-task and --shared-out are for --backend ray")
    backend = get_backend(options.backend)
    if (out / "runs").is_dir():
        for group in (out / "runs").iterdir():
            recover_installs(group)  # what a crash while installing a Ray task's results left behind
    for spec in specs:  # before anything is written: no run directory that lost a file is trained over
        if (out / "runs" / spec.dirname).is_dir():
            check_run_dir(RunDir(out / "runs" / spec.dirname))
    fleets = use_fleets(options)
    if options.backend == "local":  # the data a run trains on loads here too (cached for this process's runs)
        for name in sorted({spec.config.data for spec in specs}):
            _dataset(name, options)
    existed = out.exists()
    claim_output_folder(out, "--out")
    try:
        return _run_suite(suite, out, specs, fleets, backend, options, report)
    except BaseException:
        if not existed and not (out / "runs").exists():  # nothing trained: leave no folder that looks like a result
            for name in ("suite.toml", "suite.json"):
                remove(out / name)
            (out / MANIFEST).unlink(missing_ok=True)
            out.rmdir()
        raise


def _run_suite(
    suite: Suite, out: Path, specs: list[RunSpec], fleets: bool, backend, options: SuiteOptions, report: bool
) -> list[tuple[RunSpec, Path]]:
    write_text(out / "suite.toml", suite.source)
    write_json(
        out / "suite.json",
        {
            "title": suite.title,
            "path": suite.path,
            "quick": options.quick,
            "seeds": max(s.config.seed for s in specs) + 1,
            "device": options.device,
            "runs": [
                {
                    "dir": s.dirname,
                    "group": s.group,
                    "analyses": list(s.analyses),
                    "options": s.options,  # the suite file's options of its analyses (after --quick)
                    "config": s.config.to_dict(),
                }
                for s in specs
            ],
        },
    )
    paths = [(s, out / "runs" / s.dirname) for s in specs]
    todo = [(s, p) for s, p in paths if _status(p) not in ("completed", "diverged")]
    _log(
        f"suite '{suite.title}': {len(specs)} runs, {len(specs) - len(todo)} already done, {len(todo)} to train"
        + (" (quick)" if options.quick else "")
    )
    started = time.perf_counter()
    units = plan_units(todo, fleets)
    if len(units) < len(todo):
        _log(f"training as {len(units)} fleets and single runs (--fleet {options.fleet})")
    jobs = backend.resolve_jobs(options, len(units))
    options = replace(options, jobs=jobs)
    if jobs > 1 or options.backend == "ray":  # several workers: start the longest units first
        units = longest_first(units)

    def finish(unit, summaries: list[dict]) -> None:
        for (spec, path), summary in zip(unit, summaries, strict=True):
            _check_summary(spec, path, summary)

    # ROAR/KAR retraining runs (a group's `mask`) train after the groups whose models rank their pixels
    first = [u for u in units if u[0][0].config.mask is None]
    later = [u for u in units if u[0][0].config.mask is not None]
    if first:
        backend.train_units(first, out, options, finish, _log)
    if any(s.config.mask is not None for s in specs):
        from ..train.loop import resolve_device
        from .roar import prepare_suite_masks

        device = "cpu" if options.backend == "ray" else str(resolve_device(options.device))
        prepare_suite_masks(out, specs, lambda name: _dataset(name, options), device, _log)
    if later:
        backend.train_units(later, out, options, finish, _log)
    trained = time.perf_counter() - started
    _log(f"training done in {trained:.0f}s; analyses next")
    planned = [(spec, path) for spec, path in paths if spec.analyses]
    count = sum(len(spec.analyses) for spec, _ in planned)
    done = 0
    from ..progress import bar

    # one bar over every analysis of every run, with the time left (each technique's own passes show beneath it);
    # no estimate line from the first: analyses differ 20-fold in cost (--quick, CPU: filters 2 s, LeNet5 explore 45 s)
    shown = bar(count, "analyses", options.progress, "analyses", leave=True, estimate=False)

    def say(run: str, name: str, seconds: Optional[float]) -> None:
        nonlocal done
        done += 1
        what = "kept (its files exist)" if seconds is None else f"{seconds:.1f}s"
        (shown.write if options.progress else _log)(f"[analysis {done}/{count}] {name} of {run}: {what}")
        shown.update(1)

    with shown:
        for spec, path in planned:
            run_analyses(spec, path, options, partial(say, spec.dirname))
    analysed = time.perf_counter() - started - trained
    _log(f"analyses done in {analysed:.0f}s" + ("; report next" if report else ""))
    meta = read_json(out / "suite.json")
    from ..techniques.inspection import ran

    for r in meta.get("runs", []):  # what each analysis ran with, every option resolved (the runs' inspections.json)
        r["ran"] = {name: e.options for name, e in ran(out / "runs" / r["dir"]).items() if name in r.get("analyses", [])}
    write_json(
        out / "suite.json",
        {**meta, "timing": {"training_seconds": trained, "analyses_seconds": analysed, "workers": options.jobs}},
    )
    if any(s.config.mask is not None for s in specs):
        from .roar import write_roar

        for p in write_roar(out):  # the suite-level ROAR/KAR tables and figure
            _log(f"wrote {p}")
    if report:
        from ..report.html import build_report

        for p in build_report(out):
            _log(f"wrote {p}")
    total = time.perf_counter() - started
    _log(
        f"suite done in {total:.0f}s: training {trained:.0f}s, analyses {analysed:.0f}s"
        + (f", report {total - trained - analysed:.0f}s" if report else "")
    )
    return paths


def _check_summary(spec: RunSpec, path: Path, summary: dict) -> None:
    if summary["status"] == "interrupted":
        raise KeyboardInterrupt(f"{path}: interrupted; rerun the same command to resume")
    if summary["status"] == "diverged":
        _log(f"warning: {spec.dirname} diverged: {summary['message']}")


def run_analyses(
    spec: RunSpec, path: Path, options: SuiteOptions, say: Optional[Callable[[str, Optional[float]], None]] = None
) -> None:
    """The analyses the suite asks of one run, with the options its suite file gives each technique
    (`spec.options`: a group's `options`, and with --quick its `quick_options` over them; the rest the
    technique's defaults). A technique whose declared outputs all exist, and whose record says it ran
    with the same options (or that has no record yet), is kept; either way the run's inspections.json
    records what it ran with. `say(name, seconds)` hears of each one as it ends (seconds None: kept)."""
    from ..techniques import registry
    from ..techniques.inspection import jsonable, ran, record_ran
    from ..techniques.target import open_run_target

    if not spec.analyses or _status(path) != "completed":
        return
    device = "cpu" if options.device == "auto" else options.device
    target = None
    for name in spec.analyses:
        technique = registry.get(name)
        if target is None:
            target = open_run_target(path, device=device, dataset=_dataset(spec.config.data, options), progress=options.progress)
        prepared = registry.prepare(technique, target, spec.options.get(name, {}))
        before = ran(path).get(name)
        seconds = None
        if not all((path / p).exists() for p in technique.outputs(target, prepared)) or (
            before is not None and before.options != jsonable(prepared)
        ):
            started = time.perf_counter()
            technique.write(target, prepared)
            seconds = time.perf_counter() - started
        if before is None or seconds is not None:
            record_ran(target, {name: prepared})
        if say is not None:
            say(name, seconds)
