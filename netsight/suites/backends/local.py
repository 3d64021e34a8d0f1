"""The local backend: a suite's units of work in this process, or with `jobs > 1` in that many
local processes, the cores split between them so they do not oversubscribe the CPU (each
worker dies with the driver); `jobs="auto"`: one process per core on the CPU, where small
runs gain more from running side by side than from more threads each, and one on a GPU.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Sequence

from ...text import plural
from ...train.loop import resolve_device
from ..schedule import unit_flops
from ..work_units import SuiteOptions, accuracy_text, label, train_runs, unit_args


def unit_device(options: SuiteOptions) -> str:
    """The device the units train on: this machine's."""
    return resolve_device(options.device).type


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (taskset, cgroups' cpusets)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_jobs(options: SuiteOptions, units: int) -> int:
    """--jobs auto: one local process per core on the CPU (at most one per unit of work); one on
    a GPU, where fleets fill the device."""
    if options.jobs != "auto":
        return int(options.jobs)
    if resolve_device(options.device).type == "cuda":
        return 1
    return max(1, min(available_cores(), units))


def train_units(
    units: Sequence[list],
    out: Path,
    options: SuiteOptions,
    finish: Callable[[list, list[dict]], None],
    log: Callable[[str], None],
) -> None:
    """Train `units` one after the other here, or in `options.jobs` processes; hand each
    unit's summaries to `finish` as it completes."""
    if options.jobs == 1 or len(units) <= 1:
        for i, unit in enumerate(units, 1):
            log(f"[{i}/{len(units)}] {label(unit)}")
            finish(unit, train_runs(*unit_args(unit), options, None, options.progress))
        return
    from ...progress import bar as progress_bar

    jobs = options.jobs
    if not isinstance(jobs, int):
        raise ValueError(f"train_units: --jobs {jobs!r} must be resolved to a number first (resolve_jobs)")
    threads = max(1, available_cores() // jobs)
    log(
        f"training {plural(len(units), 'unit')} in {plural(jobs, 'process', 'processes')} of "
        f"{plural(threads, 'thread')}, the longest first"
    )
    work = {id(unit): unit_flops(unit) for unit in units}
    # one bar for the suite, advanced by each unit's estimated work, so its ETA holds although the longest start first
    bar = progress_bar(sum(work.values()) / 1e12, "training", options.progress, "TFLOP", leave=True, counts=False)
    say = bar.write if options.progress else log
    try:
        with ProcessPoolExecutor(
            jobs, mp_context=get_context("spawn"), initializer=_die_with_parent, initargs=(os.getpid(),)
        ) as pool:
            futures = {}
            for unit in units:
                futures[pool.submit(train_runs, *unit_args(unit), options, threads, False)] = unit
            for i, future in enumerate(as_completed(futures), 1):
                unit = futures[future]
                summaries = future.result()
                say(
                    f"[{i}/{len(units)}] {label(unit)}: "
                    + ", ".join(f"{s['status']}{accuracy_text(s)} in {s['seconds']:.0f}s" for s in summaries)
                )
                bar.update(work[id(unit)] / 1e12)
                finish(unit, summaries)
    finally:
        bar.close()


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
