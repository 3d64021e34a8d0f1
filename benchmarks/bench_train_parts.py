"""Where one netsight training run's time goes, on one thread (docs/performance.md, "The same benchmark on another CPU").

    python benchmarks/bench_train_parts.py --model lstm|lenet5 [--data-root ../shared/data] [--iterations 1000]
        [--layout] [--eval-batches 50,100,200,500,1000] [--profile-steps 40]

Default: one `train` of the 1,000-iteration protocol, with the wall time inside `evaluate` and inside each of the run
directory's writes summed; the rest is the training steps. `--layout`: a training step and an evaluation of the
whole test set with channels-last against contiguous (CNNs), two rounds. `--eval-batches`: an evaluation of the whole
test set at each batch size, two rounds. `--profile-steps N`: torch.profiler's table over N training steps.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot  # noqa: F401  (imported before any clock starts, as bench_train.py does)
import torch
import torch.nn.functional as F

from netsight.data import load_dataset
from netsight.models import ModelConfig, get_entry
from netsight.train import resolve, train

loop = importlib.import_module("netsight.train.loop")  # the module, not the `train` function of the package
steps = importlib.import_module("netsight.train.steps")
PROTOCOLS = {"lenet5": "cifar10-assignment", "lstm": "mnist"}


def parts(config, dataset) -> None:
    spent: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()

    def timed(owner, name: str, key: str) -> None:
        real = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - start
                calls[key] += 1

        setattr(owner, name, wrapper)

    timed(loop, "evaluate", "evaluate")
    for method in ("begin", "finish", "add_row", "save_checkpoint", "save_weights", "summary"):
        timed(steps.RunRecord, method, f"writes: {method}")
    with tempfile.TemporaryDirectory() as out:
        start, cpu = time.perf_counter(), time.process_time()
        summary = train(config, Path(out) / "run", device="cpu", dataset=dataset, progress=False)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"train: {wall:.2f} s wall, {cpu:.2f} s CPU, final test accuracy {summary['final_test_acc']:.4f}")
    for key, seconds in sorted(spent.items()):
        print(f"  {key:24} {seconds:7.2f} s ({calls[key]} calls)")
    print(f"  {'the rest: training steps':24} {wall - sum(spent.values()):7.2f} s")


def model_for(config, dataset, channels_last: bool):
    torch.manual_seed(0)
    model = loop.build_for_training(ModelConfig(config.model, dataset.image_shape, 10, config.hidden), torch.device("cpu"))
    if not channels_last and getattr(model, "_channels_last", False):
        model = model.to(memory_format=torch.contiguous_format)
        model._channels_last = False
    return model


def step_seconds(model, config, dataset, n: int = 200) -> float:
    optimizer = loop.make_optimizer(config, model.parameters())
    g = torch.Generator().manual_seed(0)
    start = time.process_time()
    for _ in range(n):
        idx = torch.randint(0, len(dataset.train_images), (config.batch_size,), generator=g)
        loss = F.cross_entropy(model(loop.prepare_input(model, dataset.train_images[idx])), dataset.train_labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.process_time() - start) / n


def evaluation_seconds(model, dataset, batch=None) -> float:
    start = time.process_time()
    loop.evaluate(model, dataset.test_images, dataset.test_labels, batch=batch)
    return time.process_time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(PROTOCOLS), default="lstm")
    parser.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--layout", action="store_true")
    parser.add_argument("--eval-batches")
    parser.add_argument("--profile-steps", type=int)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = load_dataset(PROTOCOLS[args.model], args.data_root)
    config = resolve(args.model, dataset.name, iterations=args.iterations, seed=0)
    if args.layout:
        if get_entry(args.model).family != "cnn":
            parser.error(f"--layout: {args.model} is not a CNN; channels-last is for CNNs")
        for _ in range(2):
            for channels_last in (True, False):
                model = model_for(config, dataset, channels_last)
                step = step_seconds(model, config, dataset)
                print(f"channels_last={channels_last}: a step {step * 1000:.1f} ms CPU, "
                      f"an evaluation of {len(dataset.test_images)} images {evaluation_seconds(model, dataset):.3f} s CPU")  # fmt: skip
    elif args.eval_batches:
        model = model_for(config, dataset, True)
        for _ in range(2):
            for batch in (int(b) for b in args.eval_batches.split(",")):
                print(f"evaluation batch {batch}: {evaluation_seconds(model, dataset, batch):.3f} s CPU", flush=True)
    elif args.profile_steps:
        from torch.profiler import ProfilerActivity, profile

        model = model_for(config, dataset, True)
        step_seconds(model, config, dataset, 5)  # warm up
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step_seconds(model, config, dataset, args.profile_steps)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14))
    else:
        parts(config, dataset)


if __name__ == "__main__":
    main()
