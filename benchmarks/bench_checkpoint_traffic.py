"""What a Ray task sends at its checkpoints: the whole run directory, or only what changed.

    python benchmarks/bench_checkpoint_traffic.py [--model lenet5] [--data cifar10-assignment] [--iterations 1100]

Trains one run in a temporary folder with a checkpoint at every evaluation (the Ray backend
checkpoints at most once a minute; here every time, to see each step) and at each one counts the
bytes of the whole folder (`transfer.pack_folder`) and of the files changed since the previous
checkpoint (`transfer.pack_changes`, what a task sends to the task book).
"""

from __future__ import annotations

import argparse
import json
import tempfile

import torch

from netsight.suites.transfer import pack_changes, pack_folder
from netsight.train import resolve, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="lenet5")
    parser.add_argument("--data", default="cifar10-assignment")
    parser.add_argument("--iterations", type=int, default=1100)
    parser.add_argument("--snapshots", default="50,200,500,1000", help="iterations whose weights are kept")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as a task with --cpus-per-task 1
    config = resolve(
        args.model,
        args.data,
        iterations=args.iterations,
        eval_every=50,
        snapshots=tuple(int(s) for s in args.snapshots.split(",") if s),
    )
    with tempfile.TemporaryDirectory() as tmp:
        run, stamps, whole, changed = f"{tmp}/run", {}, [], []

        def checkpointed() -> None:
            nonlocal stamps
            files, _, stamps = pack_changes(run, stamps)
            whole.append(sum(map(len, pack_folder(run).values())))
            changed.append(sum(map(len, files.values())))

        train(config, run, progress=False, checkpoint_seconds=0.0, on_checkpoint=checkpointed)
    mb = lambda n: round(n / 1e6, 1)  # noqa: E731
    print(
        json.dumps(
            {
                "run": f"{args.model} on {args.data}, {args.iterations} iterations, snapshots {args.snapshots}",
                "checkpoints": len(whole),
                "whole_mb": mb(sum(whole)),
                "changed_mb": mb(sum(changed)),
                "last_whole_mb": mb(whole[-1]),
                "last_changed_mb": mb(changed[-1]),
            }
        )
    )


if __name__ == "__main__":
    main()
