"""Time per 100 iterations of each recurrent cell and hidden size: netsight's trainer against
the plain PyTorch loop of bench_train.py (torchvision MNIST + DataLoader), in the same run.

    python benchmarks/bench_rnn.py [--data-root ../shared/data] [--iterations 300] [--json out.json]

Both sides run `iterations` steps with the report's protocol (Adam 1e-3, batch 128) and no
evaluation, so the numbers are the cost of training steps alone.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from bench_train import torchvision_sets
from netsight.data import load_dataset
from netsight.models import ModelConfig, build_model
from netsight.train import resolve, train


def plain(model_name: str, hidden: int, train_set, iterations: int) -> float:
    torch.manual_seed(0)
    model = build_model(ModelConfig(model_name, (1, 28, 28), 10, hidden))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(train_set, batch_size=128, shuffle=True, drop_last=True)
    start, step = time.perf_counter(), 0
    while step < iterations:
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step == iterations:
                break
    return time.perf_counter() - start


def ours(model_name: str, hidden: int, dataset, iterations: int) -> float:
    config = resolve(model_name, "mnist", hidden=hidden, iterations=iterations, eval_every=iterations)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        train(config, Path(out) / "r", dataset=dataset, progress=False, device="cpu")
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    dataset = load_dataset("mnist", args.data_root)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        train_set, _ = torchvision_sets("mnist", args.data_root, Path(scratch))
        print(
            f"torch {torch.__version__}, cpu, {torch.get_num_threads()} threads; seconds per 100 iterations "
            f"(training only: the last iteration's single evaluation is included on netsight's side)"
        )
        print(f"{'cell':6} {'hidden':>6} {'plain':>8} {'netsight':>9} {'ratio':>7}")
        for cell in ("rnn", "lstm", "gru"):
            for hidden in (32, 64, 128):
                p = plain(cell, hidden, train_set, args.iterations) * 100 / args.iterations
                o = ours(cell, hidden, dataset, args.iterations) * 100 / args.iterations
                results.append(dict(cell=cell, hidden=hidden, plain_s_per_100=p, netsight_s_per_100=o, ratio=p / o))
                print(f"{cell:6} {hidden:6d} {p:8.2f} {o:9.2f} {p / o:6.2f}x", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
