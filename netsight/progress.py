"""Progress: the one mechanism every long phase shows itself with (a tqdm bar on stderr with the elapsed time
and the time left, ETA) and the estimate a long phase prints before the work.

`bar(total, what, enabled)` is the bar: a pass over a dataset, the stages of `explore`, the analyses of a
suite (one bar over all analyses of all runs), training. A bar starts showing after half a second (none for a
pass too short to watch) and is gone when its phase ends unless `leave`. When the first unit of work has
taken long enough to extrapolate from, a phase whose whole would take longer than `ESTIMATE_AFTER_S` says so
once, in a line that stays (`explore layer4 top-9 projections: about 7 min for 4,608 units (the first 256
took 24 s)`), so a long command tells its cost before most of it is spent, also where the bar cannot be
watched (a log). With `enabled` False (--quiet) neither is shown.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator, TypeVar

T = TypeVar("T")

ESTIMATE_AFTER_S = 120.0  # a phase projected to take longer than this prints its estimate first
SHOW_AFTER_S = 0.5  # a bar appears once its phase has run this long


def _clock() -> float:
    return time.perf_counter()


_MEASURE_S = 1.0  # extrapolate once the work done so far has taken at least this long (or all is done)


def duration(seconds: float) -> str:
    """`seconds` in words a reader takes in at a glance: 45 s, 7 min, 1 h 20 min."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {round(seconds % 3600 / 60):.0f} min"


class Bar:
    """A progress bar (tqdm) that also prints its phase's estimate once, when it would be long."""

    def __init__(
        self,
        total: float,
        what: str,
        enabled: bool = True,
        unit: str = "it",
        leave: bool = False,
        initial: float = 0,
        counts: bool = True,
        estimate: bool = True,
    ):
        from tqdm.auto import tqdm

        self.what, self.enabled, self.unit, self.counts = what, enabled, unit, counts
        self.total, self.initial = total, initial
        self._started = _clock()
        self._estimated = not estimate
        self.tqdm = tqdm(
            total=total,
            initial=initial,
            desc=what,
            unit=unit,
            leave=leave,
            delay=SHOW_AFTER_S,
            disable=not enabled,
            dynamic_ncols=True,
            file=sys.stderr,
            **({} if counts else {"bar_format": "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}"}),
        )

    def update(self, n: float = 1) -> None:
        self.tqdm.update(n)
        if not self._estimated and self.enabled:
            self._estimate()

    def _estimate(self) -> None:
        done = self.tqdm.n - self.initial
        spent = _clock() - self._started
        if done <= 0 or (spent < _MEASURE_S and self.tqdm.n < self.total):
            return
        self._estimated = True
        left = self.total - self.initial
        projected = spent / done * left
        if projected > ESTIMATE_AFTER_S:
            if self.counts:
                amount, first = f"{left:,.0f} {self.unit}", f"{done:,.0f}"
            else:  # work in estimated units (a suite's training: TFLOP): the share done says more than the count
                amount, first = "all of it", f"{done / left:.0%}"
            self.write(f"{self.what}: about {duration(projected)} for {amount} (the first {first} took {duration(spent)})")

    def set_postfix(self, **values: Any) -> None:
        self.tqdm.set_postfix(**values)

    def write(self, line: str) -> None:
        """A line that stays above the bar (with the bar off: on stderr all the same)."""
        self.tqdm.write(line, file=sys.stderr)

    def close(self) -> None:
        self.tqdm.close()

    def __enter__(self) -> "Bar":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def bar(
    total: float,
    what: str,
    enabled: bool = True,
    unit: str = "it",
    leave: bool = False,
    initial: float = 0,
    counts: bool = True,
    estimate: bool = True,
) -> Bar:
    """The bar for a phase of `total` units of work (see the module's docstring); `counts` False: units that mean
    nothing to a reader (estimated work), so the bar shows the share done and the times only; `estimate` False:
    units too unlike each other for the first to say anything of the rest (no estimate line; the bar's ETA stays)."""
    return Bar(total, what, enabled, unit, leave, initial, counts, estimate)


def track(items: Iterable[T], total: int, what: str, enabled: bool = True, unit: str = "it") -> Iterator[T]:
    """`items`, one at a time, under a bar of `total` units, each item one unit."""
    with bar(total, what, enabled, unit) as b:
        for item in items:
            yield item
            b.update(1)
