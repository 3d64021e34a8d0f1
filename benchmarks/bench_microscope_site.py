"""The microscope's site for a whole torchvision model over a folder of images: the time of each phase, the sizes
of what it writes, and the time Chromium takes to open a layer from `file://` (docs/microscope.md: What it costs).

    python benchmarks/bench_microscope_site.py --model resnet50 --images 1000      # random weights, 224 px

The images: the first N CIFAR-10 test JPEGs of ../shared/data (the model's own resize and crop bring them to 224
px), or --folder DIR. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dataset_pass import cifar_folder  # noqa: E402


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def open_times(index: Path, layer: str, repeats: int = 5) -> list[float]:
    """Seconds from navigating to `#layer/0` until that unit's details are drawn, each in a fresh page."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        for _ in range(repeats):
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            t0 = time.perf_counter()
            page.goto(index.as_uri() + f"#{layer}/0")
            page.wait_for_function(f"() => document.querySelector('#detail').dataset.layer === '{layer}'", timeout=60_000)
            times.append(time.perf_counter() - t0)
            page.close()
        browser.close()
    return times


def main() -> None:
    import torch

    from netsight.techniques.microscope import microscope
    from netsight.techniques.target import open_model_target

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="resnet50")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--folder", type=Path)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or cifar_folder(args.images, Path(tmp))
        t0 = time.perf_counter()
        target = open_model_target(f"torchvision:{args.model}", images=folder, labelled=False)
        opened = time.perf_counter() - t0
        out = Path(tmp) / "site"
        t0 = time.perf_counter()
        microscope(target.model, target.images, out, target.title, mean=target.mean, std=target.std)
        built = time.perf_counter() - t0
        layers = sorted((out / "layers").glob("*.js"), key=lambda f: f.stat().st_size)
        index = json.loads(
            (out / "index.html").read_text().split("id='microscope-index'>")[1].split("</script>")[0].replace("<\\/", "</")
        )
        biggest = next(e["name"] for e in index["layers"] if e["file"] == f"layers/{layers[-1].name}")
        times = open_times(out / "index.html", biggest)
        print(
            json.dumps(
                {
                    "model": args.model,
                    "images": len(target.images),
                    "units": sum(e["units"] for e in index["layers"]),
                    "layers": len(index["layers"]),
                    "threads": torch.get_num_threads(),
                    "open_folder_s": round(opened, 1),
                    "site_s": round(built, 1),
                    "index_html_kb": round(size(out / "index.html") / 1024, 1),
                    "layers_mb": round(size(out / "layers") / 2**20, 2),
                    "largest_layer_file_kb": round(layers[-1].stat().st_size / 1024, 1),
                    "largest_layer": biggest,
                    "images_mb": round(size(out / "images") / 2**20, 2),
                    "image_files": len(list((out / "images").glob("*.jpg"))),
                    "state_mb": round(size(out / "pass.safetensors") / 2**20, 2),
                    "total_mb": round(size(out) / 2**20, 2),
                    "open_largest_layer_s": {"median": round(statistics.median(times), 3), "all": [round(t, 3) for t in times]},
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
