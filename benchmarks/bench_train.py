"""Time netsight's trainer against a plain PyTorch loop on the assignment's protocols.

    python benchmarks/bench_train.py [--data-root ../shared/data] [--iterations 5500] [--device cpu]

Both sides train the same architecture (built from netsight's registry) with the same
protocol (Adam, batch size, iterations, evaluation on the whole test set every
`eval_every` iterations). The plain loop is what a tutorial writes: a torchvision dataset
with ToTensor, a shuffling DataLoader, `.item()` to read each evaluation batch. Dataset
loading is outside both timings. Prints a table with both times, both final accuracies
and the ratio, and writes it as JSON with --json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from netsight.data import load_dataset
from netsight.models import ModelConfig, build_model
from netsight.train import resolve, train

PROTOCOLS = {"lenet5": "cifar10-assignment", "lstm": "mnist"}


def torchvision_sets(data: str, root: Path, scratch: Path):
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


def plain_loop(model_name: str, data: str, root: Path, iterations: int, device: str, seed: int) -> tuple[float, float]:
    config = resolve(model_name, data, iterations=iterations, seed=seed)
    with tempfile.TemporaryDirectory() as scratch:
        train_set, test_set = torchvision_sets(data, root, Path(scratch))
        torch.manual_seed(seed)
        model = build_model(ModelConfig(model_name, tuple(train_set[0][0].shape), 10, config.hidden)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        train_loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, drop_last=True)
        test_loader = DataLoader(test_set, batch_size=1000)
        start = time.perf_counter()
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
        return time.perf_counter() - start, acc


def netsight_run(model_name: str, data: str, root: Path, iterations: int, device: str, seed: int) -> tuple[float, float]:
    dataset = load_dataset(data, root)
    config = resolve(model_name, data, iterations=iterations, seed=seed)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        summary = train(config, Path(out) / "run", device=device, dataset=dataset, progress=False)
        return time.perf_counter() - start, summary["final_test_acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--iterations", type=int, default=5500)
    parser.add_argument("--models", default="lenet5,lstm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = []
    print(f"torch {torch.__version__}, device {args.device}, {torch.get_num_threads()} threads, {args.iterations} iterations")
    print(f"{'protocol':24} {'plain s':>9} {'acc':>7} {'netsight s':>11} {'acc':>7} {'speed-up':>9}")
    for model_name in args.models.split(","):
        data = PROTOCOLS[model_name]
        plain_s, plain_acc = plain_loop(model_name, data, args.data_root, args.iterations, args.device, args.seed)
        ours_s, ours_acc = netsight_run(model_name, data, args.data_root, args.iterations, args.device, args.seed)
        results.append(
            dict(
                model=model_name,
                data=data,
                device=args.device,
                iterations=args.iterations,
                plain_seconds=plain_s,
                plain_acc=plain_acc,
                netsight_seconds=ours_s,
                netsight_acc=ours_acc,
                speedup=plain_s / ours_s,
            )
        )
        print(
            f"{model_name + ' / ' + data:24} {plain_s:9.1f} {plain_acc:7.4f} {ours_s:11.1f} {ours_acc:7.4f} {plain_s / ours_s:8.2f}x",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
