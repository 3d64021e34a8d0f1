"""Does a ROAR mask's shape alone give the class away? (Rong et al., "A Consistent and Efficient Evaluation
Strategy for Attribution Methods", ICML 2022: the pixels a method ranks highest outline the object, and a model
retrained on the masked images can read that outline.) For each given retraining run of a ROAR suite, trains a
LeNet5 on the mask alone - every pixel 1 where ROAR replaced it and 0 elsewhere, nothing of the image - and prints
its test accuracy (chance: 10%).

    python benchmarks/roar_mask_leak.py OUT/runs/roar/*-0.9-seed0-* [--iterations 1500]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from netsight.data import load_dataset
from netsight.models import ModelConfig, build_model
from netsight.ops import masking
from netsight.suites.roar import MASK_FILE, _read_safetensors


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--iterations", type=int, default=1500)
    args = p.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("cifar10-assignment")
    for run in args.runs:
        tensors, meta = _read_safetensors(run / MASK_FILE)
        pixels = int(meta["pixels"])
        x = {s: masking.unpack(tensors[s], pixels).float().reshape(-1, 1, 28, 28) for s in ("train", "test")}
        y = {"train": data.train_labels, "test": data.test_labels}
        torch.manual_seed(0)
        model = build_model(ModelConfig(name="lenet5", input_shape=(1, 28, 28), num_classes=10))
        opt = torch.optim.Adam(model.parameters(), 1e-4)
        g = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        model.train()
        for _ in range(args.iterations):
            i = torch.randint(0, len(x["train"]), (50,), generator=g)
            loss = F.cross_entropy(model(x["train"][i]), y["train"][i])
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            accuracy = float((model(x["test"]).argmax(1) == y["test"]).float().mean())
        config = json.loads((run / "config.json").read_text())["train"]["mask"]
        print(
            json.dumps(
                {
                    "run": run.name,
                    "mask": config,
                    "iterations": args.iterations,
                    "mask_only_test_acc": accuracy,
                    "seconds": round(time.perf_counter() - t0, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
