"""Make the README's pictures (docs/images/*.png) from a real netsight study, so they can be
regenerated whenever the code changes:

    python scripts/readme_pictures.py                     # trains scripts/readme_suite.toml (~20 min on 2 cores)
    python scripts/readme_pictures.py --study netsight-out/assignment   # or any finished study with the same groups

The figures are copied as netsight wrote them; the explore page is photographed with headless
Chromium at 1280 and 390 px (Debian's chromium, as the browser tests use), the microscope at 1280 px.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "scripts" / "readme_suite.toml"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _first(study: Path, pattern: str) -> Path:
    found = sorted(study.glob(pattern))
    if not found:
        sys.exit(f"{study}: nothing matches {pattern}; is it a finished study with the README suite's groups?")
    return found[0]


def _screenshot(page: Path, target: Path, width: int, height: int, address: str = "#conv2/3") -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no chromium here (apt-get install chromium): the explore page's pictures need it")
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={target}",
                "--virtual-time-budget=4000",
                page.resolve().as_uri() + address,
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", type=Path, help="a finished study (default: train scripts/readme_suite.toml)")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="where the pictures go (docs/images)")
    args = p.parse_args(argv)
    study = args.study
    if study is None:
        study = Path(tempfile.mkdtemp(prefix="netsight-readme-"))
        subprocess.run([sys.executable, "-m", "netsight", "run", str(SUITE), "--out", str(study), "--quiet"], check=True)
    args.out.mkdir(parents=True, exist_ok=True)
    lenet = _first(study, "runs/cnn/lenet5-*-seed0-*")
    copies = {
        "curves.png": study / "figures" / "cnn_curves.png",
        "top9.png": lenet / "figures" / "top9_conv2.png",
        "occlusion.png": lenet / "figures" / "occlusion_conv2.png",
        "recurrent.png": study / "figures" / "rnn_by_cell.png",
    }
    for name, source in copies.items():
        if not source.is_file():
            sys.exit(f"{source}: missing; is {study} a finished study with the README suite's groups and analyses?")
        shutil.copyfile(source, args.out / name)
        print(args.out / name)
    _screenshot(lenet / "explore.html", args.out / "explore.png", 1280, 900)
    _screenshot(lenet / "explore.html", args.out / "explore-phone.png", 390, 844)
    print(args.out / "explore.png", args.out / "explore-phone.png", sep="\n")
    _screenshot(lenet / "microscope" / "index.html", args.out / "microscope.png", 1280, 900, "#conv2/7")
    print(args.out / "microscope.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
