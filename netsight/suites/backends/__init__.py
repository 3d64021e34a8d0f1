"""Where a suite's units of work train. The runner plans the units; a backend trains them.

A backend is a module with three functions (the `Backend` protocol):
- `train_units(units, out, options, finish, log)`: train every unit (a list of (RunSpec, run
  directory) pairs under `out`: a fleet or one run), call `finish(unit, summaries)` as each
  one completes, and say what happens through `log`;
- `unit_device(options)`: the device the units train on ("cpu", "cuda"; a Ray task's, not the
  driver's), which decides whether runs train as fleets by default;
- `resolve_jobs(options, units)`: `--jobs` resolved to a number of workers for this many units.

`local` trains in this process or a pool of local processes, `ray` as tasks on a Ray cluster.
Backends build on `..units` (what a unit is, `train_runs`, `SuiteOptions`) and never on the
runner.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol, Sequence

from ...errors import NetsightError
from ..work_units import SuiteOptions
from . import local, ray

BACKENDS = ("local", "ray")


class Backend(Protocol):
    def train_units(
        self,
        units: Sequence[list],
        out: Path,
        options: SuiteOptions,
        finish: Callable[[list, list[dict]], None],
        log: Callable[[str], None],
    ) -> None: ...

    def unit_device(self, options: SuiteOptions) -> str: ...

    def resolve_jobs(self, options: SuiteOptions, units: int) -> int: ...


def get_backend(name: str) -> Backend:
    """The backend called `name` (one of BACKENDS)."""
    if name not in BACKENDS:
        raise NetsightError(f"--backend {name!r}: expected one of {', '.join(BACKENDS)}")
    return {"local": local, "ray": ray}[name]  # modules with the protocol's functions (mypy checks modules against it)
