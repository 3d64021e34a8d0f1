"""What the looks inside the recurrent nets (techniques rows, units, gates, trajectories) cost per run,
with the assignment study's options.

    python benchmarks/bench_recurrent_analyses.py RUNS_DIR [--threads 1]

For every run directory under RUNS_DIR whose name has `seed0` (the study runs these techniques on the
first seed only), each technique's `write` is timed, on one thread (the study's `--jobs auto` gives each
process one), with the MNIST test set loaded once outside the timings. A technique that does not apply
(gates on a plain RNN) is reported as refused.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from netsight.techniques import registry
from netsight.techniques.target import open_run_target
from netsight.data import load_dataset
from netsight.errors import NetsightError
from netsight.suites.spec import load_suite

TECHNIQUES = ("rows", "units", "gates", "trajectories")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", type=Path)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset("mnist")
    group = next(g for g in load_suite("assignment").groups if g.name == "rnn")  # the study's options
    total = 0.0
    for path in sorted(d for d in args.runs.iterdir() if d.is_dir() and "seed0" in d.name):
        target = open_run_target(path, dataset=data)
        times: dict[str, object] = {}
        for name in TECHNIQUES:
            technique = registry.get(name)
            try:
                options = registry.prepare(technique, target, group.options_for(name, False))
            except NetsightError as exc:
                times[name] = f"refused ({exc})"
                continue
            started = time.perf_counter()
            technique.write(target, options)
            times[name] = round(time.perf_counter() - started, 1)
            total += time.perf_counter() - started
        print(path.name, f"snapshots {len(target.snapshots())}", times, flush=True)
    print(f"total {total:.1f} s")


if __name__ == "__main__":
    main()
