"""The explore page's code is code: one script and one stylesheet shipped as package data
(`netsight/report/pages/`), inlined into every page; the script draws generic panels and names no
technique; the numbers the Python side formats read as the script's own `fmt` writes them."""

import json
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

from netsight.techniques import registry
from netsight.report import panels
from netsight.report.explore_page import asset, render_page

# Words only a technique would make the page's script say: the registry's names, and what the
# techniques show.
WORDS = {
    "recurrent", "conv", "occlusion", "occluded", "invariance", "evolution", "snapshot", "projection", "patch", "deconv",
    "randomised", "random", "rho", "sanity", "histogram", "gate", "lstm", "gru", "spark", "trace", "digit", "class_mean",
    "saturation", "top9", "preview_of", "activation", "unoccluded",
}  # fmt: skip


def _script_words() -> set[str]:
    code = re.sub(r"//[^\n]*", "", asset("explore.js"))  # the comments may explain; the code may not name
    return {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", code)}


def test_the_script_names_no_technique():
    words = _script_words()
    # "explore" is the page, "units" a layer's units and "rows" a table's: the page's own words, not a technique's
    names = {n.lower() for n in registry.techniques()} - {"explore", "units", "rows"} | WORDS
    assert len(names) > 30
    assert not words & names, sorted(words & names)


def test_the_script_draws_every_panel_kind_the_docs_list():
    kinds = set(re.findall(r"^- `(\w+)`:", panels.__doc__, re.M))
    drawn = set(re.findall(r"^    (\w+): \(", asset("explore.js"), re.M))
    assert kinds == drawn == {"table", "text", "images", "heatmap", "chart", "legend", "group"}


def test_the_page_inlines_its_script_and_stylesheet():
    page = render_page("t", "s", [{"name": "a", "units": [], "images": {}, "notes": {}, "data": {}, "styles": {}}])
    assert asset("explore.js") in page and asset("explore.css") in page
    assert "default-src 'none'" in page and "<script src" not in page and "<link" not in page


@pytest.mark.skipif(shutil.which("node") is None, reason="no node here")
def test_python_numbers_read_as_the_scripts_fmt_writes_them():
    values = [0.0, 1.0, -1.5, 12.0, 99.94, 99.96, 100.0, 100.5, -100.5, 123456.7, 0.1234567, 0.0009996, 1.5e-7, -2.25e-6, 3e-5]
    js = "function fmt(v) { return Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : v.toPrecision(3); }"
    got = subprocess.run(["node", "-e", js + f"console.log(JSON.stringify({json.dumps(values)}.map(fmt)))"], capture_output=True,
                         text=True, check=True)  # fmt: skip
    assert json.loads(got.stdout) == [panels.fmt(v) for v in values]
    assert "function fmt(v) { return Math.abs(v) >= 100 || v === 0 ? v.toFixed(0) : v.toPrecision(3); }" in asset("explore.js")


@pytest.mark.slow
def test_an_installed_package_finds_the_page_files(tmp_path):
    """A wheel of the project carries pages/explore.js and .css, and netsight installed from it reads them."""
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(root),
        ],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        pytest.skip(f"no wheel built here: {build.stderr.strip()[-300:]}")
    (wheel,) = (tmp_path / "dist").glob("netsight-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert {"netsight/report/pages/explore.js", "netsight/report/pages/explore.css"} <= set(z.namelist())
        z.extractall(tmp_path / "site")
    probe = (
        "import netsight, sys; from netsight.report.explore_page import asset; "
        "print(netsight.__file__); print(len(asset('explore.js')), len(asset('explore.css')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    where, sizes = out.stdout.split("\n")[:2]
    assert where.startswith(str(tmp_path / "site"))
    assert [int(v) for v in sizes.split()] == [len(asset("explore.js")), len(asset("explore.css"))]
