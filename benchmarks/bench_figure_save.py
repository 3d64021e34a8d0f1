"""netsight's one-draw tight PNG (`plotting.write_tight_png`) against matplotlib's `savefig(bbox_inches="tight")` on
every figure netsight draws (the synthetic figures of tests/report/test_figure_rules.py::render_all): the time of
each save and how far apart the pictures are (docs/performance.md, "Saving a figure").

    python benchmarks/bench_figure_save.py [--keep DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.report.test_figure_rules

from netsight import plotting  # noqa: E402
from netsight.plotting import plt  # noqa: E402
from tests.report.test_figure_rules import render_all  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="write both PNGs of every figure here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.keep or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        theirs, ours = render_all(Path(scratch) / "a"), render_all(Path(scratch) / "b")  # the same figures, twice
        total = {"matplotlib": 0.0, "netsight": 0.0}
        for name in theirs:
            start = time.perf_counter()
            theirs[name].savefig(out / f"{name}-matplotlib.png", dpi=120, bbox_inches="tight", format="png")
            mid = time.perf_counter()
            plotting.write_tight_png(ours[name], out / f"{name}-netsight.png", 120)
            end = time.perf_counter()
            total["matplotlib"] += mid - start
            total["netsight"] += end - mid
            a, b = (
                np.asarray(Image.open(out / f"{name}-{s}.png").convert("L")).astype(float) for s in ("matplotlib", "netsight")
            )
            if a.shape == b.shape:
                h, w = (d - d % 4 for d in a.shape)
                blocks = [x[:h, :w].reshape(h // 4, 4, w // 4, 4).mean((1, 3)) for x in (a, b)]
                apart = f"mean difference over 4 x 4 blocks {np.abs(blocks[0] - blocks[1]).mean():.2f} grey levels"
            else:
                apart = f"SIZES DIFFER: {a.shape} against {b.shape}"
            print(f"{name:26} matplotlib {mid - start:5.2f} s, netsight {end - mid:5.2f} s; {apart}", flush=True)
            plt.close(theirs[name])
            plt.close(ours[name])
    m, n = total["matplotlib"], total["netsight"]
    print(f"{len(theirs)} figures: matplotlib {m:.2f} s, netsight {n:.2f} s, {m / n:.2f}x")


if __name__ == "__main__":
    main()
