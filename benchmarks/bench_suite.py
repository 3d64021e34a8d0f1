"""Time the training of a whole suite (default: the assignment's 39 runs), fleets on or off.

    python benchmarks/bench_suite.py [--device cuda] [--fleet on|off] [--jobs N] [--iterations N] [--json FILE]
    python benchmarks/bench_suite.py --backend ray [--address HOST:PORT] [--cpus-per-task N] [--shared-out] ...

The suite's analyses are left out: this times training, the part fleets change (the analyses
and the report take the same time either way). --iterations cuts every run short for a
CI-size check; the evaluation interval is kept. Run directories go to a temporary folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

import torch

from netsight.suites.runner import SuiteOptions, plan_units, run_suite, use_fleets
from netsight.suites.spec import expand, load_suite
from netsight.train.loop import device_name, resolve_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("suite", nargs="?", default="assignment")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--fleet", choices=["on", "off", "auto"], default="on")
    parser.add_argument("--iterations", type=int, help="cut every run to this many iterations")
    parser.add_argument("--seeds", type=int)
    parser.add_argument("--jobs", type=int, default=1, help="local processes (the cores are split between them)")
    parser.add_argument("--backend", choices=["local", "ray"], default="local")
    parser.add_argument("--address", help="ray: a running cluster (default: a local Ray instance, its start-up timed)")
    parser.add_argument("--cpus-per-task", type=float, default=1.0)
    parser.add_argument("--shared-out", action="store_true", help="ray: the tasks write their runs in place")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    suite = load_suite(args.suite)
    groups = []
    for g in suite.groups:
        grid = dict(g.grid)
        if args.iterations:
            grid["iterations"] = (args.iterations,)
        snaps = tuple(s for s in g.snapshots if not args.iterations or s <= args.iterations)
        groups.append(dataclasses.replace(g, analyses=(), grid=grid, snapshots=snaps))
    suite = dataclasses.replace(suite, groups=tuple(groups))
    ray = (
        dict(address=args.address, cpus_per_task=args.cpus_per_task, shared_out=args.shared_out) if args.backend == "ray" else {}
    )
    options = SuiteOptions(
        seeds=args.seeds, device=args.device, fleet=args.fleet, progress=False, jobs=args.jobs, backend=args.backend, **ray
    )
    specs = expand(suite, args.seeds)
    with tempfile.TemporaryDirectory() as out:
        units = plan_units([(s, Path(out) / "runs" / s.dirname) for s in specs], use_fleets(options))
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        run_suite(suite, out, options, report=False)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    result = {
        "suite": suite.title,
        "runs": len(specs),
        "units": len(units),
        "fleet": args.fleet,
        "jobs": args.jobs,
        "backend": args.backend
        + (f" ({args.cpus_per_task:g} CPU per task{', --shared-out' * args.shared_out})" if args.backend == "ray" else ""),
        "iterations": args.iterations or "protocol",
        "device": device_name(resolve_device(args.device)),
        "torch": torch.__version__,
        "training_s": round(seconds, 2),
    }
    print(json.dumps(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
