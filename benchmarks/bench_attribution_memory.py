"""Does `attribute` stream? Peak memory of gradient, integrated gradients and Grad-CAM on
torchvision's ResNet-50 over a folder of 1,000 images against the same over 100.

    python benchmarks/bench_attribution_memory.py [--images 1000,100] [--size 64] [--steps 2] [--threads 2] [--json FILE]

The images are random --size x --size RGB PNGs written once to --folder (default
/tmp/netsight-memory-check: a folder of the first 100 and one of all 1,000); the model is resnet50(weights=None, 10 classes),
its input [0, 1] pixels, read through the folder `ImageSource` (netsight.ops.inputs.images, the
path `--images DIR` takes), in batches of --batch-size, each explaining the predicted class.
Integrated gradients runs with --steps Gauss-Legendre steps (default 2, not netsight's 32: 1,000
ResNet-50 images x 32 steps is hours on this project's shared 2-core CPU; the memory of a batch
does not depend on the number of steps, which go through the model one batch at a time).

Each (method, number of images) runs in a fresh process, so its peak resident set size
(`resource.getrusage(RUSAGE_SELF).ru_maxrss`) is its own; "before" is the peak after the model was
built and the folder listed. Memory is bounded when the peak over 1,000 images exceeds the one
over 100 by no more than the maps themselves (kept as float32 [N, size, size]: 16 KiB an image at 64).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

METHODS = ("gradient", "integrated_gradients", "gradcam")


def write_images(folder: Path, n: int, size: int) -> Path:
    """`n` random `size` x `size` RGB PNGs in folder/images-size-n (written once; the first are the same in every folder)."""
    from PIL import Image

    out = folder / f"images-{size}-{n}"
    if out.is_dir() and len(list(out.glob("*.png"))) == n:
        return out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), "RGB").save(out / f"{i:04d}.png")
    return out


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child(folder: str, method: str, steps: int, batch_size: int, threads: int) -> dict:
    import torch
    import torchvision

    from netsight.ops.attribution import attribute
    from netsight.ops.inputs import images

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = torchvision.models.resnet50(weights=None, num_classes=10).eval()
    source = images(folder, model)
    before = peak_mib()
    start = time.perf_counter()
    result = attribute(model, source, method, targets="predicted", batch_size=batch_size, steps=steps)
    seconds = time.perf_counter() - start
    return {
        "method": method,
        "images": len(source),
        "maps": list(result.maps.shape),
        "peak_before_mib": before,
        "peak_mib": peak_mib(),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default="1000,100", help="the folder sizes to compare")
    parser.add_argument("--size", type=int, default=64, help="image height and width")
    parser.add_argument("--steps", type=int, default=2, help="integrated gradients' steps")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--folder", type=Path, default=Path("/tmp/netsight-memory-check"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.steps, args.batch_size, args.threads)))
        return
    sizes = [int(v) for v in args.images.split(",")]
    folders = {n: write_images(args.folder, n, args.size) for n in sizes}
    print(
        f"resnet50(weights=None) at 3x{args.size}x{args.size}, batch {args.batch_size}, integrated gradients {args.steps} steps, "
        f"torch.set_num_threads({args.threads}); peak RSS per process"
    )
    rows = []
    for method in args.methods.split(","):
        for n in sizes:
            cmd = [sys.executable, __file__, "--child", str(folders[n]), method]
            cmd += ["--steps", str(args.steps), "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
            done = subprocess.run(cmd, check=True, capture_output=True, text=True)
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            if args.json:  # after every row: a long run stopped early keeps what it measured
                write_json(args, rows)
            print(
                f"  {method:21} {n:5} images: peak {row['peak_mib']:7.0f} MiB (after loading the model "
                f"{row['peak_before_mib']:5.0f} MiB), {row['seconds']:6.1f} s",
                flush=True,
            )
        peaks = {r["images"]: r["peak_mib"] for r in rows if r["method"] == method}
        if len(peaks) == 2:
            (small, a), (large, b) = sorted(peaks.items())
            maps = (large - small) * args.size * args.size * 4 / 2**20
            print(f"  {method:21} {large} vs {small} images: +{b - a:.0f} MiB (the extra maps alone: {maps:.0f} MiB)")


def write_json(args, rows: list[dict]) -> None:
    meta = {"model": "resnet50(weights=None)", "input": [3, args.size, args.size], "batch_size": args.batch_size}
    meta.update(steps=args.steps, threads=args.threads)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(dict(meta, rows=rows), indent=2) + "\n")


if __name__ == "__main__":
    main()
