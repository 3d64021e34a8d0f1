"""Time netsight's trainer against a plain PyTorch loop on the assignment's protocols.

    python benchmarks/bench_train.py [--data-root ../shared/data] [--iterations 5500] [--device cpu]
        [--rounds 3] [--compare /path/to/older/checkout] [--json out.json]

Both sides train the same architecture (built from netsight's registry) with the same
protocol (Adam, batch size, iterations, evaluation on the whole test set every
`eval_every` iterations). The plain loop is what a tutorial writes: a torchvision dataset
with ToTensor, a shuffling DataLoader, `.item()` to read each evaluation batch. Dataset
loading is outside both timings.

Every measurement runs in a fresh process (`--one`), so no side inherits the other's allocator
or thread pool. With `--rounds N` the sides alternate, and the order flips each round (plain
first, then netsight first, ...), so a machine whose load changes during the run hurts both
alike; each round's load average is recorded beside its times. `--compare DIR` adds a third
side: netsight imported from DIR (e.g. an older commit, `git archive <commit> netsight | tar -x -C DIR`),
to find a regression in the same run. Prints per-round times and the median ratio; writes all
of it as JSON with --json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROTOCOLS = {"lenet5": "cifar10-assignment", "lstm": "mnist"}


def torchvision_sets(data: str, root: Path, scratch: Path):
    from torchvision import datasets, transforms

    to_tensor = transforms.ToTensor()
    if data == "mnist":
        raw = scratch / "MNIST" / "raw"  # torchvision wants the IDX files un-gzipped here
        raw.mkdir(parents=True, exist_ok=True)
        for gz in (root / "mnist").glob("*.gz"):
            with gzip.open(gz) as src, open(raw / gz.stem, "wb") as dst:
                shutil.copyfileobj(src, dst)
        return (
            datasets.MNIST(str(scratch), train=True, transform=to_tensor),
            datasets.MNIST(str(scratch), train=False, transform=to_tensor),
        )
    tf = transforms.Compose([transforms.Grayscale(1), to_tensor])
    course = root / "cifar10" / "assignment"
    return datasets.ImageFolder(str(course / "Train"), tf), datasets.ImageFolder(str(course / "Test"), tf)


def plain_loop(model_name: str, data: str, root: Path, iterations: int, device: str, seed: int) -> tuple[float, float, float]:
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader

    from netsight.models import ModelConfig, build_model
    from netsight.train import resolve

    config = resolve(model_name, data, iterations=iterations, seed=seed)
    with tempfile.TemporaryDirectory() as scratch:
        train_set, test_set = torchvision_sets(data, root, Path(scratch))
        start, cpu = time.perf_counter(), time.process_time()  # like netsight's train(): model and optimiser inside
        torch.manual_seed(seed)
        model = build_model(ModelConfig(model_name, tuple(train_set[0][0].shape), 10, config.hidden)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, drop_last=True)
        test_loader = DataLoader(test_set, batch_size=1000)
        step, acc = 0, 0.0
        while step < iterations:
            for x, y in train_loader:
                x, y = x.to(device), y.to(device)
                model.train()
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
                if step % config.eval_every == 0 or step == iterations:
                    model.eval()
                    correct, total = 0, 0
                    with torch.no_grad():
                        for tx, ty in test_loader:
                            tx, ty = tx.to(device), ty.to(device)
                            correct += (model(tx).argmax(1) == ty).sum().item()
                            total += len(ty)
                    acc = correct / total
                if step == iterations:
                    break
        return time.perf_counter() - start, time.process_time() - cpu, acc


def netsight_run(model_name: str, data: str, root: Path, iterations: int, device: str, seed: int) -> tuple[float, float, float]:
    from netsight.data import load_dataset
    from netsight.train import resolve, train

    dataset = load_dataset(data, root)
    config = resolve(model_name, data, iterations=iterations, seed=seed)
    with tempfile.TemporaryDirectory() as out:
        start, cpu = time.perf_counter(), time.process_time()
        summary = train(config, Path(out) / "run", device=device, dataset=dataset, progress=False)
        return time.perf_counter() - start, time.process_time() - cpu, summary["final_test_acc"]


def _loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def measure(side: str, model_name: str, args, compare: Path | None) -> dict:
    """One measurement in a fresh process; `side` is plain, netsight or compare."""
    env = dict(os.environ)
    here = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join([str(compare if side == "compare" else here), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, __file__, "--one", side, "--models", model_name, "--iterations", str(args.iterations)]
    cmd += ["--data-root", str(args.data_root), "--device", args.device, "--seed", str(args.seed)]
    cmd += ["--threads", str(args.threads)] if args.threads else []
    load_before = _loadavg()
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "load_before": load_before, "load_after": _loadavg()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--iterations", type=int, default=5500)
    parser.add_argument("--models", default="lenet5,lstm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="alternating rounds per protocol (order flips each round)")
    parser.add_argument("--compare", type=Path, help="also time netsight imported from this folder (an older checkout)")
    parser.add_argument("--threads", type=int, help="torch threads per side (default: torch's default)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--one", choices=["plain", "netsight", "compare"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # the child: one measurement, one JSON line
        import matplotlib.pyplot  # noqa: F401
        import torch
        import torch._dynamo  # noqa: F401
        import torchvision  # noqa: F401

        # what a process imports once, whatever number of runs it trains (torch.optim imports dynamo on the first
        # optimiser, netsight's summary names torchvision's version, its curves need matplotlib), is imported before
        # either side's clock starts
        if args.threads:
            torch.set_num_threads(args.threads)
        run = plain_loop if args.one == "plain" else netsight_run
        data = PROTOCOLS[args.models]
        seconds, cpu, acc = run(args.models, data, args.data_root, args.iterations, args.device, args.seed)
        print(
            json.dumps(
                {
                    "seconds": seconds,
                    "cpu_seconds": cpu,
                    "acc": acc,
                    "threads": torch.get_num_threads(),
                    "torch": torch.__version__,
                }
            )
        )
        return

    sides = ["plain", "netsight"] + (["compare"] if args.compare else [])
    print(f"device {args.device}, {args.iterations} iterations, {args.rounds} rounds, sides {sides}; cores {os.cpu_count()}")
    results = []
    for model_name in args.models.split(","):
        data = PROTOCOLS[model_name]
        rounds = []
        for r in range(args.rounds):
            order = sides if r % 2 == 0 else sides[::-1]
            row = {side: measure(side, model_name, args, args.compare) for side in order}
            rounds.append(row)
            times = "  ".join(
                f"{s} {row[s]['seconds']:6.1f} s, cpu {row[s]['cpu_seconds']:6.1f} s (acc {row[s]['acc']:.4f})" for s in sides
            )
            loads = ", ".join(f"{row[s]['load_before']:.1f}" for s in order)
            wall_ratio = row["plain"]["seconds"] / row["netsight"]["seconds"]
            cpu_ratio = row["plain"]["cpu_seconds"] / row["netsight"]["cpu_seconds"]
            print(
                f"{model_name + ' / ' + data:24} round {r + 1}: {times}  plain/netsight {wall_ratio:.2f}x wall, {cpu_ratio:.2f}x cpu; load {loads}",
                flush=True,
            )
        ratio = [x["plain"]["seconds"] / x["netsight"]["seconds"] for x in rounds]
        cpu_ratio = [x["plain"]["cpu_seconds"] / x["netsight"]["cpu_seconds"] for x in rounds]
        entry = {
            "model": model_name,
            "data": data,
            "device": args.device,
            "iterations": args.iterations,
            "rounds": rounds,
            "plain_seconds": statistics.median(x["plain"]["seconds"] for x in rounds),
            "netsight_seconds": statistics.median(x["netsight"]["seconds"] for x in rounds),
            "speedup_per_round": ratio,
            "speedup": statistics.median(ratio),
            "cpu_speedup_per_round": cpu_ratio,
            "cpu_speedup": statistics.median(cpu_ratio),
            "plain_acc": rounds[0]["plain"]["acc"],
            "netsight_acc": rounds[0]["netsight"]["acc"],
        }
        if args.compare:
            entry["compare"] = str(args.compare)
            entry["compare_seconds"] = statistics.median(x["compare"]["seconds"] for x in rounds)
            entry["compare_over_netsight_per_round"] = [x["compare"]["seconds"] / x["netsight"]["seconds"] for x in rounds]
            entry["compare_over_netsight_cpu_per_round"] = [
                x["compare"]["cpu_seconds"] / x["netsight"]["cpu_seconds"] for x in rounds
            ]
        results.append(entry)
        if args.json:  # after each protocol, so a long run stopped early keeps what it measured
            args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(
            f"{model_name}: median plain {entry['plain_seconds']:.1f} s, netsight {entry['netsight_seconds']:.1f} s, "
            f"speed-up {entry['speedup']:.2f}x wall, {entry['cpu_speedup']:.2f}x cpu (rounds: {', '.join(f'{v:.2f}' for v in ratio)} wall; "
            f"{', '.join(f'{v:.2f}' for v in cpu_ratio)} cpu)",
            flush=True,
        )


if __name__ == "__main__":
    main()
