"""Build the copy of MNIST and cifar10-assignment bundled inside the package.

    python scripts/build_bundle.py [--shared ../shared/data]

Reads the real data in `shared/data` (MNIST's four IDX files; the course's PNG tree of
CIFAR-10) with netsight's own readers, and writes each split as an xz-compressed IDX file
under netsight/data/bundled/<name>/. Run it again after changing the readers: the output is
byte-identical for the same input.
"""

from __future__ import annotations

import argparse
import lzma
from pathlib import Path

from netsight.data.formats import encode_idx
from netsight.data.sources import BUNDLED_DIR, IDX_NAMES, load_from_root
from netsight.data.specs import DATASETS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    sources = {"mnist": args.shared / "mnist", "cifar10-assignment": args.shared / "cifar10" / "assignment"}
    for name, root in sources.items():
        arrays, source = load_from_root(root, DATASETS[name])
        out = BUNDLED_DIR / name
        out.mkdir(parents=True, exist_ok=True)
        for (key, stem), array in zip(IDX_NAMES.items(), arrays, strict=True):
            data = encode_idx(array[:, 0] if key.endswith("_x") else array)
            path = out / f"{stem}.xz"
            path.write_bytes(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))
            print(f"{path}: {array.shape} from {source}, {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
