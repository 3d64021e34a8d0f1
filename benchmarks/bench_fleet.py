"""Time the study's training one run at a time against fleets, in the same process.

    python benchmarks/bench_fleet.py [--device cpu|cuda] [--iterations N] [--members K]
                                     [--families lenet5,cnn-bn,lstm,gru,rnn] [--hidden H] [--threads T] [--json FILE]

For each family, K runs (seeds 0..K-1) of the assignment's protocol (the CNNs on
cifar10-assignment, the cells with 128 hidden units on MNIST) are trained twice: one after
another with the single-run trainer, and together as one fleet. Both sides evaluate on the
whole test set at the protocol's interval and write ordinary run directories; dataset loading
is outside both timings. Prints both wall times, the ratio, the largest difference in final
test accuracy between a member and its single run, and their paired difference (member minus
the single run of its seed) with a 95% t-interval: an interval containing 0 means the fleet
agrees with single runs within seed noise. --json writes the same numbers.

With --iterations smaller than the protocol's 5,500 the numbers are a shorter version of the
same work (the evaluation interval is kept), which is what a CI-size check runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from netsight.data import load_dataset
from netsight.report.stats import summarize
from netsight.train import resolve, train
from netsight.train.fleet import train_fleet
from netsight.train.loop import device_name, resolve_device

FAMILIES = {
    "lenet5": ("cifar10-assignment", {}),
    "cnn-bn": ("cifar10-assignment", {}),
    "lstm": ("mnist", {"hidden": 128}),
    "gru": ("mnist", {"hidden": 128}),
    "rnn": ("mnist", {"hidden": 128}),
}


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_family(model: str, members: int, iterations: int | None, device: str, scratch: Path, hidden: int | None = None) -> dict:
    data_name, extra = FAMILIES[model]
    if hidden and "hidden" in extra:
        extra = {**extra, "hidden": hidden}
    data = load_dataset(data_name)
    configs = [
        resolve(model, data_name, seed=s, **({"iterations": iterations} if iterations else {}), **extra) for s in range(members)
    ]
    _sync(device)
    start = time.perf_counter()
    singles = [train(c, scratch / f"{model}-single-{c.seed}", dataset=data, device=device, progress=False) for c in configs]
    _sync(device)
    sequential = time.perf_counter() - start
    start = time.perf_counter()
    fleet = train_fleet(
        configs, [scratch / f"{model}-fleet-{c.seed}" for c in configs], dataset=data, device=device, progress=False
    )
    _sync(device)
    together = time.perf_counter() - start
    diff = max(abs(a["final_test_acc"] - b["final_test_acc"]) for a, b in zip(singles, fleet, strict=True))
    # Member k and single run k share seed, initial weights and batches: compare them in pairs.
    paired = summarize([b["final_test_acc"] - a["final_test_acc"] for a, b in zip(singles, fleet, strict=True)])
    single_acc = summarize([a["final_test_acc"] for a in singles])
    return {
        "model": model,
        "data": data_name,
        "hidden": extra.get("hidden"),
        "members": members,
        "iterations": configs[0].iterations,
        "sequential_s": round(sequential, 2),
        "fleet_s": round(together, 2),
        "speedup": round(sequential / together, 3),
        "max_final_acc_diff": round(diff, 4),
        "single_acc_mean": round(single_acc.mean, 5),
        "single_acc_std": round(single_acc.std, 5),
        "fleet_minus_single_mean": round(paired.mean, 5),
        "fleet_minus_single_ci95": [round(paired.ci_low, 5), round(paired.ci_high, 5)] if paired.n > 1 else None,
        "agree_within_seed_noise": bool(paired.n > 1 and paired.ci_low <= 0 <= paired.ci_high),
        "single_final_acc": [round(s["final_test_acc"], 4) for s in singles],
        "fleet_final_acc": [round(s["final_test_acc"], 4) for s in fleet],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iterations", type=int, help="iterations per run (default: the protocol's 5,500)")
    parser.add_argument("--members", type=int, default=3, help="runs per family: the study's 3 seeds")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--hidden", type=int, help="hidden units of the recurrent families (default 128)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's; the study's --jobs auto uses 1)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        for model in args.families.split(","):
            r = bench_family(model, args.members, args.iterations, device, Path(scratch), args.hidden)
            results.append(r)
            print(
                f"{r['model']:7}{'' if r['hidden'] is None else '-' + str(r['hidden']):4} x{r['members']} {r['iterations']:>5} it: one by one {r['sequential_s']:8.1f}s  "
                f"fleet {r['fleet_s']:8.1f}s  speed-up {r['speedup']:5.2f}x  max |final acc diff| {r['max_final_acc_diff']:.4f}",
                flush=True,
            )
            ci = r["fleet_minus_single_ci95"]
            print(
                f"{'':12} final test acc: single {100 * r['single_acc_mean']:.2f} ± {100 * r['single_acc_std']:.2f}%, "
                f"fleet - single {100 * r['fleet_minus_single_mean']:+.2f} points"
                + (
                    f", 95% CI [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}] ({'contains 0: within seed noise' if r['agree_within_seed_noise'] else 'excludes 0'})"
                    if ci
                    else " (one member: no interval)"
                ),
                flush=True,
            )
    report = {
        "device": device_name(torch.device(device)),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "results": results,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
