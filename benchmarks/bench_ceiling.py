"""How close each of the study's models comes to this machine's arithmetic peak.

    python benchmarks/bench_ceiling.py [--threads 1] [--steps 200] [--evaluations 2] [--models ...] [--json FILE]

The study's time is set by float32 matrix work: convolutions and matrix products. This script
measures, on the CPU and at the thread count the study gives each run (`--jobs auto`: one),

- the peak: the best of a few large `sgemm`s (2048 x 2048), GFLOP/s;
- per model of the study (the assignment suite's shapes, batch sizes and learning rates): the
  trainer's own training step (`build_for_training`, `prepare_input`, fused Adam) and its
  evaluation of the whole test set (`evaluate`, the trainer's batch), each as seconds and as
  GFLOP/s with FLOPs counted by PyTorch's FlopCounterMode (`netsight.suites.schedule`:
  training = 3 forward passes per image);
- the study: the assignment suite's runs priced at these rates (core-minutes, and wall minutes on
  `--cores` cores with perfect packing), beside the same FLOPs at the peak rate - the floor no
  float32 implementation of the protocol can go under on this machine.

Data are the real datasets (MNIST, the course's CIFAR subset); loading is outside the timings.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from netsight.data import load_dataset
from netsight.data.specs import DATASETS
from netsight.models import ModelConfig
from netsight.suites.schedule import forward_flops
from netsight.suites.spec import expand, load_suite
from netsight.train.loop import BatchSampler, build_for_training, evaluate, make_optimizer, prepare_input


def peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def measure(config, dataset, steps: int, evaluations: int) -> dict:
    """Seconds per training step and per evaluation of the whole test set, the trainer's way."""
    dev = torch.device("cpu")
    model_config = ModelConfig(config.model, dataset.image_shape, dataset.num_classes, config.hidden, config.dropout, config.init)
    torch.manual_seed(config.seed)
    model = build_for_training(model_config, dev)
    optimizer = make_optimizer(config, model.parameters())
    sampler = BatchSampler(len(dataset.train_images), config.batch_size, config.seed, dev)

    def step() -> None:
        idx = sampler.next()
        loss = F.cross_entropy(model(prepare_input(model, dataset.train_images[idx])), dataset.train_labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(max(5, steps // 10)):  # warm-up: allocator, oneDNN primitive caches
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    step_s = (time.perf_counter() - start) / steps
    evaluate(model, dataset.test_images, dataset.test_labels)
    start = time.perf_counter()
    for _ in range(evaluations):
        evaluate(model, dataset.test_images, dataset.test_labels)
    eval_s = (time.perf_counter() - start) / evaluations
    model.train()
    flops = forward_flops(config.model, dataset.image_shape, dataset.num_classes, config.hidden)
    return {
        "step_s": step_s,
        "eval_s": eval_s,
        "step_gflops": 3 * flops * config.batch_size / step_s / 1e9,
        "eval_gflops": flops * len(dataset.test_images) / eval_s / 1e9,
        "forward_flops": flops,
    }


def label(config) -> str:
    return f"{config.model}{'-' + str(config.hidden) if config.hidden else ''} / {config.data}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the study gives each run one)")
    parser.add_argument("--cores", type=int, default=2, help="cores the study's wall time is projected onto")
    parser.add_argument("--steps", type=int, default=200, help="timed training steps per model")
    parser.add_argument("--evaluations", type=int, default=2, help="timed evaluations of the whole test set per model")
    parser.add_argument("--models", help="comma-separated labels to keep, e.g. 'lenet5 / mnist,gru-128 / mnist' (default: all)")
    parser.add_argument("--data-root", type=Path, help="where the datasets are (default: netsight's usual search)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    for flag in ("threads", "cores", "steps", "evaluations"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag}: expected a whole number of at least 1, got {getattr(args, flag)}")
    torch.set_num_threads(args.threads)

    runs = [spec.config for spec in expand(load_suite("assignment"))]
    distinct = {}
    for config in runs:  # one measurement per model, dataset and size; the seeds share it
        distinct.setdefault(label(config), config)
    if args.models:
        keep = [m.strip() for m in args.models.split(",")]
        unknown = [m for m in keep if m not in distinct]
        if unknown:
            parser.error(f"--models: unknown {unknown}; the study's models are {sorted(distinct)}")
        distinct = {k: distinct[k] for k in keep}

    peak = peak_gflops()
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s): "
        f"sgemm peak {peak:.1f} GFLOP/s"
    )
    print(
        f"{'model / data':30} {'step ms':>8} {'GFLOP/s':>8} {'% peak':>7} {'eval s':>7} {'GFLOP/s':>8} {'% peak':>7} {'core-min/run':>13}"
    )
    datasets, rows = {}, []
    for name, config in distinct.items():
        if config.data not in datasets:
            datasets[config.data] = load_dataset(config.data, args.data_root)
        m = measure(config, datasets[config.data], args.steps, args.evaluations)
        evaluations = math.ceil(config.iterations / config.eval_every)
        run_s = config.iterations * m["step_s"] + evaluations * m["eval_s"]
        run_flops = m["forward_flops"] * (
            3 * config.iterations * config.batch_size + evaluations * DATASETS[config.data].test_size
        )
        rows.append(
            {
                "label": name,
                **m,
                "iterations": config.iterations,
                "evaluations": evaluations,
                "run_s": run_s,
                "run_flops": run_flops,
                "seeds": sum(label(c) == name for c in runs),
            }
        )
        print(
            f"{name:30} {m['step_s'] * 1e3:8.2f} {m['step_gflops']:8.1f} {100 * m['step_gflops'] / peak:6.0f}% "
            f"{m['eval_s']:7.2f} {m['eval_gflops']:8.1f} {100 * m['eval_gflops'] / peak:6.0f}% {run_s / 60:13.2f}",
            flush=True,
        )

    total_s = sum(r["run_s"] * r["seeds"] for r in rows)
    total_flops = sum(r["run_flops"] * r["seeds"] for r in rows)
    floor_s = total_flops / (peak * 1e9)
    print(
        f"study ({sum(r['seeds'] for r in rows)} runs): {total_flops / 1e12:.0f} TFLOP; at these rates {total_s / 60:.1f} core-min = "
        f"{total_s / 60 / args.cores:.1f} min on {args.cores} cores; at the sgemm peak {floor_s / 60:.1f} core-min = "
        f"{floor_s / 60 / args.cores:.1f} min; average {total_flops / total_s / 1e9:.1f} GFLOP/s per core "
        f"({100 * total_flops / total_s / 1e9 / peak:.0f}% of peak)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "torch": torch.__version__,
                    "threads": args.threads,
                    "cores": args.cores,
                    "peak_gflops": peak,
                    "models": rows,
                    "study_tflop": total_flops / 1e12,
                    "study_core_minutes": total_s / 60,
                    "floor_core_minutes": floor_s / 60,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
