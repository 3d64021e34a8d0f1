"""The microscope's dataset pass (netsight.ops.dataset_pass) against a plain `torch.no_grad()` forward loop over the same
images, decoded the same way, on torchvision models at 224 px (docs/microscope.md: What it costs).

Each side runs in a process of its own (so each peak memory is its own): it opens the folder (listing and the
one decoding check, not timed), then times its loop over every image. The plain loop only runs the model; the pass
also hooks every Conv2d, keeps each unit's top k and saves its state at the end. Prints one JSON line per model and
side, then the ratio of images per second.

    python benchmarks/bench_dataset_pass.py --models resnet18,resnet50 --images 1000

The images: the first N CIFAR-10 test JPEGs of ../shared/data (unpacked into a temporary folder), or --folder DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time, torch
from torchvision.models import get_model
from netsight.data.images import folder_images
from netsight.ops.hooks import normalised_input
from netsight.ops.dataset_pass import dataset_pass
side, name, folder, batch, state = sys.argv[1:6]
torch.manual_seed(0)
model = get_model(name).eval()
t0 = time.perf_counter()
source = folder_images(folder, 3, 256, 224)
opened = time.perf_counter() - t0
mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
t0 = time.perf_counter()
if side == "plain":
    with torch.no_grad(), normalised_input(model, mean, std):
        for start in range(0, len(source), int(batch)):
            model(source.load(range(start, min(start + int(batch), len(source)))))
else:
    dataset_pass(model, source, k=9, batch_size=int(batch), state=state, mean=mean, std=std)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"side": side, "model": name, "images": len(source), "seconds": round(seconds, 2),
                  "images_per_s": round(len(source) / seconds, 2), "open_s": round(opened, 2), "peak_mb": round(peak),
                  "threads": torch.get_num_threads()}))
"""


def cifar_folder(n: int, root: Path) -> Path:
    archive = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10" / "cifar10-jpeg.tar.gz"
    if not archive.exists():
        sys.exit(f"{archive}: not found; give --folder DIR")
    out = root / "images"
    out.mkdir()
    with tarfile.open(archive) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and "/test/" in m.name), key=lambda m: m.name)
        for i, m in enumerate(members[:n]):
            data = tar.extractfile(m)
            assert data is not None
            (out / f"{i:05d}.jpg").write_bytes(data.read())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="resnet18,resnet50")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--folder", type=Path)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or cifar_folder(args.images, Path(tmp))
        for name in args.models.split(","):
            result = {}
            for side in ("plain", "pass"):
                state = str(Path(tmp) / f"{name}.safetensors")
                done = subprocess.run(
                    [sys.executable, "-c", CHILD, side, name, str(folder), str(args.batch_size), state],
                    capture_output=True,
                    text=True,
                    env={**os.environ},
                )
                if done.returncode:
                    sys.exit(done.stderr)
                result[side] = json.loads(done.stdout.strip().splitlines()[-1])
                print(json.dumps(result[side]), flush=True)
            ratio = result["pass"]["seconds"] / result["plain"]["seconds"]
            print(json.dumps({"model": name, "pass_over_plain_time": round(ratio, 3)}), flush=True)


if __name__ == "__main__":
    main()
