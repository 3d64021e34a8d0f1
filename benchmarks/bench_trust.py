"""What the "Which pictures to trust" analyses cost per run with the study's options.

    python benchmarks/bench_trust.py SUITE_OUT [--quick]

For the first seed of every run under SUITE_OUT/runs/cifar/ (a study's, or a quick study's: the
weights' values do not change the arithmetic), the time of each of attributions, sanity, faithfulness
and agreement as the suite runner calls it, `technique.write(target, registry.prepare(technique, target,
options))` with the options of the assignment suite's cifar group (`--quick`: its quick_options over them), as wall seconds and as this process's CPU seconds (the
second is what the analysis costs when the machine is shared). It writes into the run directories, as
the study does: run it on a copy.
"""

from __future__ import annotations

import argparse
import glob
import json
import time

import torch

from netsight.techniques import registry
from netsight.techniques.target import open_run_target
from netsight.data import load_dataset
from netsight.suites.spec import load_suite

NAMES = ("attributions", "sanity", "faithfulness", "agreement")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    data = load_dataset("cifar10-assignment")
    group = next(g for g in load_suite("assignment").groups if g.name == "cifar")
    result = {}
    for run in sorted(glob.glob(f"{args.out}/runs/cifar/*seed0*")):
        target = open_run_target(run, dataset=data)
        for name in NAMES:
            technique = registry.get(name)
            options = group.options_for(name, args.quick)
            prepared = registry.prepare(technique, target, options)
            wall, cpu = time.perf_counter(), time.process_time()
            technique.write(target, prepared)
            result[f"{target.run.config.model} {name}"] = {
                "wall_s": round(time.perf_counter() - wall, 1),
                "cpu_s": round(time.process_time() - cpu, 1),
            }
            print(target.run.config.model, name, result[f"{target.run.config.model} {name}"], flush=True)
    print(json.dumps({"threads": torch.get_num_threads(), **result}, indent=1))


if __name__ == "__main__":
    main()
